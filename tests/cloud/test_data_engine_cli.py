"""``earshot instruct`` through the console script, on a dataset written by ``earshot synth``."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shared.cli import available_verbs
from shared.config import ConfigError
from shared.dataset import load_dataset

from cloud.data_engine.records import CATEGORIES, SPLIT_FILES, read_jsonl
from cloud.data_engine.instruct_config import InstructConfig

from tests.helpers.qa_world import check_records, write_dataset  # noqa: E402

EARSHOT = shutil.which("earshot", path=str(Path(sys.executable).parent)) or shutil.which("earshot")


def run(*args, cwd):
    assert EARSHOT, "the earshot console script is not installed"
    return subprocess.run([EARSHOT, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Three 20 s recordings, one per split (a few seconds to generate; pairs need windows to choose from)."""
    if "synth" not in available_verbs():
        pytest.skip("earshot synth is not installed")
    root = tmp_path_factory.mktemp("synth")
    out = run("synth", f"out={root / 'world'}", "n_recordings=3", "world.duration_s=20", "progress=false", cwd=root)
    assert out.returncode == 0, out.stderr
    return root / "world"


@pytest.mark.slow  # earshot synth + instruct end to end
def test_instruct_end_to_end_on_a_generated_dataset(world, tmp_path):
    out = run("instruct", f"dataset={world}", f"out={tmp_path / 'qa'}", "bench_per_category=3",
              "bench_pairs_per_category=3", "progress=false", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"wrote {tmp_path / 'qa'}" in out.stdout and "records per split x category" in out.stdout
    assert "answer vocabulary:" in out.stdout
    qa = tmp_path / "qa"
    info = json.loads((qa / "info.json").read_text())
    ds = load_dataset(world)
    split_of = {e.id: e.split for e in ds.entries}
    recs = {k: read_jsonl(qa / f) for k, f in SPLIT_FILES.items()}
    for key, rs in recs.items():
        assert info["counts"][key]["categories"]["total"] == len(rs)
        want = "test" if key == "bench" else key.split("_")[0]
        assert {split_of[r.recording_id] for r in rs} <= {want}, key
    assert recs["train_av"] and recs["val_av"] and recs["bench"]
    bench = {c: len({r.meta.get("pair_id", r.id) for r in recs["bench"] if r.category == c}) for c in CATEGORIES}
    for c in CATEGORIES:  # exactly the count asked for (pairs or narrations), or a shortfall that says how many
        assert bench[c] == min(3, info["bench"]["available"][c])
        assert (c in info["bench"]["shortfall"]) == (info["bench"]["available"][c] < 3)
    assert "counterfactual pairs:" in out.stdout
    assert info["dataset"] == str(world) and info["config"]["bench_per_category"] == 3
    assert info["answer_vocab_size"] == len(info["answer_vocab"]) > 10
    assert sorted(p.stem for p in (qa / "narrations").glob("*.json")) == sorted(split_of)

    anns = {e.id: ds.annotations(e) for e in ds.entries}
    done = check_records(anns, [r for rs in recs.values() for r in rs])
    assert {"SSA/source", "AVDN/dense", "AVSN/summary", "AVH/sound"} <= set(done) or sum(done.values()) > 50, done
    # the vision-only set never names an off-screen sound's source
    for r in recs["train_visual"] + recs["val_visual"]:
        if r.category == "SSA" and r.answer not in ("none", "no"):
            assert all(anns[r.recording_id].event(i).source_visible is True for i in r.meta["event_ids"]), r


@pytest.mark.slow  # earshot synth + instruct end to end
def test_same_command_same_bytes(world, tmp_path):
    for name in ("a", "b"):
        out = run("instruct", f"dataset={world}", f"out={tmp_path / name}", "windows_per_recording=3",
                  "bench_windows_per_recording=4", "progress=false", cwd=tmp_path)
        assert out.returncode == 0, out.stderr
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 6 + 3
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


def test_config_error_names_the_key_and_stops_before_work(tmp_path):
    write_dataset(tmp_path / "world")
    out = run("instruct", f"dataset={tmp_path / 'world'}", f"out={tmp_path / 'qa'}", "window_s=30", cwd=tmp_path)
    assert out.returncode == 2 and "earshot instruct: config error: window_s: must be in [2, 10]" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "qa").exists()
    out = run("instruct", f"dataset={tmp_path / 'nowhere'}", f"out={tmp_path / 'qa'}", cwd=tmp_path)
    assert out.returncode == 2 and "config error: dataset: no manifest.json" in out.stderr


@pytest.mark.parametrize(
    "key, value",
    [
        ("window_s", 1.0),
        ("windows_per_recording", 0),
        ("bench_windows_per_recording", 0),
        ("bench_per_category", 0),
        ("bench_pairs_per_category", 0),
        ("pairs_per_probe", 0),
        ("grid_s", 0.0),
        ("response_wait_s", 11.0),
        ("min_overlap_s", 0.0),
        ("negative_margin_s", 11.0),
        ("tr_min_gap_s", 10.0),
        ("avdn_max_items", 7),
        ("avsn_max_labels", 0),
        ("noisy_below_db", 100.0),
        ("seed", -1),
        ("out", " "),
    ],
)
def test_every_range_is_checked(tmp_path, key, value):
    write_dataset(tmp_path / "world")
    with pytest.raises(ConfigError, match=f"^{key}: "):
        InstructConfig(**{"dataset": str(tmp_path / "world"), "out": str(tmp_path / "qa"), key: value})
