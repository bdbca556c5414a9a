"""The wearer-query contract: what the wearer asks, in which words, and what kind of answer.

One definition, read by three parts:

- the synthetic world (``sim/world/queries.py``) phrases its questions with these
  templates and gives gold answers of these types;
- the edge (``edge/local_answer.py``) recognises a question's kind and the sounds it
  names with these rules, and answers in the same closed forms;
- the native edge binary reads the same rules from a generated contract file
  (:func:`query_contract` is the plain-data view of this module).

Every answer is closed-form so scoring is exact (``ANSWER_TYPES``, scored by
:func:`answer_matches`): a sound label (``microwave_beep``), ``yes`` / ``no``, an
object name (``salt``) or a count (``3``).

| kind       | asked as                                       | answer   |
| ---        | ---                                            | ---      |
| sound_id   | "what was that sound?"                         | label    |
| yes_no     | "did someone knock?" (``YES_NO``)               | yes_no   |
| why        | "why did I open the oven?" (``WHY``)            | label    |
| why_stop   | "why did I stop chopping?" (``GERUNDS``)        | label    |
| object     | "what did they ask me for?"                    | object   |
| count      | "how many times did they knock?" (``COUNTABLE``)| count    |
| order      | "which came first, the knock or the kettle?"   | label    |
| action     | "what did I just do?" (``ACTIONS``)             | action   |
| activity   | "what am I doing?" (``ACTIVITIES``)             | action   |
| other      | anything else (recognised, never asked)        | label    |

``action`` and ``activity`` are about what the wearer did, which only the camera
sees: nothing the microphones hear names "pick_up_phone" (version 2 added them).

A question's kind is the first rule of ``KIND_RULES`` that matches its lower-cased
text. The sounds it names are found by each audio label's own name
("microwave beep") and its ``SYNONYMS``; overlapping matches keep the longest.
"""
from __future__ import annotations

import re
from typing import Any

from shared.labels import TAXONOMY_VERSION, names

__all__ = [
    "QUERY_CONTRACT_VERSION", "ANSWER_TYPES", "KINDS", "KIND_RULES", "DISTINCT_SOUNDS", "SOUND_ID_TEXT",
    "OBJECT_TEXT", "ACTION_TEXT", "ACTIVITY_TEXT", "ACTIONS", "ACTIVITIES", "YES_NO", "WHY", "GERUNDS", "COUNTABLE",
    "SOUND_NAMES", "SYNONYMS", "YES", "NO",
    "why_stop_text", "count_text", "order_text", "answer_matches", "query_kind", "label_phrases", "labels_named",
    "query_contract",
]

#: Bumped when a kind, a phrasing, a rule or a synonym changes meaning.
QUERY_CONTRACT_VERSION = 2
YES, NO = "yes", "no"

#: Answer type -> what a gold answer of that type is.
ANSWER_TYPES = {
    "label": "an audio_event label name (shared/labels.py)",
    "yes_no": f"'{YES}' or '{NO}'",
    "object": "an object name, lower case (e.g. 'salt')",
    "count": "a non-negative integer, as decimal digits",
    "action": "a visual_action label name (shared/labels.py)",
}

#: Kind -> the type of its answer.
KINDS = {
    "sound_id": "label",
    "yes_no": "yes_no",
    "why": "label",
    "why_stop": "label",
    "object": "object",
    "count": "count",
    "order": "label",
    "action": "action",
    "activity": "action",
    "other": "label",
}

#: How the edge recognises a kind from the lower-cased, stripped text: the first rule whose
#: ``starts_with`` prefixes or ``contains`` substrings match. Order matters ("why did i stop"
#: before "why"); a text no rule matches is "other".
KIND_RULES: tuple[dict[str, Any], ...] = (
    {"kind": "order", "starts_with": ("which came first",), "contains": (" first,",)},
    {"kind": "why_stop", "starts_with": ("why did i stop",), "contains": ()},
    {"kind": "why", "starts_with": ("why",), "contains": ()},
    {"kind": "sound_id", "starts_with": ("what was that",), "contains": ()},
    {"kind": "count", "starts_with": ("how many",), "contains": ()},
    {"kind": "yes_no", "starts_with": ("did ", "was there", "is there"), "contains": ()},
    {"kind": "object", "starts_with": ("what did they ask",), "contains": ()},
    {"kind": "action", "starts_with": ("what did i just do",), "contains": ()},
    {"kind": "activity", "starts_with": ("what am i doing",), "contains": ()},
)

#: Short, recognisable sounds a wearer asks about ("what was that?", "which came first").
DISTINCT_SOUNDS = (
    "timer_beep", "microwave_beep", "doorbell", "knock", "kettle_whistle", "phone_ring",
    "phone_notification", "door_sound", "car_horn", "alarm", "dishes",
)

# --- phrasings (what the world asks) -----------------------------------------------------------

SOUND_ID_TEXT = "what was that sound?"
OBJECT_TEXT = "what did they ask me for?"
ACTION_TEXT = "what did I just do?"
ACTIVITY_TEXT = "what am I doing?"

#: Short actions "what did I just do?" asks about (asked within 2 s of the action's end).
ACTIONS = ("open_oven", "open_microwave", "open_door", "pick_up_phone", "reach_for_object", "pour")
#: Ongoing activities "what am I doing?" asks about (asked while one goes on).
ACTIVITIES = ("chop", "stir", "wash", "type", "read", "drink", "walk")

#: yes/no questions and the labels whose presence makes the answer "yes".
YES_NO: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("did someone ring the doorbell?", ("doorbell",)),
    ("did someone knock?", ("knock",)),
    ("did the phone ring?", ("phone_ring",)),
    ("did I get a notification?", ("phone_notification",)),
    ("did the oven timer go off?", ("timer_beep",)),
    ("did the microwave beep?", ("microwave_beep",)),
    ("did the kettle whistle?", ("kettle_whistle",)),
    ("did a car honk?", ("car_horn",)),
    ("did an alarm go off?", ("alarm",)),
)

#: Visual action (the effect) -> "why" question; the answer is the sound that caused it.
#: ``{object}`` is filled with the object reached for.
WHY = {
    "open_oven": "why did I open the oven?",
    "open_microwave": "why did I open the microwave?",
    "walk_to_door": "why did I go to the door?",
    "pick_up_phone": "why did I pick up the phone?",
    "reach_for_object": "why did I reach for the {object}?",
    "pour": "why did I start pouring?",
    "idle": "why did I stop walking?",  # recognised as why_stop: both answer with the cause
}

#: Activity -> its gerund, in "why did I stop <gerund>?".
GERUNDS = {"chop": "chopping", "type": "typing", "wash": "washing up", "stir": "stirring", "read": "reading",
           "drink": "drinking", "walk": "walking"}

#: Countable sound -> its phrase in "how many times did <phrase>?".
COUNTABLE = {"timer_beep": "the oven timer beep", "microwave_beep": "the microwave beep", "knock": "they knock"}

#: Distinct sound -> how the wearer names it in an "order" question.
SOUND_NAMES = {"timer_beep": "the timer", "microwave_beep": "the microwave", "doorbell": "the doorbell",
               "knock": "the knock", "kettle_whistle": "the kettle", "phone_ring": "the phone ringing",
               "phone_notification": "the notification", "door_sound": "the door", "car_horn": "the car horn",
               "alarm": "the alarm", "dishes": "the dishes"}


def why_stop_text(activity: str) -> str:
    return f"why did I stop {GERUNDS[activity]}?"


def count_text(label: str) -> str:
    return f"how many times did {COUNTABLE[label]}?"


def order_text(first: str, second: str) -> str:
    return f"which came first, {SOUND_NAMES[first]} or {SOUND_NAMES[second]}?"


def answer_matches(answer: str | None, gold: str | None) -> bool | None:
    """The one scoring rule for a wearer's question: exact match after trimming and
    lower-casing (None when there is no gold answer; False when there is no answer)."""
    if gold is None or gold == "":
        return None
    return answer is not None and answer.strip().lower() == gold.strip().lower()


# --- recognition (what the edge reads) ---------------------------------------------------------

#: Words people use for a sound that its label name ("microwave beep") does not contain.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "timer_beep": ("timer", "oven timer", "beep"),
    "microwave_beep": ("microwave",),
    "doorbell": ("ring the doorbell", "doorbell", "bell"),
    "kettle_whistle": ("kettle", "whistle"),
    "phone_ring": ("phone ring", "phone rang", "phone ringing"),
    "phone_notification": ("notification", "message"),
    "car_horn": ("horn", "honk"),
    "door_sound": ("the door",),
    "running_water": ("water", "tap"),
    "keyboard_typing": ("keyboard", "typing"),
    "footsteps": ("steps", "footsteps"),
    "speech": ("speech", "someone talk", "someone speak", "said", "say"),
}
_AUDIO = tuple(names("audio_event"))


def query_kind(text: str) -> str:
    """The question's kind from its wording (``KIND_RULES``; "other" when none matches)."""
    t = text.lower().strip()
    for rule in KIND_RULES:
        if t.startswith(rule["starts_with"]) or any(c in t for c in rule["contains"]):
            return rule["kind"]
    return "other"


def label_phrases(label: str) -> tuple[str, ...]:
    """The phrases that name ``label``: its own name with spaces, then its synonyms."""
    return (label.replace("_", " "), *SYNONYMS.get(label, ()))


def labels_named(text: str) -> list[str]:
    """Audio labels mentioned in ``text``, in the order they appear.

    Text is lower-cased and every character but a-z becomes a space. Every
    occurrence of every label's phrases counts (a phrase may start only at a word
    boundary); overlapping matches keep the longest phrase (equal lengths: the label
    first in ``audio_labels``), so "the microwave beep" names microwave_beep and not
    also timer_beep ("beep"); a label is named once, at its first free occurrence.
    """
    t = re.sub(r"[^a-z ]+", " ", text.lower())
    spans = []
    for label in _AUDIO:
        for phrase in label_phrases(label):
            for m in re.finditer(r"\b" + re.escape(phrase), t):
                spans.append((m.start(), m.start() + len(phrase), label))
    taken: list[tuple[int, int, str]] = []
    # Longest first; among equally long ones, the label scanned first (a stable sort).
    for a, b, label in sorted(spans, key=lambda s: s[0] - s[1]):
        if all(b <= x or y <= a for x, y, _ in taken) and label not in {s[2] for s in taken}:
            taken.append((a, b, label))
    return [label for _, _, label in sorted(taken)]


def query_contract() -> dict[str, Any]:
    """This module as plain, JSON-able data (for the generated edge contract file).

    Keys: ``version``, ``taxonomy_version``, ``answer_types``, ``kinds`` (kind -> answer
    type), ``answer_match`` (the scoring rule), ``kind_rules`` (in order; lower-case
    prefixes and substrings), ``yes``/``no``, ``actions`` and ``activities`` (the visual actions
    the two visual kinds answer with),
    ``audio_labels`` (the order ``labels_named`` scans), ``label_phrases`` (label -> phrases,
    own name first), ``distinct_sounds``, and the world's ``phrasings``.
    """
    return {
        "version": QUERY_CONTRACT_VERSION,
        "taxonomy_version": TAXONOMY_VERSION,
        "answer_types": dict(ANSWER_TYPES),
        "kinds": dict(KINDS),
        "answer_match": "equal after trimming white space and lower-casing",
        "kind_rules": [{"kind": r["kind"], "starts_with": list(r["starts_with"]), "contains": list(r["contains"])}
                       for r in KIND_RULES],
        "yes": YES,
        "no": NO,
        "audio_labels": list(_AUDIO),
        "label_phrases": {label: list(label_phrases(label)) for label in _AUDIO},
        "distinct_sounds": list(DISTINCT_SOUNDS),
        "actions": list(ACTIONS),
        "activities": list(ACTIVITIES),
        "phrasings": {
            "sound_id": SOUND_ID_TEXT,
            "object": OBJECT_TEXT,
            "action": ACTION_TEXT,
            "activity": ACTIVITY_TEXT,
            "yes_no": [{"text": t, "labels": list(labels)} for t, labels in YES_NO],
            "why": dict(WHY),
            "why_stop": "why did I stop {gerund}?",
            "gerunds": dict(GERUNDS),
            "count": "how many times did {phrase}?",
            "countable": dict(COUNTABLE),
            "order": "which came first, {first} or {second}?",
            "sound_names": dict(SOUND_NAMES),
        },
    }
