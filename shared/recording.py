"""The Recording type and its on-disk folder format.

One recording = audio + video + annotations, the unit that everything in
Earshot replays. On disk it is a folder::

    <name>/
      audio.wav          16-bit PCM, mono, usually 16 kHz
      video.mp4          H.264 RGB frames (usually 10 fps, 128x128), PyAV
      annotations.json   schema-versioned, see shared/annotations.py

Audio round-trips bit-exactly; video is lossy (H.264), so frames come back
within codec tolerance; frame timestamps come back within 1 ms.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import wave
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from shared.annotations import Annotations, AnnotationError
from shared.config import UserError

__all__ = [
    "AUDIO_FILE",
    "VIDEO_FILE",
    "ANNOTATIONS_FILE",
    "DEFAULT_SAMPLE_RATE_HZ",
    "DEFAULT_FPS",
    "RecordingError",
    "Recording",
    "save_recording",
    "load_recording",
    "load_annotations",
    "write_wav",
    "read_wav",
    "write_video",
    "read_video",
]

AUDIO_FILE = "audio.wav"
VIDEO_FILE = "video.mp4"
ANNOTATIONS_FILE = "annotations.json"
DEFAULT_SAMPLE_RATE_HZ = 16_000  # Ray-Ban Meta camera-streaming SDK: 16 kHz mono PCM
DEFAULT_FPS = 10.0  # Aria's nominal RGB rate
_PTS_TIME_BASE = Fraction(1, 1000)  # millisecond timestamps in the mp4
_DEFAULT_CRF = 17  # visually lossless for x264; ~20 kB/s at 128x128, 10 fps
# x264 preset: veryfast encodes ~2x faster than medium at this size for a few
# percent more bytes; encoding is most of the world generator's write time.


class RecordingError(UserError, ValueError):
    """A recording that cannot be read or written; the message names the file
    (and, for annotations, the field)."""


@dataclass
class Recording:
    """Audio, video and annotations of one recording, in memory.

    Attributes:
        audio: int16 mono samples, shape (n_samples,).
        sample_rate_hz: audio sample rate.
        frames: uint8 RGB frames, shape (n_frames, height, width, 3).
        frame_times_s: float64 timestamp of each frame in seconds on the
            recording clock (the audio's clock: sample i is at i / rate).
        annotations: see :class:`shared.annotations.Annotations`.
    """

    audio: np.ndarray
    sample_rate_hz: int
    frames: np.ndarray
    frame_times_s: np.ndarray
    annotations: Annotations = field(default_factory=lambda: Annotations("unnamed", 0.0))

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check shapes, dtypes and clocks; raises :class:`RecordingError`."""
        a, f, t = self.audio, self.frames, self.frame_times_s
        if not isinstance(a, np.ndarray) or a.dtype != np.int16 or a.ndim != 1:
            raise RecordingError(f"audio: expected a 1-D int16 array, got {_desc(a)}")
        if not isinstance(self.sample_rate_hz, (int, np.integer)) or self.sample_rate_hz <= 0:
            raise RecordingError(f"sample_rate_hz: expected a positive int, got {self.sample_rate_hz!r}")
        if not isinstance(f, np.ndarray) or f.dtype != np.uint8 or f.ndim != 4 or f.shape[-1] != 3:
            raise RecordingError(f"frames: expected uint8 (n, height, width, 3), got {_desc(f)}")
        if not isinstance(t, np.ndarray) or t.ndim != 1 or len(t) != len(f):
            raise RecordingError(
                f"frame_times_s: expected one timestamp per frame ({len(f)}), got {_desc(t)}"
            )
        if len(t) and (not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0) or t[0] < 0):
            raise RecordingError("frame_times_s: timestamps must be finite, >= 0 and strictly increasing")
        n_info = len(self.annotations.frames)
        if n_info and n_info != len(f):
            raise RecordingError(
                f"annotations.frames: {n_info} per-frame entries for {len(f)} video frames"
            )

    # --- views --------------------------------------------------------------

    @property
    def duration_s(self) -> float:
        """Audio length in seconds (the recording clock runs on the audio)."""
        return len(self.audio) / self.sample_rate_hz

    @property
    def fps(self) -> float:
        """Mean frame rate from the timestamps (0 for fewer than two frames)."""
        t = self.frame_times_s
        return float((len(t) - 1) / (t[-1] - t[0])) if len(t) > 1 else 0.0

    def audio_window(self, end_s: float, length_s: float) -> np.ndarray:
        """The ``length_s`` seconds of audio that end at ``end_s``, int16.

        Samples before 0 or past the end are zeros, so a streaming consumer
        always gets a fixed-size window.
        """
        n = int(round(length_s * self.sample_rate_hz))
        stop = int(round(end_s * self.sample_rate_hz))
        start = stop - n
        out = np.zeros(n, dtype=np.int16)
        lo, hi = max(start, 0), min(stop, len(self.audio))
        if hi > lo:
            out[lo - start : hi - start] = self.audio[lo:hi]
        return out

    def frame_index_at(self, t_s: float) -> int:
        """Index of the newest frame with timestamp <= ``t_s`` (-1 if none)."""
        return int(np.searchsorted(self.frame_times_s, t_s + 1e-9, side="right")) - 1


def _desc(x: object) -> str:
    if isinstance(x, np.ndarray):
        return f"{x.dtype} array of shape {x.shape}"
    return type(x).__name__


# --- audio ---------------------------------------------------------------------


def write_wav(path: str | Path, audio: np.ndarray, sample_rate_hz: int) -> None:
    """Write int16 mono PCM as a WAV file (bit-exact)."""
    audio = np.ascontiguousarray(audio, dtype="<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate_hz))
        w.writeframes(audio.tobytes())


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a 16-bit mono WAV; returns ``(int16 samples, rate_hz)``.

    Raises:
        RecordingError: not a WAV, not 16-bit, not mono, or truncated.
    """
    try:
        with wave.open(str(path), "rb") as w:
            ch, width, rate, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            if width != 2:
                raise RecordingError(f"{path}: expected 16-bit PCM, got {8 * width}-bit")
            if ch != 1:
                raise RecordingError(f"{path}: expected mono, got {ch} channels (import it to downmix)")
            data = w.readframes(n)
    except (wave.Error, EOFError) as exc:
        raise RecordingError(f"{path}: not a readable WAV file ({exc})") from exc
    if len(data) != 2 * n:
        raise RecordingError(f"{path}: truncated, header says {n} samples, found {len(data) // 2}")
    return np.frombuffer(data, dtype="<i2").astype(np.int16), rate


# --- video ---------------------------------------------------------------------


def write_video(
    path: str | Path, frames: np.ndarray, frame_times_s: np.ndarray, *, crf: int = _DEFAULT_CRF
) -> None:
    """Encode uint8 RGB frames (n, h, w, 3) to H.264 mp4 with ms timestamps.

    Height and width must be even (yuv420p). Encoding is single-threaded and
    bit-exact flags are set, so the same frames give the same bytes.
    """
    import av  # imported here: only recording I/O needs FFmpeg

    n, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise RecordingError(f"{path}: frame size {w}x{h} must be even for H.264 yuv420p")
    # The nominal rate only sizes x264's rate control; real times are the pts.
    fps = max(1, round((n - 1) / (frame_times_s[-1] - frame_times_s[0]))) if n > 1 else 10
    with av.open(str(path), "w", format="mp4", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.time_base = _PTS_TIME_BASE
        stream.codec_context.time_base = _PTS_TIME_BASE
        stream.codec_context.flags |= av.codec.context.Flags.bitexact
        stream.options = {"crf": str(crf), "preset": "veryfast", "threads": "1"}
        stream.thread_count = 1
        for img, t in zip(frames, frame_times_s):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            frame.pts = int(round(float(t) / _PTS_TIME_BASE))
            frame.time_base = _PTS_TIME_BASE
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def read_video(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Decode an mp4 to ``(uint8 frames (n, h, w, 3), float64 times_s (n,))``.

    Raises:
        RecordingError: the file is missing, corrupt or has no video stream.
    """
    import av

    frames, times = [], []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise RecordingError(f"{path}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))
                times.append(float(frame.pts * frame.time_base) if frame.pts is not None else np.nan)
    except av.error.FFmpegError as exc:
        raise RecordingError(f"{path}: cannot decode video ({exc})") from exc
    if not frames:
        raise RecordingError(f"{path}: the video stream holds no frames")
    t = np.asarray(times, dtype=np.float64)
    order = np.argsort(t, kind="stable")  # decoders emit in presentation order; be safe
    return np.stack([frames[i] for i in order]), np.round(t[order], 3)


# --- folders -------------------------------------------------------------------


def save_recording(rec: Recording, folder: str | Path, *, crf: int = _DEFAULT_CRF) -> Path:
    """Write ``rec`` to ``folder`` (created; an existing recording is replaced).

    Files are written to a temporary folder beside the target and moved in
    only when all three are complete, so a crash never leaves a half-written
    recording under the final name.
    """
    rec.validate()
    rec.annotations.check()
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        write_wav(tmp / AUDIO_FILE, rec.audio, rec.sample_rate_hz)
        write_video(tmp / VIDEO_FILE, rec.frames, rec.frame_times_s, crf=crf)
        text = json.dumps(rec.annotations.to_dict(), indent=1, ensure_ascii=False)
        (tmp / ANNOTATIONS_FILE).write_text(text + "\n", encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def load_annotations(path: str | Path) -> Annotations:
    """Read and validate an ``annotations.json`` (or a recording folder's).

    Raises:
        RecordingError: missing file, bad JSON, or a schema error; the message
            names the file and the offending field.
    """
    path = Path(path)
    if path.is_dir():
        path = path / ANNOTATIONS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecordingError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RecordingError(f"{path}: not valid JSON ({exc})") from exc
    try:
        return Annotations.from_dict(data)
    except AnnotationError as exc:
        raise RecordingError(f"{path}: {exc}") from exc


def load_recording(folder: str | Path, *, video: bool = True) -> Recording:
    """Read a recording folder written by :func:`save_recording` or an importer.

    Args:
        video: decode the frames; with False, ``frames`` is empty (0, 0, 0, 3),
            which is enough for audio-only consumers and much faster.

    Raises:
        RecordingError: a file is missing or corrupt, or the parts disagree
            (audio length vs annotated duration, frame count vs per-frame info).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise RecordingError(f"{folder}: not a recording folder (no such directory)")
    for name in (AUDIO_FILE, ANNOTATIONS_FILE) + ((VIDEO_FILE,) if video else ()):
        if not (folder / name).is_file():
            raise RecordingError(f"{folder}: missing {name}")
    ann = load_annotations(folder / ANNOTATIONS_FILE)
    audio, rate = read_wav(folder / AUDIO_FILE)
    if abs(len(audio) / rate - ann.duration_s) > 0.05:
        raise RecordingError(
            f"{folder / ANNOTATIONS_FILE}: annotations.duration_s is {ann.duration_s} s "
            f"but {AUDIO_FILE} holds {len(audio) / rate:.3f} s"
        )
    if video:
        frames, times = read_video(folder / VIDEO_FILE)
    else:
        frames, times = np.zeros((0, 0, 0, 3), np.uint8), np.zeros(0)
        ann_frames = ann.frames
        ann.frames = type(ann_frames)()  # per-frame info cannot be checked without frames
    try:
        rec = Recording(audio, rate, frames, times, ann)
    except RecordingError as exc:
        raise RecordingError(f"{folder}: {exc}") from exc
    if not video:
        rec.annotations.frames = ann_frames
    return rec
