"""`WorkerPool`: the broker's backend ROUTER and what it knows about workers.

Load balancing is the zguide's LRU pattern with batches: a worker announces
itself with READY, the pool keeps idle workers in the order they became idle,
and the server's dispatcher hands the longest-idle worker one batch at a time
(a worker is busy until its REPLY). Paranoid Pirate heartbeats in both
directions (``worker_protocol``) find dead workers; the batch of a dead worker
comes back to the server as `Lost` so its requests can be re-queued or failed.

The pool is driven by the server's poll loop (`cloud.server.server.Server`):
``handle(frames)`` for each backend message, ``tick(now)`` for heartbeats and
expiry. It never touches client sockets.
"""
from __future__ import annotations

import itertools
import logging
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import zmq

from cloud.server import worker_protocol as wp

#: Seconds after a backend disconnect at which every worker is probed (see ``on_disconnect``).
DISCONNECT_PROBES_S = (0.0, 0.02, 0.2)

__all__ = ["WorkerState", "Batch", "Completed", "Lost", "WorkerPool"]

log = logging.getLogger("earshot.server.broker")


@dataclass(eq=False)
class WorkerState:
    identity: bytes
    name: str
    model_id: str
    max_batch_size: int
    expiry: float              # monotonic time after which the worker counts as dead
    batch: "Batch | None" = None
    capabilities: dict | None = None  # the model half of 'capabilities' (cloud/server/capabilities.py)


@dataclass(eq=False)
class Batch:
    """Requests sent to one worker as one model batch (``items`` are the server's Pending)."""

    id: int
    worker: bytes
    items: list
    t_dispatch: float


@dataclass
class Completed:
    batch: Batch
    outcome: dict[str, Any]  # the worker's REPLY map (worker_protocol)
    worker_name: str


@dataclass
class Lost:
    batch: Batch
    reason: str


@dataclass
class _Counters:
    registrations: int = 0
    expired: int = 0
    disconnects: int = 0
    bad_messages: int = 0
    unknown_replies: int = 0
    by_worker: dict[str, int] = field(default_factory=dict)  # batches completed per worker name


class WorkerPool:
    """Workers on ``sock`` (a ROUTER the caller has bound)."""

    def __init__(self, sock: zmq.Socket, heartbeat_interval_ms: int = wp.HEARTBEAT_INTERVAL_MS,
                 liveness: int = wp.HEARTBEAT_LIVENESS) -> None:
        self.sock = sock
        self.interval_s = heartbeat_interval_ms / 1000
        self.liveness = liveness
        self.workers: dict[bytes, WorkerState] = {}
        self.idle: deque[bytes] = deque()
        # Batch ids start at a random point so a restarted broker never mistakes a
        # reply meant for its predecessor for one of its own batches.
        self._batch_ids = itertools.count(random.getrandbits(48))
        self.batches: dict[int, Batch] = {}
        self.next_heartbeat = 0.0
        self._probe_at: deque[float] = deque()  # extra probe times after a disconnect (on_disconnect)
        self.counters = _Counters()

    # --- state ---------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return bool(self.workers)

    @property
    def model_id(self) -> str | None:
        return next((w.model_id for w in self.workers.values()), None)

    @property
    def model_capabilities(self) -> dict | None:
        """What the first registered worker said about its model (None before any)."""
        return next((w.capabilities for w in self.workers.values()), None)

    def idle_worker(self) -> WorkerState | None:
        """The longest-idle worker, or None (it stays idle until ``dispatch``)."""
        return self.workers[self.idle[0]] if self.idle else None

    def timer(self) -> float:
        """The next time ``tick`` has work (a heartbeat, a probe or an expiry)."""
        expiries = [w.expiry for w in self.workers.values()]
        return min([self.next_heartbeat, *list(self._probe_at)[:1], *expiries])

    # --- sending ---------------------------------------------------------------

    def _send(self, identity: bytes, command: bytes, *body: Any) -> int:
        """0 when sent, else the errno: EHOSTUNREACH (the connection is gone) or EAGAIN (its pipe is full)."""
        try:
            self.sock.send_multipart([identity, wp.HEADER, command, *body], flags=zmq.NOBLOCK, copy=False)
            return 0
        except zmq.ZMQError as exc:
            log.debug("could not send %s to worker %r: %s", wp.COMMAND_NAMES.get(command), identity, exc)
            return exc.errno

    def dispatch(self, worker: WorkerState, items: list, budgets_ms: list[int], now: float) -> Batch | None:
        """Send ``items`` (Pending with ``.payload``) to ``worker`` as one batch.

        Returns None, and forgets the worker, if it cannot be reached (its
        connection is gone: ROUTER_MANDATORY says so at once, long before its
        heartbeats would expire); the caller puts the items back in the queue.
        """
        batch = Batch(next(self._batch_ids), worker.identity, items, now)
        header = wp.pack({"batch": batch.id, "budget_ms": budgets_ms})
        if self._send(worker.identity, wp.REQUEST, header, *[p.payload for p in items]):
            # Gone, or (rarely) its pipe is full: either way it cannot take work now.
            self.counters.expired += 1
            self._remove(worker, "unreachable")
            log.warning("worker %s is unreachable; forgotten", worker.name)
            return None
        self.idle.remove(worker.identity)
        worker.batch = batch
        self.batches[batch.id] = batch
        return batch

    # --- receiving -------------------------------------------------------------

    def handle(self, frames: list, now: float) -> list[Completed | Lost]:
        """One backend message: ``[identity, HEADER, command, *body]``."""
        if len(frames) < 3 or frames[1].bytes != wp.HEADER:
            self.counters.bad_messages += 1
            return []
        identity, command, body = frames[0].bytes, frames[2].bytes, frames[3:]
        worker = self.workers.get(identity)
        if command == wp.READY:
            return self._on_ready(identity, worker, body, now)
        if worker is None:
            # Heartbeats or replies from a worker this broker never registered
            # (it restarted, or expired the worker): tell it to register again.
            self._send(identity, wp.DISCONNECT)
            return []
        worker.expiry = now + self.interval_s * self.liveness
        if command == wp.HEARTBEAT:
            return []
        if command == wp.REPLY and len(body) == 1:
            return self._on_reply(worker, body[0], now)
        if command == wp.DISCONNECT:
            self.counters.disconnects += 1
            log.info("worker %s left (DISCONNECT)", worker.name)
            return self._remove(worker, "worker left")
        self.counters.bad_messages += 1
        return []

    def _on_ready(self, identity: bytes, worker: WorkerState | None, body: list, now: float) -> list[Completed | Lost]:
        events: list[Completed | Lost] = []
        if worker is not None:  # READY twice: it reconnected and forgot any batch we gave it
            events = self._remove(worker, "worker re-registered")
        try:
            info = wp.unpack(body[0].buffer)
            name, model_id, max_batch = str(info["name"]), str(info["model_id"]), int(info["max_batch_size"])
            if max_batch < 1:
                raise ValueError("max_batch_size < 1")
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            self.counters.bad_messages += 1
            log.warning("refused a malformed READY from %r: %s", identity, exc)
            return events
        caps = info.get("capabilities") if isinstance(info.get("capabilities"), dict) else None
        self.workers[identity] = WorkerState(identity, name, model_id, max_batch, now + self.interval_s * self.liveness,
                                             capabilities=caps)
        self.idle.append(identity)
        self.counters.registrations += 1
        log.info("worker %s registered (model %s, max batch %d); %d worker(s)", name, model_id, max_batch,
                 len(self.workers))
        return events

    def _on_reply(self, worker: WorkerState, frame, now: float) -> list[Completed | Lost]:
        try:
            outcome = wp.unpack(frame.buffer)
            batch = self.batches.get(int(outcome["batch"]))
        except (ValueError, KeyError, TypeError) as exc:
            self.counters.bad_messages += 1
            log.warning("worker %s sent a malformed REPLY: %s", worker.name, exc)
            return []
        if batch is None or batch.worker != worker.identity:
            self.counters.unknown_replies += 1
            return []
        del self.batches[batch.id]
        worker.batch = None
        self.idle.append(worker.identity)
        self.counters.by_worker[worker.name] = self.counters.by_worker.get(worker.name, 0) + 1
        return [Completed(batch, outcome, worker.name)]

    def _remove(self, worker: WorkerState, reason: str) -> list[Lost]:
        self.workers.pop(worker.identity, None)
        if worker.identity in self.idle:
            self.idle.remove(worker.identity)
        if worker.batch is not None:
            self.batches.pop(worker.batch.id, None)
            return [Lost(worker.batch, f"{reason} ({worker.name})")]
        return []

    # --- timers ----------------------------------------------------------------

    def tick(self, now: float) -> list[Lost]:
        """Heartbeat every worker when due; expire the silent ones and drop the unreachable ones."""
        lost: list[Lost] = []
        for worker in [w for w in self.workers.values() if now > w.expiry]:
            self.counters.expired += 1
            log.warning("worker %s expired (silent for %d heartbeats)", worker.name, self.liveness)
            lost += self._remove(worker, "worker died")
        if now >= self.next_heartbeat or (self._probe_at and now >= self._probe_at[0]):
            if now >= self.next_heartbeat:
                self.next_heartbeat = now + self.interval_s
            while self._probe_at and now >= self._probe_at[0]:
                self._probe_at.popleft()
            lost += self.probe()
        return lost

    def probe(self) -> list[Lost]:
        """HEARTBEAT every worker now; one whose connection is gone is dropped at once.

        The backend ROUTER is ROUTER_MANDATORY, so a send to a peer whose
        connection libzmq has closed fails (EHOSTUNREACH) instead of vanishing:
        a worker killed mid-batch costs one probe, not three silent heartbeats
        (~3 s, longer than most budgets).
        """
        lost: list[Lost] = []
        for identity in list(self.workers):
            if self._send(identity, wp.HEARTBEAT) == zmq.EHOSTUNREACH:  # EAGAIN: alive, just behind
                worker = self.workers[identity]
                self.counters.expired += 1
                log.warning("worker %s is unreachable (connection gone); forgotten", worker.name)
                lost += self._remove(worker, "worker connection lost")
        return lost

    def on_disconnect(self, now: float) -> None:
        """A backend connection closed (socket monitor): probe now and twice more shortly.

        libzmq reports the disconnect from its I/O thread; the ROUTER forgets the
        peer's routing id when this thread next processes commands, so a probe
        right away can still succeed. The later probes catch it.
        """
        for delay_s in DISCONNECT_PROBES_S:
            self._probe_at.append(now + delay_s)
