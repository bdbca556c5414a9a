"""Hostile input never crashes the server, and valid requests mixed into it are all answered.

A raw DEALER (no client library: it must be able to send anything) interleaves
seeded random garbage, truncated and bit-flipped msgpack, huge length headers,
deep nesting, wrong field types, ext types, NaN, unknown versions and kinds,
multi-frame and empty messages with valid pings and infers; a second socket
sends frames beyond ZMQ_MAXMSGSIZE (libzmq drops that connection, nothing is
answered). The bounded loop stops by itself.
"""
from __future__ import annotations

import random
import time

import msgpack
import zmq

from tests.helpers.server_harness import JPEG_STUB, procs, request, start_double, time_limit  # noqa: E402,F401

import dataclasses  # noqa: E402

from shared.protocol import (MAX_MESSAGE_BYTES, ErrorReply, Ping, Pong, Result, Stats, StatsRequest,  # noqa: E402
                             decode, encode)

N_MESSAGES = 600     # every 4th one valid
VALID_IDS_FROM = 1_000_000  # valid requests use ids from here; garbage uses small ids


def _infer_wire(i: int) -> dict:
    return msgpack.unpackb(encode(dataclasses.replace(request(f"f{i}"), id=i, deadline_ms=5000)), raw=False)


def _pack(obj) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def hostile(rng: random.Random, i: int) -> tuple[list[bytes], int | None]:
    """One hostile message (frames) and the id an error reply should carry, if readable."""
    base = _infer_wire(i)
    kind = rng.randrange(14)
    if kind == 0:
        return [rng.randbytes(rng.randrange(0, 300))], None
    if kind == 1:
        data = _pack(base)
        return [data[: rng.randrange(1, len(data))]], None  # truncated msgpack
    if kind == 2:
        data = bytearray(_pack(base))
        for _ in range(rng.randrange(1, 6)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return [bytes(data)], None  # may even decode: the reply then carries whatever id it reads
    if kind == 3:  # a length header claiming far more than the limits (bin32, str32, array32, map32)
        head = rng.choice([b"\xc6\xff\xff\xff\xff", b"\xdb\xff\xff\xff\xff", b"\xdd\xff\xff\xff\xff",
                           b"\xdf\xff\xff\xff\xff"])
        return [b"\x84\xa1v\x01\xa4kind\xa5infer\xa2id" + bytes([i % 100]) + b"\xa1x" + head], i % 100
    if kind == 4:  # deep nesting under an unknown key, after the id
        depth = rng.randrange(9, 2000)
        head = b"\x84\xa1v\x01\xa4kind\xa4ping\xa2id" + bytes([i % 100]) + b"\xa1x"
        return [head + b"\x91" * depth + b"\xc0"], i % 100
    if kind == 5:  # deep nesting at the top: no id to find
        return [b"\x91" * rng.randrange(9, 5000) + b"\xc0"], None
    if kind == 6:  # wrong types, field by field
        field, value = rng.choice([("deadline_ms", 1.5), ("deadline_ms", "soon"), ("frames", {"a": 1}),
                                   ("trigger_score", "high"), ("student_scores", [1, 2]), ("audio", 7),
                                   ("frames", [{"t_s": 0.0, "jpeg": "ffd8"}]), ("query", b"bytes"),
                                   ("student_confidence", None), ("deadline_ms", -5), ("deadline_ms", 10 ** 9)])
        return [_pack({**base, "id": i % 100, field: value})], i % 100
    if kind == 7:
        return [_pack({**base, "id": i % 100, "trigger_score": float("nan")})], i % 100
    if kind == 8:
        return [_pack({"v": 2, "kind": "infer", "id": i % 100})], i % 100
    if kind == 9:
        return [_pack({"v": 1, "kind": rng.choice(["cancel", "result", "pong", "stats"]), "id": i % 100})], i % 100
    if kind == 10:
        return [b"\x83\xa1v\x01\xa4kind\xa4ping\xa2id" + bytes([i % 100]) + b"\xa1x\xd4\x01\x00"], None  # ext type
    if kind == 11:
        return [_pack({"v": 1, "kind": "ping", "id": i % 100}), _pack({"v": 1})], None  # two payload frames
    if kind == 12:
        return [b""], None
    return [_pack({"v": 1, "kind": "infer", "id": i % 100, "frames": [{"t_s": 0.0, "jpeg": JPEG_STUB}] * 65})], i % 100


@time_limit(60)
def test_fuzzed_messages_never_crash_and_valid_ones_are_answered(procs, tmp_path):
    proc, (ep,) = start_double(procs, tmp_path, "serve", "--batch-ms", "5", "--queue", "1000", name="fuzz")
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(ep)
    big = ctx.socket(zmq.DEALER)
    big.linger = 0
    big.connect(ep)
    rng = random.Random(20241126)
    valid: set[int] = set()
    expect_error_id: dict[int, int] = {}  # garbage id -> how many error replies should carry it
    replies: list = []

    def drain(timeout_ms: int = 0) -> None:
        while sock.poll(timeout_ms):
            frames = sock.recv_multipart()
            assert len(frames) == 1
            replies.append(decode(frames[0]))  # the server only ever sends valid messages
            timeout_ms = 0

    try:
        for i in range(N_MESSAGES):
            if i % 4 == 0:
                rid = VALID_IDS_FROM + i
                msg = Ping(id=rid, t_client_s=float(i)) if i % 8 == 0 else dataclasses.replace(
                    request(f"v{i}"), id=rid, deadline_ms=10_000)
                sock.send(encode(msg))
                valid.add(rid)
            else:
                frames, rid = hostile(rng, i)
                sock.send_multipart(frames)
                if rid is not None:
                    expect_error_id[rid] = expect_error_id.get(rid, 0) + 1
            if i % 50 == 0:  # an oversize frame: libzmq cuts that connection, nothing is answered
                big.send(b"\x81\xa1x\xc6" + (MAX_MESSAGE_BYTES + 10).to_bytes(4, "big") + bytes(MAX_MESSAGE_BYTES + 10))
            drain()
        t_end = time.monotonic() + 15
        while time.monotonic() < t_end and not valid <= {r.id for r in replies}:
            drain(100)
        sock.send(encode(StatsRequest(id=7_777_777)))
        drain(2000)
    finally:
        sock.close()
        big.close()
        ctx.term()

    answered = {r.id: r for r in replies if r.id is not None and r.id >= VALID_IDS_FROM}
    missing = valid - set(answered)
    assert not missing, f"{len(missing)} valid requests unanswered"
    assert all(isinstance(answered[i], Pong if (i - VALID_IDS_FROM) % 8 == 0 else Result) for i in valid)
    errors = [r for r in replies if isinstance(r, ErrorReply)]
    got = {}
    for r in errors:
        got[r.id] = got.get(r.id, 0) + 1
    for rid, n in expect_error_id.items():
        assert got.get(rid, 0) >= n, f"id {rid}: expected {n} error replies carrying it, got {got.get(rid, 0)}"
    stats = next(r for r in replies if isinstance(r, Stats))
    for code in ("bad_request", "too_large", "unsupported_version", "unsupported_kind"):
        assert stats.errors_by_code.get(code, 0) > 0, stats.errors_by_code
    assert stats.errors_by_code.get("internal", 0) == 0  # no decoder or server bug surfaced
    assert proc.alive()
