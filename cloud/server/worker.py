"""`Worker`: runs a `Backend` for a broker (Paranoid Pirate worker, zguide ``ppworker.py``).

::

    broker backend ROUTER  <--tcp or inproc-->  DEALER  Worker socket loop  --queue-->  model thread
                                                            ^                                 |
                                                            +------ inproc PAIR (replies) ----+

The socket loop owns the DEALER: it sends READY (after the model is loaded and
warmed up), heartbeats every ``HEARTBEAT_INTERVAL_MS`` and forwards batches to
the model thread, so heartbeats keep flowing while a long batch runs. If the
broker is silent for ``HEARTBEAT_LIVENESS`` intervals, the worker closes its
socket (linger 0), waits a backoff (1 s doubling to 32 s), reconnects and
sends READY again; a DISCONNECT from the broker (it does not know us, e.g.
after a broker restart) makes it do so at once. A reply computed for an
earlier connection is dropped: that broker has already answered or re-queued
those requests.

Stopping (``stop()``, or SIGTERM in ``earshot worker``): the batch in progress
is finished and its reply sent, then DISCONNECT tells the broker to re-queue
anything else it gave us.
"""
from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable

import zmq

from cloud.server import worker_protocol as wp
from cloud.server.backend import Answer, Backend
from shared.protocol import ErrorCode, InferRequest, ProtocolError, decode

__all__ = ["Worker", "WorkerCurve"]

log = logging.getLogger("earshot.server.worker")

#: How long (s) a stopping worker waits for its batch in progress before leaving anyway.
STOP_GRACE_S = 30.0


@dataclass(frozen=True)
class WorkerCurve:
    """CurveZMQ client keys of a worker: the broker's public key and the worker's own pair (z85)."""

    server_public: bytes
    public: bytes
    secret: bytes


@dataclass
class _Job:
    generation: int       # connection the batch came on
    batch: int
    requests: list        # InferRequest, or ProtocolError for a payload that failed to decode
    deadlines: list[float]  # monotonic, per request


class Worker:
    """Connects to ``endpoint`` (the broker's worker endpoint) and serves batches.

    ``backend_factory`` is called once in ``run()`` (so a slow model load
    happens in the worker's thread); its backend is warmed up before READY.
    """

    def __init__(self, endpoint: str, backend_factory: Callable[[], Backend], *, ctx: zmq.Context | None = None,
                 name: str | None = None, curve: WorkerCurve | None = None,
                 heartbeat_interval_ms: int = wp.HEARTBEAT_INTERVAL_MS, liveness: int = wp.HEARTBEAT_LIVENESS,
                 reconnect_initial_ms: int = wp.RECONNECT_INITIAL_MS,
                 reconnect_max_ms: int = wp.RECONNECT_MAX_MS) -> None:
        self.endpoint = endpoint
        self.backend_factory = backend_factory
        self.ctx = ctx or zmq.Context.instance()
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.curve = curve
        self.interval_s = heartbeat_interval_ms / 1000
        self.liveness = liveness
        self.reconnect_initial_s = reconnect_initial_ms / 1000
        self.reconnect_max_s = reconnect_max_ms / 1000
        self.ready = threading.Event()     # set once registered with a broker at least once
        self.registrations = 0             # READY messages sent (1 + re-registrations)
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._busy = threading.Event()
        self._generation = 0
        self._sock: zmq.Socket | None = None
        self.backend: Backend | None = None

    def stop(self) -> None:
        """Ask ``run()`` to finish the batch in progress and return (any thread)."""
        self._stop.set()

    # --- connection ------------------------------------------------------------

    def _connect(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
        self._generation += 1
        sock = self.ctx.socket(zmq.DEALER)
        sock.linger = 0
        sock.rcvhwm = sock.sndhwm = 100
        if self.curve is not None:
            sock.curve_serverkey = self.curve.server_public
            sock.curve_publickey = self.curve.public
            sock.curve_secretkey = self.curve.secret
        sock.connect(self.endpoint)
        info = {"model_id": self.backend.model_id, "max_batch_size": self.backend.max_batch_size,
                "name": self.name, "pid": os.getpid()}
        if callable(getattr(self.backend, "capabilities", None)):
            info["capabilities"] = self.backend.capabilities()
        sock.send_multipart([wp.HEADER, wp.READY, wp.pack(info)])
        self._sock = sock
        self.registrations += 1
        self.ready.set()
        log.info("worker %s: READY sent to %s (model %s, max batch %d)", self.name, self.endpoint,
                 self.backend.model_id, self.backend.max_batch_size)

    # --- the socket loop -----------------------------------------------------------

    def run(self) -> None:
        """Load and warm up the model, then serve until ``stop()``."""
        try:
            self.backend = self.backend_factory()
            self.backend.warmup()
            self._serve()
        except BaseException as exc:
            self.error = exc
            raise
        finally:
            self._jobs.put(None)

    def _serve(self) -> None:
        pipe_in = self.ctx.socket(zmq.PAIR)
        pipe_addr = f"inproc://earshot-worker-{id(self)}"
        pipe_in.bind(pipe_addr)
        model = threading.Thread(target=self._model_loop, args=(pipe_addr,), name="earshot-model", daemon=True)
        model.start()
        self._connect()
        broker_expiry = time.monotonic() + self.interval_s * self.liveness
        next_beat = time.monotonic() + self.interval_s
        backoff = self.reconnect_initial_s
        stop_by = None
        try:
            while True:
                now = time.monotonic()
                if self._stop.is_set():
                    stop_by = stop_by or now + STOP_GRACE_S
                    if (not self._busy.is_set() and self._jobs.empty()) or now > stop_by:
                        break
                poller = zmq.Poller()
                poller.register(self._sock, zmq.POLLIN)
                poller.register(pipe_in, zmq.POLLIN)
                timeout_ms = max(0.0, min(next_beat, broker_expiry) - now) * 1000
                events = dict(poller.poll(min(timeout_ms, 100)))
                now = time.monotonic()
                if pipe_in in events:
                    generation, reply = pipe_in.recv_multipart()
                    if int(generation) == self._generation:
                        self._sock.send_multipart([wp.HEADER, wp.REPLY, reply])
                    else:
                        log.info("worker %s: dropped a reply computed for an earlier broker connection", self.name)
                if self._sock in events:
                    frames = self._sock.recv_multipart(copy=False)
                    broker_expiry = now + self.interval_s * self.liveness
                    backoff = self.reconnect_initial_s
                    if self._on_broker_message(frames):  # DISCONNECT: re-register now
                        self._connect()
                        broker_expiry = now + self.interval_s * self.liveness
                elif now >= broker_expiry:
                    log.warning("worker %s: broker silent for %d heartbeats; reconnecting in %.0f s",
                                self.name, self.liveness, backoff)
                    if self._stop.wait(backoff):
                        break
                    backoff = min(2 * backoff, self.reconnect_max_s)
                    self._connect()
                    broker_expiry = time.monotonic() + self.interval_s * self.liveness
                if now >= next_beat:
                    self._sock.send_multipart([wp.HEADER, wp.HEARTBEAT])
                    next_beat = now + self.interval_s
            self._sock.send_multipart([wp.HEADER, wp.DISCONNECT])
            log.info("worker %s: stopped, DISCONNECT sent", self.name)
        finally:
            self._jobs.put(None)
            model.join(timeout=5)
            if self._sock is not None:
                self._sock.close(linger=200)  # let DISCONNECT leave
            pipe_in.close(linger=0)

    def _on_broker_message(self, frames: list) -> bool:
        """Handle one broker message; True when the broker told us to re-register."""
        if len(frames) < 2 or frames[0].bytes != wp.HEADER:
            log.warning("worker %s: dropped a malformed broker message (%d frames)", self.name, len(frames))
            return False
        command = frames[1].bytes
        if command == wp.REQUEST and len(frames) >= 4 and not self._stop.is_set():
            self._enqueue(frames[2], frames[3:])
        elif command == wp.DISCONNECT:
            log.info("worker %s: broker does not know us (restarted?); re-registering", self.name)
            return True
        elif command not in (wp.HEARTBEAT, wp.REQUEST):
            log.warning("worker %s: unexpected command %r from broker", self.name, command)
        return False

    def _enqueue(self, header_frame, payloads: list) -> None:
        now = time.monotonic()
        try:
            header = wp.unpack(header_frame.buffer)
            batch, budgets = int(header["batch"]), list(header["budget_ms"])
            if len(budgets) != len(payloads):
                raise ValueError("budget count differs from payload count")
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("worker %s: dropped a malformed REQUEST (%s)", self.name, exc)
            return
        requests = []
        for frame in payloads:
            try:
                requests.append(decode(frame.buffer, accept=("infer",)))
            except ProtocolError as exc:  # the broker validated it; decode again all the same
                requests.append(exc)
        deadlines = [now + float(b) / 1000 for b in budgets]
        self._jobs.put(_Job(self._generation, batch, requests, deadlines))

    # --- the model thread ------------------------------------------------------------

    def _model_loop(self, pipe_addr: str) -> None:
        pipe = self.ctx.socket(zmq.PAIR)
        pipe.connect(pipe_addr)
        try:
            while True:
                job = self._jobs.get()
                if job is None:
                    return
                self._busy.set()
                try:
                    reply = self._compute(job)
                finally:
                    self._busy.clear()
                pipe.send_multipart([str(job.generation).encode(), reply])
        finally:
            pipe.close(linger=0)

    def _compute(self, job: _Job) -> bytes:
        """Run one batch; the REPLY outcome as msgpack bytes."""
        now = time.monotonic()
        items: list[dict | None] = [None] * len(job.requests)
        todo: list[tuple[int, InferRequest]] = []
        for i, (req, deadline) in enumerate(zip(job.requests, job.deadlines)):
            if isinstance(req, ProtocolError):
                items[i] = {"code": req.code.value, "message": str(req)}
            elif now >= deadline:  # waited behind an earlier batch here: not worth computing
                items[i] = {"code": ErrorCode.DEADLINE_EXCEEDED.value,
                            "message": "deadline passed before the model ran"}
            else:
                todo.append((i, req))
        timing: dict[str, float] = {}
        if todo:
            try:
                out = self.backend.infer([req for _, req in todo])
                if len(out.items) != len(todo):
                    raise RuntimeError(f"backend returned {len(out.items)} answers for {len(todo)} requests")
                timing = dict(out.timing_ms)
                for (i, _), item in zip(todo, out.items):
                    if isinstance(item, Answer):
                        items[i] = wp.answer_to_plain(item)
                    else:
                        items[i] = {"code": ErrorCode(item.code).value, "message": str(item)}
            except Exception as exc:  # a model bug answers this batch 'internal'; the worker lives on
                log.exception("worker %s: batch %d failed", self.name, job.batch)
                for i, _ in todo:
                    items[i] = {"code": ErrorCode.INTERNAL.value, "message": f"model failure ({type(exc).__name__})"}
        return wp.pack({"batch": job.batch, "model_id": self.backend.model_id, "timing_ms": timing, "items": items})
