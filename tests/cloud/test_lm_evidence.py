"""Evidence from the teacher's per-token outputs (cloud/lm/evidence.py), its wire form
(``result.evidence``, shared/protocol.py) and the server path that attaches it
(cloud/server/backend.py with a tiny teacher). Fast: no language model is loaded here
(the answerer in the backend test is a recording double; the real one is in
tests/cloud/test_lm.py, marked slow)."""
from __future__ import annotations

import numpy as np
import pytest

from cloud.lm.evidence import Event, Evidence, evidence_text, names_label, window_evidence
from cloud.model.perception import FRAME_LABELS, SOUND_LABELS
from shared.protocol import EvidenceEvent, ProtocolError, Result, ResultEvidence, decode, encode

S = SOUND_LABELS.index
F = FRAME_LABELS.index


def _window(na=20, nf=8, t_query=100.0):
    """Empty per-token probabilities: na audio tokens ending at t_query, nf frames at 2 Hz."""
    sound = np.full((na, len(SOUND_LABELS)), 0.05, np.float32)
    frames = np.full((nf, len(FRAME_LABELS)), 0.05, np.float32)
    times = t_query - 0.5 * np.arange(nf - 1, -1, -1)  # last frame at the question
    return sound, np.ones(na, bool), frames, np.ones(nf, bool), times


def test_a_run_of_tokens_becomes_one_event_timed_from_the_question():
    sound, a_valid, frames, f_valid, times = _window()
    sound[12:15, S("timer_beep")] = [0.7, 0.96, 0.8]  # tokens 12..14 of 20: 4.0 .. 2.5 s before the end
    ev = window_evidence(sound, a_valid, 100.0, frames, f_valid, times, 100.0, [0.9, 0.3], 0.5)
    (e,) = ev.events
    assert (e.label, e.modality) == ("timer_beep", "audio")
    assert e.onset_s == pytest.approx(-4.0) and e.offset_s == pytest.approx(-2.5)
    assert e.p == pytest.approx(0.96)
    assert (ev.trust_audio, ev.trust_visual) == pytest.approx((0.9, 0.3))
    # the same tokens from a model with 1 s audio tokens: 8 .. 5 s before the end
    (wide,) = window_evidence(sound, a_valid, 100.0, frames, f_valid, times, 100.0, [0.9, 0.3], 1.0).events
    assert wide.onset_s == pytest.approx(-8.0) and wide.offset_s == pytest.approx(-5.0)
    assert ev.window_s == pytest.approx(10.0)  # 20 tokens of 0.5 s


def test_invalid_tokens_below_threshold_and_gaps_split_or_drop_events():
    sound, a_valid, frames, f_valid, times = _window()
    sound[2:4, S("doorbell")] = 0.9
    sound[6:8, S("doorbell")] = 0.9        # a gap: two events
    sound[10, S("knock")] = 0.49           # below the cut: none
    sound[16:18, S("chopping")] = 0.9
    a_valid[16:18] = False                 # padding: never evidence
    ev = window_evidence(sound, a_valid, 100.0, frames, f_valid, times, 100.0, [1.0, 1.0], 0.5)
    assert [(e.label, e.onset_s) for e in ev.events] == [("doorbell", -9.0), ("doorbell", -7.0)]


def test_frames_give_actions_and_states_and_a_seen_twin_marks_the_sound():
    sound, a_valid, frames, f_valid, times = _window()
    sound[16:20, S("chopping")] = 0.9      # the last 2 s
    frames[5:8, F("chop")] = 0.8           # frames at -1.0, -0.5, 0.0 s
    frames[0:2, F("tap_running")] = 0.7
    frames[0:8, F("open_oven")] = 0.9
    f_valid[0] = False
    ev = window_evidence(sound, a_valid, 100.0, frames, f_valid, times, 100.0, [1.0, 1.0], 0.5)
    by = {e.label: e for e in ev.events}
    assert by["chopping"].seen_too and by["chopping"].modality == "audio"
    assert by["chop"].modality == "visual" and by["chop"].onset_s == pytest.approx(-1.25)
    assert by["chop"].offset_s == pytest.approx(0.0)  # half a frame step, but never past the question
    assert by["tap_running"].modality == "state" and by["tap_running"].onset_s == pytest.approx(-3.25)
    assert by["open_oven"].onset_s == pytest.approx(-3.25)  # frame 0 is invalid
    assert [e.onset_s for e in ev.events] == sorted(e.onset_s for e in ev.events)


def test_trust_is_clamped_and_an_empty_window_says_so():
    sound, a_valid, frames, f_valid, times = _window()
    ev = window_evidence(sound, a_valid, 100.0, frames, f_valid, times, 100.0, [1.2, -0.1], 0.5)
    assert ev.events == [] and (ev.trust_audio, ev.trust_visual) == (1.0, 0.0)
    assert evidence_text(ev) == "heard nothing; saw nothing; the sound was clear, the view was poor."


def test_evidence_text_reads_times_in_whole_seconds_and_keeps_the_most_probable():
    ev = Evidence([Event("chopping", "audio", -9.0, -6.0, 0.9), Event("timer_beep", "audio", -4.5, -4.0, 0.97),
                   Event("open_oven", "visual", -1.0, 0.0, 0.88)], 0.55, 0.9, 10.0)
    assert evidence_text(ev) == ("heard chopping from 9 seconds to 6 seconds ago; heard timer beep 4 seconds ago; "
                                 "saw you open oven from 1 second ago until now; "
                                 "the sound was fairly clear, the view was clear.")
    assert evidence_text(ev, max_events=1) == ("heard timer beep 4 seconds ago; saw nothing; "
                                               "the sound was fairly clear, the view was clear.")


def test_evidence_text_lists_sounds_first_and_merges_a_label_heard_twice():
    ev = Evidence([Event("tap_running", "state", -9.5, -8.0, 0.8), Event("open_oven", "visual", -9.0, -8.0, 0.9),
                   Event("footsteps", "audio", -8.0, -7.5, 0.7), Event("doorbell", "audio", -6.0, -5.0, 0.95),
                   Event("footsteps", "audio", -4.0, -3.5, 0.85)], 0.9, 0.9, 10.0)
    assert evidence_text(ev) == ("heard footsteps 8 seconds ago and 4 seconds ago; heard doorbell from 6 seconds to "
                                 "5 seconds ago; saw you open oven from 9 seconds to 8 seconds ago; "
                                 "saw tap running from 10 seconds to 8 seconds ago; "
                                 "the sound was clear, the view was clear.")
    # the cap counts labels, not runs: footsteps' two runs are one item, kept by its best run (0.85 > 0.8)
    assert evidence_text(ev, max_events=3) == ("heard footsteps 8 seconds ago and 4 seconds ago; heard doorbell from "
                                               "6 seconds to 5 seconds ago; saw you open oven from 9 seconds to 8 "
                                               "seconds ago; the sound was clear, the view was clear.")


def test_names_label_uses_the_query_contract_for_sounds():
    assert names_label("I heard a timer beep.", "timer_beep")
    assert names_label("That was the timer, 4 seconds ago.", "timer_beep")  # the contract's synonym
    assert not names_label("I heard chopping.", "timer_beep")
    assert names_label("You opened... no: you open oven.", "open_oven")
    assert not names_label("I did not see the oven.", "open_oven")


def test_evidence_on_the_wire_round_trips_and_bad_values_are_refused():
    ev = Evidence([Event("timer_beep", "audio", -4.5, -3.0, 0.97123, seen_too=False),
                   Event("chop", "visual", -1.0, 0.0, 0.8)], 0.9, 0.25, 10.0)
    wire = ev.to_protocol()
    assert wire.events[0] == EvidenceEvent(label="timer_beep", modality="audio", onset_s=-4.5, offset_s=-3.0,
                                           p=0.971)
    msg = Result(id=7, model_id="m", batch_size=1, answer="yes", tags={}, timing_ms={"total_ms": 1.0},
                 sentence="I heard a timer beep 3 seconds ago.", evidence=wire)
    assert decode(encode(msg)) == msg
    plain = Result(id=7, model_id="m", batch_size=1, answer="yes", tags={}, timing_ms={"total_ms": 1.0})
    assert b"sentence" not in encode(plain) and b"evidence" not in encode(plain)  # 1.1 bytes unchanged
    with pytest.raises(ProtocolError, match="modality"):
        EvidenceEvent(label="x", modality="smell", onset_s=0.0, offset_s=0.0, p=0.5)
    with pytest.raises(ProtocolError, match="offset_s"):
        EvidenceEvent(label="x", modality="audio", onset_s=-1.0, offset_s=-2.0, p=0.5)
    with pytest.raises(ProtocolError, match="trust_audio"):
        ResultEvidence(trust_audio=1.5, trust_visual=0.0, window_s=1.0, events=())
    import msgpack

    raw = msgpack.unpackb(encode(msg))
    raw["evidence"]["events"][0]["p"] = 2.0
    with pytest.raises(ProtocolError, match=r"result\.evidence\.events\[0\]\.p"):
        decode(msgpack.packb(raw))


class _RecordingAnswerer:
    """Stands in for the language model inside this backend test: records what it is given."""

    model_id = "double"

    def __init__(self):
        self.calls = []

    def answer_batch(self, questions, evidences):
        self.calls.append((list(questions), list(evidences)))
        return [f"answer to {q}" for q in questions]


@pytest.fixture(scope="module")
def tiny_backend(tmp_path_factory):
    from cloud.server.backend import load_teacher_backend
    from tests.helpers.teacher_world import make_tiny_teacher

    folder = make_tiny_teacher(tmp_path_factory.mktemp("t") / "model", ["what was that?", "yes", "no"],
                               max_answer_tokens=4, frame_size_px=32)
    return load_teacher_backend(folder, max_batch_size=4, threads=1)


def test_the_backend_attaches_evidence_to_every_answer_and_a_sentence_to_queries(tiny_backend):
    from dataclasses import replace

    from cloud.server import worker_protocol as wp
    from cloud.server.backend import warmup_request

    plain = tiny_backend.infer([warmup_request(seed=1)]).items[0]
    assert plain.sentence is None and plain.evidence is None  # no LM: replies exactly as before
    double = _RecordingAnswerer()
    tiny_backend.answerer = double
    try:
        asked = replace(warmup_request(seed=2, n_frames=3), query="what did you hear?", query_t_s=10.5)
        out = tiny_backend.infer([warmup_request(seed=1), asked])
        tiny_backend.warmup()  # with a language model, warm-up also asks it one question
        assert double.calls[-1][0] == ["what did you hear?"]
        double.calls = double.calls[:1]
    finally:
        tiny_backend.answerer = None
    a, b = out.items
    assert a.sentence is None and isinstance(a.evidence, ResultEvidence)
    assert b.sentence == "answer to what did you hear?"
    assert "lm_ms" in out.timing_ms
    (questions, evidences), = double.calls  # one batched call, only for the request with a query
    assert questions == ["what did you hear?"]
    ev = evidences[0]
    # the evidence reaches back over the teacher's 2 s of audio, ending at the question (10.5 s)
    assert ev.window_s == pytest.approx(2.0, abs=0.6)
    assert all(-ev.window_s - 1e-6 <= e.onset_s <= e.offset_s <= 0.05 for e in ev.events)
    assert b.evidence == ev.to_protocol()
    # through the worker link and back, as the broker rebuilds the result
    item = wp.unpack(wp.pack(wp.answer_to_plain(b)))
    assert wp.evidence_from_plain(item["evidence"]) == b.evidence and item["sentence"] == b.sentence
    assert "evidence" not in wp.answer_to_plain(plain)
