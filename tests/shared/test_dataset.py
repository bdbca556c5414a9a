"""Dataset folders: manifest reading, splits, clear errors."""
import json
from pathlib import Path

import pytest

from shared.dataset import load_dataset
from shared.recording import RecordingError, save_recording

from tests.helpers.recordings import make_recording


def make_dataset(root: Path, splits=("train", "train", "val", "test")) -> Path:
    entries = []
    for i, split in enumerate(splits):
        rec = make_recording(seed=i)
        rec.annotations.recording_id = f"rec_{i:04d}"
        save_recording(rec, root / "recordings" / f"rec_{i:04d}")
        entries.append({"id": f"rec_{i:04d}", "split": split, "environment": "kitchen",
                        "duration_s": 3.0, "snr_db": 10.0 + i, "scenario_seed": i})
    manifest = {"schema_version": 1, "generator": {"name": "test"}, "config": {}, "recordings": entries}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_load_and_splits(tmp_path):
    ds = load_dataset(make_dataset(tmp_path))
    assert [e.id for e in ds.split("train")] == ["rec_0000", "rec_0001"]
    assert [e.id for e in ds.split("test")] == ["rec_0003"]
    assert ds.entry("rec_0002").snr_db == 12.0 and ds.entry("rec_0002").extra == {"scenario_seed": 2}
    assert ds.hours == pytest.approx(12 / 3600)
    rec = ds.load("rec_0001", video=False)
    assert rec.annotations.recording_id == "rec_0001"
    assert ds.annotations("rec_0003").recording_id == "rec_0003"
    assert len(list(ds.iter_recordings("val", video=False))) == 1
    with pytest.raises(ValueError, match="split: unknown split 'dev'"):
        ds.split("dev")


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda m: m.update(schema_version=7), "schema_version: unsupported 7"),
        (lambda m: m["recordings"][2].update(split="dev"), "recordings[2].split: expected one of"),
        (lambda m: m["recordings"][1].update(id="rec_0000"), "recordings[1].id: duplicate id 'rec_0000'"),
        (lambda m: m["recordings"][0].update(duration_s="long"), "recordings[0].duration_s: expected a positive number"),
        (lambda m: m["recordings"][3].update(id="rec_9999"), "recordings[3]: recording folder"),
        (lambda m: m.update(recordings={}), "recordings: expected a list"),
    ],
)
def test_bad_manifest_names_the_field(tmp_path, mutate, message):
    root = make_dataset(tmp_path)
    manifest = json.loads((root / "manifest.json").read_text())
    mutate(manifest)
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RecordingError) as exc:
        load_dataset(root)
    assert message in str(exc.value)


def test_not_a_dataset(tmp_path):
    with pytest.raises(RecordingError, match="no manifest"):
        load_dataset(tmp_path)
    (tmp_path / "manifest.json").write_text("[1, 2")
    with pytest.raises(RecordingError, match="not valid JSON"):
        load_dataset(tmp_path)
