"""Windows of recordings -> student inputs, the teacher's view of them, hard labels.

A *window* is the span a student sees at one instant ``end_s`` of a recording:
the last ``audio_s`` seconds of PCM and (AV student) the newest camera frame at
or before ``end_s``. Windows end on a grid, ``end_s = audio_s + k * stride_s``,
over every recording of a split (splits are by recording: ``train`` trains,
``val`` picks thresholds and calibrates int8, ``test`` is held out for the
accuracy-vs-teacher figures).

Labels follow the per-token teacher's supervision (``cloud/model/perception.py``,
``token_targets``), so the hard targets and the teacher's soft targets
(``distill/teacher_tokens.py``) describe the same thing:

- sound events (``SOUND_LABELS``, 18): a label is on if it is in any of the
  ``audio_s / token_s`` teacher tokens that tile the window's audio (an audible
  sound overlapping the token by 0.1 s); it is *masked* (left out of the loss
  and the metrics) where it only grazes a token or was below audibility;
- frame labels (``FRAME_LABELS``: 15 actions, then 8 object states): what the
  student's frame shows, i.e. the teacher's frame target at that frame's time;
  masked within 0.1 s of an action's start or end and where a state holds out
  of frame, and everywhere when the recording has no video.

``labels`` and ``label_mask`` are (N, 41): sound events, then frame labels
(``STUDENT_LABELS``). The trigger reads the first 18 columns, the AV student all.

Recordings are decoded once and kept in memory in the forms both models read;
a 30 s recording costs ~1 MB of PCM, ~0.8 MB of teacher log-mel and a few MB
of frames.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Mapping

import numpy as np
import torch

from cloud.data import recording_log_mel, resize_frames
from cloud.data_engine.graph import AUDIBLE_SNR_DB
from cloud.model.perception import token_targets
from distill.students import STUDENT_LABELS
from shared.annotations import Annotations
from shared.config import UserError
from shared.dataset import Dataset
from shared.features import FeatureConfig, LogMel
from shared.frames import resize_frames as student_frames

__all__ = ["TOKEN_S", "TeacherView", "LoadedRecording", "WindowSet", "load_split", "dataset_root_of",
           "newest_frame"]

#: The teacher's audio token (s) when there is no teacher card to say otherwise.
TOKEN_S = 0.5


@dataclass(frozen=True)
class TeacherView:
    """What the teacher reads, from its card (``model_config.json``).

    Attributes:
        frame_hz: frames per second the teacher was trained on (its frame-slot spacing).
        frame_size_px: the teacher's frame size.
        n_mels: the teacher's log-mel bands (YAMNet front end otherwise).
        token_s: seconds per audio token.
    """

    frame_hz: float
    frame_size_px: int
    n_mels: int
    token_s: float = TOKEN_S

    @classmethod
    def from_card(cls, card: Mapping[str, Any]) -> "TeacherView":
        data = card.get("data") or {}
        model = card["model"]
        return cls(float(data.get("frame_hz", 2.0)), int(model["frame_size_px"]), int(model["n_mels"]),
                   float(model.get("audio_token_s", TOKEN_S)))


@dataclass
class LoadedRecording:
    """One recording in the forms the students and the teacher read."""

    id: str
    audio: np.ndarray  # int16 (n,)
    frame_times_s: np.ndarray  # float64 (f,)
    frames: np.ndarray | None  # uint8 (f, S, S, 3) at the student's size; None for audio-only students
    camera_frames: np.ndarray | None  # uint8 (f, C, C, 3) as recorded (what a program reads); None unless kept
    teacher_frames: np.ndarray  # uint8 (f, St, St, 3) at the teacher's size; empty without video or teacher
    teacher_mel: np.ndarray  # float32 (T, n_mels), 100 Hz grid; empty without a teacher
    annotations: Annotations
    sample_rate_hz: int
    camera_shape: tuple[int, int] | None = None  # (h, w) of the recorded frames, None without video

    @property
    def duration_s(self) -> float:
        return len(self.audio) / self.sample_rate_hz


def newest_frame(frame_times_s: np.ndarray, t_s: float) -> int:
    """Index of the newest frame at or before ``t_s`` (-1 if none): the frame a runtime has at ``t_s``."""
    return int(np.searchsorted(frame_times_s, t_s + 1e-9, side="right")) - 1


class WindowSet:
    """Every window of a set of recordings (see the module docstring).

    Attributes:
        windows: (N, 2) float64 rows of (recording index, end_s).
        labels: (N, len(STUDENT_LABELS)) float32 hard labels.
        label_mask: (N, len(STUDENT_LABELS)) float32, 1 where the label is known (supervised, scored).
    """

    def __init__(
        self,
        recordings: list[LoadedRecording],
        *,
        audio_s: float,
        stride_s: float,
        teacher_view: TeacherView | None,
        with_frames: bool,
        token_s: float = TOKEN_S,
        first_end_s: float | None = None,
    ) -> None:
        """``first_end_s``: where the grid starts (default ``audio_s``, the first full window;
        a runtime's first hop comes earlier, with silence before the recording's start)."""
        n_tok = audio_s / token_s
        if abs(n_tok - round(n_tok)) > 1e-9:
            raise UserError(f"student.audio_s: {audio_s} s is not a whole number of the teacher's {token_s} s tokens")
        self.recordings = recordings
        self.audio_s, self.token_s, self.n_tokens = audio_s, token_s, int(round(n_tok))
        self.teacher_view, self.with_frames = teacher_view, with_frames
        first = audio_s if first_end_s is None else first_end_s
        rows = []
        for i, rec in enumerate(recordings):
            duration = rec.duration_s
            n = int(np.floor((duration - first) / stride_s + 1e-9)) + 1 if duration >= first else 0
            rows += [(i, round(first + k * stride_s, 6)) for k in range(n)]
        self.windows = np.asarray(rows, np.float64).reshape(-1, 2)
        width = len(STUDENT_LABELS)
        self.labels, self.label_mask = np.zeros((len(rows), width), np.float32), np.zeros((len(rows), width), np.float32)
        for k, (i, end_s) in enumerate(rows):
            self.labels[k], self.label_mask[k] = self._labels(i, end_s)

    def __len__(self) -> int:
        return len(self.windows)

    def subset(self, idx: list[int] | np.ndarray) -> "WindowSet":
        """The windows ``idx`` of this set (recordings shared, not copied)."""
        idx = np.asarray(idx, int)
        out = object.__new__(WindowSet)
        out.__dict__.update(self.__dict__)
        out.windows, out.labels, out.label_mask = self.windows[idx], self.labels[idx], self.label_mask[idx]
        return out

    def onset_emphasis(self, onset_s: float, weight: float, n_labels: int) -> np.ndarray:
        """(N, n_labels) loss weights: ``1 + weight`` where an audible sound of that label (among the
        first ``n_labels`` of ``STUDENT_LABELS``: the sound events) started within the window's last
        ``onset_s`` seconds, else 1. Multiplied into the mask, they weigh the windows that hold only a
        sound's beginning (``data.onset_weight``)."""
        out = np.ones((len(self), n_labels), np.float32)
        index = {lab: c for c, lab in enumerate(STUDENT_LABELS[:n_labels])}
        rec_idx = self.windows[:, 0].astype(int)
        for i, rec in enumerate(self.recordings):
            rows = np.flatnonzero(rec_idx == i)
            if not len(rows):
                continue
            ends = self.windows[rows, 1]
            for e in rec.annotations.events:
                c = index.get(e.label)
                if c is None or (e.snr_db is not None and e.snr_db < AUDIBLE_SNR_DB):
                    continue
                hit = (ends - onset_s < e.onset_s) & (e.onset_s <= ends)
                out[rows[hit], c] = 1.0 + weight
        return out

    def _labels(self, i: int, end_s: float) -> tuple[np.ndarray, np.ndarray]:
        """(labels, mask) of one window: the teacher's per-token targets, pooled over the window's tokens."""
        rec = self.recordings[i]
        starts = end_s - self.audio_s + self.token_s * np.arange(self.n_tokens)
        j = newest_frame(rec.frame_times_s, end_s)
        frame_t = np.asarray([rec.frame_times_s[j] if j >= 0 else end_s])
        t = token_targets(rec.annotations, starts, self.token_s, np.ones(self.n_tokens, bool), frame_t,
                          np.asarray([j >= 0]), AUDIBLE_SNR_DB)
        sound = t["sound"].max(0)
        # on if any token heard it; known if on, or if no token is unsure about it
        sound_mask = np.maximum(sound, t["sound_mask"].min(0))
        return np.concatenate([sound, t["frame"][0]]), np.concatenate([sound_mask, t["frame_mask"][0]])

    def _pcm(self, i: int, end_s: float) -> np.ndarray:
        rec = self.recordings[i]
        n = int(round(self.audio_s * rec.sample_rate_hz))
        stop = int(round(end_s * rec.sample_rate_hz))
        out = np.zeros(n, np.int16)  # zeros past either end, like Recording.audio_window
        lo, hi = max(stop - n, 0), min(stop, len(rec.audio))
        if hi > lo:
            out[lo - (stop - n) : hi - (stop - n)] = rec.audio[lo:hi]
        return out

    def student_inputs(self, idx: list[int] | np.ndarray, *, camera: bool = False) -> tuple[torch.Tensor, ...]:
        """The student's inputs for windows ``idx``: (pcm,) or (frame, pcm), batched.

        ``camera``: the frame as recorded (what the exported program and ``forward`` read,
        resizing in the graph) instead of the resized one ``forward_train`` reads; needs
        ``load_split(..., keep_camera=True)``.
        """
        pcm = np.stack([self._pcm(int(self.windows[k, 0]), self.windows[k, 1]) for k in idx])
        if not self.with_frames:
            return (torch.from_numpy(pcm),)
        frames = []
        for k in idx:
            rec = self.recordings[int(self.windows[k, 0])]
            source = rec.camera_frames if camera else rec.frames
            if camera and source is None:
                raise ValueError("camera frames were not kept: load_split(..., keep_camera=True)")
            j = newest_frame(rec.frame_times_s, self.windows[k, 1])
            frames.append(source[max(j, 0)] if source is not None and len(source) else None)
        if any(f is None for f in frames):
            raise UserError("the AV student needs video: a recording has no frames")
        return torch.from_numpy(np.stack(frames)), torch.from_numpy(pcm)


def load_split(
    dataset: Dataset,
    split: str,
    *,
    audio_s: float,
    stride_s: float,
    teacher_view: TeacherView | None,
    frame_size_px: int | None,
    max_recordings: int = 0,
    keep_camera: bool = False,
    only: Collection[str] | None = None,
    first_end_s: float | None = None,
) -> WindowSet:
    """Decode the recordings of ``split`` and window them.

    Args:
        teacher_view: what the teacher reads; None when there is no teacher (labels
            only): the teacher's log-mel and frames are then not computed.
        frame_size_px: the student's frame size; None for an audio-only student
            (its frames, and the teacher's, are then not kept: its targets are sounds only).
        max_recordings: > 0 keeps the first that many recordings of the split.
        keep_camera: also keep the frames as recorded (``student_inputs(camera=True)``).
        only: keep only these recording ids (of the split).
        first_end_s: the first window's end (``WindowSet``).
    """
    entries = [e for e in dataset.split(split) if only is None or e.id in only]
    if max_recordings > 0:
        entries = entries[:max_recordings]
    front_end = LogMel(FeatureConfig(n_mels=teacher_view.n_mels if teacher_view else 64))
    recordings = []
    for entry in entries:
        # An audio-only student never looks at a frame, and neither does its teacher pass: skip decoding them.
        rec = dataset.load(entry, video=bool(frame_size_px))
        if rec.sample_rate_hz != front_end.cfg.sample_rate_hz:
            raise UserError(f"{entry.id}: audio at {rec.sample_rate_hz} Hz; students and teacher read 16000 Hz")
        frame_times = np.asarray(rec.frame_times_s, np.float64)  # empty for an audio-only student: frame labels masked
        recordings.append(
            LoadedRecording(
                id=entry.id,
                audio=rec.audio,
                frame_times_s=frame_times,
                # The student's frames through the same module its graph runs (shared/frames.py).
                frames=student_frames(rec.frames, frame_size_px) if frame_size_px and len(rec.frames) else None,
                camera_frames=rec.frames if keep_camera and frame_size_px else None,
                teacher_frames=(resize_frames(rec.frames, teacher_view.frame_size_px)
                                if teacher_view and frame_size_px and len(rec.frames) else np.zeros((0, 1, 1, 3), np.uint8)),
                teacher_mel=(recording_log_mel(rec.audio, front_end) if teacher_view
                             else np.zeros((0, front_end.cfg.n_mels), np.float32)),
                annotations=rec.annotations,
                sample_rate_hz=rec.sample_rate_hz,
                camera_shape=tuple(rec.frames.shape[1:3]) if len(rec.frames) else None,
            )
        )
    return WindowSet(
        recordings, audio_s=audio_s, stride_s=stride_s, teacher_view=teacher_view,
        with_frames=frame_size_px is not None, token_s=teacher_view.token_s if teacher_view else TOKEN_S,
        first_end_s=first_end_s,
    )


def dataset_root_of(card: Mapping[str, Any], teacher_folder: str | Path, dataset: str | None) -> Path:
    """The recordings to distil on: ``dataset`` if given, else the teacher's training data."""
    from cloud.data import resolve_dataset

    if dataset:
        return Path(dataset)
    qa_dir = (card.get("trained_on") or {}).get("qa_dir")
    if not qa_dir:
        raise UserError(f"data.dataset: not given, and {teacher_folder} does not say what it was trained on")
    return resolve_dataset(qa_dir, None)
