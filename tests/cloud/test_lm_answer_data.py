"""The answerer's instruction data (cloud/lm/answer_data.py): deterministic, and every target
sentence says only what its notes say (the property the LoRA adapter is tuned for)."""
from __future__ import annotations

from cloud.lm.answer_data import make_examples, target_sentence
from cloud.lm.evidence import Event, Evidence, names_label
from cloud.model.perception import SOUND_LABELS


def test_examples_are_deterministic_per_seed_and_vary_across_seeds():
    a, b, c = make_examples(50, seed=3), make_examples(50, seed=3), make_examples(50, seed=4)
    assert a == b and a != c
    assert len({e.question for e in a}) > 10


def test_target_sentences_name_only_sounds_the_notes_list():
    for ex in make_examples(400, seed=0):
        if "you" in ex.sentence.lower().split():
            continue  # about the wearer's actions: "open microwave" reads as the microwave's sound by synonym
        listed = {e.label for e in ex.evidence.events if e.modality == "audio"}
        named = {l for l in SOUND_LABELS if names_label(ex.sentence, l)}
        asked = {l for l in SOUND_LABELS if names_label(ex.question, l)}
        assert named - asked <= listed, (ex.question, ex.evidence, ex.sentence)
        assert ex.sentence.endswith(".") and ex.sentence.count(".") == 1, ex.sentence


def test_target_sentences_by_kind():
    ev = Evidence([Event("chopping", "audio", -9.0, -6.0, 0.9), Event("timer_beep", "audio", -4.5, -4.0, 0.97),
                   Event("open_oven", "visual", -1.0, 0.0, 0.88)], 0.9, 0.9, 10.0)
    assert target_sentence("what did you hear?", ev, "heard") == "I heard chopping and timer beep."
    assert target_sentence("what was that sound?", ev, "sound_id") == "That was timer beep, 4 seconds ago."
    assert target_sentence("", ev, "yes_no", "doorbell") == "No, I did not hear doorbell."
    assert target_sentence("", ev, "yes_no", "chopping") == "Yes, I heard chopping 6 seconds ago."
    assert target_sentence("", ev, "did") == "You open oven, just now."
    assert target_sentence("", Evidence([], 1.0, 1.0), "heard") == "I did not hear anything."
    twice = Evidence([Event("footsteps", "audio", -8.0, -7.5, 0.7), Event("doorbell", "audio", -6.0, -5.0, 0.9),
                      Event("footsteps", "audio", -4.0, -3.5, 0.8)], 0.9, 0.9, 10.0)
    assert target_sentence("what did you hear?", twice, "heard") == "I heard footsteps and doorbell."
    assert target_sentence("", twice, "count", "footsteps") == "I heard footsteps twice."


def test_drawn_notes_look_like_the_teachers_long_ones():
    """Long notes with sights among the sounds and repeated sounds occur (the answerer was
    tuned on 0-4 sounds once dropped sounds from real 8-item notes)."""
    exs = make_examples(300, seed=1)
    n_items = [len({(e.modality, e.label) for e in x.evidence.events}) for x in exs]
    assert max(n_items) >= 10 and sum(n >= 6 for n in n_items) >= 30
    assert any(len([e for e in x.evidence.events if e.modality == "audio"])
               > len({e.label for e in x.evidence.events if e.modality == "audio"}) for x in exs)
