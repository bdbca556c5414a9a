"""The wearer's closed-form questions, answered from the teacher's per-token perception.

A question the wearer-query contract recognises (``shared/queries.py``: "what was
that sound?", "did the kettle whistle?", "what did I just do?", ...) has a known
closed-form answer (a sound label, yes/no, a count, a visual action). The server
answers it the way the glasses do (``shared/answering.py``, the same rules), over
what the teacher perceived in the request's window instead of what the device's
small programs detected:

- every valid 0.5 s audio token whose sound probability is over ``THRESHOLD`` is a
  detection of that sound at the token's end;
- every frame the request carried whose action probability is over ``THRESHOLD``
  is a sighting of that action at the frame's time.

So the cloud's answer depends on what the request carried: without frames it has
seen nothing, and "what did I just do?" is answered ``unknown``. Its memory covers
the request's window, not the day: "did ...?" is "yes" or ``unknown`` (never a
"no" from 5 s of audio), and "which came first", counts and "what was that?"
need their sounds in the window; ``unknown`` makes the glasses show their own
memory's answer. Questions the contract does not recognise (kind ``other``) keep
the decoder's free text.
Torch-free: numpy in, the answer out.
"""
from __future__ import annotations

import numpy as np

from cloud.model.perception import FRAME_LABELS, N_ACTIONS, SOUND_LABELS, audio_token_ends
from shared.answering import DetectionMemory, answer_from_memory, parsed_query

__all__ = ["THRESHOLD", "is_wearer_question", "perception_memory", "window_start", "answer_wearer"]

#: A token or frame "has" a label above this probability (the perception heads' own cut, as the evidence).
THRESHOLD = 0.5


def is_wearer_question(text: str | None) -> bool:
    """Does the contract recognise ``text`` as one of the wearer's closed-form kinds?"""
    return bool(text) and parsed_query(text)[0] != "other"


def perception_memory(sound_probs: np.ndarray, audio_valid: np.ndarray, audio_end_s: float, frame_probs: np.ndarray,
                      frame_valid: np.ndarray, frame_times_s: np.ndarray, token_s: float,
                      threshold: float = THRESHOLD) -> DetectionMemory:
    """A detection memory (in time order) of one window's perception.

    Args:
        sound_probs: (Na, 18); token k covers the ``token_s`` seconds (the model's ``audio_token_s``)
            ending ``(Na - k - 1) * token_s`` before ``audio_end_s`` (`audio_token_ends`).
        audio_valid: (Na,) bool.
        frame_probs: (F, 23), actions first; frame_valid (F,); frame_times_s (F,), on the request's clock.
            A frame that fills several slots (the window holds fewer frames than slots) counts once.
    """
    memory = DetectionMemory()
    na = len(sound_probs)
    ends = audio_token_ends(audio_end_s, na, token_s)
    events: list[tuple[float, str, float]] = []
    over = (sound_probs > threshold) & np.asarray(audio_valid, bool)[:, None]
    for k, j in zip(*np.nonzero(over)):
        events.append((float(ends[k]), SOUND_LABELS[j], float(sound_probs[k, j])))
    times = np.asarray(frame_times_s, np.float64)
    seen_at: set[float] = set()
    for f in np.flatnonzero(np.asarray(frame_valid, bool)):
        t = float(times[f])
        if t in seen_at:
            continue
        seen_at.add(t)
        for j in np.flatnonzero(frame_probs[f, :N_ACTIONS] > threshold):
            events.append((t, FRAME_LABELS[j], float(frame_probs[f, j])))
    for t, label, p in sorted(events, key=lambda e: e[0]):  # stable: a token's labels keep their order
        memory.add(t, label, p, "teacher")
    return memory


def window_start(audio_valid: np.ndarray, audio_end_s: float, token_s: float) -> float:
    """Where the request's audio begins: the start of its first valid token (``audio_end_s``
    when it carried none, so the window covers nothing)."""
    valid = np.flatnonzero(np.asarray(audio_valid, bool))
    if not len(valid):
        return float(audio_end_s)
    return float(audio_token_ends(audio_end_s, len(audio_valid), token_s)[valid[0]] - token_s)


def answer_wearer(text: str, t_query_s: float, **perception) -> str:
    """The closed-form answer to the wearer's question ``text`` asked at ``t_query_s``
    (``perception``: the arguments of :func:`perception_memory`).

    The memory covers the request's window only (:func:`window_start`), so questions about
    everything heard so far are answered from what is in it, or ``unknown``
    (``shared.answering.answer_from_memory``'s ``covers_from_s``): the glasses then show
    the answer of their own memory, which covers the whole day."""
    since = window_start(perception["audio_valid"], perception["audio_end_s"], perception["token_s"])
    return answer_from_memory(perception_memory(**perception), text, t_query_s, covers_from_s=since)
