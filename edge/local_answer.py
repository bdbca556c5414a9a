"""Answer a wearer's question on the device, from what the trigger and student heard.

When the cloud is not asked (the policy chose to answer locally) or does not
answer in time, the glasses still answer, from a small memory of detections:
each trigger rising edge and each student label over its card threshold, with
its time and score. No language model runs here; the answerer reads the
question's kind and the sound labels it mentions from the text with the
wearer-query contract's rules (``shared/queries.py``: ``query_kind``,
``labels_named``, the same phrasings the world asks with), and answers with a
label name (or yes/no, a count), the same closed forms the gold answers use.

| kind       | recognised by                 | answer                                                 |
| ---        | ---                           | ---                                                    |
| sound_id   | "what was that ..."           | the most recent sound heard within ``LOOKBACK_S``      |
| why        | "why did I ..."               | the most recent sound within ``LOOKBACK_S`` (the cause)|
| why_stop   | "why did I stop ..."          | same                                                   |
| order      | "which came first, A or B"    | of the sounds A and B names, the one heard first       |
| yes_no     | "did ..."                     | "yes" if the sound it names was heard, else "no"       |
| count      | "how many ..."                | detection episodes of the sound it names               |
| object     | "what did they ask ..."       | the most recent sound, or UNKNOWN (no speech model)    |
| other      | anything else                 | the most recent sound, or UNKNOWN                      |

This is deliberately simple and honest: it can only be right about sounds the
on-device programs detected, and it guesses (the first-named sound) when they
detected neither of two named sounds. Its accuracy is what the cloud adds to.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

from shared.labels import names
from shared.queries import NO, YES, labels_named, query_kind

__all__ = ["LOOKBACK_S", "UNKNOWN", "EPISODE_GAP_S", "SAME_MOMENT_S", "Detection", "LocalMemory", "query_kind",
           "labels_named", "answer_locally"]

#: How far back (s) "what was that?" and "why did I ...?" look for the sound.
LOOKBACK_S = 10.0
#: The answer when there is nothing to answer from.
UNKNOWN = "unknown"
#: Detections of the same label closer than this (s) are one episode (for counts).
EPISODE_GAP_S = 1.0
#: "The latest moment": detections this close (s) to the most recent one compete on score.
SAME_MOMENT_S = 0.5

_AUDIO = tuple(names("audio_event"))


@dataclass(frozen=True)
class Detection:
    """A sound the device noticed: ``label`` at ``t_s`` with ``score``, by ``source`` (trigger|student)."""

    t_s: float
    label: str
    score: float
    source: str


class LocalMemory:
    """Detections of audio events, in time order (non-audio labels are ignored)."""

    def __init__(self) -> None:
        self.detections: list[Detection] = []

    def add(self, t_s: float, label: str, score: float, source: str) -> None:
        if label in _AUDIO:
            self.detections.append(Detection(float(t_s), label, float(score), source))

    def before(self, t_s: float, lookback_s: float | None = None) -> list[Detection]:
        lo = -float("inf") if lookback_s is None else t_s - lookback_s
        return [d for d in self.detections if lo <= d.t_s <= t_s + 1e-9]


def _most_recent(memory: LocalMemory, t_s: float) -> str | None:
    recent = memory.before(t_s, LOOKBACK_S)
    if not recent:
        return None
    latest = max(d.t_s for d in recent)
    # Among the detections of the latest moment, the most confident one.
    return max((d for d in recent if d.t_s >= latest - SAME_MOMENT_S), key=lambda d: d.score).label


def _episodes(memory: LocalMemory, t_s: float, label: str) -> int:
    times = [d.t_s for d in memory.before(t_s) if d.label == label]
    return sum(1 for i, x in enumerate(times) if i == 0 or x - times[i - 1] > EPISODE_GAP_S)


@functools.lru_cache(maxsize=4096)
def _parsed(text: str) -> tuple[str, tuple[str, ...]]:
    """(kind, labels named) of a question: parsed once per wording (the simulator asks the same
    question under many student histories)."""
    return query_kind(text), tuple(labels_named(text))


def answer_locally(memory: LocalMemory, text: str, t_s: float) -> str:
    """The device's answer to the question ``text`` asked at ``t_s`` (see the module table)."""
    kind, named = _parsed(text)
    if kind == "order" and named:
        firsts = {}
        for d in memory.before(t_s):
            if d.label in named[:2]:
                firsts.setdefault(d.label, d.t_s)
        return min(firsts, key=firsts.get) if firsts else named[0]
    if kind == "yes_no" and named:
        heard = {d.label for d in memory.before(t_s)}
        return YES if heard & set(named) else NO
    if kind == "count" and named:
        return str(_episodes(memory, t_s, named[0]))
    return _most_recent(memory, t_s) or UNKNOWN

