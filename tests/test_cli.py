"""The `earshot` console script: verb listing, verbs end to end, config errors."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from shared.cli import _split_flags, available_verbs
from shared.recording import save_recording

from tests.helpers.recordings import epic_row, make_media, make_recording, write_csv

EARSHOT = shutil.which("earshot", path=str(Path(sys.executable).parent)) or shutil.which("earshot")


def run(*args, cwd):
    assert EARSHOT, "the earshot console script is not installed"
    return subprocess.run([EARSHOT, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_help_lists_every_installed_verb(tmp_path):
    out = run("--help", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split("verbs:")[1].split("\n\n")[0].splitlines()
    listed = [re.split(r"\s{2,}", line.strip())[0] for line in lines if line.strip()]
    # two-word verbs (sim_train) are shown and typed as two words (earshot sim train)
    assert listed == [v.replace("_", " ") for v in sorted(available_verbs())]
    assert {"import", "inspect", "sim train"} <= set(listed)
    assert "unavailable" not in out.stdout and "placeholder" not in out.stdout.lower()


def test_flags_go_before_overrides_whatever_the_order():
    assert _split_flags(["a=1", "--cfg", "job", "b=2"]) == (["--cfg", "job"], ["a=1", "b=2"])
    assert _split_flags(["-m", "x=1,2", "hydra/launcher=joblib"]) == (["-m"], ["x=1,2", "hydra/launcher=joblib"])
    assert _split_flags(["x=-1", "--info", "config"]) == (["--info", "config"], ["x=-1"])
    assert _split_flags(["--info", "x=1"]) == (["--info"], ["x=1"])


def test_two_word_verbs_and_flags_after_overrides(tmp_path):
    out = run("synth", "n_recordings=3", "--cfg", "job", "world.duration_s=7", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "n_recordings: 3" in out.stdout and "duration_s: 7.0" in out.stdout
    out = run("sim", "eval", "--cfg", "job", cwd=tmp_path)
    assert out.returncode == 0 and "policies" in out.stdout, out.stderr[-2000:]


def test_unknown_verb(tmp_path):
    out = run("frobnicate", cwd=tmp_path)
    assert out.returncode == 2 and "unknown verb 'frobnicate'" in out.stderr


def test_inspect_a_recording(tmp_path):
    save_recording(make_recording(), tmp_path / "rec")
    out = run("inspect", f"path={tmp_path / 'rec'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "kitchen_0001" in out.stdout and "3.00 s" in out.stdout
    assert "timer_beep" in out.stdout and "cause links" in out.stdout
    assert (tmp_path / "runs" / "logs" / "inspect").is_dir()  # Hydra's run dir


def test_import_then_inspect(tmp_path):
    media = make_media(tmp_path / "P01_01.mp4", seconds=2.0)
    table = write_csv(tmp_path / "epic.csv", [epic_row("a1", "P01_01", 0.5, 1.0, "beep", 4)])
    out = run("import", f"video={media}", f"csv={table}", f"out={tmp_path / 'imported'}", "environment=kitchen", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "beep" in out.stdout
    out = run("inspect", f"path={tmp_path / 'imported'}", "video=false", cwd=tmp_path)
    assert out.returncode == 0 and "imported" in out.stdout


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["fps=abc"], 1, "Value 'abc' of type 'str' could not be converted to Float"),
        (["bogus=1"], 1, "Key 'bogus' not in 'ImportConfig'"),
        (["environment=kichen"], 2, "config error: environment: 'kichen' is not one of"),
        (["size=127"], 2, "config error: size: must be even"),
        (["video=/no/such.mp4"], 2, "config error: video: no such file"),
    ],
)
def test_config_errors_stop_before_work(tmp_path, args, code, message):
    media = make_media(tmp_path / "clip.mp4", seconds=0.5)
    base = {"video": str(media), "out": str(tmp_path / "out")}
    for a in args:
        k, v = a.split("=", 1)
        base[k] = v
    out = run("import", *[f"{k}={v}" for k, v in base.items()], cwd=tmp_path)
    assert out.returncode == code, out.stderr
    assert message in out.stderr
    assert not (tmp_path / "out").exists()


def test_bad_input_is_one_line_not_a_traceback(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"garbage" * 10)
    out = run("import", f"video={junk}", f"out={tmp_path / 'o'}", cwd=tmp_path)
    assert out.returncode == 2
    assert "earshot import: error:" in out.stderr and "cannot open media file" in out.stderr
    assert "Traceback" not in out.stderr
