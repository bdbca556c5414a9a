"""Windows of recordings -> student inputs, teacher batches, hard labels.

A *window* is the span a student sees at one instant ``end_s`` of a recording:
the last ``audio_s`` seconds of PCM and (AV student) the newest frame at or
before ``end_s``. Windows end on a grid, ``end_s = audio_s + k * stride_s``,
over every recording of a split (splits are by recording: ``train`` trains,
``val`` picks thresholds and calibrates int8, ``test`` is held out for the
accuracy-vs-teacher figures).

The teacher reads *the same window* (``teacher_batch``): the log-mel of the
same ``audio_s`` seconds on its own 100 Hz grid (``cloud.data``: frame j ends
at (j + 1) / 100 s) and its frames in ``[end_s - audio_s, end_s]`` at its own
``frame_hz`` and size, the newest at ``end_s``. So the soft targets describe
what the student is shown, not the teacher's usual 10 s.

Hard labels (``cloud.data.tag_targets``): audio events overlapping the audio
span, visual actions overlapping the last ``visual_span_s`` before ``end_s``
(the student sees one frame, so an action counts if it is on screen about
now, not somewhere in the last seconds).

Recordings are decoded once and kept in memory in the forms both models read;
a 30 s recording costs ~1 MB of PCM, ~0.8 MB of teacher log-mel and a few MB
of frames.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from cloud.data import MEL_HZ, recording_log_mel, resize_frames, tag_targets
from shared.frames import resize_frames as student_frames
from cloud.model.teacher import TAG_NAMES, AVTeacher
from shared.annotations import Annotations
from shared.config import UserError
from shared.dataset import Dataset
from shared.features import FeatureConfig, LogMel

__all__ = ["TeacherView", "LoadedRecording", "WindowSet", "load_split", "teacher_targets", "dataset_root_of"]


@dataclass(frozen=True)
class TeacherView:
    """What the teacher reads of a window, from its card (``model_config.json``).

    Attributes:
        frame_hz: frames per second the teacher was trained on.
        frame_size_px: the teacher's frame size.
        n_mels: the teacher's log-mel bands (YAMNet front end otherwise).
    """

    frame_hz: float
    frame_size_px: int
    n_mels: int

    @classmethod
    def from_card(cls, card: Mapping[str, Any]) -> "TeacherView":
        data = card.get("data") or {}
        model = card["model"]
        return cls(float(data.get("frame_hz", 2.0)), int(model["frame_size_px"]), int(model["n_mels"]))


@dataclass
class LoadedRecording:
    """One recording in the forms the students and the teacher read."""

    id: str
    audio: np.ndarray  # int16 (n,)
    frame_times_s: np.ndarray  # float64 (f,)
    frames: np.ndarray | None  # uint8 (f, S, S, 3) at the student's size; None for audio-only students
    camera_frames: np.ndarray | None  # uint8 (f, C, C, 3) as recorded (what a program reads); None unless kept
    teacher_frames: np.ndarray  # uint8 (f, St, St, 3) at the teacher's size
    teacher_mel: np.ndarray  # float32 (T, n_mels), 100 Hz grid
    annotations: Annotations
    sample_rate_hz: int
    camera_shape: tuple[int, int] | None = None  # (h, w) of the recorded frames, None without video


class WindowSet:
    """Every window of a set of recordings (see the module docstring).

    Attributes:
        windows: (N, 2) float64 rows of (recording index, end_s).
        labels: (N, len(TAG_NAMES)) float32 hard labels.
    """

    def __init__(
        self,
        recordings: list[LoadedRecording],
        *,
        audio_s: float,
        stride_s: float,
        visual_span_s: float,
        teacher_view: TeacherView | None,
        with_frames: bool,
    ) -> None:
        self.recordings = recordings
        self.audio_s, self.visual_span_s = audio_s, visual_span_s
        self.teacher_view, self.with_frames = teacher_view, with_frames
        rows = []
        for i, rec in enumerate(recordings):
            duration = len(rec.audio) / rec.sample_rate_hz
            n = int(np.floor((duration - audio_s) / stride_s + 1e-9)) + 1 if duration >= audio_s else 0
            rows += [(i, round(audio_s + k * stride_s, 6)) for k in range(n)]
        self.windows = np.asarray(rows, np.float64).reshape(-1, 2)
        self.labels = np.stack([self._labels(int(i), t) for i, t in self.windows]) if rows else np.zeros((0, len(TAG_NAMES)), np.float32)
        # Teacher frame slots: one per 1 / frame_hz back from the end, inside the audio span.
        self._n_slots = max(1, int(round(audio_s * teacher_view.frame_hz))) if teacher_view else 0
        self._n_mel = int(round(audio_s * MEL_HZ))

    def __len__(self) -> int:
        return len(self.windows)

    def subset(self, idx: list[int] | np.ndarray) -> "WindowSet":
        """The windows ``idx`` of this set (recordings shared, not copied)."""
        out = object.__new__(WindowSet)
        out.__dict__.update(self.__dict__)
        out.windows, out.labels = self.windows[np.asarray(idx, int)], self.labels[np.asarray(idx, int)]
        return out

    def _labels(self, i: int, end_s: float) -> np.ndarray:
        ann = self.recordings[i].annotations
        return tag_targets(ann, (end_s - self.audio_s, end_s), (end_s - self.visual_span_s, end_s))

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
            j = int(np.searchsorted(rec.frame_times_s, self.windows[k, 1] + 1e-9, side="right")) - 1
            frames.append(source[max(j, 0)] if source is not None and len(source) else None)
        if any(f is None for f in frames):
            raise UserError("the AV student needs video: a recording has no frames")
        return torch.from_numpy(np.stack(frames)), torch.from_numpy(pcm)

    def teacher_batch(self, idx: list[int] | np.ndarray) -> dict[str, torch.Tensor]:
        """A batch for ``AVTeacher.encode`` over the same windows (``BATCH_KEYS`` it reads)."""
        view, n_mel, n_slots = self.teacher_view, self._n_mel, self._n_slots
        mel, mel_valid, audio_end, frames, frame_valid, frame_times, t_query = [], [], [], [], [], [], []
        for k in idx:
            rec = self.recordings[int(self.windows[k, 0])]
            end_s = float(self.windows[k, 1])
            e = int(round(end_s * MEL_HZ))
            j = np.arange(e - n_mel, e)
            valid = (j >= 0) & (j < len(rec.teacher_mel))
            m = np.full((n_mel, rec.teacher_mel.shape[1]), np.log(1e-3), np.float32)
            m[valid] = rec.teacher_mel[j[valid]]
            slot_t = end_s - np.arange(n_slots - 1, -1, -1) / view.frame_hz
            fi = np.searchsorted(rec.frame_times_s, slot_t + 1e-9, side="right") - 1
            fvalid = (slot_t >= end_s - self.audio_s - 1e-6) & (fi >= 0)
            fi = np.clip(fi, 0, max(len(rec.teacher_frames) - 1, 0))
            if len(rec.teacher_frames):
                f = np.where(fvalid[:, None, None, None], rec.teacher_frames[fi], 0).astype(np.uint8)
                ft = np.where(fvalid, rec.frame_times_s[fi], slot_t)
            else:
                s = view.frame_size_px
                f, ft, fvalid = np.zeros((n_slots, s, s, 3), np.uint8), slot_t, np.zeros(n_slots, bool)
            mel.append(m), mel_valid.append(valid), audio_end.append(e / MEL_HZ)
            frames.append(f), frame_valid.append(fvalid), frame_times.append(ft), t_query.append(end_s)
        return {
            "mel": torch.from_numpy(np.stack(mel)),
            "mel_valid": torch.from_numpy(np.stack(mel_valid)),
            "audio_end_s": torch.tensor(audio_end, dtype=torch.float64),
            "frames": torch.from_numpy(np.stack(frames)),
            "frame_valid": torch.from_numpy(np.stack(frame_valid)),
            "frame_times_s": torch.from_numpy(np.stack(frame_times).astype(np.float64)),
            "t_query_s": torch.tensor(t_query, dtype=torch.float64),
        }


def load_split(
    dataset: Dataset,
    split: str,
    *,
    audio_s: float,
    stride_s: float,
    visual_span_s: float,
    teacher_view: TeacherView | None,
    frame_size_px: int | None,
    max_recordings: int = 0,
    keep_camera: bool = False,
) -> WindowSet:
    """Decode the recordings of ``split`` and window them.

    Args:
        teacher_view: what the teacher reads; None when there is no teacher (labels
            only): the teacher's log-mel and frames are then not computed.
        frame_size_px: the student's frame size; None for an audio-only student
            (its frames are then not kept).
        max_recordings: > 0 keeps the first that many recordings of the split.
        keep_camera: also keep the frames as recorded (``student_inputs(camera=True)``).
    """
    entries = dataset.split(split)
    if max_recordings > 0:
        entries = entries[:max_recordings]
    front_end = LogMel(FeatureConfig(n_mels=teacher_view.n_mels if teacher_view else 64))
    recordings = []
    for entry in entries:
        # An audio-only student with no teacher never looks at a frame: skip decoding them.
        rec = dataset.load(entry, video=bool(frame_size_px or teacher_view))
        if rec.sample_rate_hz != front_end.cfg.sample_rate_hz:
            raise UserError(f"{entry.id}: audio at {rec.sample_rate_hz} Hz; students and teacher read 16000 Hz")
        recordings.append(
            LoadedRecording(
                id=entry.id,
                audio=rec.audio,
                frame_times_s=np.asarray(rec.frame_times_s, np.float64),
                # The student's frames through the same module its graph runs (shared/frames.py).
                frames=student_frames(rec.frames, frame_size_px) if frame_size_px and len(rec.frames) else None,
                camera_frames=rec.frames if keep_camera and frame_size_px else None,
                teacher_frames=(resize_frames(rec.frames, teacher_view.frame_size_px)
                                if teacher_view and len(rec.frames) else rec.frames[:0]),
                teacher_mel=(recording_log_mel(rec.audio, front_end) if teacher_view
                             else np.zeros((0, front_end.cfg.n_mels), np.float32)),
                annotations=rec.annotations,
                sample_rate_hz=rec.sample_rate_hz,
                camera_shape=tuple(rec.frames.shape[1:3]) if len(rec.frames) else None,
            )
        )
    return WindowSet(
        recordings, audio_s=audio_s, stride_s=stride_s, visual_span_s=visual_span_s,
        teacher_view=teacher_view, with_frames=frame_size_px is not None,
    )


@torch.no_grad()
def teacher_targets(teacher: AVTeacher, windows: WindowSet, batch_size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's tag logits (N, len(TAG_NAMES)) and a pooled feature per window (N, D).

    The tag logits are ``AVTeacher.encode``'s (per-token logits max-pooled). The
    feature is what feature distillation matches: the tag head's input where the
    teacher has one (read with a forward pre-hook, so the teacher's code is used
    as is), else the mean of the encoder's prefix tokens (the per-token teacher).
    """
    head = getattr(teacher, "tag_head", None)
    captured: list[torch.Tensor] = []
    handle = head.register_forward_pre_hook(lambda _m, args: captured.append(args[0].detach())) if head else None
    logits = []
    try:
        teacher.eval()
        for i in range(0, len(windows), batch_size):
            idx = np.arange(i, min(i + batch_size, len(windows)))
            enc = teacher.encode(windows.teacher_batch(idx))
            logits.append(enc.tag_logits.float())
            if head is None:
                mask = enc.prefix_mask.unsqueeze(-1).float()
                captured.append(((enc.prefix * mask).sum(1) / mask.sum(1).clamp_min(1.0)).detach())
    finally:
        if handle is not None:
            handle.remove()
    if not logits:
        return torch.zeros(0, len(TAG_NAMES)), torch.zeros(0, head.in_features if head else 1)
    return torch.cat(logits), torch.cat(captured).float()


def dataset_root_of(card: Mapping[str, Any], teacher_folder: str | Path, dataset: str | None) -> Path:
    """The recordings to distil on: ``dataset`` if given, else the teacher's training data."""
    from cloud.data import resolve_dataset

    if dataset:
        return Path(dataset)
    qa_dir = (card.get("trained_on") or {}).get("qa_dir")
    if not qa_dir:
        raise UserError(f"data.dataset: not given, and {teacher_folder} does not say what it was trained on")
    return resolve_dataset(qa_dir, None)
