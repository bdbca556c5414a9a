"""scripts/demo end to end on the tiny presets, reusing the venv."""
import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_runs_to_the_end(tmp_path):
    env = {**os.environ, "EARSHOT_DEMO_PRESET": "tiny", "EARSHOT_DEMO_DIR": str(tmp_path / "demo")}
    # Run from another directory: the script must find the repo by itself.
    out = subprocess.run(["bash", str(ROOT / "scripts" / "demo")], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    # The venv exists already (this test runs in it): a second set-up installs nothing.
    assert "reusing" in out.stdout and "installing" not in out.stdout
    assert "demo finished" in out.stdout
    manifest = json.loads((tmp_path / "demo" / "world" / "manifest.json").read_text())
    assert len(manifest["recordings"]) >= 2
    assert "summary" in out.stdout.lower() or "hours" in out.stdout.lower()


def test_demo_refuses_a_bad_preset(tmp_path):
    env = {**os.environ, "EARSHOT_DEMO_PRESET": "huge", "EARSHOT_DEMO_DIR": str(tmp_path)}
    out = subprocess.run(["bash", str(ROOT / "scripts" / "demo")], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "must be demo or tiny" in out.stdout
