"""Answer a wearer's question on the device, from what the trigger and student noticed.

When the cloud is not asked (the policy chose to answer locally) or does not
answer in time, the glasses still answer, from a small memory of detections:
each trigger rising edge and each student label over its card threshold, with
its time and score (sounds, and the wearer's actions on the hops the camera was
on and the student ran). No language model runs here; the rules are
``shared/answering.py`` (the cloud answers the wearer's closed-form questions
with the same rules over the teacher's perception), which reads the question's
kind and the sounds it names with the wearer-query contract (``shared/queries.py``)
and answers with a label name (or yes/no, a count), the same closed forms the
gold answers use. See that module for the table of kinds and answers.

This is deliberately simple and honest: it can only be right about sounds the
on-device programs detected and actions the student saw, and it guesses (the
first-named sound) when they detected neither of two named sounds. Its accuracy
is what the cloud adds to.
"""
from __future__ import annotations

from shared.answering import (ACTION_LOOKBACK_S, ACTIVITY_LOOKBACK_S, EPISODE_GAP_S, LOOKBACK_S, SAME_MOMENT_S,
                              UNKNOWN, Detection, DetectionMemory, answer_from_memory)
from shared.queries import labels_named, query_kind

__all__ = ["LOOKBACK_S", "ACTION_LOOKBACK_S", "ACTIVITY_LOOKBACK_S", "UNKNOWN", "EPISODE_GAP_S", "SAME_MOMENT_S",
           "Detection", "LocalMemory", "query_kind", "labels_named", "answer_locally"]

#: The device's memory (``shared.answering.DetectionMemory``).
LocalMemory = DetectionMemory


def answer_locally(memory: DetectionMemory, text: str, t_s: float) -> str:
    """The device's answer to the question ``text`` asked at ``t_s`` (``shared.answering``'s rules)."""
    return answer_from_memory(memory, text, t_s)
