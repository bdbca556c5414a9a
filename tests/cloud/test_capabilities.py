"""The answer forms the server announces (cloud/server/capabilities.py) are the data engine's own.

The teacher is trained on the data engine's closed-form answers
(cloud/data_engine/records.py); a client reads ``capabilities.answers`` to
know what ``result.answer`` looks like, so every announced form must be one of
the record answer types, and its example must already be in that type's
canonical form (what ``normalize_answer`` leaves unchanged).
"""
from __future__ import annotations

from cloud.data_engine.qa import DENSE_QUESTION, SUMMARY_QUESTION
from cloud.data_engine.records import ANSWER_TYPES, normalize_answer
from cloud.server.capabilities import TEACHER_ANSWERS, make_capabilities, model_capabilities
from shared.labels import GROUPS
from shared.protocol import ModelInput, decode, encode


def test_every_announced_form_is_a_record_answer_type_with_a_canonical_example():
    kinds = [a.kind for a in TEACHER_ANSWERS]
    assert len(kinds) == len(set(kinds))
    for form in TEACHER_ANSWERS:
        assert form.kind in ANSWER_TYPES, form.kind
        assert normalize_answer(form.example, form.kind) == form.example, form
    # the narration forms name the questions the data engine asks
    by_kind = {a.kind: a for a in TEACHER_ANSWERS}
    assert "summarise the clip" in by_kind["summary"].when and SUMMARY_QUESTION.startswith("summarise the clip")
    assert "narrate the clip" in by_kind["dense"].when and DENSE_QUESTION.startswith("narrate the clip")


def test_capabilities_carry_the_whole_taxonomy_and_survive_the_wire():
    model = model_capabilities(ModelInput(audio_s=10.0, sample_rate_hz=16000, frame_hz=2.0, frames=20,
                                          frame_size_px=32), ("timer_beep", "open_oven"), TEACHER_ANSWERS)
    caps = make_capabilities(3, ready=True, model_id="avlm-x", model=model)
    assert caps.labels == {g: tuple(lab.name for lab in labs) for g, labs in GROUPS.items()}
    data = encode(caps)
    assert decode(data) == caps and len(data) < 8192  # a few KB, read once per connection
