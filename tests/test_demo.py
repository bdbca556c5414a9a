"""scripts/demo end to end on the tiny presets: every stage, the report and its screenshot."""
import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EARSHOT = shutil.which("earshot", path=str(Path(sys.executable).parent)) or shutil.which("earshot")
SECTIONS = ("1. Teacher benchmark", "2. Students vs teacher", "3. Edge: size and latency",
            "4. Offloading policies", "5. Timeline of one held-out recording")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    env = {**os.environ, "EARSHOT_DEMO_PRESET": "tiny", "EARSHOT_DEMO_DIR": str(tmp / "demo")}
    # mlflow.set_tracking_uri() in earlier in-process tests exports MLFLOW_TRACKING_URI; the
    # demo must fall back to its own store, as it does for a user who has not set one.
    env.pop("MLFLOW_TRACKING_URI", None)
    # Run from another directory: the script must find the repo by itself.
    out = subprocess.run(["bash", str(ROOT / "scripts" / "demo")], cwd=tmp, env=env,
                         capture_output=True, text=True, timeout=1500)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    return tmp / "demo", out.stdout


@pytest.mark.slow  # the tiny demo end to end: minutes
def test_demo_runs_every_stage(demo):
    folder, stdout = demo
    # The venv exists already (this test runs in it): a second set-up installs nothing.
    assert "reusing" in stdout and "installing" not in stdout
    assert "demo finished" in stdout
    # the headline at the end: the teacher on the paired bench beside its controls
    assert "on the counterfactual bench" in stdout and "control: question_only" in stdout
    stages = json.loads((folder / "stages.json").read_text())["seconds"]
    assert list(stages) == ["world", "instruct", "teachers", "students", "edge", "sentences", "sim", "report"]
    manifest = json.loads((folder / "world" / "manifest.json").read_text())
    assert len(manifest["recordings"]) >= 2
    for variant in ("av_gate", "visual_gate", "av_blind"):
        assert (folder / "teacher" / variant / "model" / "eval_bench.scores.json").is_file()
    assert sorted(p.name for p in (folder / "kd" / "trigger" / "export").glob("*.pte")) == [
        "trigger_xnnpack_fp32.pte", "trigger_xnnpack_int8.pte"]
    # both runtimes ran the same held-out recording against the server, and it was traced
    (py_log,) = sorted((folder / "edge").glob("*.jsonl"))
    (native_log,) = sorted((folder / "native").glob("*.jsonl"))
    assert py_log.name == native_log.name and (folder / "traces" / py_log.name).is_file()
    for log in (py_log, native_log):
        kinds = [json.loads(line)["kind"] for line in log.read_text().splitlines()]
        assert kinds[0] == "start" and kinds[-1] == "end" and "offload" in kinds
    # the timeline's questions in words: every query of the recording asked of the LM-served teacher
    said = json.loads((folder / "sentences" / py_log.name.replace(".jsonl", ".json")).read_text())
    from shared.recording import load_recording

    queries = load_recording(folder / "world" / "recordings" / py_log.stem, video=False).annotations.queries
    assert [r["query_id"] for r in said["rows"]] == [q.id for q in queries] and said["n"] == len(queries) > 0
    assert all(r["sentence"] and r["lm_ms"] > 0 for r in said["rows"]) and said["lm"] == "default"
    assert all(set(r["trust"]) == {"audio", "visual"} for r in said["rows"])
    rows = json.loads((folder / "sim" / "results.json").read_text())
    assert {"always_local", "always_cloud", "audio_trigger", "context_aware", "learned"} <= {r["policy"] for r in rows}
    assert (folder / "mlflow.db").is_file()


@pytest.mark.slow  # the tiny demo end to end: minutes
def test_report_holds_every_section_with_numbers(demo):
    folder, _ = demo
    page = (folder / "report.html").read_text()
    assert "missing:" not in page
    positions = [page.find(s) for s in SECTIONS]
    assert all(p >= 0 for p in positions) and positions == sorted(positions), positions
    chunks = [page[a:b] for a, b in zip(positions, positions[1:] + [len(page)])]
    for title, chunk in zip(SECTIONS, chunks):
        cells = re.findall(r"<td>(-?[0-9][0-9.,]*)</td>", chunk)
        images = chunk.count("data:image/png;base64,")
        assert cells or images, f"section {title!r} has no numbers or figures"
    # the teacher table's numbers are the run's own scores
    scores = json.loads((folder / "teacher" / "av_gate" / "model" / "eval_bench.scores.json").read_text())["scores"]
    assert f"{100 * scores['overall']:.1f}" in chunks[0]
    assert page.count("data:image/png;base64,") >= 2  # Pareto plot and timeline
    # the timeline's sentences table: one row per query, the sentence the server wrote
    said = json.loads(next((folder / "sentences").glob("*.json")).read_text())
    assert "teacher&#x27;s label answer" in chunks[4] or "teacher's label answer" in chunks[4]
    assert all(html.escape(r["sentence"]) in chunks[4] for r in said["rows"])


@pytest.mark.slow  # the tiny demo end to end: minutes
def test_report_renders_in_headless_chromium(demo, tmp_path):
    folder, _ = demo
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is not installed (scripts/_setup.sh installs it when root)"
    shot = tmp_path / "report.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={shot}", "--window-size=1280,6000", (folder / "report.html").as_uri()],
                   capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 10_000
    from matplotlib.image import imread

    img = imread(shot)
    assert img.std() > 0.05, "the screenshot is blank"
    # mostly white page, but with real content: dark text pixels and coloured figure pixels
    gray = img[..., :3].mean(axis=-1)
    assert (gray < 0.3).mean() > 0.002 and np.abs(img[..., 0] - img[..., 2]).mean() > 0.005


def test_demo_refuses_a_bad_preset(tmp_path):
    env = {**os.environ, "EARSHOT_DEMO_PRESET": "huge", "EARSHOT_DEMO_DIR": str(tmp_path)}
    out = subprocess.run(["bash", str(ROOT / "scripts" / "demo")], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "must be demo or tiny" in out.stdout


@pytest.mark.slow  # the tiny demo end to end: minutes
def test_bench_runs_every_part_on_the_demo_output(demo, tmp_path):
    folder, _ = demo
    out = subprocess.run([EARSHOT, "bench", f"run={folder}", "quick=true", f"out={tmp_path / 'bench'}"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    results = json.loads((tmp_path / "bench" / "bench.json").read_text())
    assert set(results["parts"]) == {"world", "server", "latency", "reliability", "edge_models", "students",
                                     "edge_runtime", "native", "trigger", "sim"}
    assert all(p["ok"] for p in results["parts"].values())
    md = (tmp_path / "bench" / "bench.md").read_text()
    for figure in ("x real time per core", "batching speed-up", "int8 .pte vs eager", "native trigger",
                   "env steps/s", "loop per hop", "trigger event recall", "camera on under audio_trigger",
                   "audio onset -> cloud answer p95", "silently lost"):
        assert figure in md, md
    # the figures are the scripts' own: e.g. the simulator's steps/s
    sim = results["parts"]["sim"]["data"]
    assert f"{sim['steps_per_s']:,.0f}" in md and sim["steps_per_s"] > 0


def test_bench_names_what_is_missing_before_running(tmp_path):
    out = subprocess.run([EARSHOT, "bench",
                          f"run={tmp_path}", "parts=[sim]"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "traces/*.jsonl" in out.stderr and "missing" in out.stderr


@pytest.mark.slow  # starts the demo driver and its report stage (~10 s)
def test_fresh_with_only_redoes_those_stages_and_keeps_the_rest(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("demo_driver", ROOT / "scripts" / "demo.py")
    driver = importlib.util.module_from_spec(spec)
    sys.modules["demo_driver"] = driver  # its dataclasses look their module up
    spec.loader.exec_module(driver)
    out_dir = tmp_path / "demo"
    (out_dir / "world").mkdir(parents=True)
    (out_dir / "world" / "keep.txt").write_text("an earlier stage's output")
    ctx = driver.Ctx(out_dir.resolve(), "tiny", driver.PRESETS["tiny"], 1)
    (out_dir / ".done").mkdir()
    report = next(st for st in driver.STAGES if st.name == "report")
    (out_dir / ".done" / "report").write_text(driver._fingerprint(ctx, report))  # "finished before"
    run = [sys.executable, str(ROOT / "scripts" / "demo.py"), "--preset", "tiny", "--out", str(out_dir), "--only", "report"]
    first = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0 and "done before, skipped" in first.stdout
    again = subprocess.run([*run, "--fresh"], capture_output=True, text=True, timeout=300)
    # redone (and failed: there is nothing to report on), the other stages' outputs untouched
    assert again.returncode == 1 and "done before, skipped" not in again.stdout and "failed" in again.stdout
    assert (out_dir / "world" / "keep.txt").read_text() == "an earlier stage's output"
