"""Per-token perception: what each audio token heard and each frame showed.

The world's labels are exact, so the teacher is supervised where the
evidence is: every 0.5 s audio token on the sound events that overlap it,
every frame on the actions and object states active at its time.

=================  ===================================================  =======================
head               labels                                               one per
=================  ===================================================  =======================
``sound``          ``shared.labels.AUDIO_EVENTS`` (18)                  audio token (0.5 s)
``frame``          ``VISUAL_ACTIONS`` (15), then ``OBJECT_STATES`` (8)  frame (2 Hz)
=================  ===================================================  =======================

:func:`token_targets` builds the targets from annotations (torch-free),
with a mask that leaves out what cannot be known: a sound below the
audibility threshold (``cloud.data_engine.graph.AUDIBLE_SNR_DB``), a sound
that only grazes a token, a frame within 0.1 s of an action's start or end,
an object state out of frame. The heads' probabilities feed the decoder as
label-embedding mixtures (``cloud/model/teacher.py``) and, max-pooled over
the window, give the tag output (``TAG_NAMES``) that distillation reads.
"""
from __future__ import annotations

import numpy as np

from shared.annotations import Annotations
from shared.labels import names

__all__ = ["SOUND_LABELS", "FRAME_LABELS", "N_ACTIONS", "token_targets", "audio_token_ends", "MIN_TOKEN_OVERLAP_S",
           "FRAME_EDGE_S"]

SOUND_LABELS: tuple[str, ...] = tuple(names("audio_event"))
FRAME_LABELS: tuple[str, ...] = (*names("visual_action"), *names("object_state"))
N_ACTIONS = len(names("visual_action"))

#: A sound is in a token when it overlaps it this long (or entirely, if shorter).
MIN_TOKEN_OVERLAP_S = 0.1
#: Frames this close to an action's or state's start or end are not supervised.
FRAME_EDGE_S = 0.1

_SOUND_INDEX = {l: i for i, l in enumerate(SOUND_LABELS)}
_FRAME_INDEX = {l: i for i, l in enumerate(FRAME_LABELS)}
_STATES = frozenset(names("object_state"))


def audio_token_ends(audio_end_s: float, n_tokens: int, token_s: float) -> np.ndarray:
    """End time (s) of each of a window's ``n_tokens`` audio tokens, oldest first: token k covers
    ``[end - (n - k) * token_s, end - (n - k - 1) * token_s)`` (``AudioEncoder.token_times``; ``token_s``
    is the model's ``audio_token_s``)."""
    return audio_end_s - (n_tokens - 1 - np.arange(n_tokens)) * token_s


def token_targets(
    ann: Annotations,
    token_starts_s: np.ndarray,
    token_s: float,
    token_valid: np.ndarray,
    frame_times_s: np.ndarray,
    frame_valid: np.ndarray,
    audible_snr_db: float,
) -> dict[str, np.ndarray]:
    """Per-token targets and masks for one window.

    Args:
        token_starts_s: (Na,) start of each audio token on the recording clock.
        token_valid, frame_valid: which tokens and frames exist (others are masked).
        frame_times_s: (F,) the time each frame shows.

    Returns:
        ``sound`` (Na, 18) and ``sound_mask`` (Na, 18); ``frame`` (F, 23) and
        ``frame_mask`` (F, 23); float32, mask 1 = supervised.
    """
    na, nf = len(token_starts_s), len(frame_times_s)
    s_pos = np.zeros((na, len(SOUND_LABELS)), bool)
    s_amb = np.zeros_like(s_pos)
    f_pos = np.zeros((nf, len(FRAME_LABELS)), bool)
    f_amb = np.zeros_like(f_pos)
    t0, t1 = token_starts_s, token_starts_s + token_s
    for e in ann.events:
        i = _SOUND_INDEX.get(e.label)
        if i is not None:
            overlap = np.minimum(e.offset_s, t1) - np.maximum(e.onset_s, t0)
            inside = overlap >= min(MIN_TOKEN_OVERLAP_S, max(e.offset_s - e.onset_s, 1e-3)) - 1e-9
            if e.snr_db is None or e.snr_db >= audible_snr_db:
                s_pos[inside, i] = True
                s_amb[(overlap > 0) & ~inside, i] = True  # grazes the token
            else:
                s_amb[overlap > 0, i] = True  # there, but nobody could have heard it
            continue
        j = _FRAME_INDEX.get(e.label)
        if j is None or nf == 0:
            continue
        active = (frame_times_s >= e.onset_s) & (frame_times_s < e.offset_s)
        if e.label in _STATES and e.source_visible is False:
            f_amb[active, j] = True  # the state holds out of frame: neither seen nor absent
            continue
        edge = (np.abs(frame_times_s - e.onset_s) < FRAME_EDGE_S) | (np.abs(frame_times_s - e.offset_s) < FRAME_EDGE_S)
        f_pos[active & ~edge, j] = True
        f_amb[edge, j] = True
    # a positive from one event wins over another event's ambiguity
    s_mask = token_valid[:, None] & (s_pos | ~s_amb)
    f_mask = frame_valid[:, None] & (f_pos | ~f_amb)
    return {"sound": s_pos.astype(np.float32), "sound_mask": s_mask.astype(np.float32),
            "frame": f_pos.astype(np.float32), "frame_mask": f_mask.astype(np.float32)}
