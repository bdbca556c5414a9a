"""docs/protocol.md against a live `earshot serve`: worked examples and every conformance vector.

The client is `tests/helpers/spec_client.py`: pyzmq and msgpack only, every number taken
from the document. The server is the product (`earshot serve` with a tiny
freshly initialised teacher, real JPEG decoding, log-mel and decoding), so
the spec cannot drift from the server again: section 10's examples, the
decoder vectors of 11.1 and 11.2 and the server cases of 11.3 all run here.
"""
from __future__ import annotations

import copy
import math
import time
from pathlib import Path

import pytest

import tests.helpers.spec_client as spec
from tests.helpers.server_harness import EARSHOT, Proc, wait_for_lines
from tests.helpers.teacher_world import make_tiny_teacher

#: The tiny teacher's vocabulary (tests/helpers/teacher_world.py).
TEACHER_TEXTS = ["kitchen; heard: timer_beep; did: open_oven", "what was that?"]

pytestmark = pytest.mark.slow  # a live earshot serve with a real (tiny) teacher

TEXT = spec.doc_text()
EXAMPLES = spec.hex_examples(TEXT)
LIMITS = spec.limits(TEXT)
TIMING_STAGES = {"queue_ms", "decode_ms", "model_ms", "worker_ms", "total_ms"}  # section 6.2


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A live `earshot serve` and a spec client connected to it, ready."""
    tmp = tmp_path_factory.mktemp("conformance")
    checkpoint = make_tiny_teacher(tmp / "teacher", TEACHER_TEXTS, max_answer_tokens=6, frame_size_px=48)
    ep_file = tmp / "ep.txt"
    proc = Proc([str(EARSHOT), "serve", f"checkpoint={checkpoint}", "bind=tcp://127.0.0.1:*",
                 f"endpoint_file={ep_file}", "max_batch_size=4", f"hydra.run.dir={tmp / 'hydra'}"],
                tmp / "serve.log", cwd=tmp)
    client = None
    try:
        (endpoint,) = wait_for_lines(ep_file, proc, timeout=60)
        client = spec.SpecClient(endpoint, TEXT)
        for _ in range(600):  # ping (10.1) until ready: the model loads and warms up
            _, pong = client.ask(EXAMPLES["ping"])
            if spec.as_dict(pong)["ready"]:
                break
            assert proc.alive(), proc.text()[-3000:]
            time.sleep(0.1)
        else:
            raise AssertionError("server never ready:\n" + proc.text()[-3000:])
        yield client, proc
    finally:
        if client is not None:
            client.close()
        proc.close()


def keys(pairs) -> list[str]:
    return [k for k, _ in pairs]


def example_keys(name: str) -> list[str]:
    return keys(spec.unpack(EXAMPLES[name], LIMITS))


# --- section 10 ----------------------------------------------------------------------------


def test_worked_examples_are_answered_as_documented(server):
    client, proc = server
    _, pong = client.ask(EXAMPLES["ping"])
    assert keys(pong) == example_keys("pong")
    p = spec.as_dict(pong)
    assert (p["v"], p["kind"], p["id"], p["t_client_s"], p["ready"]) == (1, "pong", 1, 12.5, True)

    _, caps = client.ask(EXAMPLES["hello"])
    assert keys(caps) == example_keys("capabilities")
    c = spec.as_dict(caps)
    assert (c["kind"], c["id"], c["ready"], c["versions"]) == ("capabilities", 5, True, [1])
    assert set(c["kinds"]) == {"hello", "infer", "ping", "stats_request"}
    assert keys(spec.field(caps, "input")) == ["audio_s", "sample_rate_hz", "frame_hz", "frames", "frame_size_px"]
    # the tiny teacher's window (tests/cloud/server_harness.py): 2 s of audio, 8 slots at 2 Hz, 48 px
    assert c["input"] == {"audio_s": 2.0, "sample_rate_hz": 16000, "frame_hz": 2.0, "frames": 8, "frame_size_px": 48}
    assert {"audio_event", "visual_action", "environment", "object_state"} <= set(c["labels"])
    assert "timer_beep" in c["labels"]["audio_event"] and c["tags"]
    assert {a["kind"] for a in c["answers"]} == {"summary", "dense", "yes_no", "label", "wearer"}

    _, result = client.ask(EXAMPLES["infer"])
    assert keys(result) == example_keys("result")
    r = spec.as_dict(result)
    assert (r["kind"], r["id"], r["model_id"]) == ("result", 2, c["model_id"])
    assert 1 <= r["batch_size"] <= 4
    assert TIMING_STAGES <= set(r["timing_ms"]) and r["timing_ms"]["total_ms"] >= r["timing_ms"]["worker_ms"]
    assert list(r["tags"]) == sorted(c["tags"]) and all(0.0 <= v <= 1.0 for v in r["tags"].values())
    assert isinstance(r["answer"], str)

    _, stats = client.ask(EXAMPLES["stats_request"])
    assert keys(stats) == example_keys("stats")
    assert spec.as_dict(stats)["id"] == 4 and spec.as_dict(stats)["results_total"] >= 1

    raw, _ = client.ask(b"\x01")
    assert raw == EXAMPLES["error_nil_id"]  # byte for byte: 10.5's second example


# --- section 11.1 / 11.2 -------------------------------------------------------------------


def test_every_decoder_vector_gets_its_code_from_the_server(server):
    client, _ = server
    reject, accept = spec.decoder_vectors(TEXT)
    assert len(reject) >= 16 and len(accept) >= 4
    for data, code in reject:
        _, reply = client.ask(data)
        e = spec.as_dict(reply)
        assert (e["kind"], e["code"]) == ("error", code), (data.hex(), e)
        assert len(e["message"].encode()) <= LIMITS["MAX_ERROR_TEXT_BYTES"]
        assert "Error" not in e["message"], e  # no host-language exception text (6.3: for humans)
    for data in accept:
        _, reply = client.ask(data)
        p = spec.as_dict(reply)
        assert (p["kind"], p["id"], p["t_client_s"]) == ("pong", 1, 12.5), (data.hex(), p)


# --- section 11.3 --------------------------------------------------------------------------


def _infer() -> dict:
    return spec.as_dict(spec.unpack(EXAMPLES["infer"], LIMITS))


def _with(**changes) -> bytes:
    wire = _infer()
    for path, value in changes.items():
        target, *rest = path.split("__")
        if rest:
            obj = wire[target]
            for part in rest[:-1]:
                obj = obj[int(part)] if isinstance(obj, list) else obj[part]
            last = rest[-1]
            obj[int(last) if isinstance(obj, list) else last] = value
        else:
            wire[target] = value
    return spec.pack(wire)


def _shifted(dt: float) -> bytes:
    wire = _infer()
    wire["audio"]["start_s"] += dt
    wire["query_t_s"] += dt
    for f in wire["frames"]:
        f["t_s"] += dt
    return spec.pack(wire)


def _example(name: str, **changes) -> bytes:
    wire = spec.as_dict(spec.unpack(EXAMPLES[name], LIMITS))
    wire.update(changes)
    return spec.pack(wire)


JPEG = _infer()["frames"][0]["jpeg"]
HUGE_JPEG = bytes.fromhex("ffd8ffc0000b082000200001011100ffd9")

#: case name (section 11.3) -> (frames to send, expected id, a field path the error message names)
CASES = {
    "example_ping": ([EXAMPLES["ping"]], 1, None),
    "example_infer": ([EXAMPLES["infer"]], 2, None),
    "example_stats_request": ([EXAMPLES["stats_request"]], 4, None),
    "example_hello": ([EXAMPLES["hello"]], 5, None),
    "example_not_a_map": ([b"\x01"], None, None),
    "infer_audio_only": ([_with(frames=[])], 2, None),
    "infer_frames_only": ([_with(audio=None)], 2, None),
    "infer_rate_44100": ([_with(audio__rate_hz=44100)], 2, None),
    "infer_unknown_labels": ([_with(trigger_label="policy:periodic", student_scores={"not_a_label": 0.5})], 2, None),
    "infer_times_near_limit": ([_shifted(9_999_999_900.0)], 2, None),
    "infer_deadline_60001": ([_with(deadline_ms=60001)], 2, "infer.deadline_ms"),
    "infer_start_1e300": ([_with(audio__start_s=1e300)], 2, "infer.audio.start_s"),
    "infer_query_nan": ([_with(query_t_s=math.nan)], 2, "infer.query_t_s"),
    "infer_jpeg_no_sof": ([_with(frames__0__jpeg=bytes.fromhex("ffd8ffe000104a46494600ffd9"))], 2,
                          "infer.frames[0].jpeg"),
    "infer_jpeg_huge": ([_with(frames__0__jpeg=HUGE_JPEG)], 2, "infer.frames[0].jpeg"),
    "infer_jpeg_truncated": ([_with(frames__1__jpeg=JPEG[:100])], 2, "infer.frames[1].jpeg"),
    "infer_65_frames": ([_with(frames=[copy.deepcopy(_infer()["frames"][0]) for _ in range(65)])], 2,
                        "infer.frames"),
    "infer_no_modality": ([_with(frames=[], audio=None)], 2, "infer.frames"),
    "infer_empty_label": ([_with(trigger_label="")], 2, "infer.trigger_label"),
    "infer_odd_pcm": ([_with(audio__pcm=b"\x00\x00\x00")], 2, "infer.audio.pcm"),
    "infer_audio_31s": ([_with(audio__pcm=bytes(2 * 16000 * 31))], 2, "infer.audio.pcm"),
    "result_to_server": ([EXAMPLES["result"]], 2, "kind"),
    "ping_v2": ([_example("ping", v=2)], 1, "v"),
    "ping_two_frames": ([EXAMPLES["ping"], EXAMPLES["stats_request"]], None, None),
    "ping_id_float": ([_example("ping", id=1.0)], None, "ping.id"),
}


def test_the_case_table_and_this_test_list_the_same_cases():
    assert set(spec.live_cases(TEXT)) == set(CASES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_live_server_answers_each_case_as_documented(server, case):
    client, proc = server
    expected = spec.live_cases(TEXT)[case]
    frames, want_id, names = CASES[case]
    _, reply = client.ask(*frames)
    r = spec.as_dict(reply)
    if expected in ("result", "pong", "stats", "capabilities"):
        assert r["kind"] == expected, (case, r, r.get("message"))
    else:
        assert (r["kind"], r["code"]) == ("error", expected), (case, r)
        if names:
            assert names in r["message"], (case, r["message"])
    if want_id is not None:
        assert r["id"] == want_id, (case, r)
    elif case == "ping_two_frames":
        assert r["id"] is None
    assert proc.alive()


def test_the_spec_client_imports_nothing_of_the_project():
    import ast

    tree = ast.parse(Path(spec.__file__).read_text())
    modules = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert modules <= {"__future__", "ast", "re", "pathlib", "msgpack", "zmq"}, modules
