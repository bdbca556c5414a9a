"""Importing real media (mp4 with sound) and EPIC-SOUNDS-style CSV annotations."""
import numpy as np
import pytest

from shared.importers import (
    MediaImportError,
    import_mp4,
    parse_timestamp,
    read_epic_sounds_csv,
)
from shared.recording import load_recording

from tests.helpers.recordings import TONE_HZ, epic_row, make_media, write_csv


def test_parse_timestamp():
    assert parse_timestamp("00:00:01.500") == 1.5
    assert parse_timestamp("01:02:03.004") == pytest.approx(3723.004)
    for bad in ("1.5", "00:61:00.000", "00:00:01", "aa:bb:cc.ddd"):
        with pytest.raises(ValueError, match="HH:mm:ss.SSS"):
            parse_timestamp(bad)


def test_import_mp4_with_epic_csv(tmp_path):
    media = make_media(tmp_path / "P01_01.mp4")
    table = write_csv(
        tmp_path / "epic.csv",
        [
            epic_row("P01_01_2", "P01_01", 1.25, 2.0, "beep", 4),
            epic_row("P01_01_1", "P01_01", 0.5, 1.0, "water", 7, desc="tap running"),
            epic_row("P02_03_1", "P02_03", 0.1, 0.2, "scrape", 2),  # another video: skipped
        ],
    )
    rec = import_mp4(media, tmp_path / "out" / "P01_01", epic_csv=table, environment="kitchen")

    # Audio: resampled to 16 kHz mono, the tone survives.
    assert rec.sample_rate_hz == 16_000 and rec.audio.dtype == np.int16
    assert rec.duration_s == pytest.approx(3.0, abs=0.05)
    spectrum = np.abs(np.fft.rfft(rec.audio[8000:24000].astype(np.float64)))
    assert np.argmax(spectrum) * 16_000 / 16_000 == pytest.approx(TONE_HZ, abs=2)
    # Video: 10 fps grid on the audio clock, centre-cropped square 128x128.
    assert rec.frames.shape[1:] == (128, 128, 3)
    assert len(rec.frames) in (30, 31)
    np.testing.assert_allclose(np.diff(rec.frame_times_s), 0.1, atol=1e-9)
    # Grid frame k shows source frame 3k (red = 2 * 3k), within codec error.
    red = rec.frames[:, 64, 64, 0].astype(int)
    assert np.abs(red[:25] - 6 * np.arange(25)).max() <= 8
    # Centre crop of a 320x240 source keeps columns 40..280: both halves present.
    assert rec.frames[5, 64, 10, 2] > 150 and rec.frames[5, 64, 118, 2] < 50
    # Events: only this video's rows, sorted, times from the 24 kHz samples.
    ev = rec.annotations.events
    assert [e.id for e in ev] == ["P01_01_1", "P01_01_2"]
    assert (ev[0].onset_s, ev[0].offset_s, ev[0].label) == (0.5, 1.0, "water")
    assert ev[0].attrs["class_id"] == 7 and ev[0].attrs["description"] == "tap running"
    assert ev[1].modality == "audio" and ev[1].source_visible is None
    assert rec.annotations.environment == "kitchen"
    assert rec.annotations.provenance["kind"] == "imported"

    back = load_recording(tmp_path / "out" / "P01_01")
    assert np.array_equal(back.audio, rec.audio)
    assert back.annotations == rec.annotations


def test_bad_csv_fails_before_decoding_and_names_row(tmp_path):
    media = make_media(tmp_path / "P01_01.mp4", seconds=1.0)
    bad = write_csv(tmp_path / "bad.csv", [epic_row("a", "P01_01", 0.1, 0.2, "beep", 1)])
    rows = bad.read_text().splitlines()
    rows[1] = rows[1].replace("00:00:00.100", "00:00:0x.100")
    bad.write_text("\n".join(rows) + "\n")
    with pytest.raises(MediaImportError, match=r"bad.csv: row 2, column start_timestamp: expected HH:mm:ss.SSS"):
        import_mp4(media, tmp_path / "out", epic_csv=bad)
    assert not (tmp_path / "out").exists()

    skew = write_csv(tmp_path / "skew.csv", [epic_row("a", "P01_01", 0.1, 0.2, "beep", 1)])
    text = skew.read_text().replace(",2400,", ",96000,")  # start_sample says 4 s
    skew.write_text(text)
    with pytest.raises(MediaImportError, match="row 2: start_timestamp .* disagree"):
        read_epic_sounds_csv(skew)

    missing = tmp_path / "missing.csv"
    missing.write_text("annotation_id,video_id\nx,y\n")
    with pytest.raises(MediaImportError, match="missing column"):
        read_epic_sounds_csv(missing)

    late = write_csv(tmp_path / "late.csv", [epic_row("a", "P01_01", 5.0, 6.0, "beep", 1)])
    with pytest.raises(MediaImportError, match="past the end of P01_01.mp4"):
        import_mp4(media, tmp_path / "out", epic_csv=late)


def test_media_without_audio_or_garbage(tmp_path):
    silent = make_media(tmp_path / "silent.mp4", seconds=0.5, audio=False)
    with pytest.raises(MediaImportError, match="no audio track"):
        import_mp4(silent, tmp_path / "o1")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x01garbage" * 50)
    with pytest.raises(MediaImportError, match="cannot open media file"):
        import_mp4(junk, tmp_path / "o2")
