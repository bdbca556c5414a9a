"""Narration QA (AVDN, AVSN) of a context graph: windows, questions, answers.

The closed-form categories (SSA, TR, AVH) are asked as counterfactual pairs
(:mod:`cloud.data_engine.pairs`); this module cuts the windows that carry the
two narration categories and answers them from either view:

- ``narration=av`` answers from the av view (the gold answers);
- ``narration=visual`` answers the same question from the vision-only view,
  so off-screen sounds are missing from its dense and summary narrations.

====  ==========  ==================================================  ===========
cat   form        question                                            answer
====  ==========  ==================================================  ===========
AVDN  dense       narrate the clip: ...                               ``0s chop; 3s timer_beep``
AVSN  summary     summarise the clip: ...                             ``kitchen; heard: ..; did: ..``
====  ==========  ==================================================  ===========

:func:`make_windows` places windows of ``window_s`` seconds: at most half
anchored on a sound -> reaction cause link (so the cause and its effect are
both inside), the rest stratified over the recording.
"""
from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass, field
from typing import Any

from cloud.data_engine.graph import ACTION, SOUND, ContextGraph
from cloud.data_engine.narration import dense_items, summary_parts
from cloud.data_engine.records import format_dense, format_summary

__all__ = [
    "DENSE_QUESTION",
    "SUMMARY_QUESTION",
    "QAParams",
    "Window",
    "Question",
    "seed_for",
    "noise_of",
    "make_windows",
    "window_questions",
    "WINDOW_GRID_S",
    "answer_in",
    "event_ids_of",
]

DENSE_QUESTION = "narrate the clip: list the sounds and your actions in time order as '<second>s <event>'"
SUMMARY_QUESTION = "summarise the clip as '<place>; heard: <sounds>; did: <actions>'"


@dataclass(frozen=True)
class QAParams:
    """How narration windows are cut and answered."""

    window_s: float = 10.0
    min_overlap_s: float = 0.5  # an event must overlap a window this much to be "in" it
    avdn_max_items: int = 6
    avsn_max_labels: int = 4
    noisy_below_db: float = 10.0


@dataclass(frozen=True)
class Window:
    index: int
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Question:
    """A narration question about one window, before it is answered from a view."""

    category: str
    form: str
    text: str
    answer_type: str
    meta: dict[str, Any] = field(default_factory=dict)


def seed_for(*parts: Any) -> int:
    """A 64-bit seed from the parts (stable across runs and machines)."""
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "big")


def noise_of(snr_db: float | None, noisy_below_db: float) -> str:
    return "unknown" if snr_db is None else "noisy" if snr_db < noisy_below_db else "quiet"


# --- windows -------------------------------------------------------------------


#: Window starts (and so ends) lie on this grid: the teacher's 0.5 s audio tokens,
#: so cached per-recording token features line up with every window.
WINDOW_GRID_S = 0.5


def _on_grid(x: float) -> float:
    return round(round(x / WINDOW_GRID_S) * WINDOW_GRID_S, 3)


def make_windows(g: ContextGraph, n: int, window_s: float, rng: random.Random) -> list[Window]:
    """Up to ``n`` windows, sorted by start, starting on the 0.5 s grid.

    At most half (rounded up) are anchored on cause links whose cause is a
    sound: the window starts at or before the cause and ends at least 1 s
    after the effect starts. The rest are stratified: the possible starts
    are cut into equal bins and each window starts at random in its own bin,
    so the whole recording is covered.
    """
    if g.duration_s <= window_s:
        return [Window(0, 0.0, round(g.duration_s, 3))]
    last = math.floor(round((g.duration_s - window_s) / WINDOW_GRID_S, 6)) * WINDOW_GRID_S
    starts: list[float] = []
    anchors, done = [], set()
    for l in g.links:
        cause, effect = g.node(l.cause), g.node(l.effect)
        if cause.kind != SOUND or cause.id in done:
            continue
        lo = math.ceil(round(max(0.0, effect.onset_s + 1.0 - window_s) / WINDOW_GRID_S, 6)) * WINDOW_GRID_S
        hi = math.floor(round(min(cause.onset_s, last) / WINDOW_GRID_S, 6)) * WINDOW_GRID_S
        if lo <= hi:
            anchors.append((lo, hi))
            done.add(cause.id)
    rng.shuffle(anchors)
    for lo, hi in anchors[: (n + 1) // 2]:
        k = int(round((hi - lo) / WINDOW_GRID_S))
        starts.append(round(lo + WINDOW_GRID_S * rng.randint(0, k), 3))
    m = n - len(starts)
    for i in range(m):
        starts.append(_on_grid(rng.uniform(last * i / m, last * (i + 1) / m)))
    starts = sorted({round(min(max(s, 0.0), last), 3) for s in starts})
    return [Window(i, s, round(s + window_s, 3)) for i, s in enumerate(starts)]


# --- answering -----------------------------------------------------------------


def answer_in(q: Question, view: ContextGraph, w: Window, p: QAParams) -> str:
    """The closed-form dense or summary narration of ``w`` from ``view``."""
    if q.form == "dense":
        return format_dense(dense_items(view, w.start_s, w.end_s, p.min_overlap_s, p.avdn_max_items))
    if q.form == "summary":
        return format_summary(*summary_parts(view, w.start_s, w.end_s, p.min_overlap_s, p.avsn_max_labels))
    raise ValueError(f"unknown narration form {q.category}/{q.form}")


def event_ids_of(view: ContextGraph, w: Window, p: QAParams) -> list[str]:
    """The sounds and actions a narration of ``w`` rests on."""
    return [n.id for n in view.inside(w.start_s, w.end_s, p.min_overlap_s) if n.kind in (SOUND, ACTION)]


# --- questions -----------------------------------------------------------------


def window_questions(g: ContextGraph, w: Window, p: QAParams) -> list[Question]:
    """The narration questions of one window (AVDN, AVSN)."""
    inside = g.view("av").inside(w.start_s, w.end_s, p.min_overlap_s)
    narr_meta = {"offscreen": any(n.kind == SOUND and n.on_screen is not True for n in inside)}
    return [
        Question("AVDN", "dense", DENSE_QUESTION, "dense", meta=dict(narr_meta)),
        Question("AVSN", "summary", SUMMARY_QUESTION, "summary", meta=dict(narr_meta)),
    ]
