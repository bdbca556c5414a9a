"""`Server`: wire protocol v1 on a ROUTER, a bounded queue, dynamic batching into workers.

::

    clients (DEALER) --> frontend ROUTER --> decode + admit --> bounded FIFO queue
                                                                    |  dispatcher: the longest-idle worker
                                                                    v  takes up to max_batch_size requests
    workers (DEALER) <-- backend ROUTER (WorkerPool) <------------ batch
                     --> REPLY --> Result (timing) --> frontend --> client

The same class is both products:

- ``earshot serve`` (``run_server``): the backend is ``inproc://`` and one
  in-process `Worker` thread runs the teacher;
- ``earshot serve mode=broker`` (``run_broker``): the backend is bound on TCP
  and ``earshot worker`` processes on any host connect to it.

Clients cannot tell them apart: the frontend, the queue and the replies are
the same code.

Per request:

- every message is decoded with ``shared.protocol.decode`` (bounded); a bad
  one gets an ``error`` with the id from ``peek_id`` when possible, and is
  counted by code;
- ``infer`` is admitted only if the server is ready (a warmed-up worker is
  registered; else ``busy``), not draining (else ``shutting_down``) and the
  queue has room (else ``busy`` at once, with a ``retry_after_ms`` hint);
- its deadline is receive time + ``deadline_ms`` (the receive time is when the
  poll that found it returned: ``_read_frontend``). At the deadline it gets
  ``deadline_exceeded`` wherever it is (queued or in a running batch) and a
  later model answer is dropped. With ``early_reject`` it gets
  ``deadline_exceeded`` at once, never computed, when the expected wait (the
  batches ahead of it times the recent batch time) already exceeds its
  budget, or when at dispatch its remaining budget is below the batch time;
- batches: a worker is idle and either ``max_batch_size`` requests wait or the
  oldest has waited ``max_queue_delay_ms``.

``ping``, ``stats_request`` and ``hello`` are answered at once, even while
loading, overloaded or draining. Replies are sent without blocking; a reply to a
client that vanished (or stopped reading) is dropped and counted. SIGTERM
starts the drain: no new work, every admitted request is answered, then the
sockets close (with linger, so the last replies leave) and the process exits 0.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import math
import os
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

import zmq
from zmq.utils.monitor import recv_monitor_message

from cloud.server import worker_protocol as wp
from cloud.server.backend import Backend
from cloud.server.broker import Completed, Lost, WorkerPool
from cloud.server.capabilities import make_capabilities
from cloud.server.security import CurveKeys, make_server_curve, start_authenticator
from cloud.server.stats import BatchTimes, ServerStats
from cloud.server.worker import Worker
from shared.config import UserError
from shared.protocol import (MAX_RETRY_AFTER_MS, REQUEST_KINDS, SERVER_SOCKET_OPTIONS, ErrorCode, ErrorReply,
                             Hello, InferRequest, Ping, Pong, ProtocolError, Result, StatsRequest, decode, encode,
                             truncate_utf8)

__all__ = ["ServerOptions", "Server", "run_server", "run_broker", "LOCAL_WORKERS_ENDPOINT"]

log = logging.getLogger("earshot.server")

LOCAL_WORKERS_ENDPOINT = "inproc://earshot-workers"
#: Messages read from one socket per loop turn, so neither socket starves the other.
MAX_READS_PER_TURN = 256
#: Longest poll (ms): the loop also wakes this often to notice SIGTERM.
POLL_MAX_MS = 100
#: ``retry_after_ms`` sent with ``busy`` while no worker is ready (model loading).
NOT_READY_RETRY_AFTER_MS = 1000
#: Weight of the newest batch in the moving average of batch round-trip time.
BATCH_TIME_EWMA = 0.2
#: Python's GIL switch interval in ``earshot serve`` (one process: poll loop + model thread).
GIL_SWITCH_INTERVAL_S = 0.0005
#: Early refusal rests on measured batch times; when nothing has run for this
#: long (s) and every worker is idle, the next request is tried whatever the
#: estimate says (a circuit breaker's half-open probe), so an estimate learned
#: under a load that has gone cannot refuse everything forever.
ESTIMATE_PROBE_S = 1.0


@dataclass
class ServerOptions:
    """Plain settings (the verbs build them from configs/serve.yaml).

    Attributes:
        bind: client endpoint, e.g. ``tcp://127.0.0.1:5555`` (``:*`` picks a free port).
        worker_bind: worker endpoint (broker mode), or None for in-process workers.
        max_batch_size: largest model batch.
        max_queue_delay_ms: longest wait for a batch to fill once a worker is idle.
        queue_capacity: waiting requests; beyond it new ones get ``busy``.
        early_reject: refuse at once (``deadline_exceeded``, never computed) requests that
            cannot finish in time given the queue and the recent batch time.
        drain_timeout_s: longest drain after SIGTERM before giving up on stragglers.
        latency_window: result latencies kept for the stats percentiles.
        rcvhwm / sndhwm: frontend high-water marks (messages), bounding buffered memory.
        endpoint_file: once bound, write the client endpoint here (line 1) and, in broker
            mode, the worker endpoint (line 2): how scripts find ``:*`` ports.
        keys: CurveZMQ server keys for the frontend (None = plain ZeroMQ).
        worker_keys: CurveZMQ keys for the worker endpoint (broker mode).
    """

    bind: str
    worker_bind: str | None = None
    max_batch_size: int = 8
    max_queue_delay_ms: float = 5.0
    queue_capacity: int = 64
    early_reject: bool = True
    drain_timeout_s: float = 30.0
    latency_window: int = 1024
    rcvhwm: int = SERVER_SOCKET_OPTIONS["RCVHWM"]
    sndhwm: int = SERVER_SOCKET_OPTIONS["SNDHWM"]
    endpoint_file: str | None = None
    keys: CurveKeys | None = None
    worker_keys: CurveKeys | None = None


@dataclass(eq=False)
class Pending:
    """An admitted ``infer``: who asked, its raw bytes (forwarded to a worker), its clock."""

    client: bytes
    id: int
    payload: zmq.Frame
    t_recv: float
    deadline: float
    state: str = "queued"  # queued -> inflight -> done (answered, whatever happened after)
    t_dispatch: float = 0.0
    requeues: int = 0


class Server:
    """The poll loop and its handlers. ``run()`` blocks until drained; ``stop()`` starts the drain."""

    def __init__(self, options: ServerOptions, ctx: zmq.Context | None = None) -> None:
        self.opt = options
        self.ctx = ctx or zmq.Context.instance()
        self.stats = ServerStats(options.latency_window)
        self.queue: deque[Pending] = deque()
        self._deadlines: list[tuple[float, int, Pending]] = []  # heap; entries of answered requests are skipped
        self._carried_stamp: float | None = None  # receive time for messages left unread by a cut-short turn
        self._seq = itertools.count()
        self.batch_times = BatchTimes(options.max_batch_size, BATCH_TIME_EWMA)  # dispatch -> answer, per size
        self._last_batch_end = -math.inf
        self.draining = False
        self._drain_requested = threading.Event()
        self._drain_by = math.inf
        self._auth = None
        self.frontend, self.backend = self._bind()
        # Worker connections that close (a worker killed mid-batch) are noticed from this
        # monitor at once, instead of after three missed heartbeats (WorkerPool.on_disconnect).
        self.backend_monitor = self.backend.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        self.pool = WorkerPool(self.backend)
        self.endpoint = self.frontend.getsockopt_string(zmq.LAST_ENDPOINT)
        self.worker_endpoint = self.backend.getsockopt_string(zmq.LAST_ENDPOINT)

    # --- sockets ---------------------------------------------------------------------

    def _bind(self) -> tuple[zmq.Socket, zmq.Socket]:
        opt = self.opt
        domains = {}
        if opt.keys is not None:
            domains["clients"] = opt.keys.allowed_dir
        if opt.worker_keys is not None:
            domains["workers"] = opt.worker_keys.allowed_dir
        if domains:
            self._auth = start_authenticator(self.ctx, domains)
        frontend = self.ctx.socket(zmq.ROUTER)
        for name, value in SERVER_SOCKET_OPTIONS.items():
            frontend.setsockopt(getattr(zmq, name), value)
        frontend.rcvhwm, frontend.sndhwm = opt.rcvhwm, opt.sndhwm
        if opt.keys is not None:
            make_server_curve(frontend, opt.keys, "clients")
        frontend.bind(opt.bind)
        backend = self.ctx.socket(zmq.ROUTER)
        backend.linger = 0
        backend.router_mandatory = True
        if opt.worker_keys is not None:
            make_server_curve(backend, opt.worker_keys, "workers")
        backend.bind(opt.worker_bind or LOCAL_WORKERS_ENDPOINT)
        return frontend, backend

    def stop(self) -> None:
        """Start the graceful drain (safe from a signal handler or another thread)."""
        self._drain_requested.set()

    @property
    def ready(self) -> bool:
        return self.pool.ready and not self.draining

    def close(self) -> None:
        self.frontend.close(linger=SERVER_SOCKET_OPTIONS["LINGER"])  # the last replies still leave
        self.backend.disable_monitor()
        self.backend_monitor.close(linger=0)
        self.backend.close(linger=0)
        if self._auth is not None:
            self._auth.stop()

    # --- the poll loop (no protocol logic here) ----------------------------------------------

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Serve until the drain ends (or ``should_stop()``, for an in-process worker that failed)."""
        if self.opt.endpoint_file:  # line 1: clients; line 2 (broker mode): workers
            lines = [self.endpoint] + ([self.worker_endpoint] if self.opt.worker_bind else [])
            with open(self.opt.endpoint_file + ".tmp", "w") as f:
                f.write("\n".join(lines) + "\n")
            os.replace(self.opt.endpoint_file + ".tmp", self.opt.endpoint_file)
        log.info("listening on %s (workers: %s); queue %d, max batch %d, max queue delay %.1f ms",
                 self.endpoint, self.worker_endpoint, self.opt.queue_capacity, self.opt.max_batch_size,
                 self.opt.max_queue_delay_ms)
        poller = zmq.Poller()
        poller.register(self.frontend, zmq.POLLIN)
        poller.register(self.backend, zmq.POLLIN)
        poller.register(self.backend_monitor, zmq.POLLIN)
        was_ready = False
        while not should_stop():
            now = time.monotonic()
            if self._drain_requested.is_set() and not self.draining:
                self._start_drain(now)
            if self.draining and (self._idle() or now > self._drain_by):
                break
            events = dict(poller.poll(self._poll_timeout_ms(now)))
            now = time.monotonic()
            if self.backend_monitor in events:
                self._read_backend_monitor(now)
            if self.backend in events:
                self._read_backend(now)
            if self.frontend in events:
                self._read_frontend(now)
            now = time.monotonic()
            for lost in self.pool.tick(now):
                self._on_lost(lost, now)
            self._expire(now)
            self._dispatch(now)
            if self.ready != was_ready:
                was_ready = self.ready
                log.info("ready: %s (%d worker(s), model %s)", was_ready, len(self.pool.workers), self.pool.model_id)
        left = sum(1 for p in self._admitted() if p.state != "done")
        note = f" ({left} request(s) left unanswered)" if left else ""
        log.info("%s%s; %s", "drained" if self.draining else "stopped", note, self.stats.summary())

    def _poll_timeout_ms(self, now: float) -> float:
        wake = min(self.pool.timer(), now + POLL_MAX_MS / 1000)
        if self._deadlines:
            wake = min(wake, self._deadlines[0][0])
        if self.queue and self.pool.idle:
            wake = min(wake, self.queue[0].t_recv + self.opt.max_queue_delay_ms / 1000)
        return max(0.0, (wake - now) * 1000)

    def _read_frontend(self, t_turn: float) -> None:
        """Read what is waiting; every request read in this turn is received at ``t_turn``.

        ``t_turn`` is when the poll returned: the messages already waiting then
        arrived before it, and reading a burst (up to ``MAX_READS_PER_TURN``
        decodes) must not add to their budgets, or the server's verdict lands
        after the client's own timer. One that arrived during the turn loses at
        most the turn's read time: the earlier stamp errs on the safe side.
        When a turn stops with messages still waiting, the next turn keeps this
        turn's stamp for them (the next poll returns at once); a socket found
        empty carries nothing, so a later request never inherits an old stamp.

        Reading stops early when an admitted request's deadline comes due, so
        its ``deadline_exceeded`` is not held back behind the rest of a burst.
        """
        stamp = self._carried_stamp if self._carried_stamp is not None else t_turn
        self._carried_stamp = None
        for _ in range(MAX_READS_PER_TURN):
            try:
                frames = self.frontend.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self._on_client_message(frames, stamp)
            head = self._deadlines[0] if self._deadlines else None
            if head is not None and head[2].state != "done" and time.monotonic() >= head[0]:
                break  # a verdict is due: answer it (this turn's _expire) before reading on
        if self.frontend.get(zmq.EVENTS) & zmq.POLLIN:  # more waiting: they count from this turn, not the next
            self._carried_stamp = t_turn

    def _read_backend_monitor(self, now: float) -> None:
        while True:
            try:
                recv_monitor_message(self.backend_monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            self.pool.on_disconnect(now)

    def _read_backend(self, now: float) -> None:
        for _ in range(MAX_READS_PER_TURN):
            try:
                frames = self.backend.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            for event in self.pool.handle(frames, now):
                if isinstance(event, Completed):
                    self._on_completed(event, now)
                else:
                    self._on_lost(event, now)

    # --- client messages -------------------------------------------------------------------

    def _send(self, client: bytes, msg) -> bool:
        """Send one reply without blocking; a reply nobody can take is dropped and counted."""
        try:
            self.frontend.send_multipart([client, encode(msg)], flags=zmq.NOBLOCK)
        except zmq.ZMQError:  # EHOSTUNREACH: the client vanished; EAGAIN: it stopped reading
            self.stats.dropped_total += 1
            return False
        if isinstance(msg, ErrorReply):
            self.stats.error(msg.code)
        return True

    def _error(self, client: bytes, request_id: int | None, code: ErrorCode, message: str,
               retry_after_ms: int | None = None) -> None:
        self._send(client, ErrorReply(id=request_id, code=code, retry_after_ms=retry_after_ms,
                                      message=truncate_utf8(message, 1024)))

    def _on_client_message(self, frames: list, now: float) -> None:
        self.stats.requests_total += 1
        client = frames[0].bytes
        if len(frames) != 2:
            self._error(client, None, ErrorCode.BAD_REQUEST,
                        f"expected one payload frame, got {len(frames) - 1} (DEALER sends [payload]; no REQ sockets)")
            return
        payload = frames[1]
        try:
            msg = decode(payload.buffer, accept=REQUEST_KINDS)
        except ProtocolError as exc:
            self._send(client, ErrorReply.for_bad_message(payload.buffer, exc))
            return
        if isinstance(msg, Ping):
            self._send(client, Pong.reply_to(msg, ready=self.ready, queue_depth=len(self.queue),
                                             queue_capacity=self.opt.queue_capacity, model_id=self.pool.model_id))
        elif isinstance(msg, StatsRequest):
            self._send(client, self.stats.snapshot(msg.id, len(self.queue), self.opt.queue_capacity))
        elif isinstance(msg, Hello):
            self._send(client, make_capabilities(msg.id, ready=self.ready, model_id=self.pool.model_id,
                                                 model=self.pool.model_capabilities))
        elif isinstance(msg, InferRequest):
            self._admit(client, msg, payload, now)

    def _admit(self, client: bytes, req: InferRequest, payload: zmq.Frame, now: float) -> None:
        if self.draining:
            self._error(client, req.id, ErrorCode.SHUTTING_DOWN, "server is draining: no new work")
        elif not self.pool.ready:
            self._error(client, req.id, ErrorCode.BUSY, "no model worker is ready (loading or none connected)",
                        NOT_READY_RETRY_AFTER_MS)
        elif len(self.queue) >= self.opt.queue_capacity:
            self._error(client, req.id, ErrorCode.BUSY,
                        f"queue full ({self.opt.queue_capacity} waiting)", self._retry_after_ms())
        elif self._may_refuse_early(now) and (wait_ms := self._expected_wait_ms(now)) > req.deadline_ms:
            self._error(client, req.id, ErrorCode.DEADLINE_EXCEEDED,
                        f"expected wait {wait_ms:.0f} ms ({len(self.queue)} queued, full batches take "
                        f"~{self.batch_times.estimate(self.opt.max_batch_size):.0f} ms) exceeds the "
                        f"{req.deadline_ms} ms budget; refused without computing")
        else:
            p = Pending(client, req.id, payload, now, now + req.deadline_ms / 1000)
            self.queue.append(p)
            heapq.heappush(self._deadlines, (p.deadline, next(self._seq), p))

    def _may_refuse_early(self, now: float) -> bool:
        """Early refusal is on, batch times are known, and this is not a probe (above)."""
        if not (self.opt.early_reject and self.batch_times.known):
            return False
        idle = not self.pool.batches and len(self.pool.idle) == len(self.pool.workers)
        return not (idle and now - self._last_batch_end > ESTIMATE_PROBE_S)

    def _expected_wait_ms(self, now: float) -> float:
        """Receive-to-result estimate for a request joining the queue now: until
        the first running batch ends (when no worker is idle), then full batches
        for the requests ahead, then its own batch."""
        est = self.batch_times.estimate
        first_free_ms = 0.0
        if not self.pool.idle and self.pool.batches:
            first_free_ms = min(max(0.0, est(len(b.items)) - 1e3 * (now - b.t_dispatch))
                                for b in self.pool.batches.values())
        per_round = self.opt.max_batch_size * max(1, len(self.pool.workers))
        rounds = math.ceil((len(self.queue) + 1) / per_round)
        last = min(self.opt.max_batch_size, len(self.queue) + 1 - (rounds - 1) * per_round)
        return first_free_ms + (rounds - 1) * est(self.opt.max_batch_size) + est(last)

    def _retry_after_ms(self) -> int:
        """Roughly how long until the queue has room: one batch time per batch ahead."""
        per_batch = self.batch_times.estimate(self.opt.max_batch_size) or 100.0
        lanes = max(1, len(self.pool.workers))
        batches_ahead = math.ceil(len(self.queue) / (self.opt.max_batch_size * lanes))
        return int(min(MAX_RETRY_AFTER_MS, max(1.0, per_batch * max(1, batches_ahead))))

    # --- deadlines and batching -------------------------------------------------------------

    def _expire(self, now: float) -> None:
        """Answer ``deadline_exceeded`` for every request whose deadline has passed."""
        heap = self._deadlines
        while heap and (heap[0][2].state == "done" or heap[0][0] <= now):
            _, _, p = heapq.heappop(heap)
            if p.state == "done":
                continue
            if p.state == "queued":
                self.queue.remove(p)
                where = f"after {1e3 * (now - p.t_recv):.0f} ms in the queue; not computed"
            else:
                where = "while its batch was running; its result will be discarded"
            p.state = "done"
            self._error(p.client, p.id, ErrorCode.DEADLINE_EXCEEDED, f"deadline passed {where}")

    def _dispatch(self, now: float) -> None:
        delay_s = self.opt.max_queue_delay_ms / 1000
        while self.queue and self.pool.idle:
            worker = self.pool.idle_worker()
            limit = min(self.opt.max_batch_size, worker.max_batch_size)
            if len(self.queue) < limit and not self.draining and now < self.queue[0].t_recv + delay_s:
                return  # wait a little for the batch to fill
            items = []
            batch_ms = self.batch_times.estimate(min(limit, len(self.queue))) if self._may_refuse_early(now) else 0
            while self.queue and len(items) < limit:
                p = self.queue.popleft()
                if batch_ms and (p.deadline - now) * 1000 < batch_ms:
                    p.state = "done"
                    self._error(p.client, p.id, ErrorCode.DEADLINE_EXCEEDED,
                                f"{1e3 * (p.deadline - now):.0f} ms left, below the ~{batch_ms:.0f} ms its "
                                "batch takes; refused without computing")
                    continue
                p.state, p.t_dispatch = "inflight", now
                items.append(p)
            if items:
                budgets = [max(1, int((p.deadline - now) * 1000)) for p in items]
                if self.pool.dispatch(worker, items, budgets, now) is None:
                    for p in items:  # that worker is gone: back to the front, for the next one
                        p.state = "queued"
                    self.queue.extendleft(reversed(items))
                    continue
                self.stats.batch(len(items))

    # --- worker events ----------------------------------------------------------------------

    def _on_completed(self, event: Completed, now: float) -> None:
        batch, outcome = event.batch, event.outcome
        self.batch_times.add(len(batch.items), 1e3 * (now - batch.t_dispatch))
        self._last_batch_end = now
        items = outcome.get("items")
        if not isinstance(items, list) or len(items) != len(batch.items):
            log.error("worker %s answered a batch of %d with a malformed item list", event.worker_name,
                      len(batch.items))
            items = [None] * len(batch.items)
        worker_timing = outcome.get("timing_ms") if isinstance(outcome.get("timing_ms"), dict) else {}
        for p, item in zip(batch.items, items):
            if p.state == "done":  # already answered (deadline): the model's answer is too late
                self.stats.late_results += 1
                continue
            p.state = "done"
            self._reply_item(p, item, outcome.get("model_id"), len(batch.items), worker_timing, now)

    def _reply_item(self, p: Pending, item, model_id, batch_size: int, worker_timing: dict, now: float) -> None:
        try:
            if isinstance(item, dict) and "code" in item:
                code = ErrorCode(item["code"])
                self._error(p.client, p.id, code, str(item.get("message", "")))
                return
            timing = {k: float(v) for k, v in worker_timing.items()}
            timing.update(queue_ms=1e3 * (p.t_dispatch - p.t_recv), worker_ms=1e3 * (now - p.t_dispatch),
                          total_ms=1e3 * (now - p.t_recv))
            result = Result(id=p.id, model_id=model_id, batch_size=batch_size, answer=item["answer"],
                            tags=item["tags"], timing_ms=timing, sentence=item.get("sentence"),
                            evidence=wp.evidence_from_plain(item.get("evidence")))
        except (ProtocolError, ValueError, KeyError, TypeError) as exc:
            log.error("a worker answer for request %d is invalid: %s", p.id, exc)
            self._error(p.client, p.id, ErrorCode.INTERNAL, "the model worker returned an invalid answer")
            return
        if self._send(p.client, result):
            self.stats.result(timing["total_ms"])

    def _on_lost(self, event: Lost, now: float) -> None:
        """A worker died or left with a batch: re-queue what still has time, fail the rest."""
        requeue = []
        for p in event.batch.items:
            if p.state == "done":
                continue
            if p.requeues < wp.MAX_REQUEUES and p.deadline > now and not self.draining:
                p.state, p.requeues = "queued", p.requeues + 1
                requeue.append(p)
            else:
                p.state = "done"
                self._error(p.client, p.id, ErrorCode.INTERNAL, f"lost with its model worker: {event.reason}")
        self.queue.extendleft(reversed(requeue))  # they were first in line
        if requeue:
            log.warning("%s: re-queued %d request(s)", event.reason, len(requeue))

    # --- drain ---------------------------------------------------------------------------------

    def _start_drain(self, now: float) -> None:
        self.draining = True
        self._drain_by = now + self.opt.drain_timeout_s
        log.info("draining: %d queued, %d in running batches; no new work", len(self.queue),
                 sum(1 for p in self._admitted() if p.state == "inflight"))

    def _admitted(self):
        yield from self.queue
        for batch in self.pool.batches.values():
            yield from batch.items

    def _idle(self) -> bool:
        return not self.queue and all(p.state == "done" for b in self.pool.batches.values() for p in b.items)


# --- products --------------------------------------------------------------------------------


def _install_sigterm(server: Server) -> None:
    import signal

    def on_signal(signum, frame):
        log.info("signal %d: starting the graceful drain", signum)
        server.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def run_server(options: ServerOptions, backend_factory: Callable[[], Backend]) -> int:
    """``earshot serve``: the server with one in-process worker; blocks until drained.

    The frontend binds at once (``ping`` answers ``ready=false`` while the model
    loads and warms up); ``infer`` is admitted once the worker is READY.
    Returns the exit status: 0 after a drain, 1 if the model failed to load.
    """
    server = Server(options)
    # The model thread holds the GIL between torch ops; at Python's default 5 ms switch
    # interval the poll loop could wait that long for it on every message, which is what a
    # 'busy' reply under overload is made of. 0.5 ms keeps protocol replies prompt.
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    worker = Worker(server.worker_endpoint, backend_factory, ctx=server.ctx, name="local")
    thread = threading.Thread(target=_run_quietly, args=(worker,), name="earshot-worker", daemon=True)
    thread.start()
    _install_sigterm(server)
    try:
        server.run(should_stop=lambda: worker.error is not None)
    finally:
        worker.stop()
        thread.join(timeout=10)
        server.close()
    if isinstance(worker.error, UserError):
        raise worker.error  # e.g. not a teacher folder: one line, exit 2 (shared.config.verb)
    if worker.error is not None:
        log.error("the model worker failed: %s", worker.error)
        return 1
    return 0


def _run_quietly(worker: Worker) -> None:
    try:
        worker.run()
    except UserError:  # kept in worker.error; run_server reports it
        pass
    except BaseException:  # kept in worker.error for the server loop; the log has the traceback
        log.exception("model worker thread failed")


def run_broker(options: ServerOptions) -> int:
    """``earshot serve mode=broker``: clients on ``bind``, workers connect to ``worker_bind``."""
    server = Server(options)
    _install_sigterm(server)
    try:
        server.run()
    finally:
        server.close()
    return 0
