"""Answering a wearer's question from a memory of detections: the one set of rules.

Both sides of the link answer the wearer's closed-form questions the same way,
from different perception:

- the glasses (``edge/local_answer.py``): a memory of the trigger's rising edges and
  the student's detections on the hops it actually ran (sounds; and the wearer's
  actions, only while the camera was on);
- the cloud (``cloud/server/wearer.py``): the teacher's per-token perception of the
  request's window (every 0.5 s audio token, every frame the request carried).

No language model runs here: the question's kind and the sounds it names are read
with the wearer-query contract's rules (``shared/queries.py``), and the answer is a
closed form of the contract's answer types, so it is scored exactly.

| kind       | recognised by                 | answer                                                 |
| ---        | ---                           | ---                                                    |
| sound_id   | "what was that ..."           | the most recent distinct sound within ``LOOKBACK_S`` (*) |
| why        | "why did I ..."               | same (the cause)                                       |
| why_stop   | "why did I stop ..."          | same                                                   |
| order      | "which came first, A or B"    | of the sounds A and B names, the one heard first       |
| yes_no     | "did ..."                     | "yes" if the sound it names was heard, else "no"       |
| count      | "how many ..."                | detection episodes of the sound it names               |
| action     | "what did I just do?"         | the most recent of ``ACTIONS`` seen within ``ACTION_LOOKBACK_S``, or UNKNOWN |
| activity   | "what am I doing?"            | the activity (``ACTIVITIES``) seen within ``ACTIVITY_LOOKBACK_S``, or UNKNOWN |
| object     | "what did they ask ..."       | same, or UNKNOWN (no speech model)                     |
| other      | anything else                 | same, or UNKNOWN                                       |

(*) "distinct": one of the contract's ``DISTINCT_SOUNDS`` (a timer, a knock, a
door: the short sounds a wearer asks about); only when none was heard in the
look-back, the most recent sound of any kind. Without the preference, a sound
that goes on (chopping, frying, running water) is always "the most recent" and
hides the beep the wearer means.

Sounds and sights are kept apart: the sound rules read only audio events, the
action rules only visual actions. Nothing seen, nothing answered: a device whose
camera was off answers "what did I just do?" with UNKNOWN, which is never right.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

from shared.labels import names
from shared.queries import ACTIONS, ACTIVITIES, DISTINCT_SOUNDS, NO, YES, labels_named, query_kind

__all__ = ["LOOKBACK_S", "ACTION_LOOKBACK_S", "ACTIVITY_LOOKBACK_S", "UNKNOWN", "is_unknown", "EPISODE_GAP_S", "SAME_MOMENT_S",
           "Detection", "DetectionMemory", "answer_from_memory", "parsed_query"]

#: How far back (s) "what was that?" and "why did I ...?" look for the sound.
LOOKBACK_S = 10.0
#: How far back (s) "what did I just do?" looks for the action (the world asks within 2 s of its end).
ACTION_LOOKBACK_S = 5.0
#: How far back (s) "what am I doing?" looks: the present, a second.
ACTIVITY_LOOKBACK_S = 1.0
#: The answer when there is nothing to answer from.
UNKNOWN = "unknown"


def is_unknown(text: str | None) -> bool:
    """Whether an answer says nothing (None, empty or UNKNOWN): the glasses then show their own."""
    return text is None or text.strip().lower() in ("", UNKNOWN)
#: Detections of the same label closer than this (s) are one episode (for counts).
EPISODE_GAP_S = 1.0
#: "The latest moment": detections this close (s) to the most recent one compete on score.
SAME_MOMENT_S = 0.5

_AUDIO = frozenset(names("audio_event"))
_ACTIONS = frozenset(names("visual_action"))


@dataclass(frozen=True)
class Detection:
    """Something noticed: ``label`` at ``t_s`` with ``score``, by ``source`` (trigger|student|teacher)."""

    t_s: float
    label: str
    score: float
    source: str


class DetectionMemory:
    """Detections in time order: sounds (``detections``, audio events) and the wearer's actions
    (``seen``, visual actions). Other labels (object states) are ignored."""

    def __init__(self) -> None:
        self.detections: list[Detection] = []
        self.seen: list[Detection] = []

    def add(self, t_s: float, label: str, score: float, source: str) -> None:
        if label in _AUDIO:
            self.detections.append(Detection(float(t_s), label, float(score), source))
        elif label in _ACTIONS:
            self.seen.append(Detection(float(t_s), label, float(score), source))

    def before(self, t_s: float, lookback_s: float | None = None) -> list[Detection]:
        """Sounds detected in ``[t_s - lookback_s, t_s]`` (all before ``t_s`` without a look-back)."""
        return _window(self.detections, t_s, lookback_s)

    def seen_before(self, t_s: float, lookback_s: float | None = None) -> list[Detection]:
        """Actions seen in ``[t_s - lookback_s, t_s]``."""
        return _window(self.seen, t_s, lookback_s)


def _window(dets: list[Detection], t_s: float, lookback_s: float | None) -> list[Detection]:
    lo = -float("inf") if lookback_s is None else t_s - lookback_s
    return [d for d in dets if lo <= d.t_s <= t_s + 1e-9]


def _latest(dets: list[Detection]) -> str | None:
    """Among the detections of the latest moment, the most confident one's label (the first of equal scores)."""
    if not dets:
        return None
    latest = max(d.t_s for d in dets)
    return max((d for d in dets if d.t_s >= latest - SAME_MOMENT_S), key=lambda d: d.score).label


def _episodes(memory: DetectionMemory, t_s: float, label: str) -> int:
    times = [d.t_s for d in memory.before(t_s) if d.label == label]
    return sum(1 for i, x in enumerate(times) if i == 0 or x - times[i - 1] > EPISODE_GAP_S)


@functools.lru_cache(maxsize=4096)
def parsed_query(text: str) -> tuple[str, tuple[str, ...]]:
    """(kind, labels named) of a question: parsed once per wording (the simulator asks the same
    question under many student histories)."""
    return query_kind(text), tuple(labels_named(text))


def answer_from_memory(memory: DetectionMemory, text: str, t_s: float, covers_from_s: float | None = None) -> str:
    """The answer to the question ``text`` asked at ``t_s`` (see the module table).

    ``covers_from_s``: the memory holds only what was perceived since then (the cloud's:
    one request's window), not everything since the wearer put the glasses on (the
    device's, None). Such a memory does not answer from absence, since the sound may
    have come before its window: "did ...?" is "yes" or UNKNOWN, never "no"; "which
    came first" needs both sounds in it; a count needs the sound in it and its first
    episode clear of the window's start by ``EPISODE_GAP_S``; "what was that?" (and the
    kinds that share its rule) needs a distinct sound in it when the window is shorter
    than ``LOOKBACK_S`` (one may have come just before). UNKNOWN lets the glasses show
    the answer of their own memory.
    """
    kind, named = parsed_query(text)
    window = covers_from_s is not None
    if kind == "action":
        return _latest([d for d in memory.seen_before(t_s, ACTION_LOOKBACK_S) if d.label in ACTIONS]) or UNKNOWN
    if kind == "activity":
        return _latest([d for d in memory.seen_before(t_s, ACTIVITY_LOOKBACK_S) if d.label in ACTIVITIES]) or UNKNOWN
    if kind == "order" and named:
        firsts = {}
        for d in memory.before(t_s):
            if d.label in named[:2]:
                firsts.setdefault(d.label, d.t_s)
        if window and len(firsts) < 2:
            return UNKNOWN  # the other sound may have come before the window
        return min(firsts, key=firsts.get) if firsts else named[0]
    if kind == "yes_no" and named:
        heard = {d.label for d in memory.before(t_s)}
        return YES if heard & set(named) else UNKNOWN if window else NO
    if kind == "count" and named:
        if window:
            first = next((d.t_s for d in memory.before(t_s) if d.label == named[0]), None)
            if first is None or first - covers_from_s < EPISODE_GAP_S:
                return UNKNOWN  # not heard, or it may have begun before the window
        return str(_episodes(memory, t_s, named[0]))
    recent = memory.before(t_s, LOOKBACK_S)
    distinct = _latest([d for d in recent if d.label in DISTINCT_SOUNDS])
    if distinct is None and window and t_s - covers_from_s < LOOKBACK_S:
        return UNKNOWN  # a distinct sound may lie in the look-back before the window: not "any sound"
    return distinct or _latest(recent) or UNKNOWN
