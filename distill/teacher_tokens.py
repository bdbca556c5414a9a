"""The per-token teacher over whole recordings: soft targets at the students' times.

The teacher's perception (``cloud/model/perception.py``, ``AVTeacher.perceive``)
gives sound-event logits for every ``token_s`` (0.5 s) audio token and
action/state logits for every frame slot. Its encoders read each token and each
frame on its own, and ``TokenContext`` mixes only ``context_layers``
neighbours on each side, so one pass over a whole recording on a grid gives,
for every token of that grid, what the teacher says of it inside any window
(with its real neighbours where a window would have had its edge).

A student window ending at ``e`` is tiled exactly by the ``audio_s / token_s``
tokens ending at ``e, e - token_s, ...``, and its camera frame is the newest at
or before ``e``, the frame the teacher's slot at ``e`` shows. So, per window::

    sound soft target (18)   max over those tokens of the teacher's sound logits   what it heard in the window
    frame soft target (23)   the teacher's frame logits at the slot at e             what it saw in the student's frame

Grids: the tokens ending at ``e - k * token_s`` lie on the audio grid of offset
``e mod token_s``; the slot at ``e`` on the frame grid of offset ``e mod (1 /
frame_hz)``, slots ``1 / frame_hz`` apart (the spacing the teacher was trained
on). One pass per offset the windows need: two of each for the 0.25 s stride.

Feature distillation reads the teacher's per-token features (after
``TokenContext``) the same way: the mean over the window's audio tokens, then
(AV student) the frame slot's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from cloud.data import MEL_HZ
from cloud.model.teacher import AVTeacher
from distill.data import WindowSet, newest_frame

__all__ = ["TokenTrack", "sound_track", "frame_track", "teacher_window_targets"]

_FRAME_BATCH = 256  # frames per visual-encoder call (bounded memory on long recordings)
_MS = 1000


@dataclass
class TokenTrack:
    """One recording through one perception head on one grid.

    Attributes:
        ends_ms: (n,) int64, the end of each token (audio) or the time of each slot (frames), in ms.
        logits: (n, L) float32 per-token logits; features: (n, d) float32 (the head's input).
    """

    ends_ms: np.ndarray
    logits: np.ndarray
    features: np.ndarray

    def at(self, t_ms: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
        """(logits, features) of the tokens that end at ``t_ms`` (must be on the grid; raises KeyError)."""
        t = np.atleast_1d(np.asarray(t_ms, np.int64))
        if not len(self.ends_ms):
            raise KeyError(f"no token ends at {t.tolist()} ms (empty track)")
        step = int(self.ends_ms[1] - self.ends_ms[0]) if len(self.ends_ms) > 1 else 1
        k = (t - int(self.ends_ms[0])) // step
        if (k < 0).any() or (k >= len(self.ends_ms)).any() or (self.ends_ms[np.clip(k, 0, len(self.ends_ms) - 1)] != t).any():
            raise KeyError(f"no token ends at {t.tolist()} ms (grid {self.ends_ms[:3].tolist()}...)")
        return self.logits[k], self.features[k]


@torch.no_grad()
def sound_track(teacher: AVTeacher, mel: np.ndarray, offset_ms: int) -> TokenTrack:
    """The teacher's sound logits for every full token of a recording on the grid of ``offset_ms``.

    Args:
        mel: (T, n_mels) the recording's log-mel on ``cloud.data``'s grid (frame j ends at (j + 1) / 100 s).
        offset_ms: a multiple of 10 ms below the token length: tokens end at ``offset + k * token_s``.
    """
    per_tok = teacher.cfg.mel_frames_per_token
    start = int(round(offset_ms * MEL_HZ / _MS))
    n = (len(mel) - start) // per_tok
    d, n_labels = teacher.cfg.d_model, teacher.sound_head.out_features
    if n <= 0:
        return TokenTrack(np.zeros(0, np.int64), np.zeros((0, n_labels), np.float32), np.zeros((0, d), np.float32))
    x = torch.from_numpy(np.ascontiguousarray(mel[start : start + n * per_tok]))[None]
    feats = teacher.audio_context(teacher.audio_encoder(x), torch.ones(1, n, dtype=torch.bool))
    ends = offset_ms + np.arange(1, n + 1, dtype=np.int64) * int(round(per_tok * _MS / MEL_HZ))
    return TokenTrack(ends, teacher.sound_head(feats)[0].float().numpy(), feats[0].float().numpy())


@torch.no_grad()
def frame_track(teacher: AVTeacher, frames: np.ndarray, frame_times_s: np.ndarray, duration_s: float,
                period_ms: int, offset_ms: int) -> TokenTrack:
    """The teacher's frame logits for slots ``offset + k * period`` (ms) over a recording.

    Each slot shows the newest frame at or before its time (``frames`` at the teacher's
    size, ``frame_times_s`` their times); slots before the first frame are masked, as the
    teacher's windows mask them.
    """
    slots = offset_ms + period_ms * np.arange(int(math.floor((duration_s * _MS - offset_ms) / period_ms + 1e-9)) + 1,
                                              dtype=np.int64)
    idx = np.asarray([newest_frame(frame_times_s, t / _MS) for t in slots], np.int64)
    valid = idx >= 0
    d, n_labels = teacher.cfg.d_model, teacher.frame_head.out_features
    if not len(frames) or not valid.any():
        return TokenTrack(slots, np.full((len(slots), n_labels), -20.0, np.float32), np.zeros((len(slots), d), np.float32))
    picked = torch.from_numpy(frames[np.clip(idx, 0, len(frames) - 1)])
    enc = torch.cat([teacher.visual_encoder(chunk[None])[0] for chunk in picked.split(_FRAME_BATCH)])
    feats = teacher.visual_context(enc[None], torch.from_numpy(valid)[None])
    return TokenTrack(slots, teacher.frame_head(feats)[0].float().numpy(), feats[0].float().numpy())


def _offset(t_ms: int, step_ms: int) -> int:
    return int(t_ms % step_ms)


def teacher_window_targets(teacher: AVTeacher, windows: WindowSet) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's per-token soft targets for every window (module docstring).

    Returns:
        logits (N, 18) for an audio-only window set, (N, 18 + 23) with frames
        (``distill.data.STUDENT_LABELS`` order); features (N, d), or (N, 2 d) with frames.

    Raises:
        UserError (via WindowSet): windows whose audio is not whole tokens.
    """
    teacher.eval()
    view = windows.teacher_view
    token_ms = int(round(teacher.cfg.audio_token_s * _MS))
    period_ms = int(round(_MS / view.frame_hz))
    n = len(windows)
    ends_ms = np.round(windows.windows[:, 1] * _MS).astype(np.int64) if n else np.zeros(0, np.int64)
    rec_of = windows.windows[:, 0].astype(int) if n else np.zeros(0, int)
    d = teacher.cfg.d_model
    n_s, n_f = teacher.sound_head.out_features, teacher.frame_head.out_features
    width = n_s + (n_f if windows.with_frames else 0)
    logits = np.zeros((n, width), np.float32)
    feats = np.zeros((n, d * (2 if windows.with_frames else 1)), np.float32)
    for i, rec in enumerate(windows.recordings):
        mine = np.flatnonzero(rec_of == i)
        if not len(mine):
            continue
        sound: dict[int, TokenTrack] = {}
        frame: dict[int, TokenTrack] = {}
        for w in mine:
            e = int(ends_ms[w])
            o = _offset(e, token_ms)
            if o not in sound:
                sound[o] = sound_track(teacher, rec.teacher_mel, o)
            tok_logits, tok_feats = sound[o].at(e - token_ms * np.arange(windows.n_tokens))
            logits[w, :n_s] = tok_logits.max(0)
            feats[w, :d] = tok_feats.mean(0)
            if windows.with_frames:
                o = _offset(e, period_ms)
                if o not in frame:
                    frame[o] = frame_track(teacher, rec.teacher_frames, rec.frame_times_s, rec.duration_s, period_ms, o)
                f_logits, f_feats = frame[o].at(e)
                logits[w, n_s:], feats[w, d:] = f_logits[0], f_feats[0]
    return torch.from_numpy(logits), torch.from_numpy(feats)
