"""pipelines/ask.py: the request for the model's window at a question."""
import numpy as np
import pytest

from pipelines.ask import window_request
from shared.protocol import InferRequest, ModelInput, decode, encode
from tests.helpers.recordings import RATE, make_recording

SPEC = ModelInput(audio_s=2.0, sample_rate_hz=RATE, frame_hz=4.0, frames=4, frame_size_px=64)


def test_window_request_holds_the_audio_and_frame_slots_ending_at_the_question():
    rec = make_recording()  # 3 s, frames every 0.1 s
    req = window_request(rec, 2.8, SPEC, "why did I open the oven?")
    assert req.query == "why did I open the oven?" and req.query_t_s == 2.8
    assert req.audio.start_s == pytest.approx(0.8) and req.audio.rate_hz == RATE
    pcm = np.frombuffer(req.audio.pcm, "<i2")
    assert len(pcm) == 2 * RATE and np.array_equal(pcm, rec.audio[int(0.8 * RATE): int(2.8 * RATE)])
    # one frame per slot (0.25 s apart), the newest frame at or before each slot, none after the question
    assert [f.t_s for f in req.frames] == pytest.approx([2.0, 2.3, 2.5, 2.8])
    assert all(f.jpeg[:2] == b"\xff\xd8" for f in req.frames)
    again = decode(encode(req))  # a valid protocol message
    assert isinstance(again, InferRequest) and again.frames == req.frames


def test_an_early_question_sends_only_what_was_heard_and_no_query_sends_no_query_time():
    rec = make_recording()
    req = window_request(rec, 0.5, SPEC, None)
    assert req.query is None and req.query_t_s is None
    assert req.audio.start_s == 0.0 and len(req.audio.pcm) == 2 * int(0.5 * RATE)
    assert [f.t_s for f in req.frames] == pytest.approx([0.0, 0.2, 0.5])  # the slot at -0.25 s has no frame
