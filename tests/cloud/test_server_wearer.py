"""The server answers the wearer's closed-form questions from the teacher's perception
(cloud/server/wearer.py): what the request carried decides what it can answer."""
from dataclasses import replace

import numpy as np
import pytest

from cloud.model.perception import FRAME_LABELS, SOUND_LABELS
from cloud.server.wearer import answer_wearer, is_wearer_question, perception_memory
from shared.answering import UNKNOWN
from shared.queries import ACTION_TEXT, ACTIVITY_TEXT, SOUND_ID_TEXT

from tests.cloud.test_server_backend import _request, backend  # noqa: F401  (the tiny teacher fixture)


def _perception(sounds=(), sights=(), n_tokens=10, frame_times=(8.0, 8.5, 9.0, 9.5), audio_end_s=10.0, token_s=0.5):
    """Probabilities with ``sounds`` (token index, label) and ``sights`` (frame index, label) at 0.9."""
    sp = np.full((n_tokens, len(SOUND_LABELS)), 0.05, np.float32)
    for k, label in sounds:
        sp[k, SOUND_LABELS.index(label)] = 0.9
    fp = np.full((len(frame_times), len(FRAME_LABELS)), 0.05, np.float32)
    for f, label in sights:
        fp[f, FRAME_LABELS.index(label)] = 0.9
    return dict(sound_probs=sp, audio_valid=np.ones(n_tokens, bool), audio_end_s=audio_end_s, frame_probs=fp,
                frame_valid=np.ones(len(frame_times), bool), frame_times_s=np.asarray(frame_times, np.float64),
                token_s=token_s)


def test_which_questions_are_the_wearers():
    assert is_wearer_question(ACTION_TEXT) and is_wearer_question("did the kettle whistle?")
    assert not is_wearer_question("tell me a joke") and not is_wearer_question(None) and not is_wearer_question("")


def test_tokens_and_frames_become_timed_detections():
    p = _perception(sounds=[(6, "timer_beep"), (7, "timer_beep")], sights=[(1, "open_oven"), (2, "oven_door_open")])
    m = perception_memory(**p)
    # token k ends (10 - k - 1) * 0.5 s before the audio end
    assert [(d.t_s, d.label) for d in m.detections] == [(8.5, "timer_beep"), (9.0, "timer_beep")]
    assert [(d.t_s, d.label) for d in m.seen] == [(8.5, "open_oven")]  # an object state is not an action
    assert answer_wearer(ACTION_TEXT, 10.0, **p) == "open_oven"
    assert answer_wearer(SOUND_ID_TEXT, 10.0, **p) == "timer_beep"
    assert answer_wearer("how many times did the oven timer beep?", 10.0, **p) == "1"  # one run: one episode
    # a model with 1 s audio tokens: the same token indices are twice as far back
    wide = perception_memory(**_perception(sounds=[(6, "timer_beep")], token_s=1.0))
    assert [(d.t_s, d.label) for d in wide.detections] == [(7.0, "timer_beep")]


def test_a_window_without_frames_cannot_say_what_the_wearer_did():
    p = _perception(sounds=[(9, "chopping")], sights=[(3, "chop")])
    assert answer_wearer(ACTIVITY_TEXT, 10.0, **p) == "chop"
    blind = {**p, "frame_valid": np.zeros(4, bool)}
    assert answer_wearer(ACTIVITY_TEXT, 10.0, **blind) == UNKNOWN  # the chopping sound does not say "chop"
    deaf = {**p, "audio_valid": np.zeros(10, bool)}
    assert answer_wearer(SOUND_ID_TEXT, 10.0, **deaf) == UNKNOWN and answer_wearer(ACTIVITY_TEXT, 10.0, **deaf) == "chop"


def test_the_window_is_all_the_server_heard_so_it_does_not_answer_no_from_it():
    from cloud.server.wearer import window_start

    # a 10 s model window whose first 10 tokens hold no audio: the request carried the last 5 s
    p = _perception(sounds=[(16, "doorbell")], n_tokens=20)
    p["audio_valid"] = np.arange(20) >= 10
    assert window_start(p["audio_valid"], 10.0, 0.5) == 5.0
    assert window_start(np.zeros(20, bool), 10.0, 0.5) == 10.0  # no audio: it covers nothing
    assert answer_wearer("did the doorbell ring?", 10.0, **p) == "yes"
    assert answer_wearer("did someone knock?", 10.0, **p) == UNKNOWN  # the device's memory answers
    assert answer_wearer("how many times did the oven timer beep?", 10.0, **p) == UNKNOWN
    early = _perception(sounds=[(10, "timer_beep")], n_tokens=20)  # heard in the window's first token
    early["audio_valid"] = p["audio_valid"]
    assert answer_wearer("how many times did the oven timer beep?", 10.0, **early) == UNKNOWN


def test_a_frame_repeated_over_slots_counts_once():
    p = _perception(sights=[(0, "pick_up_phone"), (1, "pick_up_phone")], frame_times=(9.0, 9.0))
    assert len(perception_memory(**p).seen) == 1


@pytest.mark.parametrize("query", [ACTION_TEXT, ACTIVITY_TEXT, SOUND_ID_TEXT, "did someone knock?"])
def test_the_backend_answers_wearer_questions_in_closed_form(backend, query):  # noqa: F811
    from shared.labels import names

    forms = {*names("audio_event"), *names("visual_action"), "yes", "no", UNKNOWN}
    with_frames = replace(_request(100.0, [100.5, 100.9]), query=query, query_t_s=101.0)
    no_frames = replace(with_frames, frames=[])
    out = backend.infer([with_frames, no_frames]).items
    assert all(o.answer in forms for o in out), [o.answer for o in out]
    if query in (ACTION_TEXT, ACTIVITY_TEXT):
        assert out[1].answer == UNKNOWN
    # the decoder answers a question outside the contract either way, and the wearer's question
    # when the closed-form answers are switched off; the form is announced only when they are on
    joke = replace(with_frames, query="tell me a joke")
    assert "wearer" in [a["kind"] for a in backend.capabilities()["answers"]]
    backend.wearer_answers = False
    try:
        decoder = backend.infer([joke, with_frames]).items
        assert "wearer" not in [a["kind"] for a in backend.capabilities()["answers"]]
    finally:
        backend.wearer_answers = True
    again = backend.infer([joke, with_frames]).items
    assert again[0].answer == decoder[0].answer  # "other": the decoder's text under both settings
    assert again[1].answer == out[0].answer  # the closed form is deterministic
