"""The offload client (edge/client.py): ids, deadlines, in-flight bound, at-most-once,
back-off on busy, Lazy Pirate resets, and kill -9 + restart of a real server process.

Most tests script the server side with a bare ROUTER in a thread, so each
behaviour is provoked exactly; the last one uses a real server process.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter

import pytest
import zmq

from tests.helpers.server_harness import request, start_double, time_limit

from edge.client import TOO_MANY_IN_FLIGHT, UNAVAILABLE, VERDICT_MARGIN_MS, Client, ClientError
from shared.protocol import ErrorCode, ErrorReply, InferRequest, Ping, Pong, Result, decode, encode


def outcome(fut):
    try:
        return fut.result()
    except ClientError as err:
        return err


class ScriptedServer:
    """A ROUTER in a thread; ``policy(msg) -> list of (delay_s, reply or raw frames)``."""

    def __init__(self, policy, endpoint: str = "tcp://127.0.0.1:*") -> None:
        self.policy = policy
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.linger = 0
        self.sock.bind(endpoint)
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.received: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pending: list[tuple[float, bytes, object]] = []
        while not self._stop.is_set():
            if self.sock.poll(5):
                rid, data = self.sock.recv_multipart()
                msg = decode(data)
                self.received.append(msg)
                for delay, reply in self.policy(msg):
                    pending.append((time.monotonic() + delay, rid, reply))
            now = time.monotonic()
            for item in [p for p in pending if p[0] <= now]:
                pending.remove(item)
                _, rid, reply = item
                frames = reply if isinstance(reply, list) else [encode(reply)]
                self.sock.send_multipart([rid, *frames])

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()
        self.ctx.term()


def result_for(msg: InferRequest) -> Result:
    return Result(id=msg.id, model_id="scripted", batch_size=1, answer=f"re {msg.trigger_label}", tags={},
                  timing_ms={"total_ms": 1.0})


def answer_all(msg):
    if isinstance(msg, Ping):
        return [(0, Pong.reply_to(msg, ready=True, queue_depth=0, queue_capacity=1))]
    return [(0, result_for(msg))]


@pytest.fixture
def scripted():
    servers = []

    def make(policy):
        servers.append(ScriptedServer(policy))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


@time_limit(20)
def test_ids_unique_budget_on_the_wire_and_late_replies_dropped(scripted):
    server = scripted(lambda m: [(0.3 if m.trigger_label == "slow" else 0, result_for(m))]
                      if isinstance(m, InferRequest) else answer_all(m))
    with Client(server.endpoint) as client:
        client.ping()
        assert client.rtt_ms is not None and client.rtt_ms < 100
        slow = client.submit(request("slow"), deadline_ms=100)
        fast = [client.submit(request(f"f{i}"), deadline_ms=2000) for i in range(5)]
        err = outcome(slow)
        assert isinstance(err, ClientError) and err.code == "deadline_exceeded" and not err.from_server
        assert [f.result().answer for f in fast] == [f"re f{i}" for i in range(5)]
        time.sleep(0.4)  # the slow reply arrives now: dropped, counted, never delivered
        assert client.counters["late_replies"] == 1
        assert isinstance(slow.exception(), ClientError)
        # ... and remembered: which call it answered, what it was, how long after the caller's deadline
        [(wire_id, kind, ms_late)] = list(client.late_replies)
        assert wire_id == slow.wire_id and kind == "result"
        assert 100 <= ms_late <= 400  # sent 300 ms after a 100 ms deadline
    ids = [m.id for m in server.received]
    assert len(ids) == len(set(ids)) and ids == sorted(ids)  # never reused
    infers = [m for m in server.received if isinstance(m, InferRequest)]
    assert all(1 <= m.deadline_ms <= 2000 for m in infers)
    # the remaining budget minus a round trip and the verdict margin: the server's answer
    # (or its deadline_exceeded) must be able to travel back before the caller's timer
    assert infers[0].deadline_ms <= 100 - VERDICT_MARGIN_MS
    assert all(m.deadline_ms <= 2000 - VERDICT_MARGIN_MS for m in infers[1:])


@time_limit(20)
def test_budget_on_the_wire_is_what_is_left_when_each_message_leaves(scripted, monkeypatch):
    """A burst (e.g. calls held while reconnecting) takes time to encode and send: each
    message's budget is read off the clock as it leaves, not when the burst began."""
    import edge.client as client_module

    real_encode = client_module.encode

    def slow_encode(msg):  # a large request takes a while to encode
        time.sleep(0.03)
        return real_encode(msg)

    server = scripted(answer_all)
    with Client(server.endpoint, max_in_flight=16) as client:
        client.ping()
        monkeypatch.setattr(client_module, "encode", slow_encode)
        futs = [client.submit(request(f"b{i}"), deadline_ms=2000) for i in range(5)]
        assert all(isinstance(f.result(), Result) for f in futs)
    budgets = [m.deadline_ms for m in server.received if isinstance(m, InferRequest)]
    assert len(budgets) == 5
    assert all(a - b >= 20 for a, b in zip(budgets, budgets[1:])), budgets


@time_limit(20)
def test_in_flight_bound_and_each_future_resolved_once(scripted):
    server = scripted(lambda m: [])  # never answers
    with Client(server.endpoint, max_in_flight=3) as client:
        calls = Counter()
        futs = [client.submit(request(f"r{i}"), deadline_ms=200, callback=lambda f, i=i: calls.update([i]))
                for i in range(4)]
        assert isinstance(futs[3].exception(timeout=0.05), ClientError)
        assert futs[3].exception().code == TOO_MANY_IN_FLIGHT
        assert all(outcome(f).code == "deadline_exceeded" for f in futs[:3])
        assert client.in_flight == 0
        time.sleep(0.05)
        assert calls == Counter({0: 1, 1: 1, 2: 1, 3: 1})  # callbacks: exactly once each
        assert isinstance(client.submit(request("again"), deadline_ms=100).exception(timeout=1), ClientError)


@time_limit(20)
def test_busy_with_retry_after_backs_off_locally(scripted):
    def policy(m):
        if isinstance(m, InferRequest):
            return [(0, ErrorReply(id=m.id, code=ErrorCode.BUSY, message="queue full", retry_after_ms=300))]
        return answer_all(m)

    server = scripted(policy)
    with Client(server.endpoint) as client:
        client.ping()
        first = outcome(client.submit(request("a")))
        assert first.code == "busy" and first.retry_after_ms == 300 and first.from_server
        second = outcome(client.submit(request("b")))
        assert second.code == "busy" and not second.from_server  # failed locally, not sent
        assert sum(isinstance(m, InferRequest) for m in server.received) == 1
        time.sleep(0.35)
        assert outcome(client.submit(request("c"))).from_server  # sent again after the pause


@time_limit(20)
def test_garbage_and_multi_frame_replies_are_dropped(scripted):
    def policy(m):
        if isinstance(m, InferRequest):
            return [(0, [b"not msgpack"]), (0, [encode(result_for(m)), b"extra"]), (0.05, result_for(m))]
        return answer_all(m)

    server = scripted(policy)
    with Client(server.endpoint) as client:
        assert client.submit(request("x"), deadline_ms=2000).result().answer == "re x"
        assert client.counters["malformed_replies"] == 2


@time_limit(20)
def test_no_server_means_unavailable_by_the_deadline():
    import socket

    with socket.socket() as s:  # a free port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Client(f"tcp://127.0.0.1:{port}") as client:
        t0 = time.monotonic()
        err = outcome(client.submit(request("x"), deadline_ms=300))
        assert err.code == UNAVAILABLE and 0.25 < time.monotonic() - t0 < 1.0


@time_limit(30)
def test_silent_server_triggers_a_lazy_pirate_reset(scripted):
    state = {"answer": False}
    server = scripted(lambda m: answer_all(m) if state["answer"] else [])
    with Client(server.endpoint, max_in_flight=16) as client:
        errs = [outcome(client.submit(request(f"s{i}"), deadline_ms=150)) for i in range(3)]
        assert all(e.code == "deadline_exceeded" for e in errs)
        time.sleep(0.05)
        assert client.counters.get("resets", 0) == 1  # 3 silent timeouts in a row: new socket
        state["answer"] = True
        assert client.submit(request("back"), deadline_ms=3000).result().answer == "re back"


@time_limit(50)
def test_kill9_and_restart_every_request_answered_once_or_failed(procs, tmp_path):
    """A stream of requests through kill -9 and restart of the server process."""
    server, (ep,) = start_double(procs, tmp_path, "serve", "--batch-ms", "10", name="first")
    resolved = Counter()
    by_server = Counter()
    futs = []

    def on_done(fut, i):
        resolved.update([i])
        if fut.exception() is None:
            by_server.update([fut.result().answer.split()[0]])

    with Client(ep, max_in_flight=256) as client:
        t0 = time.monotonic()
        restarted = None
        i = 0
        # Stream until the restarted server has answered 20 (however long it takes
        # to start on a busy machine), within the test's guard.
        while restarted is None or by_server["second"] < 20:
            elapsed = time.monotonic() - t0
            assert elapsed < 30, by_server
            if elapsed > 1.0 and server.alive() and restarted is None:
                server.kill9()
            if elapsed > 1.6 and restarted is None:
                restarted, _ = start_double(procs, tmp_path, "serve", "--bind", ep, "--batch-ms", "10",
                                            name="second", ready=False)
            futs.append(client.submit(request(f"k{i}"), deadline_ms=400, callback=lambda f, i=i: on_done(f, i)))
            i += 1
            time.sleep(0.02)
        outcomes = [outcome(f) for f in futs]
        time.sleep(0.1)
        counters = client.counters
    assert all(f.done() for f in futs)
    assert set(resolved.values()) == {1} and len(resolved) == len(futs)  # each exactly once
    kinds = Counter(o.code if isinstance(o, ClientError) else o.answer.split()[0] for o in outcomes)
    assert set(kinds) <= {"first", "second", "unavailable", "deadline_exceeded", "busy"}, kinds
    assert kinds["first"] >= 20 and kinds["second"] >= 20, kinds  # served before the kill and after the restart
    for k, o in enumerate(outcomes):  # nobody got someone else's answer
        if not isinstance(o, ClientError):
            assert o.answer.endswith(f"heard k{k}")
    assert counters["resets"] >= 1 and counters["connects"] >= 2
    assert counters["results"] + sum(v for k, v in counters.items() if k.startswith("errors.")) == len(futs)


@pytest.mark.slow  # server processes
@time_limit(60)
def test_requests_made_while_disconnected_never_reach_a_restarted_server(procs, tmp_path):
    """docs/protocol.md 9, "Reconnects and stale requests": with IMMEDIATE (this client) a request
    made while the server is down fails at once and is never delivered later; a DEALER without
    IMMEDIATE queues it and the restarted server computes it seconds after the caller gave up."""
    computed = tmp_path / "computed.txt"
    server, (ep,) = start_double(procs, tmp_path, "serve", "--batch-ms", "10", "--computed", str(computed),
                                 name="first")
    ctx = zmq.Context()
    careless = ctx.socket(zmq.DEALER)  # no IMMEDIATE: what the spec forbids
    careless.linger = 0
    careless.connect(ep)
    try:
        with Client(ep) as client:
            assert client.submit(request("before"), deadline_ms=3000).result().answer == "first heard before"
            server.kill9()
            t_end = time.monotonic() + 10
            while client.connected:
                assert time.monotonic() < t_end
                time.sleep(0.02)
            t0 = time.monotonic()
            err = outcome(client.submit(request("stale-immediate"), deadline_ms=1000))
            assert isinstance(err, ClientError) and err.code in (UNAVAILABLE, "deadline_exceeded")
            careless.send(encode(dataclasses.replace(request("stale-careless"), id=77, deadline_ms=1000)),
                          zmq.NOBLOCK)  # queued in the socket: no IMMEDIATE
            time.sleep(max(0.0, 1.5 - (time.monotonic() - t0)))  # both callers' budgets are long gone
            second, _ = start_double(procs, tmp_path, "serve", "--bind", ep, "--batch-ms", "10",
                                     "--computed", str(computed), name="second")
            assert careless.poll(10_000), "the queued request was delivered after the restart"
            stale = decode(careless.recv())
            assert stale.id == 77 and stale.answer == "second heard stale-careless"  # computed, seconds late
            while not client.connected:
                time.sleep(0.02)
            assert client.submit(request("after"), deadline_ms=3000).result().answer == "second heard after"
    finally:
        careless.close()
        ctx.term()
    labels = computed.read_text().split()
    assert "stale-immediate" not in labels and labels.count("stale-careless") == 1, labels


@pytest.mark.slow  # server processes
@time_limit(40)
def test_hello_returns_the_model_input_contract_through_a_broker(procs, tmp_path):
    broker, (client_ep, worker_ep) = start_double(procs, tmp_path, "broker", ready=False)
    with Client(client_ep) as client:
        before = client.hello()
        assert not before.ready and before.input is None and before.tags == ()  # no worker yet
        assert "timer_beep" in before.labels["audio_event"] and before.versions == (1,)
        start_double(procs, tmp_path, "worker", "--connect", worker_ep, name="w1")
        t_end = time.monotonic() + 30
        while not client.ping().ready:
            assert time.monotonic() < t_end
            time.sleep(0.05)
        caps = client.hello()
    assert caps.ready and caps.model_id == "fake-w1"
    assert (caps.input.audio_s, caps.input.frame_hz, caps.input.frames, caps.input.frame_size_px) == (2.0, 4.0, 8, 16)
    assert caps.tags == ("timer_beep",) and caps.answers[0].kind == "summary"
    assert set(caps.kinds) == {"hello", "infer", "ping", "stats_request"}
