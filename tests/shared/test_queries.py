"""The wearer-query contract (shared/queries.py): every phrasing the world asks is recognised by
the edge as its own kind and names exactly its sounds; the plain-data view is complete JSON."""
import itertools
import json

import pytest

from shared.labels import names
from shared.queries import (ANSWER_TYPES, COUNTABLE, DISTINCT_SOUNDS, GERUNDS, KINDS, OBJECT_TEXT, SOUND_ID_TEXT,
                            SOUND_NAMES, SYNONYMS, WHY, YES_NO, count_text, labels_named, order_text, query_contract,
                            query_kind, why_stop_text)

AUDIO = set(names("audio_event"))


def test_every_kind_has_an_answer_type_and_every_label_is_in_the_taxonomy():
    assert set(KINDS.values()) <= set(ANSWER_TYPES)
    assert set(DISTINCT_SOUNDS) <= AUDIO and set(SYNONYMS) <= AUDIO and set(COUNTABLE) <= AUDIO
    assert set(SOUND_NAMES) == set(DISTINCT_SOUNDS)
    assert {label for _, labels in YES_NO for label in labels} <= AUDIO
    assert set(WHY) <= set(names("visual_action")) and set(GERUNDS) <= set(names("visual_action"))


def test_fixed_phrasings_are_recognised_as_their_kind():
    assert query_kind(SOUND_ID_TEXT) == "sound_id" and labels_named(SOUND_ID_TEXT) == []
    assert query_kind(OBJECT_TEXT) == "object"
    assert query_kind("tell me a joke") == "other"


@pytest.mark.parametrize("text, labels", YES_NO)
def test_yes_no_phrasings_name_exactly_their_sounds(text, labels):
    assert query_kind(text) == "yes_no" and labels_named(text) == list(labels)


@pytest.mark.parametrize("label", sorted(COUNTABLE))
def test_count_phrasings_name_their_sound(label):
    assert query_kind(count_text(label)) == "count" and labels_named(count_text(label)) == [label]


def test_why_phrasings():
    for action, template in WHY.items():
        text = template.format(object="salt")
        # "why did I stop walking?" (the effect idle) reads as why_stop: both answer with the cause
        assert query_kind(text) == ("why_stop" if text.startswith("why did I stop") else "why"), text
        assert KINDS[query_kind(text)] == KINDS["why"]
    for activity in GERUNDS:
        assert query_kind(why_stop_text(activity)) == "why_stop"


def test_every_order_question_names_both_sounds_in_the_asked_order():
    for a, b in itertools.permutations(DISTINCT_SOUNDS, 2):
        text = order_text(a, b)
        assert query_kind(text) == "order" and labels_named(text) == [a, b], text


def test_longest_phrase_wins_and_a_later_occurrence_still_counts():
    assert labels_named("did the microwave beep?") == ["microwave_beep"]  # not also timer_beep ("beep")
    # "the door" first matches inside "the doorbell"; its own occurrence comes later
    assert labels_named("which came first, the doorbell or the door?") == ["doorbell", "door_sound"]


def test_the_contract_is_plain_json_and_says_what_the_module_says():
    data = json.loads(json.dumps(query_contract()))
    assert data["kinds"] == KINDS and [r["kind"] for r in data["kind_rules"]][:2] == ["order", "why_stop"]
    assert data["label_phrases"]["microwave_beep"] == ["microwave beep", "microwave"]
    assert set(data["label_phrases"]) == AUDIO and data["audio_labels"] == names("audio_event")
    assert data["phrasings"]["yes_no"][0] == {"text": YES_NO[0][0], "labels": list(YES_NO[0][1])}
    # a reader that follows the data recognises kinds as query_kind does
    def kind_from_data(text):
        t = text.lower().strip()
        for rule in data["kind_rules"]:
            if any(t.startswith(p) for p in rule["starts_with"]) or any(c in t for c in rule["contains"]):
                return rule["kind"]
        return "other"
    for text in [SOUND_ID_TEXT, OBJECT_TEXT, count_text("knock"), order_text("knock", "alarm"), "why did I go?"]:
        assert kind_from_data(text) == query_kind(text)
