"""Broker <-> worker protocol (internal; clients never see it) and the named timeouts.

This is the zguide ``MDP.py`` of Earshot: the constants both sides share, so
the broker and the worker cannot drift apart. Clients speak wire protocol v1
(``docs/protocol.md``) to the broker's frontend; what travels between the
broker's backend ROUTER and the workers' DEALER sockets is defined here.

Frames (a worker's DEALER sends them bare; the broker's ROUTER sees the
worker's routing id in front and puts it back in front when replying)::

    worker -> broker   [HEADER, READY,     info]                 info: msgpack map (WorkerInfo)
    worker -> broker   [HEADER, REPLY,     outcome]              outcome: msgpack map (below)
    worker -> broker   [HEADER, HEARTBEAT]
    worker -> broker   [HEADER, DISCONNECT]                      leaving on purpose
    broker -> worker   [HEADER, REQUEST,   header, payload...]   header: {"batch": int, "budget_ms": [int...]};
                                                                 payload i: the client's own infer bytes
    broker -> worker   [HEADER, HEARTBEAT]
    broker -> worker   [HEADER, DISCONNECT]                      "I do not know you: re-register"

``outcome`` = ``{"batch": int, "model_id": str, "timing_ms": {stage: ms},
"items": [item...]}``, one item per payload in order: ``{"answer": str,
"tags": {label: p}}`` (plus ``sentence`` and ``evidence``, the plain map of
``result.evidence``, when the worker runs a language model; `answer_to_plain`)
or ``{"code": error code, "message": str}``.

The client's infer bytes are forwarded untouched (the broker already
validated them; the worker decodes them again with ``shared.protocol.decode``,
so a worker never trusts its input either). Everything else is msgpack,
unpacked with explicit limits: no pickle on this link either.

Reliability is the Paranoid Pirate pattern: both sides send HEARTBEAT every
``HEARTBEAT_INTERVAL_MS`` when they have nothing else to say, and declare the
peer dead after ``HEARTBEAT_LIVENESS`` silent intervals. A worker that loses
its broker reconnects with a backoff from ``RECONNECT_INITIAL_MS`` doubling to
``RECONNECT_MAX_MS`` and sends READY again; a broker that gets anything but
READY from a worker it does not know (e.g. after a broker restart) answers
DISCONNECT, which makes the worker re-register at once.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import msgpack

from shared.protocol import EvidenceEvent, ResultEvidence

__all__ = [
    "HEADER", "READY", "REQUEST", "REPLY", "HEARTBEAT", "DISCONNECT", "COMMAND_NAMES",
    "HEARTBEAT_INTERVAL_MS", "HEARTBEAT_LIVENESS", "RECONNECT_INITIAL_MS", "RECONNECT_MAX_MS",
    "MAX_REQUEUES", "pack", "unpack", "answer_to_plain", "evidence_from_plain",
]

HEADER = b"EWP1"  # Earshot Worker Protocol, version 1

READY = b"\x01"
REQUEST = b"\x02"
REPLY = b"\x03"
HEARTBEAT = b"\x04"
DISCONNECT = b"\x05"
COMMAND_NAMES = {READY: "READY", REQUEST: "REQUEST", REPLY: "REPLY", HEARTBEAT: "HEARTBEAT",
                 DISCONNECT: "DISCONNECT"}

#: Both sides send a heartbeat this often (ms) when otherwise silent (zguide ppworker: 1000).
HEARTBEAT_INTERVAL_MS = 1000
#: Silent heartbeat intervals before the peer is declared dead (zguide: 3), so
#: a dead worker or broker is noticed within 3 s.
HEARTBEAT_LIVENESS = 3
#: A worker that lost its broker waits this long before reconnecting (ms), then
#: doubles the wait on every further failure ...
RECONNECT_INITIAL_MS = 1000
#: ... up to this (ms): a broker that is down for minutes costs each worker one
#: connection attempt every 32 s, not a storm.
RECONNECT_MAX_MS = 32000
#: A request whose worker died mid-batch goes back to the queue this many
#: times at most (if its deadline allows); then it is answered ``internal``.
MAX_REQUEUES = 1

# Bounds for the internal msgpack maps: a batch header holds at most a batch's
# budgets, an outcome at most a batch's answers (text + a tag map each).
_LIMITS = dict(max_str_len=65536, max_bin_len=0, max_array_len=4096, max_map_len=4096, max_ext_len=0)


def pack(obj: Any) -> bytes:
    """msgpack bytes of a plain map/list/str/int/float structure."""
    return msgpack.packb(obj, use_bin_type=True)


def unpack(data: bytes | memoryview) -> Any:
    """Bounded msgpack decode; raises ValueError for anything malformed or too big."""
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True, **_LIMITS)
    except Exception as exc:  # msgpack raises a zoo of types; one is enough for the caller
        raise ValueError(f"malformed internal message ({type(exc).__name__}: {str(exc):.80})") from None


def answer_to_plain(answer: Any) -> dict[str, Any]:
    """A backend ``Answer`` as an outcome item (sentence / evidence only when present)."""
    item: dict[str, Any] = {"answer": answer.answer, "tags": answer.tags}
    if getattr(answer, "sentence", None) is not None:
        item["sentence"] = answer.sentence
    if getattr(answer, "evidence", None) is not None:
        item["evidence"] = {**dataclasses.asdict(answer.evidence)}
    return item


def evidence_from_plain(value: Any) -> ResultEvidence | None:
    """The item's ``evidence`` map back as a checked `ResultEvidence` (None stays None).

    Raises:
        ProtocolError / TypeError / KeyError: the map is not a valid evidence (the broker
            answers that request ``internal``).
    """
    if value is None:
        return None
    events = tuple(EvidenceEvent(**e) for e in value["events"])
    return ResultEvidence(**{**value, "events": events})
