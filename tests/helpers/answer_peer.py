"""A peer that answers every ``infer`` with one fixed, valid ``result`` (tests only).

    with answer_peer("unknown") as endpoint:   # run an edge runtime against `endpoint`
        ...

It speaks just enough of docs/protocol.md for an edge runtime: a ``result`` for
each ``infer`` (its id, the fixed answer, no tags; ``answer=None``: no reply at
all, so every request runs into its deadline) and a ``pong`` for each ``ping``. What a runtime does with a reply it can read is then up to the test.
"""
from __future__ import annotations

import contextlib
import threading

import msgpack
import zmq


@contextlib.contextmanager
def answer_peer(answer: str | None):
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.linger = 0
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    stop = threading.Event()
    served = []

    def serve() -> None:
        while not stop.is_set():
            if not sock.poll(50):
                continue
            rid, payload = sock.recv_multipart()[:2]
            msg = msgpack.unpackb(payload, raw=False)
            if msg.get("kind") == "ping":
                reply = {"v": 1, "kind": "pong", "id": msg["id"], "t_client_s": msg.get("t_client_s", 0.0),
                         "ready": True, "model_id": "peer", "queue_depth": 0, "queue_capacity": 8}
            elif msg.get("kind") == "infer":
                served.append(msg["id"])
                if answer is None:
                    continue  # a silent peer: every request runs into its deadline
                reply = {"v": 1, "kind": "result", "id": msg["id"], "model_id": "peer", "batch_size": 1,
                         "answer": answer, "tags": {}, "timing_ms": {"total_ms": 1.0}}
            else:
                continue
            sock.send_multipart([rid, msgpack.packb(reply, use_bin_type=True)])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{port}", served
    finally:
        stop.set()
        thread.join(5)
        sock.close()
        ctx.term()
