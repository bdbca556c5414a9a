"""Recording folders: round trips, validation, and errors that name the field."""
import json
import shutil

import numpy as np
import pytest

from shared.annotations import Annotations, AnnotationError
from shared.recording import (
    Recording,
    RecordingError,
    load_annotations,
    load_recording,
    read_wav,
    save_recording,
)

from tests.helpers.recordings import RATE, make_recording


def test_round_trip(tmp_path):
    rec = make_recording()
    save_recording(rec, tmp_path / "r")
    back = load_recording(tmp_path / "r")
    assert back.audio.dtype == np.int16 and np.array_equal(back.audio, rec.audio)  # bit-exact
    assert back.sample_rate_hz == RATE
    assert back.frames.shape == rec.frames.shape
    err = np.abs(back.frames.astype(np.int16) - rec.frames.astype(np.int16))
    # H.264 at crf 17 with 4:2:0 chroma: small mean error, bounded worst pixel.
    assert err.mean() < 3.0, err.mean()
    assert np.percentile(err, 99) < 20
    np.testing.assert_allclose(back.frame_times_s, rec.frame_times_s, atol=1e-3)
    assert back.annotations == rec.annotations
    assert back.annotations.cause_links()[0][2] == pytest.approx(1.3)


def test_save_is_deterministic(tmp_path):
    rec = make_recording()
    a, b = save_recording(rec, tmp_path / "a"), save_recording(rec, tmp_path / "b")
    for name in ("audio.wav", "video.mp4", "annotations.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_audio_only_load_and_windows(tmp_path):
    rec = make_recording()
    save_recording(rec, tmp_path / "r")
    back = load_recording(tmp_path / "r", video=False)
    assert back.frames.shape[0] == 0 and np.array_equal(back.audio, rec.audio)
    assert len(back.annotations.frames) == 30  # per-frame info kept
    win = rec.audio_window(end_s=0.5, length_s=1.0)
    assert len(win) == RATE and not win[: RATE // 2].any()  # zero-padded before t=0
    assert np.array_equal(win[RATE // 2 :], rec.audio[: RATE // 2])
    assert rec.frame_index_at(0.25) == 2 and rec.frame_index_at(-1) == -1


def test_existing_recording_survives_a_failed_save(tmp_path):
    good = make_recording()
    save_recording(good, tmp_path / "r")
    bad = make_recording()
    bad.annotations.events[1].cause = "nope"
    with pytest.raises(AnnotationError, match=r"events\[1\]\.cause: no event with id 'nope'"):
        save_recording(bad, tmp_path / "r")
    assert load_recording(tmp_path / "r").annotations == good.annotations
    assert [p.name for p in tmp_path.iterdir()] == ["r"]  # no temp folders left behind


def _annotations_json(tmp_path):
    save_recording(make_recording(), tmp_path / "r")
    path = tmp_path / "r" / "annotations.json"
    return path, json.loads(path.read_text())


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["events"][1].update(onset_s="abc"), "annotations.events[1].onset_s: expected a number, got 'abc'"),
        (lambda d: d["events"][0].pop("label"), "annotations.events[0].label: required field is missing"),
        (lambda d: d["events"][0].update(modality="smell"), "annotations.events[0].modality: must be one of"),
        (lambda d: d["events"][0].update(offset_s=0.1), "annotations.events[0].offset_s: ends before onset_s"),
        (lambda d: d["events"][0].update(colour="red"), "annotations.events[0].colour: unknown field"),
        (lambda d: d["events"][2].update(id="e0"), "annotations.events[2].id: duplicate id 'e0'"),
        (lambda d: d["events"][0].update(cause="e1"), "annotations.events[0].cause: cause 'e1' starts after its effect"),
        (lambda d: d["events"][0].update(source_visible="no"), "annotations.events[0].source_visible: expected true or false"),
        (lambda d: d["events"][2].update(offset_s=9.0), "annotations.events[2].offset_s: 9.0 is past the end"),
        (lambda d: d["queries"][0].update(event_ids=["e9"]), "annotations.queries[0].event_ids[0]: no event with id 'e9'"),
        (lambda d: d["frames"]["hand_occlusion"].__setitem__(3, 1.5), "annotations.frames.hand_occlusion[3]: must be <= 1.0"),
        (lambda d: d.update(schema_version=99), "annotations.schema_version: unsupported version 99"),
        (lambda d: d.pop("duration_s"), "annotations.duration_s: required field is missing"),
        (lambda d: d.update(events={}), "annotations.events: expected a list"),
    ],
)
def test_invalid_annotations_name_the_field(tmp_path, mutate, message):
    path, data = _annotations_json(tmp_path)
    mutate(data)
    path.write_text(json.dumps(data))
    with pytest.raises(RecordingError) as exc:
        load_annotations(path)
    assert message in str(exc.value)
    assert str(path) in str(exc.value)


def test_corrupt_files_are_reported(tmp_path):
    rec = make_recording()
    save_recording(rec, tmp_path / "r")
    folder = tmp_path / "r"
    (folder / "annotations.json").write_text("{not json")
    with pytest.raises(RecordingError, match="not valid JSON"):
        load_recording(folder)

    save_recording(rec, folder)
    (folder / "video.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(RecordingError, match="video.mp4: cannot decode video"):
        load_recording(folder)

    save_recording(rec, folder)
    raw = (folder / "audio.wav").read_bytes()
    (folder / "audio.wav").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(RecordingError, match="audio.wav: truncated"):
        load_recording(folder)

    save_recording(rec, folder)
    (folder / "audio.wav").write_bytes(b"RIFFjunk")
    with pytest.raises(RecordingError, match="not a readable WAV"):
        read_wav(folder / "audio.wav")

    save_recording(rec, folder)
    (folder / "video.mp4").unlink()
    with pytest.raises(RecordingError, match="missing video.mp4"):
        load_recording(folder)

    with pytest.raises(RecordingError, match="no such directory"):
        load_recording(tmp_path / "nope")


def test_parts_must_agree(tmp_path):
    rec = make_recording()
    save_recording(rec, tmp_path / "r")
    path = tmp_path / "r" / "annotations.json"
    data = json.loads(path.read_text())
    data["duration_s"] = 10.0
    path.write_text(json.dumps(data))
    with pytest.raises(RecordingError, match=r"duration_s is 10.0 s but audio.wav holds 3.000 s"):
        load_recording(tmp_path / "r")
    with pytest.raises(RecordingError, match="annotations.frames: 30 per-frame entries for 10 video frames"):
        r = make_recording()
        Recording(r.audio, RATE, r.frames[:10], r.frame_times_s[:10], r.annotations)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"audio": np.zeros(10, np.float32)}, "audio: expected a 1-D int16 array"),
        ({"frames": np.zeros((30, 8, 8), np.uint8)}, "frames: expected uint8 (n, height, width, 3)"),
        ({"frame_times_s": np.zeros(30)}, "frame_times_s: timestamps must be finite"),
        ({"sample_rate_hz": 0}, "sample_rate_hz: expected a positive int"),
    ],
)
def test_in_memory_validation(kwargs, message):
    r = make_recording()
    args = dict(audio=r.audio, sample_rate_hz=RATE, frames=r.frames, frame_times_s=r.frame_times_s,
                annotations=Annotations("x", 3.0))
    args.update(kwargs)
    with pytest.raises(RecordingError) as exc:
        Recording(**args)
    assert message in str(exc.value)


def test_odd_frame_size_is_refused(tmp_path):
    r = make_recording()
    odd = Recording(r.audio, RATE, r.frames[:, :127, :127], r.frame_times_s, Annotations("x", 3.0))
    with pytest.raises(RecordingError, match="127x127 must be even"):
        save_recording(odd, tmp_path / "odd")
    assert not (tmp_path / "odd").exists()
