"""Wire protocol v1 (shared/protocol.py) against its spec (docs/protocol.md).

Three layers: property tests (every valid message round-trips byte-exactly;
random, truncated and mutated bytes raise only ProtocolError), hostile
inputs with the exact error code (huge length headers, deep nesting, ext
types, non-str keys, NaN, wrong types per field), and doc honesty (the hex
examples, limits table and error-code table in docs/protocol.md match the code).
"""
from __future__ import annotations

import ast
import math
import re
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import shared.protocol as P
from shared.jpeg_header import EXAMPLE_JPEG
from shared.protocol import (
    AUDIO_RATES_HZ, MAX_MESSAGE_BYTES, AnswerFormat, AudioWindow, Capabilities, ErrorCode, ErrorReply, Frame,
    Hello, InferRequest, ModelInput, Ping, Pong, ProtocolError, Result, Stats, StatsRequest,
    decode, encode, peek_id, pcm_from_bytes, pcm_to_bytes,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
JPEG = EXAMPLE_JPEG  # 8 x 8 mid-grey, 141 bytes: the frames of the worked infer example
NO_SOF = bytes.fromhex("ffd8ffe000104a46494600ffd9")  # SOI, APP0 "JFIF", EOI: starts like a JPEG, no frame header


def sof_jpeg(width: int, height: int) -> bytes:
    """A header-only JPEG claiming ``width`` x ``height`` pixels (SOI, SOF0, EOI)."""
    return (bytes.fromhex("ffd8ffc0000b08") + height.to_bytes(2, "big") + width.to_bytes(2, "big")
            + bytes.fromhex("01011100ffd9"))


def assert_rejects(data, code: ErrorCode | None = None, path: str | None = None) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        decode(data)
    err = info.value
    if code is not None:
        assert err.code == code, str(err)
    if path is not None:
        assert err.path.startswith(path), str(err)
    return err


def decode_or_error(data) -> None:
    """The fuzz oracle: a message that re-encodes, or a ProtocolError that is not ours."""
    try:
        msg = decode(data)
    except ProtocolError as err:
        assert err.code != ErrorCode.INTERNAL, f"decoder bug: {err!r} from {bytes(data)[:64].hex()}"
        assert isinstance(err.code, ErrorCode)
        return
    encode(msg)  # whatever decode accepts must be a valid message


def pack(wire) -> bytes:
    return msgpack.packb(wire, use_bin_type=True)


def wire_of(msg) -> dict:
    return msgpack.unpackb(encode(msg), raw=False)


# ------------------------------------------------------------- examples --

def doc_examples() -> dict[str, object]:
    """The messages whose bytes docs/protocol.md shows as hex dumps."""
    pcm = np.array([0, 1000, -1000, 32767], dtype=np.int16)
    return {
        "ping": Ping(id=1, t_client_s=12.5),
        "pong": Pong(id=1, t_client_s=12.5, ready=True, model_id="avlm-tiny-v1",
                     queue_depth=0, queue_capacity=64),
        "infer": InferRequest(
            id=2, deadline_ms=800, trigger_label="timer_beep", trigger_score=0.875,
            student_scores={"timer_beep": 0.875, "door_open": 0.25}, student_confidence=0.5,
            query="what was that?", query_t_s=41.0,
            audio=AudioWindow.from_samples(pcm, start_s=40.0, rate_hz=16000),
            frames=[Frame(t_s=40.5, jpeg=JPEG), Frame(t_s=40.625, jpeg=JPEG)]),
        "result": Result(id=2, model_id="avlm-tiny-v1", batch_size=2,
                         answer="kitchen; heard: timer_beep; did: none",
                         tags={"timer_beep": 0.96875, "door_open": 0.125},
                         timing_ms={"queue_ms": 3.5, "decode_ms": 2.25, "model_ms": 20.5, "worker_ms": 23.5,
                                    "total_ms": 27.5}),
        "error": ErrorReply(id=3, code=ErrorCode.BUSY, message="queue full", retry_after_ms=250),
        "error_nil_id": ErrorReply(id=None, code=ErrorCode.BAD_REQUEST,
                                   message="message is not a msgpack map"),
        "stats_request": StatsRequest(id=4),
        "stats": Stats(id=4, uptime_s=3600.0, requests_total=1200, results_total=1150,
                       dropped_total=2, errors_by_code={"busy": 40, "deadline_exceeded": 10},
                       queue_depth=1, queue_capacity=64, batch_size_counts=[700, 150, 40, 10],
                       latency_samples=1000, latency_p50_ms=95.5, latency_p95_ms=240.0,
                       latency_p99_ms=410.0),
        "hello": Hello(id=5, client="earshot-edge/1"),
        "capabilities": Capabilities(
            id=5, server="earshot-server/1", versions=[1], kinds=["hello", "infer", "ping", "stats_request"],
            ready=True, model_id="avlm-tiny-v1",
            input=ModelInput(audio_s=10.0, sample_rate_hz=16000, frame_hz=2.0, frames=20, frame_size_px=32),
            labels={"audio_event": ["doorbell", "timer_beep"]}, tags=["doorbell", "timer_beep"],
            answers=[AnswerFormat(kind="yes_no", when="did you hear ...?", format="yes | no", example="yes")]),
    }


def hexdump(data: bytes) -> str:
    """The dump format of the doc: offset, 16 hex bytes, ASCII ('|' shown as '.')."""
    lines = []
    for off in range(0, len(data), 16):
        chunk = data[off:off + 16]
        text = "".join(chr(b) if 32 <= b < 127 and b != ord("|") else "." for b in chunk)
        lines.append(f"{off:04x}: {chunk.hex(' '):<47}  |{text}|")
    return "\n".join(lines)


def doc_section(title: str) -> str:
    """The text of the doc section headed ``## <title>``, up to the next one."""
    return DOC.read_text().split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def doc_hex_blocks() -> dict[str, bytes]:
    blocks = re.findall(r"<!-- example: (\w+) -->\s*```text\n(.*?)```", DOC.read_text(), re.S)
    return {name: bytes.fromhex("".join(line.split("|")[0].split(":", 1)[1]
                                        for line in body.strip().splitlines()))
            for name, body in blocks}


# ----------------------------------------------------------- strategies --

labels = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)
unit = st.floats(0.0, 1.0)
times = st.floats(0.0, 1e7)
ids = st.integers(0, P.UINT64_MAX)
uints = st.integers(0, P.UINT64_MAX)
score_maps = st.dictionaries(labels, unit, max_size=6)

frames = st.builds(Frame, t_s=times, jpeg=st.binary(max_size=40).map(lambda b: JPEG + b))  # bytes after EOI are ignored
audio = st.builds(AudioWindow, start_s=times, rate_hz=st.sampled_from(AUDIO_RATES_HZ),
                  pcm=st.binary(min_size=1, max_size=40).map(lambda b: b + b"\0" * (len(b) % 2)))


@st.composite
def infer_requests(draw) -> InferRequest:
    fs = sorted(draw(st.lists(frames, max_size=4)), key=lambda f: f.t_s)
    window = draw(st.none() | audio) if fs else draw(audio)
    query = draw(st.none() | st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30))
    return InferRequest(
        id=draw(ids), deadline_ms=draw(st.integers(1, P.MAX_DEADLINE_MS)),
        trigger_label=draw(labels), trigger_score=draw(unit), student_scores=draw(score_maps),
        student_confidence=draw(unit), query=query,
        query_t_s=None if query is None else draw(times),
        model=draw(st.none() | labels), audio=window, frames=fs)


@st.composite
def stats(draw) -> Stats:
    pct = sorted(draw(st.lists(st.floats(0, 1e5), min_size=3, max_size=3)))
    if draw(st.booleans()):
        pct = [None] * 3
    return Stats(
        id=draw(ids), uptime_s=draw(times), requests_total=draw(uints), results_total=draw(uints),
        dropped_total=draw(uints),
        errors_by_code=draw(st.dictionaries(st.sampled_from(list(ErrorCode)), uints)),
        queue_depth=draw(uints), queue_capacity=draw(uints),
        batch_size_counts=draw(st.lists(uints, max_size=8)), latency_samples=draw(uints),
        latency_p50_ms=pct[0], latency_p95_ms=pct[1], latency_p99_ms=pct[2])


messages = st.one_of(
    infer_requests(),
    st.builds(Result, id=ids, model_id=labels, batch_size=st.integers(1, P.MAX_BATCH_SIZE),
              answer=st.text(st.characters(blacklist_categories=("Cs",)), max_size=40), tags=score_maps,
              timing_ms=st.dictionaries(labels, st.floats(0, 1e6), max_size=4).map(
                  lambda t: {**t, "total_ms": 1.0})),
    st.builds(ErrorReply, id=st.none() | ids, code=st.sampled_from(list(ErrorCode)),
              message=st.text(st.characters(blacklist_categories=("Cs",)), max_size=40),
              retry_after_ms=st.none() | st.integers(0, P.MAX_RETRY_AFTER_MS)),
    st.builds(Ping, id=ids, t_client_s=times),
    st.builds(Pong, id=ids, t_client_s=times, ready=st.booleans(), model_id=st.none() | labels,
              queue_depth=uints, queue_capacity=uints),
    st.builds(StatsRequest, id=ids),
    stats(),
    st.builds(Hello, id=ids, client=st.none() | labels),
    st.builds(Capabilities, id=ids, server=labels, versions=st.lists(st.integers(1, 9), max_size=3),
              kinds=st.lists(labels, max_size=4), ready=st.booleans(), model_id=st.none() | labels,
              input=st.none() | st.builds(ModelInput, audio_s=st.floats(0, 30), sample_rate_hz=st.sampled_from(
                  AUDIO_RATES_HZ), frame_hz=st.floats(0, 30), frames=st.integers(0, 64),
                  frame_size_px=st.integers(1, 512)),
              labels=st.dictionaries(labels, st.lists(labels, max_size=3), max_size=3),
              tags=st.lists(labels, max_size=4),
              answers=st.lists(st.builds(AnswerFormat, kind=labels, when=labels, format=labels, example=labels),
                               max_size=2)),
)


# ------------------------------------------------------ property tests --

@FUZZ
@given(messages)
def test_every_valid_message_round_trips_byte_exactly(msg):
    data = encode(msg)
    back = decode(data)
    assert back == msg
    assert encode(back) == data  # canonical: decode -> encode reproduces the bytes
    assert peek_id(data) == msg.id


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_raise_only_protocol_error(data):
    decode_or_error(data)
    peek_id(data)  # never raises


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes_after_a_valid_prefix_raise_only_protocol_error(tail):
    # Random tails behind a plausible header reach the field validators, not just the scanner.
    decode_or_error(bytes.fromhex("85a17601a46b696e64a5696e666572a2696405") + tail)


@FUZZ
@given(messages, st.data())
def test_truncated_messages_are_bad_requests(msg, data):
    full = encode(msg)
    cut = data.draw(st.integers(0, len(full) - 1))
    err = assert_rejects(full[:cut])
    assert err.code == ErrorCode.BAD_REQUEST


@FUZZ
@given(messages, st.data())
def test_single_byte_mutations_raise_only_protocol_error(msg, data):
    raw = bytearray(encode(msg))
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] = data.draw(st.integers(0, 255))
    decode_or_error(bytes(raw))
    peek_id(bytes(raw))


@FUZZ
@given(messages, st.data())
def test_byte_insertions_and_deletions_raise_only_protocol_error(msg, data):
    raw = bytearray(encode(msg))
    pos = data.draw(st.integers(0, len(raw) - 1))
    if data.draw(st.booleans()):
        raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
    else:
        del raw[pos:pos + data.draw(st.integers(1, 8))]
    decode_or_error(bytes(raw))


# ----------------------------------------------------- hostile inputs --

@pytest.mark.parametrize("header", [
    "c6ffffffff",          # bin32 claiming 4 GiB
    "dbffffffff",          # str32 claiming 4 GiB
    "ddffffffff",          # array32 claiming 4 G elements
    "dfffffffff",          # map32 claiming 4 G pairs
    "daffff",              # str16 of 64 KiB, above MAX_STR_BYTES
    "dcffff", "deffff",    # array16 / map16 of 65535, above their limits
])
def test_huge_length_headers_are_too_large_without_allocating(header):
    data = bytes.fromhex("82a17601a178" + header)
    assert_rejects(data, ErrorCode.TOO_LARGE)


@pytest.mark.parametrize("unit_bytes", [b"\x91", b"\x81\xa1a"])
def test_deep_nesting_is_rejected_fast(unit_bytes):
    data = b"\x82\xa1v\x01\xa1x" + unit_bytes * 100_000 + b"\xc0"
    start = time.perf_counter()
    assert_rejects(data, ErrorCode.TOO_LARGE)
    assert time.perf_counter() - start < 0.5


def test_nesting_up_to_the_limit_is_accepted_in_unknown_keys():
    ok = wire_of(Ping(id=1, t_client_s=0.0))
    ok["x_future"] = [[[[[[[0]]]]]]]                 # root map + 7 arrays = depth 8
    assert decode(pack(ok)) == Ping(id=1, t_client_s=0.0)
    ok["x_future"] = [ok["x_future"]]
    assert_rejects(pack(ok), ErrorCode.TOO_LARGE)


def test_too_many_objects_is_too_large():
    wire = wire_of(Ping(id=1, t_client_s=0.0))
    wire.update({f"k{i}": [None] * 10 for i in range(800)})  # 800 * 12 values > MAX_OBJECTS
    assert_rejects(pack(wire), ErrorCode.TOO_LARGE)


def test_oversize_input_is_rejected_before_unpacking(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("msgpack.unpackb must not see oversize input")

    monkeypatch.setattr(P.msgpack, "unpackb", boom)
    assert_rejects(b"\x80" * (MAX_MESSAGE_BYTES + 1), ErrorCode.TOO_LARGE)


@pytest.mark.parametrize("value", [
    "d40100",              # fixext1
    "c7020161ff",          # ext8
    "c70001",              # zero-length ext8: msgpack's max_ext_len=0 alone lets it through
    "d6ffffffffff",        # timestamp32 (ext type -1)
])
def test_ext_types_are_rejected_anywhere(value):
    assert_rejects(bytes.fromhex("82a17601a178" + value), ErrorCode.BAD_REQUEST)
    wire = pack({"v": 1, "kind": "ping", "id": 1, "t_client_s": 0.0})
    err = assert_rejects(bytes.fromhex("85") + wire[1:] + bytes.fromhex("a178" + value), ErrorCode.BAD_REQUEST)
    assert "ext type" in str(err)


@pytest.mark.parametrize("data", [
    "82a1760105a178",                  # int key
    "82a17601c40178a178",              # bin key
    "82a17601c0a178",                  # nil key
    "82a1760191a178a178",              # array key
    "82a17601a17881c301",              # bool key in a nested map
])
def test_non_str_map_keys_are_rejected(data):
    assert_rejects(bytes.fromhex(data), ErrorCode.BAD_REQUEST)


@pytest.mark.parametrize("entry", ["c40178c0", "01c0", "a17881c401aac0"])
def test_non_str_keys_are_rejected_even_where_unknown_keys_are_ignored(entry):
    # msgpack's strict_map_key still allows bin keys; the pre-scan must refuse them.
    wire = encode(Ping(id=1, t_client_s=0.0))
    err = assert_rejects(b"\x85" + wire[1:] + bytes.fromhex(entry), ErrorCode.BAD_REQUEST)
    assert "not a str" in str(err)


@pytest.mark.parametrize("data, fragment", [
    ("", "empty"),
    ("93010203", "not a msgpack map"),
    ("01", "not a msgpack map"),
    ("a3616263", "not a msgpack map"),
    ("81a17601c0", "trailing"),
    ("81a176c1", "0xc1"),
    ("82a17601a17601", "duplicate"),
    ("82a17601a178a2ff00", "invalid UTF-8 in the str at byte 6"),
    ("82a17601a2ff00a178", "invalid UTF-8 in the str at byte 4"),  # in a key
    ("82a17601a178a3eda080", "invalid UTF-8"),  # an encoded surrogate is not UTF-8 either
])
def test_malformed_structure_is_bad_request(data, fragment):
    err = assert_rejects(bytes.fromhex(data), ErrorCode.BAD_REQUEST)
    assert fragment in str(err)
    # Messages speak msgpack, not the host language: no Python exception names leak.
    assert "Error" not in str(err) and "codec" not in str(err), str(err)


@pytest.mark.parametrize("data", ["not bytes", None, 5, [1, 2]])
def test_non_bytes_input_is_bad_request(data):
    assert_rejects(data, ErrorCode.BAD_REQUEST)


def test_bytearray_and_memoryview_are_accepted():
    data = encode(Ping(id=9, t_client_s=1.0))
    assert decode(bytearray(data)) == decode(memoryview(data)) == Ping(id=9, t_client_s=1.0)


def test_envelope_checks_and_their_order():
    base = wire_of(Ping(id=5, t_client_s=1.0))
    assert_rejects(pack({**base, "v": 2}), ErrorCode.UNSUPPORTED_VERSION, "v")
    # The version is checked before the fields: a v2 message of any shape gets unsupported_version.
    assert_rejects(pack({"v": 2, "kind": "brand_new", "id": 5}), ErrorCode.UNSUPPORTED_VERSION)
    assert_rejects(pack({**base, "v": True}), ErrorCode.BAD_REQUEST, "v")
    assert_rejects(pack({**base, "v": "1"}), ErrorCode.BAD_REQUEST, "v")
    assert_rejects(pack({k: v for k, v in base.items() if k != "v"}), ErrorCode.BAD_REQUEST, "v")
    assert_rejects(pack({**base, "kind": "cancel"}), ErrorCode.UNSUPPORTED_KIND, "kind")
    assert_rejects(pack({**base, "kind": 3}), ErrorCode.BAD_REQUEST, "kind")
    assert_rejects(pack({k: v for k, v in base.items() if k != "kind"}), ErrorCode.BAD_REQUEST, "kind")
    assert_rejects(pack({k: v for k, v in base.items() if k != "id"}), ErrorCode.BAD_REQUEST, "ping.id")
    assert_rejects(pack({**base, "id": -1}), ErrorCode.BAD_REQUEST, "ping.id")
    assert_rejects(pack({**base, "id": 1.0}), ErrorCode.BAD_REQUEST, "ping.id")


def test_accept_restricts_kinds():
    data = encode(doc_examples()["result"])
    with pytest.raises(ProtocolError) as info:
        decode(data, accept=P.REQUEST_KINDS)
    assert info.value.code == ErrorCode.BAD_REQUEST
    assert decode(encode(Ping(id=1, t_client_s=0.0)), accept=P.REQUEST_KINDS) == Ping(id=1, t_client_s=0.0)


def _infer_wire() -> dict:
    return wire_of(doc_examples()["infer"])


def _frame(t_s=0.0, jpeg=JPEG) -> dict:
    return {"t_s": t_s, "jpeg": jpeg}


def _audio(**kw) -> dict:
    return {"start_s": 0.0, "rate_hz": 16000, "pcm": b"\0\0", **kw}


NAN, INF = math.nan, math.inf

# (kind, field, bad value, code, path the error must name)
FIELD_CASES = [
    ("infer", "deadline_ms", -5, "bad_request", "infer.deadline_ms"),
    ("infer", "deadline_ms", 0, "bad_request", "infer.deadline_ms"),
    ("infer", "deadline_ms", P.MAX_DEADLINE_MS + 1, "bad_request", "infer.deadline_ms"),
    ("infer", "deadline_ms", 500.0, "bad_request", "infer.deadline_ms"),
    ("infer", "trigger_label", "", "bad_request", "infer.trigger_label"),
    ("infer", "trigger_label", 7, "bad_request", "infer.trigger_label"),
    ("infer", "trigger_label", "x" * 129, "too_large", "infer.trigger_label"),
    ("infer", "trigger_score", NAN, "bad_request", "infer.trigger_score"),
    ("infer", "trigger_score", 1.5, "bad_request", "infer.trigger_score"),
    ("infer", "trigger_score", "0.5", "bad_request", "infer.trigger_score"),
    ("infer", "student_scores", {"a": NAN}, "bad_request", "infer.student_scores['a']"),
    ("infer", "student_scores", {"a": INF}, "bad_request", "infer.student_scores['a']"),
    ("infer", "student_scores", {"a": -0.1}, "bad_request", "infer.student_scores['a']"),
    ("infer", "student_scores", {"": 0.1}, "bad_request", "infer.student_scores"),
    ("infer", "student_scores", [0.1], "bad_request", "infer.student_scores"),
    ("infer", "student_scores", {f"l{i}": 0.1 for i in range(P.MAX_LABELS + 1)}, "too_large", ""),
    ("infer", "student_confidence", None, "bad_request", "infer.student_confidence"),
    ("infer", "query", "", "bad_request", "infer.query"),
    ("infer", "query", "q" * (P.MAX_QUERY_BYTES + 1), "too_large", "infer.query"),
    ("infer", "query_t_s", None, "bad_request", "infer.query_t_s"),
    ("infer", "query_t_s", -1.0, "bad_request", "infer.query_t_s"),
    ("infer", "model", "", "bad_request", "infer.model"),
    ("infer", "frames", None, "bad_request", "infer.frames"),
    ("infer", "frames", [_frame(), _frame(), _frame(jpeg=b"\x89PNG")], "bad_request",
     "infer.frames[2].jpeg"),
    ("infer", "frames", [_frame(jpeg="ffd8")], "bad_request", "infer.frames[0].jpeg"),
    ("infer", "frames", [_frame(jpeg=JPEG + bytes(P.MAX_JPEG_BYTES))], "too_large",
     "infer.frames[0].jpeg"),
    ("infer", "frames", [_frame(jpeg=NO_SOF)], "bad_request", "infer.frames[0].jpeg"),
    ("infer", "frames", [_frame(jpeg=JPEG[:20])], "bad_request", "infer.frames[0].jpeg"),
    ("infer", "frames", [_frame(jpeg=sof_jpeg(0, 8))], "bad_request", "infer.frames[0].jpeg"),
    ("infer", "frames", [_frame(jpeg=sof_jpeg(4097, 4096))], "too_large", "infer.frames[0].jpeg"),
    ("infer", "frames", [_frame(t_s=-0.5)], "bad_request", "infer.frames[0].t_s"),
    ("infer", "frames", [_frame(t_s=P.MAX_TIME_S * 1.5)], "bad_request", "infer.frames[0].t_s"),
    ("infer", "frames", [_frame(t_s=INF)], "bad_request", "infer.frames[0].t_s"),
    ("infer", "frames", [_frame(t_s=2.0), _frame(t_s=1.0)], "bad_request", "infer.frames[1].t_s"),
    ("infer", "frames", [{"t_s": 0.0}], "bad_request", "infer.frames[0].jpeg"),
    ("infer", "frames", [[0.0, JPEG]], "bad_request", "infer.frames[0]"),
    ("infer", "frames", [_frame()] * (P.MAX_FRAMES + 1), "too_large", "infer.frames"),
    ("infer", "audio", _audio(rate_hz=12345), "bad_request", "infer.audio.rate_hz"),
    ("infer", "audio", _audio(rate_hz=16000.0), "bad_request", "infer.audio.rate_hz"),
    ("infer", "audio", _audio(pcm=b"\0\0\0"), "bad_request", "infer.audio.pcm"),
    ("infer", "audio", _audio(pcm=b""), "bad_request", "infer.audio.pcm"),
    ("infer", "audio", _audio(pcm="\0\0"), "bad_request", "infer.audio.pcm"),
    ("infer", "audio", _audio(rate_hz=8000, pcm=bytes(2 * 8000 * 31)), "too_large", "infer.audio.pcm"),
    ("infer", "audio", _audio(start_s=NAN), "bad_request", "infer.audio.start_s"),
    ("infer", "audio", _audio(start_s=1e300), "bad_request", "infer.audio.start_s"),
    ("infer", "query_t_s", 1e11, "bad_request", "infer.query_t_s"),
    ("infer", "audio", "pcm", "bad_request", "infer.audio"),
    ("result", "timing_ms", {"queue_ms": 1.0}, "bad_request", "result.timing_ms"),
    ("result", "timing_ms", {"total_ms": -1.0}, "bad_request", "result.timing_ms['total_ms']"),
    ("result", "batch_size", 0, "bad_request", "result.batch_size"),
    ("result", "tags", {"a": 2.0}, "bad_request", "result.tags['a']"),
    ("result", "answer", None, "bad_request", "result.answer"),
    ("error", "code", "teapot", "bad_request", "error.code"),
    ("error", "code", 1, "bad_request", "error.code"),
    ("error", "retry_after_ms", -1, "bad_request", "error.retry_after_ms"),
    ("error", "message", "m" * (P.MAX_ERROR_TEXT_BYTES + 1), "too_large", "error.message"),
    ("ping", "t_client_s", "now", "bad_request", "ping.t_client_s"),
    ("pong", "ready", 1, "bad_request", "pong.ready"),
    ("pong", "queue_depth", -1, "bad_request", "pong.queue_depth"),
    ("stats", "latency_p95_ms", None, "bad_request", "stats.latency_p95_ms"),
    ("stats", "latency_p50_ms", 1e9, "bad_request", "stats.latency_p95_ms"),
    ("stats", "errors_by_code", {"teapot": 1}, "bad_request", "stats.errors_by_code"),
    ("stats", "batch_size_counts", [1, -1], "bad_request", "stats.batch_size_counts[1]"),
    ("hello", "client", "", "bad_request", "hello.client"),
    ("capabilities", "input", {"audio_s": 10.0}, "bad_request", "capabilities.input.sample_rate_hz"),
    ("capabilities", "input", {"audio_s": 10.0, "sample_rate_hz": 12345, "frame_hz": 2.0, "frames": 20,
                               "frame_size_px": 32}, "bad_request", "capabilities.input.sample_rate_hz"),
    ("capabilities", "labels", {"audio_event": [""]}, "bad_request", "capabilities.labels"),
    ("capabilities", "answers", [{"kind": "x"}], "bad_request", "capabilities.answers[0].when"),
    ("capabilities", "tags", ["t"] * (P.MAX_LABELS + 1), "too_large", ""),  # the generic array limit first
]


@pytest.mark.parametrize("kind, field, value, code, path", FIELD_CASES,
                         ids=[f"{c[0]}.{c[1]}-{i}" for i, c in enumerate(FIELD_CASES)])
def test_invalid_field_values_name_the_field(kind, field, value, code, path):
    wire = wire_of(doc_examples()[kind])
    wire[field] = value
    err = assert_rejects(pack(wire), ErrorCode(code), path)
    assert err.code == code


def test_request_without_any_modality_is_rejected():
    wire = {**_infer_wire(), "frames": [], "audio": None}
    assert_rejects(pack(wire), ErrorCode.BAD_REQUEST, "infer.frames")


@pytest.mark.parametrize("kind", sorted(doc_examples()))
def test_every_field_with_a_wrong_type_is_rejected_by_name(kind):
    example = doc_examples()[kind]
    for field in wire_of(example):
        if field in ("v", "kind"):
            continue
        for wrong in (True, "s", b"\xff\xd8", [], {}, 1.5, -1, None, 2**64 - 1):
            wire = {**wire_of(example), field: wrong}
            try:
                decode(pack(wire))
            except ProtocolError as err:
                assert err.code in (ErrorCode.BAD_REQUEST, ErrorCode.TOO_LARGE)
                assert err.path.startswith(wire["kind"] + "."), str(err)
                if not isinstance(wrong, (int, float)) or isinstance(wrong, bool):
                    # a wrong type always names its field; a wrong number may break a
                    # cross-field rule named after the other field (p50 <= p95)
                    assert field in err.path, (field, wrong, str(err))
            # else: the value happens to be valid for this field (e.g. nil for an optional one)


def test_missing_required_fields_are_named_and_optional_ones_may_be_omitted():
    wire = _infer_wire()
    for field in ("deadline_ms", "trigger_label", "trigger_score", "student_scores",
                  "student_confidence", "frames"):
        assert_rejects(pack({k: v for k, v in wire.items() if k != field}),
                       ErrorCode.BAD_REQUEST, f"infer.{field}")
    wire.update(query=None, query_t_s=None)
    slim = {k: v for k, v in wire.items() if k not in ("query", "query_t_s", "model", "audio")}
    assert decode(pack(slim)) == decode(pack({**wire, "audio": None}))


def test_floats_accept_ints_and_float32_but_ints_refuse_floats():
    wire = wire_of(Ping(id=1, t_client_s=2.0))
    assert decode(pack({**wire, "t_client_s": 2})) == Ping(id=1, t_client_s=2.0)
    f32 = msgpack.packb({**wire, "t_client_s": 2.0}, use_single_float=True)
    assert decode(f32) == Ping(id=1, t_client_s=2.0)
    assert_rejects(pack({**wire, "id": 1.0}), ErrorCode.BAD_REQUEST, "ping.id")


def test_unknown_keys_are_ignored_at_every_level():
    msg = doc_examples()["infer"]
    wire = wire_of(msg)
    wire["x_priority"] = {"level": [1, 2, 3]}
    wire["frames"][0]["x_exposure_ms"] = 8.5
    wire["audio"]["x_channels"] = 1
    assert decode(pack(wire)) == msg


def test_unknown_keys_still_obey_the_limits():
    wire = wire_of(Ping(id=1, t_client_s=0.0))
    assert_rejects(pack({**wire, "x": "s" * (P.MAX_STR_BYTES + 1)}), ErrorCode.TOO_LARGE)
    assert_rejects(pack({**wire, "x": list(range(P.MAX_ARRAY_LEN + 1))}), ErrorCode.TOO_LARGE)


def test_non_canonical_but_valid_encodings_decode():
    # Keys in any order, wide int and str headers: all fine for a decoder.
    data = bytes.fromhex("84" "a26964" "cf0000000000000007" "a4" "6b696e64" "d90470696e67"
                         "aa745f636c69656e745f73" "cb4029000000000000" "a176" "d10001")
    assert decode(data) == Ping(id=7, t_client_s=12.5)


# -------------------------------------------------------------- peek_id --

def test_peek_id_finds_the_id_of_invalid_messages():
    wire = _infer_wire()
    assert peek_id(pack({**wire, "id": 42, "trigger_score": NAN})) == 42
    assert peek_id(pack({**wire, "id": 42, "v": 9})) == 42
    # id after a large bin value: skipping costs one header read
    assert peek_id(pack({"v": 1, "blob": bytes(100_000), "id": 43})) == 43
    assert peek_id(bytes.fromhex("82a17601d9026964cd0102")) == 0x102  # str8 key "id"
    assert peek_id(bytes.fromhex("82a17601a26964d30000000000000005")) == 5  # int64-encoded id
    assert peek_id(pack({"v": 1, "xid": 5})) is None
    assert peek_id(pack({"v": 1, "id": None})) is None
    assert peek_id(pack({"v": 1, "id": -3})) is None
    assert peek_id(pack({"v": 1, "id": "7"})) is None
    assert peek_id(pack([1, 2])) is None
    assert peek_id(b"") is None
    assert peek_id(b"\x82\xa1x" + b"\x91" * 10_000) is None
    assert peek_id("text") is None


def test_error_reply_for_a_bad_message_carries_id_code_and_path():
    data = pack({**_infer_wire(), "id": 77, "trigger_score": 3.0})
    with pytest.raises(ProtocolError) as info:
        decode(data)
    reply = ErrorReply.for_bad_message(data, info.value)
    assert (reply.id, reply.code) == (77, ErrorCode.BAD_REQUEST)
    assert reply.message.startswith("infer.trigger_score: ")
    assert decode(encode(reply)) == reply


def test_error_reply_text_is_cut_to_the_limit_on_a_character_boundary():
    long = ProtocolError(ErrorCode.INTERNAL, "é" * 2000)
    reply = ErrorReply.from_error(long, 1)
    assert len(reply.message.encode()) <= P.MAX_ERROR_TEXT_BYTES
    assert reply.message == "é" * (P.MAX_ERROR_TEXT_BYTES // 2)


# ------------------------------------------------------- encode and API --

def test_construction_validates_with_relative_paths():
    with pytest.raises(ProtocolError, match=r"^jpeg: not a JPEG \(missing FFD8 header\)$"):
        Frame(t_s=0.0, jpeg=b"GIF89a")
    with pytest.raises(ProtocolError) as info:
        InferRequest(id=1, deadline_ms=-1, trigger_label="x", trigger_score=0.5,
                     student_scores={}, student_confidence=0.5, frames=[Frame(t_s=0, jpeg=JPEG)])
    assert info.value.path == "deadline_ms"


def test_encode_refuses_oversize_and_non_messages():
    big = [Frame(t_s=float(i), jpeg=JPEG + bytes(P.MAX_JPEG_BYTES - len(JPEG))) for i in range(9)]
    msg = InferRequest(id=1, deadline_ms=100, trigger_label="x", trigger_score=0.5,
                       student_scores={}, student_confidence=0.5, frames=big)
    with pytest.raises(ProtocolError) as info:
        encode(msg)
    assert info.value.code == ErrorCode.TOO_LARGE
    with pytest.raises(ProtocolError):
        encode({"v": 1, "kind": "ping"})


def test_label_maps_encode_sorted_so_bytes_do_not_depend_on_dict_order():
    a = Result(id=1, model_id="m", batch_size=1, answer="", tags={"b": 0.5, "a": 0.25},
               timing_ms={"total_ms": 1.0, "model_ms": 0.5})
    b = Result(id=1, model_id="m", batch_size=1, answer="", tags={"a": 0.25, "b": 0.5},
               timing_ms={"model_ms": 0.5, "total_ms": 1.0})
    assert encode(a) == encode(b)
    assert list(wire_of(a)["tags"]) == ["a", "b"]


def test_pcm_helpers_avoid_copies():
    samples = np.array([1, -2, 32767, -32768], dtype=np.int16)
    view = pcm_to_bytes(samples)
    assert np.shares_memory(np.frombuffer(view, dtype="<i2"), samples)
    window = AudioWindow.from_samples(samples, start_s=0.0, rate_hz=16000)
    back = decode(encode(InferRequest(id=1, deadline_ms=100, trigger_label="x", trigger_score=0.5,
                                      student_scores={}, student_confidence=0.5, audio=window,
                                      frames=[]))).audio
    decoded = back.samples()
    np.testing.assert_array_equal(decoded, samples)
    assert not decoded.flags.writeable and decoded.base is not None  # a view of the message bytes
    assert back.duration_s == 4 / 16000
    big_endian = samples.astype(">i2")
    assert bytes(pcm_to_bytes(big_endian)) == samples.tobytes()
    assert bytes(pcm_to_bytes(samples[::2])) == samples[::2].tobytes()
    for wrong in (samples.astype(np.float32), samples.astype(np.int32), samples.reshape(2, 2)):
        with pytest.raises(ProtocolError):
            pcm_to_bytes(wrong)
    with pytest.raises(ProtocolError):
        pcm_from_bytes(b"\0\0\0")


def test_pong_reply_to_echoes_the_ping():
    ping = Ping(id=11, t_client_s=5.25)
    pong = Pong.reply_to(ping, ready=False, queue_depth=3, queue_capacity=64)
    assert (pong.id, pong.t_client_s, pong.model_id) == (11, 5.25, None)


# --------------------------------------------------------- doc honesty --

def test_doc_hex_examples_decode_and_reencode_byte_exactly():
    blocks = doc_hex_blocks()
    examples = doc_examples()
    assert set(blocks) == set(examples), "every example has a hex dump in docs/protocol.md"
    for name, data in blocks.items():
        msg = examples[name]
        assert decode(data) == msg, name
        assert encode(msg) == data, f"{name}: doc bytes differ; expected\n{hexdump(encode(msg))}"


def test_doc_limits_table_matches_the_constants():
    rows = re.findall(r"^\| `([A-Z0-9_]+)` \| `([^`]+)` \|", doc_section("8. Limits"), re.M)
    table = dict(rows)
    names = [n for n in dir(P) if (n.startswith("MAX_") or n in ("AUDIO_RATES_HZ", "ZMQ_MAXMSGSIZE"))]
    assert sorted(table) == sorted(names)
    for name, literal in table.items():
        assert ast.literal_eval(literal) == getattr(P, name), name


def test_doc_error_code_table_matches_the_enum():
    section = doc_section("7. Error codes")
    codes = re.findall(r"^\| `([a-z_]+)` \|", section, re.M)
    assert codes == [c.value for c in ErrorCode]


# ------------------------------------------------------------ transport --

def test_dealer_router_framing_and_maxmsgsize_over_tcp():
    zmq = pytest.importorskip("zmq")
    ctx = zmq.Context()
    router, dealer = ctx.socket(zmq.ROUTER), ctx.socket(zmq.DEALER)
    try:
        for sock, options in ((router, P.SERVER_SOCKET_OPTIONS), (dealer, P.CLIENT_SOCKET_OPTIONS)):
            for name, value in options.items():
                sock.setsockopt(getattr(zmq, name), value)
        port = router.bind_to_random_port("tcp://127.0.0.1")
        dealer.connect(f"tcp://127.0.0.1:{port}")
        ping = Ping(id=21, t_client_s=1.0)
        assert dealer.poll(2000, zmq.POLLOUT)  # IMMEDIATE=1: writable once connected
        dealer.send(encode(ping))                         # client: exactly one frame
        assert router.poll(2000)
        routing_id, payload = router.recv_multipart()     # server: [routing_id, payload]
        assert decode(payload, accept=P.REQUEST_KINDS) == ping
        pong = Pong.reply_to(ping, ready=True, queue_depth=0, queue_capacity=64)
        router.send_multipart([routing_id, encode(pong)])
        assert dealer.poll(2000)
        assert [decode(f) for f in dealer.recv_multipart()] == [pong]  # client: one frame back
        # A frame above MAXMSGSIZE never reaches the server: libzmq drops the connection.
        dealer.send(b"\x80" * (P.ZMQ_MAXMSGSIZE + 1))
        got = []
        while router.poll(300):
            got.append(router.recv_multipart())
        assert all(len(frames[-1]) <= P.ZMQ_MAXMSGSIZE for frames in got)
    finally:
        router.close(0)
        dealer.close(0)
        ctx.term()


def test_doc_conformance_vectors_are_rejected_with_their_code():
    section = doc_section("11. Conformance vectors").split("MUST accept", 1)[0]
    rows = re.findall(r"^\| `([0-9a-f]*)` \| `([a-z_]+)` \|", section, re.M)
    assert len(rows) >= 15
    for data, code in rows:
        assert_rejects(bytes.fromhex(data), ErrorCode(code))


def test_doc_conformance_vectors_that_must_decode():
    section = doc_section("11. Conformance vectors").split("MUST accept", 1)[1]
    rows = re.findall(r"^\| `([0-9a-f]+)` \|", section, re.M)
    assert len(rows) >= 4
    for data in rows:
        assert decode(bytes.fromhex(data)) == doc_examples()["ping"], data
