"""Offload client for the Earshot reasoning server (wire protocol v1, docs/protocol.md).

The edge runtime's one way to ask the cloud::

    with Client("tcp://cloud:5555", server_public_key="keys/server.key",
                client_keys="keys/glasses-01.key_secret", max_in_flight=4) as client:
        fut = client.submit(request, deadline_ms=600)     # never blocks
        try:
            result = fut.result()                         # Result, by the deadline at the latest
        except ClientError as err:
            answer_locally(err.code)                      # 'busy', 'deadline_exceeded', 'unavailable', ...

Guarantees:

- **Asynchronous, bounded.** ``submit`` returns a ``concurrent.futures.Future``
  at once. At most ``max_in_flight`` calls are unresolved; beyond that,
  ``submit`` fails the new call at once (code ``too_many_in_flight``): the
  edge should answer locally rather than queue work that will be late.
- **Deadlines.** Every call resolves by its deadline: a ``Result`` (or
  ``Pong``/``Stats``), or a `ClientError`. The server gets the remaining
  budget minus the smoothed ping RTT and ``VERDICT_MARGIN_MS`` (its clock
  starts when the request arrives, and its verdict must travel back before
  the caller's deadline), and the client keeps its own timer for the full budget.
- **At most once.** A future is resolved exactly once, and each request id is
  used once: a reply to a request that already failed (late, or from before a
  reconnect) is dropped and counted (``counters["late_replies"]``).
- **Lazy Pirate reconnect.** When the connection drops (ZMTP heartbeats notice
  a dead server within 3 s, a killed one at once) or several requests in a row
  time out with no reply at all, the socket is closed with linger 0 and
  re-created after a backoff (100 ms doubling to 5 s). Requests that were on
  the lost connection are re-sent under new ids if their budget allows
  (``MIN_RETRY_BUDGET_MS``, ``MAX_SENDS``), else failed ``unavailable``:
  none is lost silently. Re-sending means the server may compute a request
  twice; the caller still gets at most one answer.
- **Backs off when told.** A ``busy`` reply with ``retry_after_ms`` makes new
  ``submit`` calls fail locally with ``busy`` for that long
  (``honor_retry_after``), as the protocol asks.

One background thread owns the ZeroMQ sockets; every public method is
thread-safe. Future callbacks run on that thread: keep them short.

This module imports only ``shared``, pyzmq, msgpack and numpy (edge/ rules).
"""
from __future__ import annotations

import dataclasses
import heapq
import itertools
import logging
import os
import socket
import threading
import time
from collections import Counter, deque
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.utils.monitor import recv_monitor_message

from shared.protocol import (CLIENT_SOCKET_OPTIONS, MAX_DEADLINE_MS, REPLY_KINDS, Capabilities, ErrorCode, ErrorReply,
                             Hello, InferRequest, Ping, Pong, ProtocolError, Result, Stats, StatsRequest, decode,
                             encode)

__all__ = [
    "Client", "ClientError", "UNAVAILABLE", "TOO_MANY_IN_FLIGHT", "CLOSED",
    "DEFAULT_DEADLINE_MS", "PING_TIMEOUT_MS", "MIN_RETRY_BUDGET_MS", "MAX_SENDS", "SILENT_TIMEOUTS_BEFORE_RESET",
    "VERDICT_MARGIN_MS",
    "REOPEN_BACKOFF_INITIAL_MS", "REOPEN_BACKOFF_MAX_MS",
]

log = logging.getLogger("earshot.edge.client")

# --- client-side error codes (the server's are shared.protocol.ErrorCode) --------------
#: No connection to the server during the call's budget, or the connection was
#: lost with the request on it and there was no budget left to re-send.
UNAVAILABLE = "unavailable"
#: ``max_in_flight`` calls are already unresolved; nothing was sent.
TOO_MANY_IN_FLIGHT = "too_many_in_flight"
#: The client was closed before the call resolved.
CLOSED = "closed"

# --- named timeouts and limits -------------------------------------------------------------
#: Budget (ms) of a ``submit`` without ``deadline_ms``: inside the 300-800 ms
#: conversational response budget of ARCHITECTURE.md section 8.
DEFAULT_DEADLINE_MS = 800
#: Budget (ms) of ``ping()`` and ``stats()``.
PING_TIMEOUT_MS = 1000
#: A request caught on a lost connection is re-sent only if at least this much
#: of its budget (ms) is left: less cannot cover a round trip plus the model.
MIN_RETRY_BUDGET_MS = 50
#: Sends per ``infer`` at most (1 + re-sends after a lost connection).
MAX_SENDS = 2
#: Requests in a row that reach their deadline while the server has sent
#: nothing at all since they left (a live server at least answers
#: ``deadline_exceeded``, or other requests) before the socket is declared
#: stuck and re-created (the Lazy Pirate test for a hung server).
SILENT_TIMEOUTS_BEFORE_RESET = 3
#: First wait (ms) before re-creating a lost socket; doubles per failure ...
REOPEN_BACKOFF_INITIAL_MS = CLIENT_SOCKET_OPTIONS["RECONNECT_IVL"]
#: ... up to this (ms). libzmq's own reconnect backoff uses the same pair.
REOPEN_BACKOFF_MAX_MS = CLIENT_SOCKET_OPTIONS["RECONNECT_IVL_MAX"]
#: Milliseconds the server's budget ends before the client's own timer, besides a round
#: trip: the server's reply must be sent and read (two event-loop turns, a few ms on a
#: busy host) before the caller's deadline, or a verdict the server did send is counted late.
VERDICT_MARGIN_MS = 10
#: Weight of the newest ping in the smoothed RTT.
RTT_EWMA = 0.25
#: Longest poll (ms) of the I/O thread.
_POLL_MAX_MS = 100
#: Late replies remembered in ``late_replies`` (the newest; the counter counts them all).
LATE_REPLIES_KEPT = 1024
#: What ``hello`` tells the server about this client (its log shows it).
CLIENT_NAME = "earshot-edge-python/1"


class ClientError(Exception):
    """A call that did not get a result.

    ``code``: a protocol error code (``busy``, ``deadline_exceeded``,
    ``bad_request``, ``too_large``, ``shutting_down``, ``internal`` ...) from
    the server, or a client code (``unavailable``, ``too_many_in_flight``,
    ``closed``; ``deadline_exceeded`` when the client's own timer fired).
    ``retry_after_ms``: the server's back-off hint with ``busy``/``shutting_down``.
    ``from_server``: whether the server sent this error.
    """

    def __init__(self, code: str, message: str, *, retry_after_ms: int | None = None,
                 from_server: bool = False) -> None:
        super().__init__(f"{code}: {message}")
        self.code = str(code)
        self.message = message
        self.retry_after_ms = retry_after_ms
        self.from_server = from_server


@dataclass(eq=False)
class _Call:
    kind: str                 # infer | ping | stats | hello
    request: InferRequest | None
    future: Future
    deadline: float           # monotonic: the caller's full budget
    max_sends: int
    sends: int = 0
    wire_id: int | None = None  # id of the attempt on the wire, None when not sent
    t_sent: float = 0.0


def _load_keys(server_public_key, client_keys) -> tuple[bytes, bytes, bytes] | None:
    """(server public, client public, client secret) z85, or None for plain ZeroMQ."""
    if server_public_key is None and client_keys is None:
        return None
    if server_public_key is None or client_keys is None:
        raise ValueError("CurveZMQ needs both server_public_key and client_keys")
    if isinstance(server_public_key, (bytes, str)) and len(server_public_key) == 40 and not Path(
            os.fsdecode(server_public_key)).exists():
        server = server_public_key.encode() if isinstance(server_public_key, str) else server_public_key
    else:
        server, _ = zmq.auth.load_certificate(os.fspath(server_public_key))
    if isinstance(client_keys, tuple):
        public, secret = (k.encode() if isinstance(k, str) else k for k in client_keys)
    else:
        public, secret = zmq.auth.load_certificate(os.fspath(client_keys))
        if not secret:
            raise ValueError(f"{client_keys}: holds no secret key (give the .key_secret file)")
    return server, public, secret


class Client:
    """A DEALER connection to an Earshot server (or broker: they look the same).

    Args:
        endpoint: e.g. ``tcp://cloud:5555``.
        server_public_key: the server's public key (z85 str/bytes or a ``.key``
            file); with ``client_keys``, turns CurveZMQ on.
        client_keys: this client's key pair: a ``.key_secret`` file or a
            (public, secret) z85 tuple; its public key must be in the server's
            allow-list.
        max_in_flight: unresolved calls at most (``too_many_in_flight`` beyond).
        default_deadline_ms: budget of a ``submit`` without ``deadline_ms``.
        honor_retry_after: after ``busy``/``shutting_down`` with a hint, fail new
            ``infer`` calls locally for that long instead of sending them.
    """

    def __init__(self, endpoint: str, *, server_public_key: str | bytes | os.PathLike | None = None,
                 client_keys: str | os.PathLike | tuple | None = None, max_in_flight: int = 8,
                 default_deadline_ms: int = DEFAULT_DEADLINE_MS, honor_retry_after: bool = True) -> None:
        if not 1 <= max_in_flight <= 100_000:
            raise ValueError(f"max_in_flight: must be in [1, 100000], got {max_in_flight}")
        if not 1 <= default_deadline_ms <= MAX_DEADLINE_MS:
            raise ValueError(f"default_deadline_ms: must be in [1, {MAX_DEADLINE_MS}], got {default_deadline_ms}")
        self.endpoint = endpoint
        self.max_in_flight = max_in_flight
        self.default_deadline_ms = default_deadline_ms
        self.honor_retry_after = honor_retry_after
        self._curve = _load_keys(server_public_key, client_keys)
        self._ctx = zmq.Context()
        self._ids = itertools.count(1)            # wire ids: never reused in this client's life
        self._lock = threading.Lock()
        self._unresolved = 0
        self._commands: deque[_Call | None] = deque()
        # Callers wake the I/O thread through a socket pair (a closed socket object
        # refuses writes, where a closed pipe fd number could be reused).
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._counters: Counter[str] = Counter()
        #: The newest replies that came after their call had already failed, as
        #: ``(wire_id, reply kind or error code, ms after the caller's deadline)``:
        #: a timeout with an entry here was a late verdict, not a silent server.
        self.late_replies: deque[tuple[int, str, float]] = deque(maxlen=LATE_REPLIES_KEPT)
        self._expired: dict[int, float] = {}     # wire id -> deadline of calls failed by the client's timer
        self._quiet_until = 0.0                   # monotonic: honoring a busy retry_after_ms
        self.rtt_ms: float | None = None          # smoothed ping round trip
        self.connected = False
        self._closed = False
        # I/O thread state (touched by the I/O thread only)
        self._sock: zmq.Socket | None = None
        self._monitor: zmq.Socket | None = None
        self._reopen_at = 0.0
        self._backoff_s = REOPEN_BACKOFF_INITIAL_MS / 1000
        self._silent_timeouts = 0
        self._last_heard = 0.0                    # monotonic: last message from the server
        self._by_id: dict[int, _Call] = {}
        self._unsent: deque[_Call] = deque()
        self._timers: list[tuple[float, int, _Call]] = []
        self._thread = threading.Thread(target=self._run, name="earshot-client", daemon=True)
        self._thread.start()

    # --- public API (any thread) -----------------------------------------------------------

    def submit(self, request: InferRequest, *, deadline_ms: int | None = None, callback=None) -> Future:
        """Send ``request``; returns a Future of its `Result` (raises `ClientError`).

        The client owns the request's ``id`` and ``deadline_ms`` fields: ids must
        be unique per connection and never reused, and the budget on the wire is
        what is left of ``deadline_ms`` (default ``default_deadline_ms``) when
        the request leaves, minus half the RTT. ``callback(future)`` runs on the
        client's thread when it resolves.
        """
        if not isinstance(request, InferRequest):
            raise TypeError(f"request: expected InferRequest, got {type(request).__name__}")
        budget = self.default_deadline_ms if deadline_ms is None else int(deadline_ms)
        if not 1 <= budget <= MAX_DEADLINE_MS:
            raise ValueError(f"deadline_ms: must be in [1, {MAX_DEADLINE_MS}], got {budget}")
        now = time.monotonic()
        if self.honor_retry_after and now < self._quiet_until:
            return self._failed(ClientError(ErrorCode.BUSY.value, "server asked to back off "
                                            f"({1e3 * (self._quiet_until - now):.0f} ms left); not sent"), callback)
        return self._start(_Call("infer", request, Future(), now + budget / 1000, MAX_SENDS), callback)

    def infer(self, request: InferRequest, *, deadline_ms: int | None = None) -> Result:
        """``submit(...).result()``: blocks until the result or a `ClientError`."""
        return self.submit(request, deadline_ms=deadline_ms).result()

    def ping(self, timeout_ms: int = PING_TIMEOUT_MS) -> Pong:
        """Round trip to the server; updates ``rtt_ms``. Raises `ClientError`."""
        return self._start(_Call("ping", None, Future(), time.monotonic() + timeout_ms / 1000, 1), None).result()

    def stats(self, timeout_ms: int = PING_TIMEOUT_MS) -> Stats:
        """The server's counters. Raises `ClientError`."""
        return self._start(_Call("stats", None, Future(), time.monotonic() + timeout_ms / 1000, 1), None).result()

    def hello(self, timeout_ms: int = PING_TIMEOUT_MS) -> Capabilities:
        """What the server and its model take (input contract, labels, answer forms).

        Raises `ClientError` (``unsupported_kind`` from a server older than protocol revision 1.1).
        """
        return self._start(_Call("hello", None, Future(), time.monotonic() + timeout_ms / 1000, 1), None).result()

    @property
    def counters(self) -> dict[str, int]:
        """Snapshot: submitted, sent, results, errors.<code>, late_replies, retries, resets, ..."""
        with self._lock:
            return dict(self._counters)

    @property
    def in_flight(self) -> int:
        return self._unresolved

    def close(self) -> None:
        """Fail unresolved calls with ``closed`` and stop the I/O thread (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._commands.append(None)
        self._wake()
        self._thread.join(timeout=5)
        while self._commands:  # submitted while closing, after the I/O thread's last look
            call = self._commands.popleft()
            if call is not None:
                self._resolve(call, error=ClientError(CLOSED, "client closed before a reply"))
        self._wake_r.close()
        self._wake_w.close()
        self._ctx.term()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- call bookkeeping (any thread) ---------------------------------------------------------

    def _failed(self, err: ClientError, callback) -> Future:
        fut: Future = Future()
        fut.set_running_or_notify_cancel()
        if callback is not None:
            fut.add_done_callback(callback)
        self._count(f"errors.{err.code}")
        fut.set_exception(err)
        return fut

    def _start(self, call: _Call, callback) -> Future:
        if self._closed:
            return self._failed(ClientError(CLOSED, "client is closed"), callback)
        with self._lock:
            if self._unresolved >= self.max_in_flight:
                full = True
            else:
                full = False
                self._unresolved += 1
        if full:
            return self._failed(ClientError(TOO_MANY_IN_FLIGHT, f"{self.max_in_flight} calls already in flight"),
                                callback)
        call.future.set_running_or_notify_cancel()  # a running Future cannot be cancelled: resolved once, by us
        if callback is not None:
            call.future.add_done_callback(callback)
        self._count("submitted")
        self._commands.append(call)
        self._wake()
        return call.future

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"x")
        except OSError:  # buffer full (the thread will wake anyway) or closed
            pass

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:  # callers' threads and the I/O thread both count
            self._counters[key] += n

    # --- the I/O thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._open()
            while True:
                if not self._take_commands():
                    break
                now = time.monotonic()
                poller = zmq.Poller()
                poller.register(self._wake_r, zmq.POLLIN)
                if self._sock is not None:
                    want = zmq.POLLIN | (zmq.POLLOUT if self._unsent and self.connected else 0)
                    poller.register(self._sock, want)
                    poller.register(self._monitor, zmq.POLLIN)
                events = dict(poller.poll(self._poll_timeout_ms(now)))
                if self._wake_r in events:
                    try:
                        self._wake_r.recv(4096)
                    except BlockingIOError:
                        pass
                if self._monitor is not None and self._monitor in events:
                    self._on_monitor()
                if self._sock is not None and self._sock in events:
                    self._receive()
                now = time.monotonic()
                self._expire(now)
                if self._sock is None and now >= self._reopen_at:
                    self._open()
                self._flush(now)
        except Exception:  # a bug here must not leave callers waiting forever
            log.exception("client I/O thread failed")
        finally:
            self._shutdown()

    def _take_commands(self) -> bool:
        while self._commands:
            call = self._commands.popleft()
            if call is None:
                return False
            heapq.heappush(self._timers, (call.deadline, id(call), call))
            self._unsent.append(call)
        return True

    def _poll_timeout_ms(self, now: float) -> float:
        wake = now + _POLL_MAX_MS / 1000
        if self._timers:
            wake = min(wake, self._timers[0][0])
        if self._sock is None:
            wake = min(wake, self._reopen_at)
        return max(0.0, 1000 * (wake - now))

    # socket life -------------------------------------------------------------------------------

    def _open(self) -> None:
        sock = self._ctx.socket(zmq.DEALER)
        for name, value in CLIENT_SOCKET_OPTIONS.items():
            sock.setsockopt(getattr(zmq, name), value)
        if self._curve is not None:
            sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = self._curve
        self._monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED
                                                | zmq.EVENT_HANDSHAKE_FAILED_AUTH
                                                | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL)
        sock.connect(self.endpoint)
        self._sock = sock

    def _close_socket(self) -> None:
        if self._sock is None:
            return
        self._sock.disable_monitor()
        self._monitor.close(linger=0)
        self._sock.close(linger=0)  # Lazy Pirate: drop whatever is queued; those ids are abandoned
        self._sock = self._monitor = None
        self.connected = False

    def _reset(self, reason: str, now: float) -> None:
        """Lazy Pirate: close the socket, re-queue or fail what was on it, reopen after a backoff."""
        self._count("resets")
        log.warning("connection to %s reset (%s); reopening in %.1f s", self.endpoint, reason, self._backoff_s)
        self._close_socket()
        self._reopen_at = now + self._backoff_s
        self._backoff_s = min(2 * self._backoff_s, REOPEN_BACKOFF_MAX_MS / 1000)
        self._silent_timeouts = 0
        lost = [c for c in self._by_id.values() if not c.future.done()]
        self._by_id.clear()  # replies to these ids could only come on the closed socket
        for call in sorted(lost, key=lambda c: c.t_sent):
            call.wire_id = None
            left_ms = 1000 * (call.deadline - now)
            if call.sends < call.max_sends and left_ms >= MIN_RETRY_BUDGET_MS:
                self._count("retries")
                self._unsent.append(call)
            else:
                self._resolve(call, error=ClientError(UNAVAILABLE, f"connection lost ({reason}) with the request "
                                                                   f"on it; {max(left_ms, 0):.0f} ms left"))

    def _on_monitor(self) -> None:
        while True:
            try:
                event = recv_monitor_message(self._monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            kind = event["event"]
            if kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.connected = True
                self._backoff_s = REOPEN_BACKOFF_INITIAL_MS / 1000
                self._count("connects")
            elif kind == zmq.EVENT_DISCONNECTED:
                if self.connected:
                    self._reset("server disconnected", time.monotonic())
                    return  # the monitor socket is gone
            else:
                self._count("handshake_failures")
                log.warning("handshake with %s failed (%s): wrong keys, or this client is not allowed",
                            self.endpoint, "authentication" if kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH else "protocol")

    # sending and receiving ----------------------------------------------------------------------

    def _wire_message(self, call: _Call, now: float):
        wire_id = next(self._ids)
        if call.kind == "ping":
            return wire_id, Ping(id=wire_id, t_client_s=max(0.0, time.monotonic()))
        if call.kind == "stats":
            return wire_id, StatsRequest(id=wire_id)
        if call.kind == "hello":
            return wire_id, Hello(id=wire_id, client=CLIENT_NAME)
        # The server's clock starts when the request arrives (one way later) and its verdict
        # (a result, or deadline_exceeded) needs another one way back: give it the remaining
        # budget minus a round trip and a margin, so its answer lands before our own timer.
        rtt_ms = self.rtt_ms or 0.0
        budget = int(min(MAX_DEADLINE_MS, max(1.0, 1000 * (call.deadline - now) - rtt_ms - VERDICT_MARGIN_MS)))
        return wire_id, dataclasses.replace(call.request, id=wire_id, deadline_ms=budget)

    def _flush(self, now: float) -> None:
        while self._unsent and self.connected and self._sock is not None:
            call = self._unsent[0]
            if call.future.done():
                self._unsent.popleft()
                continue
            # The budget on the wire is what is left when this message leaves: encoding and sending a
            # burst (e.g. the calls held while disconnected) takes time, so read the clock per message.
            now = time.monotonic()
            wire_id, msg = self._wire_message(call, now)
            try:
                data = encode(msg)
            except ProtocolError as exc:
                self._unsent.popleft()
                self._resolve(call, error=ClientError(exc.code.value, str(exc)))
                continue
            try:
                self._sock.send(data, zmq.NOBLOCK)
            except zmq.Again:  # high-water mark reached: wait for POLLOUT
                return
            self._unsent.popleft()
            call.sends += 1
            call.wire_id, call.t_sent = wire_id, now
            call.future.sent_at = now  # latency stages (edge/runtime.py): on the wire
            call.future.wire_id = wire_id
            self._by_id[wire_id] = call
            self._count("sent")

    def _receive(self) -> None:
        while self._sock is not None:
            try:
                frames = self._sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) != 1:
                self._count("malformed_replies")
                continue
            try:
                msg = decode(frames[0], accept=REPLY_KINDS)
            except ProtocolError:
                self._count("malformed_replies")
                continue
            self._silent_timeouts = 0
            self._last_heard = time.monotonic()
            call = self._by_id.pop(msg.id, None) if msg.id is not None else None
            if call is None:
                # A reply to an id that already timed out (or an error without an id):
                # the caller has its answer; never deliver a second one.
                self._count("late_replies" if msg.id is not None else "unmatched_replies")
                deadline = self._expired.pop(msg.id, None) if msg.id is not None else None
                if deadline is not None:
                    what = msg.code.value if isinstance(msg, ErrorReply) else msg.KIND
                    self.late_replies.append((msg.id, what, round(1000 * (time.monotonic() - deadline), 1)))
                continue
            self._on_reply(call, msg)

    def _on_reply(self, call: _Call, msg) -> None:
        if isinstance(msg, ErrorReply):
            if msg.code in (ErrorCode.BUSY, ErrorCode.SHUTTING_DOWN) and msg.retry_after_ms and self.honor_retry_after:
                self._quiet_until = max(self._quiet_until, time.monotonic() + msg.retry_after_ms / 1000)
            self._resolve(call, error=ClientError(msg.code.value, msg.message, retry_after_ms=msg.retry_after_ms,
                                                  from_server=True))
            return
        expected = {"infer": Result, "ping": Pong, "stats": Stats, "hello": Capabilities}[call.kind]
        if not isinstance(msg, expected):
            self._resolve(call, error=ClientError(ErrorCode.BAD_REQUEST.value,
                                                  f"server answered {call.kind} with {msg.KIND}", from_server=True))
            return
        if isinstance(msg, Pong):
            rtt_ms = 1000 * max(0.0, time.monotonic() - msg.t_client_s)
            self.rtt_ms = rtt_ms if self.rtt_ms is None else (1 - RTT_EWMA) * self.rtt_ms + RTT_EWMA * rtt_ms
        self._resolve(call, result=msg)

    def _expire(self, now: float) -> None:
        while self._timers and (self._timers[0][2].future.done() or self._timers[0][0] <= now):
            _, _, call = heapq.heappop(self._timers)
            if call.future.done():
                continue
            if call.wire_id is not None:
                self._by_id.pop(call.wire_id, None)  # a reply after this is late
                self._expired[call.wire_id] = call.deadline
                if len(self._expired) > LATE_REPLIES_KEPT:  # bounded: forget the oldest
                    del self._expired[next(iter(self._expired))]
                if self._last_heard < call.t_sent:  # nothing at all from the server since it left
                    self._silent_timeouts += 1
                err = ClientError(ErrorCode.DEADLINE_EXCEEDED.value, "no reply within the deadline")
            elif self.connected:
                err = ClientError(ErrorCode.DEADLINE_EXCEEDED.value, "deadline passed before it could be sent")
            else:
                err = ClientError(UNAVAILABLE, f"not connected to {self.endpoint} during the whole budget")
            self._resolve(call, error=err)
        if self._silent_timeouts >= SILENT_TIMEOUTS_BEFORE_RESET and self._sock is not None:
            self._reset(f"{self._silent_timeouts} requests in a row got no reply", now)

    def _resolve(self, call: _Call, *, result=None, error: ClientError | None = None) -> None:
        """Deliver exactly once (the only place a Future is completed).

        The future carries two monotonic timestamps for latency accounting:
        ``sent_at`` (the last send on the wire, or absent if never sent) and
        ``resolved_at`` (now: the reply was read, or the call failed).
        """
        if call.future.done():
            return
        call.future.resolved_at = time.monotonic()
        with self._lock:
            self._unresolved -= 1
        if error is not None:
            self._count(f"errors.{error.code}")
            call.future.set_exception(error)
        else:
            self._count("results" if call.kind == "infer" else f"{call.kind}_replies")
            call.future.set_result(result)

    def _shutdown(self) -> None:
        self._take_commands()
        pending = {id(c): c for c in [*self._unsent, *self._by_id.values(), *(t[2] for t in self._timers)]}
        for call in pending.values():
            self._resolve(call, error=ClientError(CLOSED, "client closed before a reply"))
        self._close_socket()
        self._closed = True
