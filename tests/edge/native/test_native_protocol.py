"""The binary's protocol codec against docs/protocol.md (section 10 examples, section 11 vectors)."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.helpers.native import ROOT

from shared.protocol import ErrorReply, Pong, Result, encode

DOC = (ROOT / "docs" / "protocol.md").read_text()


def _example_hex(name: str) -> str:
    block = DOC.split(f"<!-- example: {name} -->", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    return "".join("".join(line.split("|")[0].split(":", 1)[1].split()) for line in block.strip().splitlines())


def _check(binary: Path, payloads: list[str]) -> list[str]:
    out = subprocess.run([str(binary), "protocol-check"], input="\n".join(payloads) + "\n", capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_encoder_matches_the_worked_examples_byte_for_byte(native_bin):
    out = subprocess.run([str(native_bin), "encode-examples"], capture_output=True, text=True, timeout=30).stdout
    got = dict(line.split() for line in out.splitlines())
    assert got["ping"] == _example_hex("ping")
    assert got["infer"] == _example_hex("infer")


def test_decoder_rejects_every_conformance_vector_with_its_code(native_bin):
    section = DOC.split("## 11. Conformance vectors", 1)[1].split("## 12.", 1)[0]
    reject = re.findall(r"^\| `([0-9a-f]*)` \| `(\w+)` \|", section, re.M)
    assert len(reject) >= 16
    results = _check(native_bin, [h for h, _ in reject])
    # A client receiving a well-formed *request* kind (ping) reports bad_request: it is not a reply.
    expected = [f"error {code}" for _, code in reject]
    assert results == expected


def test_decoder_accepts_replies_with_unknown_keys_and_any_int_width(native_bin):
    replies = [
        encode(Result(id=7, model_id="m", batch_size=1, answer="a", tags={"knock": 0.5}, timing_ms={"total_ms": 3.0})),
        encode(ErrorReply(id=8, code="busy", message="queue full", retry_after_ms=250)),
        encode(Pong(id=9, t_client_s=1.5, ready=True, model_id="m", queue_depth=0, queue_capacity=8)),
        _example_hex("result"),
    ]
    hexes = [r.hex() if isinstance(r, bytes) else r for r in replies]
    # unknown key "x_new" appended to the result map (fixmap count + 1)
    extra = bytes.fromhex(hexes[0])
    extra = bytes([extra[0] + 1]) + extra[1:] + bytes.fromhex("a5785f6e657782a16101a16292c3c0")
    assert _check(native_bin, hexes + [extra.hex()]) == ["ok result 7", "ok error 8", "ok pong 9", "ok result 2",
                                                          "ok result 7"]
