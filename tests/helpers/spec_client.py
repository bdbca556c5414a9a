"""A wire protocol v1 client written from docs/protocol.md alone (tests only).

It imports nothing of the project, only pyzmq and msgpack, the way a client in
another language uses its own libraries, and it takes every number it needs
from the document itself: the limits of section 8, the socket options of
section 2, the worked examples of section 10 (hex dumps) and the vectors of
section 11. ``tests/cloud/test_conformance.py`` runs it against a live
``earshot serve``; if the spec and the server drift apart, that test fails.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import msgpack
import zmq

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


# --- reading the document -------------------------------------------------------------


def doc_text() -> str:
    return DOC.read_text()


def section(text: str, title: str) -> str:
    """The text under ``## <title>`` up to the next ``## `` heading."""
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def limits(text: str) -> dict[str, object]:
    """Section 8: constant name -> value."""
    rows = re.findall(r"^\| `([A-Z0-9_]+)` \| `([^`]+)` \|", section(text, "8. Limits"), re.M)
    return {name: ast.literal_eval(value) for name, value in rows}


def client_socket_options(text: str) -> dict[str, int]:
    """Section 2's table, client column: libzmq option name -> integer value."""
    out = {}
    for name, client in re.findall(r"^\| `([A-Z_]+)` \| ([^|]+) \|", section(text, "2. Transport and framing"), re.M):
        number = re.match(r"\s*(\d+)", client)
        if number:
            out[name] = int(number.group(1))
    return out


def hex_examples(text: str) -> dict[str, bytes]:
    """Section 10: example name -> bytes, from the hex dumps."""
    blocks = re.findall(r"<!-- example: (\w+) -->\s*```text\n(.*?)```", text, re.S)
    return {name: bytes.fromhex("".join(line.split("|")[0].split(":", 1)[1] for line in body.strip().splitlines()))
            for name, body in blocks}


def decoder_vectors(text: str) -> tuple[list[tuple[bytes, str]], list[bytes]]:
    """Section 11.1 (bytes, code) to reject and 11.2 bytes to accept."""
    vectors = section(text, "11. Conformance vectors")
    reject_part, rest = vectors.split("### 11.2", 1)
    accept_part = rest.split("### 11.3", 1)[0]
    reject = [(bytes.fromhex(h), code) for h, code in re.findall(r"^\| `([0-9a-f]*)` \| `(\w+)` \|", reject_part, re.M)]
    accept = [bytes.fromhex(h) for h in re.findall(r"^\| `([0-9a-f]+)` \|", accept_part, re.M)]
    return reject, accept


def live_cases(text: str) -> dict[str, str]:
    """Section 11.3: case name -> the expected reply (a kind or an error code)."""
    part = section(text, "11. Conformance vectors").split("### 11.3", 1)[1]
    return dict(re.findall(r"^\| `([a-z0-9_]+)` \| .*? \| `([a-z_]+)`", part, re.M))


# --- msgpack, section 3 ----------------------------------------------------------------------


def unpack(data: bytes, lim: dict[str, object]) -> list[tuple[str, object]]:
    """A reply as a list of (key, value) pairs in wire order (nested maps too), bounded by section 8."""
    if len(data) > lim["MAX_MESSAGE_BYTES"]:
        raise ValueError("reply larger than MAX_MESSAGE_BYTES")
    return msgpack.unpackb(data, raw=False, strict_map_key=True, object_pairs_hook=list,
                           max_str_len=lim["MAX_STR_BYTES"], max_bin_len=lim["MAX_BIN_BYTES"],
                           max_array_len=lim["MAX_ARRAY_LEN"], max_map_len=lim["MAX_MAP_LEN"], max_ext_len=0)


def as_dict(value):
    """Pairs lists (maps) -> dicts, recursively through arrays; an empty map stays ``[]``."""
    if isinstance(value, list):
        if value and all(isinstance(x, tuple) and len(x) == 2 for x in value):
            return {k: as_dict(v) for k, v in value}
        return [as_dict(x) for x in value]
    return value


def field(pairs: list, name: str):
    """The raw value (pairs kept) of key ``name`` in a map's pairs."""
    return next(v for k, v in pairs if k == name)


def pack(obj) -> bytes:
    """Canonical enough: float64 for floats, shortest ints, bin for bytes (section 3)."""
    return msgpack.packb(obj, use_bin_type=True, use_single_float=False)


# --- the socket, section 2 -------------------------------------------------------------------


class SpecClient:
    """One DEALER with the document's client options; ``ask`` sends frames and waits for one reply."""

    def __init__(self, endpoint: str, text: str | None = None) -> None:
        self.text = text or doc_text()
        self.limits = limits(self.text)
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        for name, value in client_socket_options(self.text).items():
            self.sock.setsockopt(getattr(zmq, name), value)
        self.sock.connect(endpoint)

    def send(self, *frames: bytes, timeout_ms: int = 10_000) -> None:
        """Non-blocking send (12.1); with IMMEDIATE the socket is writable once connected."""
        if not self.sock.poll(timeout_ms, zmq.POLLOUT):
            raise TimeoutError("not connected")
        self.sock.send_multipart(list(frames), flags=zmq.NOBLOCK)

    def ask(self, *frames: bytes, timeout_ms: int = 10_000) -> tuple[bytes, list]:
        """Send one message (one or more frames, for the framing tests) and return (raw reply, pairs)."""
        self.send(*frames)
        if not self.sock.poll(timeout_ms):
            raise TimeoutError("no reply")
        reply = self.sock.recv_multipart()
        if len(reply) != 1:
            raise ValueError(f"a reply of {len(reply)} frames (section 2: exactly one)")
        return reply[0], unpack(reply[0], self.limits)

    def close(self) -> None:
        self.sock.close(linger=0)
        self.ctx.term()
