"""Bring real recordings into the Earshot format.

- :func:`import_mp4`: any video file with an audio track (mp4, mov, mkv ...)
  -> a recording folder: audio resampled to 16 kHz mono int16, video sampled
  to 10 fps on the audio clock, centre-cropped and resized to a square.
- :func:`read_epic_sounds_csv`: EPIC-SOUNDS-style annotations -> events.

EPIC-SOUNDS columns (one row per sound event)::

    annotation_id, participant_id, video_id, start_timestamp, stop_timestamp,
    start_sample, stop_sample, description, class, class_id

Timestamps are ``HH:mm:ss.SSS``; samples count at 24 kHz (EPIC-SOUNDS audio
rate). Times are taken from the sample columns (exact); the timestamps are
cross-checked and a row where both disagree by more than ``MAX_CLOCK_SKEW_S``
is rejected with its row number, since that means a wrong file or rate.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from shared.annotations import Annotations, Event
from shared.recording import (
    DEFAULT_FPS,
    DEFAULT_SAMPLE_RATE_HZ,
    Recording,
    RecordingError,
    save_recording,
)

__all__ = [
    "EPIC_SOUNDS_COLUMNS",
    "EPIC_SOUNDS_SAMPLE_RATE_HZ",
    "MediaImportError",
    "parse_timestamp",
    "read_epic_sounds_csv",
    "decode_media",
    "import_mp4",
]

EPIC_SOUNDS_COLUMNS = (
    "annotation_id",
    "participant_id",
    "video_id",
    "start_timestamp",
    "stop_timestamp",
    "start_sample",
    "stop_sample",
    "description",
    "class",
    "class_id",
)
EPIC_SOUNDS_SAMPLE_RATE_HZ = 24_000
MAX_CLOCK_SKEW_S = 1.0
_TIMESTAMP = re.compile(r"^(\d{1,2}):([0-5]\d):([0-5]\d)\.(\d{1,3})$")


class MediaImportError(RecordingError):
    """An import input that cannot be used; the message names file, row and column."""


def parse_timestamp(text: str) -> float:
    """``"HH:mm:ss.SSS"`` -> seconds. Raises ValueError naming the text."""
    m = _TIMESTAMP.match(text.strip())
    if not m:
        raise ValueError(f"expected HH:mm:ss.SSS, got {text!r}")
    h, mnt, s, frac = m.groups()
    return int(h) * 3600 + int(mnt) * 60 + int(s) + int(frac.ljust(3, "0")) / 1000


def read_epic_sounds_csv(path: str | Path, video_id: str | None = None) -> list[Event]:
    """Read EPIC-SOUNDS-style rows as audio :class:`Event` s.

    Args:
        video_id: keep only rows of this video (all rows when None).

    Returns:
        Events sorted by onset; ``label`` is the dataset's class name, and
        ``attrs`` keeps ``class_id``, ``description``, ``participant_id``,
        ``video_id`` and the annotation id.

    Raises:
        MediaImportError: missing columns, or a bad value (names row and column).
    """
    path = Path(path)
    events: list[Event] = []
    try:
        fh = path.open(newline="", encoding="utf-8")
    except FileNotFoundError:
        raise MediaImportError(f"{path}: file not found") from None
    with fh:
        reader = csv.DictReader(fh)
        missing = [c for c in EPIC_SOUNDS_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise MediaImportError(f"{path}: missing column(s) {', '.join(missing)}")
        for row_no, row in enumerate(reader, start=2):  # row 1 is the header
            if video_id is not None and row["video_id"] != video_id:
                continue
            events.append(_epic_row(row, f"{path}: row {row_no}"))
    events.sort(key=lambda e: (e.onset_s, e.id))
    return events


def _epic_row(row: dict[str, str], where: str) -> Event:
    def field(name: str, conv):
        try:
            return conv(row[name])
        except (ValueError, TypeError) as exc:
            raise MediaImportError(f"{where}, column {name}: {exc}") from None

    t0, t1 = field("start_timestamp", parse_timestamp), field("stop_timestamp", parse_timestamp)
    s0, s1 = field("start_sample", int), field("stop_sample", int)
    class_id = field("class_id", int)
    onset, offset = s0 / EPIC_SOUNDS_SAMPLE_RATE_HZ, s1 / EPIC_SOUNDS_SAMPLE_RATE_HZ
    for name, ts, fs in (("start", t0, onset), ("stop", t1, offset)):
        if abs(ts - fs) > MAX_CLOCK_SKEW_S:
            raise MediaImportError(
                f"{where}: {name}_timestamp ({ts:.3f} s) and {name}_sample at 24 kHz "
                f"({fs:.3f} s) disagree by more than {MAX_CLOCK_SKEW_S} s"
            )
    if s0 < 0 or s1 < s0:
        raise MediaImportError(f"{where}: stop_sample {s1} before start_sample {s0}")
    label = row["class"].strip()
    if not label:
        raise MediaImportError(f"{where}, column class: empty")
    return Event(
        id=row["annotation_id"].strip() or f"row{where.rsplit(' ', 1)[-1]}",
        onset_s=onset,
        offset_s=offset,
        label=label,
        modality="audio",
        source_visible=None,
        attrs={
            "class_id": class_id,
            "description": row["description"],
            "participant_id": row["participant_id"],
            "video_id": row["video_id"],
        },
    )


def decode_media(
    path: str | Path,
    *,
    fps: float = DEFAULT_FPS,
    size: int = 128,
    sample_rate_hz: int = DEFAULT_SAMPLE_RATE_HZ,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode a media file to ``(audio int16, frames uint8 (n, size, size, 3), times_s)``.

    Audio is downmixed and resampled by FFmpeg. Frames are sampled on a fixed
    grid ``k / fps`` (k = 0, 1, ...) of the audio clock: each grid point takes
    the newest decoded frame at or before it, so a 30 or 60 fps source, or a
    variable-rate phone video, maps onto the same grid.

    Raises:
        MediaImportError: unreadable file, or no audio or no video stream.
    """
    import av

    path = Path(path)
    if size % 2:
        raise MediaImportError(f"size={size}: must be even (H.264 yuv420p)")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, FileNotFoundError, IsADirectoryError) as exc:
        raise MediaImportError(f"{path}: cannot open media file ({exc})") from exc
    with container:
        if not container.streams.audio:
            raise MediaImportError(f"{path}: no audio track (Earshot needs sound)")
        if not container.streams.video:
            raise MediaImportError(f"{path}: no video track")
        try:
            audio = _decode_audio(container, sample_rate_hz)
            container.seek(0)
            frames, times = _decode_video(container, fps, size)
        except av.error.FFmpegError as exc:
            raise MediaImportError(f"{path}: decoding failed ({exc})") from exc
    duration = len(audio) / sample_rate_hz
    keep = times < duration  # the clock runs on the audio
    return audio, frames[keep], times[keep]


def _decode_audio(container, rate: int) -> np.ndarray:
    import av

    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
    chunks = []
    for frame in container.decode(container.streams.audio[0]):
        for out in resampler.resample(frame):
            chunks.append(out.to_ndarray().reshape(-1))
    for out in resampler.resample(None):
        chunks.append(out.to_ndarray().reshape(-1))
    return np.concatenate(chunks).astype(np.int16) if chunks else np.zeros(0, np.int16)


def _decode_video(container, fps: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    import av

    stream = container.streams.video[0]
    start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    out, times, k = [], [], 0
    last = None
    for frame in container.decode(stream):
        t = float(frame.pts * frame.time_base) - start if frame.pts is not None else k / fps
        # Emit grid points that lie before this frame using the previous frame.
        while last is not None and k / fps < t - 1e-6:
            out.append(last)
            times.append(k / fps)
            k += 1
        last = _square(frame, size)
    # The last decoded frame covers one more frame interval at most.
    if last is not None:
        out.append(last)
        times.append(k / fps)
    return np.stack(out), np.asarray(times)


def _square(frame, size: int) -> np.ndarray:
    """Centre-crop to a square and resize to ``size`` x ``size`` RGB."""
    import av

    rgb = frame.to_ndarray(format="rgb24")
    h, w, _ = rgb.shape
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    crop = np.ascontiguousarray(rgb[y0 : y0 + s, x0 : x0 + s])
    resized = av.VideoFrame.from_ndarray(crop, format="rgb24").reformat(
        width=size, height=size, interpolation="AREA"
    )
    return resized.to_ndarray(format="rgb24")


def import_mp4(
    video_path: str | Path,
    out_dir: str | Path,
    *,
    epic_csv: str | Path | None = None,
    video_id: str | None = None,
    environment: str = "unknown",
    fps: float = DEFAULT_FPS,
    size: int = 128,
    sample_rate_hz: int = DEFAULT_SAMPLE_RATE_HZ,
) -> Recording:
    """Import a media file (and optional EPIC-SOUNDS CSV) as a recording folder.

    Args:
        video_id: which CSV rows belong to this video; defaults to the file's
            stem (EPIC names videos like ``P01_01``).

    Returns:
        The imported :class:`Recording` (also written to ``out_dir``).

    Raises:
        MediaImportError: unreadable inputs, or CSV events past the end of the audio.
    """
    video_path = Path(video_path)
    # Read the CSV first: a bad CSV should fail before the slow decode.
    vid = video_id or video_path.stem
    events = read_epic_sounds_csv(epic_csv, vid) if epic_csv else []
    audio, frames, times = decode_media(video_path, fps=fps, size=size, sample_rate_hz=sample_rate_hz)
    duration = len(audio) / sample_rate_hz
    for e in events:
        if e.offset_s > duration + 1e-6:
            raise MediaImportError(
                f"{epic_csv}: event {e.id} ends at {e.offset_s:.3f} s, past the end of "
                f"{video_path.name} ({duration:.3f} s): wrong video_id or file?"
            )
    ann = Annotations(
        recording_id=Path(out_dir).name,
        duration_s=duration,
        environment=environment,
        events=events,
        provenance={
            "kind": "imported",
            "importer": "shared.importers.import_mp4",
            "source_file": video_path.name,
            "annotations_file": Path(epic_csv).name if epic_csv else None,
            "video_id": vid,
            "fps": fps,
            "size": size,
        },
    )
    rec = Recording(audio, sample_rate_hz, frames, times, ann)
    save_recording(rec, out_dir)
    return rec
