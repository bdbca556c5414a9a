"""Evidence: what the teacher heard and saw in a window, as events and as a short text.

The teacher's per-token outputs (``AVTeacher.perceive`` / ``encode``) become a
list of events::

    sound  timer_beep   from -4.5 s to -3.0 s (relative to the question)  p 0.97
    seen   open_oven    from -1.0 s to  0.0 s                             p 0.88

plus the gate's trust per modality. An event is a run of consecutive valid
tokens (0.5 s audio tokens, or frames) whose probability for a label is above
``threshold``; its onset and offset are the run's first token's start and last
token's end (frames: +- half a frame step), relative to the question time
(negative = before). ``evidence_text`` writes them as one line of notes for
the language model ("heard timer beep 4 seconds ago; saw you open oven just
now; the sound was clear, the view was poor.").

What is not in the evidence, on purpose: whether a sound's source was on
screen and the scene. The teacher has no output for either; guessing them from
label co-occurrence would put words in the LM's mouth that nothing measured.
What is there instead: a sound whose visual twin (``cloud.data_engine.pairs.TWINS``:
chopping / chop) was seen overlapping in time is marked ``seen_too``.

Torch-free: inputs are numpy arrays (``window_evidence``), so the server, the
bench and the tests build evidence the same way.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from cloud.data_engine.pairs import TWINS
from cloud.model.perception import FRAME_LABELS, N_ACTIONS, SOUND_LABELS, audio_token_ends
from shared.protocol import EvidenceEvent, ResultEvidence
from shared.queries import labels_named

__all__ = ["DEFAULT_THRESHOLD", "MAX_EVENTS", "Event", "Evidence", "window_evidence",
           "evidence_text", "label_words", "names_label"]

#: A token "has" a label above this probability (the perception heads' own 0.5 cut).
DEFAULT_THRESHOLD = 0.5
#: At most this many events reach the text (the most probable), so the prompt stays short.
MAX_EVENTS = 8


@dataclass(frozen=True)
class Event:
    """One perceived event. Times in seconds relative to the question (<= 0 is before it).

    ``modality``: ``audio`` (a sound), ``visual`` (an action the wearer did) or
    ``state`` (an object state seen). ``p``: the run's peak probability.
    ``seen_too``: a sound whose visual twin was seen overlapping it."""

    label: str
    modality: str
    onset_s: float
    offset_s: float
    p: float
    seen_too: bool = False


@dataclass
class Evidence:
    """A window's events (by onset) and the gate's trust (audio, visual) in [0, 1]."""

    events: list[Event] = field(default_factory=list)
    trust_audio: float = 1.0
    trust_visual: float = 1.0
    window_s: float = 0.0

    def to_protocol(self) -> ResultEvidence:
        """``result.evidence`` (shared/protocol.py; times rounded to ms, p to 3 decimals)."""
        return ResultEvidence(
            trust_audio=round(self.trust_audio, 3), trust_visual=round(self.trust_visual, 3),
            window_s=round(self.window_s, 3),
            events=tuple(EvidenceEvent(label=e.label, modality=e.modality, onset_s=round(e.onset_s, 3),
                                       offset_s=round(e.offset_s, 3), p=round(e.p, 3), seen_too=e.seen_too)
                         for e in self.events))

    def heard(self) -> list[str]:
        return [e.label for e in self.events if e.modality == "audio"]


def _runs(active: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) index of each run of True."""
    out, start = [], None
    for i, a in enumerate(active.tolist() + [False]):
        if a and start is None:
            start = i
        elif not a and start is not None:
            out.append((start, i - 1))
            start = None
    return out


def _events(probs: np.ndarray, valid: np.ndarray, starts: np.ndarray, ends: np.ndarray, labels: Sequence[str],
            modality: Sequence[str], threshold: float) -> list[Event]:
    out = []
    for j, label in enumerate(labels):
        for a, b in _runs((probs[:, j] > threshold) & valid):
            out.append(Event(label, modality[j], float(starts[a]), float(ends[b]), float(probs[a : b + 1, j].max())))
    return out


def window_evidence(sound_probs: np.ndarray, audio_valid: np.ndarray, audio_end_s: float, frame_probs: np.ndarray,
                    frame_valid: np.ndarray, frame_times_s: np.ndarray, t_query_s: float,
                    reliability: Sequence[float], token_s: float,
                    threshold: float = DEFAULT_THRESHOLD) -> Evidence:
    """Evidence of one window from the teacher's per-token probabilities.

    Args:
        sound_probs: (Na, 18) sigmoid of ``sound_logits``; token k covers the ``token_s`` seconds
            (the model's ``audio_token_s``) ending ``(Na - k - 1) * token_s`` before ``audio_end_s``
            (`cloud.model.encoders.audio_token_ends`).
        audio_valid: (Na,) bool.
        frame_probs: (F, 23) sigmoid of ``frame_logits`` (actions, then states).
        frame_valid: (F,) bool; frame_times_s: (F,) seconds, same clock as ``t_query_s``.
        reliability: the gate's (audio, visual) trust.
    """
    na = sound_probs.shape[0]
    a_end = audio_token_ends(audio_end_s, na, token_s) - t_query_s
    events = _events(sound_probs, audio_valid.astype(bool), a_end - token_s, a_end, SOUND_LABELS,
                     ["audio"] * len(SOUND_LABELS), threshold)
    t = np.asarray(frame_times_s, np.float64) - t_query_s
    half = float(np.median(np.diff(t))) / 2 if len(t) > 1 else 0.25
    frame_mod = ["visual"] * N_ACTIONS + ["state"] * (len(FRAME_LABELS) - N_ACTIONS)
    # a frame stands for half a step either side of it, but not past the question
    seen = _events(frame_probs, frame_valid.astype(bool), t - half, np.maximum(np.minimum(t + half, 0.0), t - half),
                   FRAME_LABELS,
                   frame_mod, threshold)
    marked = []
    for e in events:
        twins = set(TWINS.get(e.label, ()))
        both = any(s.label in twins and s.onset_s < e.offset_s and e.onset_s < s.offset_s for s in seen)
        marked.append(Event(e.label, e.modality, e.onset_s, e.offset_s, e.p, seen_too=both))
    spans = [0.0]  # how far back the evidence reaches: the earliest valid token's start
    if audio_valid.any():
        spans.append(-float((a_end - token_s)[audio_valid.astype(bool)].min()))
    if frame_valid.any():
        spans.append(-float((t - half)[frame_valid.astype(bool)].min()))
    ev = sorted(marked + seen, key=lambda e: (e.onset_s, e.modality, e.label))
    trust = [min(max(float(x), 0.0), 1.0) for x in reliability[:2]]
    return Evidence(ev, trust[0], trust[1], round(max(spans), 3))


# --- words ---------------------------------------------------------------------------


def label_words(label: str) -> str:
    """``timer_beep`` -> ``timer beep``: how a label reads in a sentence."""
    return label.replace("_", " ")


def names_label(sentence: str, label: str) -> bool:
    """Does ``sentence`` name ``label``? Sounds by the wearer-query contract's rule
    (``shared.queries.labels_named``: the label's words or a synonym, "timer" for
    timer_beep); other labels by their words (``open oven``), any case."""
    text = sentence.replace("_", " ")
    if label in SOUND_LABELS:
        return label in labels_named(text)
    s = " ".join("".join(c if c.isalnum() else " " for c in text.lower()).split())
    return f" {label_words(label)} " in f" {s} "


def _ago(t_s: float) -> str:
    s = int(round(-t_s))
    return "just now" if s <= 0 else ("1 second ago" if s == 1 else f"{s} seconds ago")


def _when(e: Event) -> str:
    a, b = _ago(e.onset_s), _ago(e.offset_s)
    if a == b:
        return a
    return f"from {a.replace(' ago', '')} to {b}" if b != "just now" else f"from {a} until now"


def _quality(x: float, good: str, bad: str) -> str:
    return good if x >= 0.7 else (bad if x < 0.4 else f"fairly {good}")


def evidence_text(ev: Evidence, max_events: int = MAX_EVENTS) -> str:
    """One line of notes for the language model, times in whole seconds before the question::

        heard chopping from 9 seconds to 6 seconds ago; heard timer beep 4 seconds ago and just now;
        saw you open oven just now; the sound was clear, the view was poor.

    Sounds first, then what the wearer did, then object states; within each, by first
    onset. Runs of one label are one item ("4 seconds ago and just now"), so a sound
    heard twice costs no second slot. At most ``max_events`` items (the most probable).

    Why this order: a 135M-parameter answerer drops sounds listed late among many
    sights (measured on the paired bench: with time-ordered notes it named 37 of the
    48 probe sounds its notes held), and a question about sounds is most of what the
    wearer asks.
    """
    items: dict[tuple[str, str], list[Event]] = {}
    for e in sorted(ev.events, key=lambda e: (e.onset_s, e.label)):
        items.setdefault((e.modality, e.label), []).append(e)
    keep = sorted(items.values(), key=lambda runs: -max(e.p for e in runs))[:max_events]
    rank = {"audio": 0, "visual": 1, "state": 2}
    keep.sort(key=lambda runs: (rank[runs[0].modality], runs[0].onset_s, runs[0].label))
    verb = {"audio": "heard", "visual": "saw you", "state": "saw"}
    words = [f"{verb[r[0].modality]} {label_words(r[0].label)} {' and '.join(_when(e) for e in r)}" for r in keep]
    if not any(r[0].modality == "audio" for r in keep):
        words.insert(0, "heard nothing")
    if not any(r[0].modality != "audio" for r in keep):
        words.append("saw nothing")
    quality = (f"the sound was {_quality(ev.trust_audio, 'clear', 'noisy')}, "
               f"the view was {_quality(ev.trust_visual, 'clear', 'poor')}")
    return "; ".join([*words, quality]) + "."
