"""``earshot synth`` and ``earshot sheet``: the dataset folder, splits, workers, the summary, the sheet."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shared.config import UserError
from shared.dataset import load_dataset
from sim.world import SplitsConfig, SynthConfig, WorldConfig, generate_dataset
from sim.world.dataset import assign_splits

EARSHOT = shutil.which("earshot", path=str(Path(sys.executable).parent)) or shutil.which("earshot")


def run(*args, cwd):
    assert EARSHOT, "the earshot console script is not installed (pip install -e .)"
    return subprocess.run([EARSHOT, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """`earshot synth synth/preset=tiny` run once, as a user would."""
    cwd = tmp_path_factory.mktemp("synth")
    out = run("synth", "synth/preset=tiny", "out=ds", cwd=cwd)
    return cwd / "ds", out


def test_synth_writes_a_dataset_and_prints_its_summary(tiny):
    root, out = tiny
    assert out.returncode == 0, out.stderr
    for heading in ("recordings per environment and split", "events per class", "off-screen share",
                    "recording SNR (dB)", "real vs procedural", "x real time", "hours", "█"):
        assert heading in out.stdout or heading.replace("hours", " h (") in out.stdout, heading
    ds = load_dataset(root)  # the reader every part uses agrees with the writer
    assert len(ds.entries) == 4 and {e.environment for e in ds.entries} == {"kitchen", "office", "living_room", "street"}
    assert {e.split for e in ds.entries} == {"train", "val", "test"}
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["generator"]["name"] == "earshot.sim.world"
    assert manifest["config"]["world"]["duration_s"] == 12.0 and manifest["config"]["seed"] == 0
    assert sorted(sum(manifest["splits"].values(), [])) == sorted(e.id for e in ds.entries)
    summary = manifest["summary"]
    assert summary["n_recordings"] == 4 and abs(summary["hours"] - 4 * 12 / 3600) < 1e-6
    assert sum(summary["snr_db_histogram"].values()) == 4
    assert 0 <= summary["offscreen_sound_share"] <= 1 and summary["events_by_label"]
    for e in ds.entries:
        rec = ds.load(e)
        assert rec.duration_s == 12.0 and rec.frames.shape == (120, 128, 128, 3)
        assert rec.annotations.snr_db == e.snr_db


def test_workers_and_order_do_not_change_a_byte(tmp_path):
    world = WorldConfig(duration_s=8.0, queries_per_recording=2)
    one = generate_dataset(SynthConfig(out=str(tmp_path / "one"), n_recordings=3, seed=4, workers=1, world=world,
                                       progress=False))
    two = generate_dataset(SynthConfig(out=str(tmp_path / "two"), n_recordings=3, seed=4, workers=2, world=world,
                                       progress=False))
    assert one == two
    assert _digests(tmp_path / "one") == _digests(tmp_path / "two")
    # a bigger dataset with the same seed starts with the same recordings
    more = generate_dataset(SynthConfig(out=str(tmp_path / "more"), n_recordings=4, seed=4, world=world, progress=False))
    first = more["recordings"][0]["id"]
    assert _digests(tmp_path / "more" / "recordings" / first) == _digests(tmp_path / "one" / "recordings" / first)


def test_splits_are_by_recording_deterministic_and_follow_the_fractions():
    s = SplitsConfig(train=0.8, val=0.1, test=0.1)
    assert assign_splits(100, s, 0) == assign_splits(100, s, 0)
    assert assign_splits(100, s, 0) != assign_splits(100, s, 1)
    counts = {k: assign_splits(100, s, 0).count(k) for k in ("train", "val", "test")}
    assert counts == {"train": 80, "val": 10, "test": 10}
    assert sorted(assign_splits(8, s, 3)) == ["test"] + ["train"] * 6 + ["val"]
    assert sorted(assign_splits(4, s, 3)) == ["test", "train", "train", "val"]  # every split gets one
    assert assign_splits(5, SplitsConfig(train=1.0, val=0.0, test=0.0), 0) == ["train"] * 5


def test_refuses_to_write_into_a_folder_that_is_not_a_dataset(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        generate_dataset(SynthConfig(out=str(tmp_path), n_recordings=1, world=WorldConfig(duration_s=5.0)))
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    "override, message",
    [
        ("world.cause_lag_s=[5,1]", "config error: world.cause_lag_s: range is inverted"),
        ("world.scenarios=[kitchen,garage]", "config error: world.scenarios[1]: unknown scenario 'garage'"),
    ],
)
def test_config_errors_stop_before_any_work(tmp_path, override, message):
    out = run("synth", override, "out=ds", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["world.offscreen_share=1.2"], "world.offscreen_share: must be in [0, 1]"),
        (["world.snr_db.kitchen=[10,-5]"], "world.snr_db.kitchen: range is inverted"),
        (["world.fps=30"], "world.fps: the recording format is 10 fps"),
        (["splits.val=0.5"], "splits: fractions must sum to 1"),
        (["synth/preset=tiny", "workers=0"], "workers: must be in"),
    ],
)
def test_composed_config_errors_name_the_key(overrides, message):
    """What the verb does before any work: compose (Hydra) then validate (the schema)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from shared.config import CONFIG_DIR, ConfigError, to_schema
    import sim.world.verbs  # noqa: F401  (registers the schema)

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="synth", overrides=overrides)
    with pytest.raises(ConfigError) as exc:
        to_schema(cfg, SynthConfig)
    assert message in str(exc.value)


def test_sheet_renders_a_contact_sheet(tiny, tmp_path):
    root, _ = tiny
    rec_dir = sorted((root / "recordings").iterdir())[0]
    png = tmp_path / "sheet.png"
    out = run("sheet", f"path={rec_dir}", f"out={png}", "n_frames=8", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    from matplotlib.image import imread

    img = imread(png)
    assert img.shape[1] > 1500 and img.shape[0] > 800
    assert img[..., :3].std() > 0.1  # frames, spectrogram and lanes: not a blank page
    from shared.config import ConfigError
    from sim.world import SheetConfig

    with pytest.raises(ConfigError, match="path: not a recording folder"):
        SheetConfig(path=str(tmp_path / "nope"))
