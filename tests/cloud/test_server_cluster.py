"""Broker + workers, and CurveZMQ, with real processes on loopback.

- the broker balances over workers, survives a worker's kill -9 and its own
  kill -9 + restart (workers re-register, the client reconnects);
- an unknown or keyless client gets nothing from a CurveZMQ server, an
  allowed one is served; a worker with an unknown key cannot register;
- the security policy refuses a non-loopback bind without keys.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.helpers.server_double import FakeBackend  # noqa: E402
from tests.helpers.server_harness import procs, request, start_double, time_limit  # noqa: E402,F401

from cloud.server.security import (CurveKeys, create_keypair, is_loopback, load_keypair,  # noqa: E402
                                   plan_security)
from cloud.server.server import Server, ServerOptions  # noqa: E402
from cloud.server.worker import Worker, WorkerCurve  # noqa: E402
from edge.client import Client, ClientError  # noqa: E402
from shared.config import UserError  # noqa: E402


def outcome(fut):
    try:
        return fut.result()
    except ClientError as err:
        return err


def wait_for_text(proc, text: str, count: int = 1, timeout: float = 15.0) -> None:
    t_end = time.monotonic() + timeout
    while proc.text().count(text) < count:
        assert time.monotonic() < t_end, f"{text!r} x{count} not in the log:\n{proc.text()[-3000:]}"
        time.sleep(0.05)


@time_limit(60)
def test_broker_balances_and_survives_worker_and_broker_kill9(procs, tmp_path):
    broker, (client_ep, worker_ep) = start_double(procs, tmp_path, "broker", "--max-delay-ms", "2", ready=False)
    for name in ("w1", "w2"):
        start_double(procs, tmp_path, "worker", "--connect", worker_ep, "--batch-ms", "30", "--max-batch", "2",
                     name=name)
    wait_for_text(broker, "2 worker(s)")
    w1, w2 = procs[1], procs[2]
    with Client(client_ep, max_in_flight=64) as client:
        results = [f.result() for f in [client.submit(request(f"a{i}"), deadline_ms=5000) for i in range(40)]]
        assert [r.answer.split(" heard ")[1] for r in results] == [f"a{i}" for i in range(40)]
        by_worker = Counter(r.answer.split()[0] for r in results)
        assert set(by_worker) == {"w1", "w2"}, by_worker  # both took batches
        assert max(r.batch_size for r in results) == 2  # never above the workers' max batch

        w1.kill9()  # mid-stream: its batches go to w2 (re-queued if w1 had one)
        results = [outcome(f) for f in [client.submit(request(f"b{i}"), deadline_ms=6000) for i in range(20)]]
        assert all(not isinstance(r, ClientError) and r.answer.startswith("w2 heard") for r in results), results

        broker.kill9()
        broker2, _ = start_double(procs, tmp_path, "broker", "--bind", client_ep, "--worker-bind", worker_ep,
                                  name="broker2", ready=False)
        wait_for_text(broker2, "1 worker(s)")  # w2 came back on its own
        # w2 came back either way: the new broker answered its heartbeat with DISCONNECT
        # (re-registering), or, when the broker took longer to start than three heartbeats
        # (a loaded host), w2 gave up on the old one and reconnected on its own.
        assert "re-registering" in w2.text() or "reconnecting in" in w2.text(), w2.text()[-2000:]
        t_end = time.monotonic() + 10
        while True:  # the client notices the lost connection and reconnects by itself
            r = outcome(client.submit(request("c"), deadline_ms=1000))
            if not isinstance(r, ClientError):
                break
            assert r.code in ("unavailable", "deadline_exceeded", "busy"), r
            assert time.monotonic() < t_end, r
        assert r.answer == "w2 heard c"
        assert client.counters.get("resets", 0) >= 1


def _keys(tmp_path: Path):
    create_keypair(tmp_path / "keys", "server")
    for name, allow in (("glasses", "clients"), ("stranger", None), ("worker", "workers"), ("rogue", None)):
        public, _ = create_keypair(tmp_path / "keys", name)
        if allow:
            (tmp_path / allow).mkdir(exist_ok=True)
            (tmp_path / allow / public.name).write_bytes(public.read_bytes())
    return tmp_path / "keys"


@time_limit(30)
def test_curve_refuses_unknown_and_keyless_clients(procs, tmp_path):
    keys = _keys(tmp_path)
    proc, (ep,) = start_double(procs, tmp_path, "serve", "--secret-key", str(keys / "server.key_secret"),
                               "--allowed", str(tmp_path / "clients"), name="curve", ready=False)
    server_key = keys / "server.key"
    with Client(ep, server_public_key=server_key, client_keys=keys / "glasses.key_secret") as good:
        t_end = time.monotonic() + 10
        while not good.connected:
            assert time.monotonic() < t_end
            time.sleep(0.02)
        while not good.ping().ready:
            time.sleep(0.05)
        assert good.submit(request("hello"), deadline_ms=3000).result().answer == "curve heard hello"
        before = good.stats().requests_total

        with Client(ep, server_public_key=server_key, client_keys=keys / "stranger.key_secret") as stranger:
            err = outcome(stranger.submit(request("intruder"), deadline_ms=800))
            assert isinstance(err, ClientError) and err.code == "unavailable" and not stranger.connected
            assert stranger.counters.get("handshake_failures", 0) >= 1
        with Client(ep) as plain:  # no CurveZMQ at all
            err = outcome(plain.submit(request("plain"), deadline_ms=500))
            assert isinstance(err, ClientError) and err.code == "unavailable"

        after = good.stats().requests_total
        assert after == before + 1  # only our own stats request: the others never reached the protocol
    assert "refused CurveZMQ client key" in proc.text()


@time_limit(30)
def test_worker_with_unknown_key_cannot_register(tmp_path):
    keys = _keys(tmp_path)
    server_public, server_secret = load_keypair(keys / "server.key_secret")
    opts = ServerOptions(bind="tcp://127.0.0.1:*", worker_bind="tcp://127.0.0.1:*",
                         worker_keys=CurveKeys(server_public, server_secret, tmp_path / "workers"))
    server = Server(opts)
    loop = threading.Thread(target=server.run, daemon=True)
    loop.start()
    workers = []
    try:
        for name in ("rogue", "worker"):
            public, secret = load_keypair(keys / f"{name}.key_secret")
            w = Worker(server.worker_endpoint, lambda n=name: FakeBackend(name=n), name=name,
                       curve=WorkerCurve(server_public, public, secret))
            workers.append(w)
            threading.Thread(target=w.run, daemon=True).start()
        t_end = time.monotonic() + 10
        while not server.pool.workers:
            assert time.monotonic() < t_end
            time.sleep(0.05)
        time.sleep(0.3)
        assert [w.name for w in server.pool.workers.values()] == ["worker"]
    finally:
        for w in workers:
            w.stop()
        server.stop()
        loop.join(timeout=10)
        server.close()


def test_security_policy(caplog):
    assert is_loopback("tcp://127.0.0.1:5555") and is_loopback("tcp://localhost:*") and is_loopback("tcp://[::1]:1")
    assert is_loopback("ipc:///tmp/x") and is_loopback("inproc://x")
    for ep in ("tcp://*:5555", "tcp://0.0.0.0:5555", "tcp://10.0.0.2:5555", "tcp://eth0:5555", "tcp://cloud:1"):
        assert not is_loopback(ep), ep
    with pytest.raises(UserError, match="refusing to bind tcp://0.0.0.0:5555"):
        plan_security("tcp://0.0.0.0:5555", None, None, insecure=False)
    with caplog.at_level(logging.WARNING):
        assert plan_security("tcp://127.0.0.1:5555", None, None, insecure=False) is None
        assert "loopback WITHOUT CurveZMQ" in caplog.text
        assert plan_security("tcp://*:5555", None, None, insecure=True) is None
        assert "WITHOUT CurveZMQ because insecure=true" in caplog.text
    with pytest.raises(UserError, match="both"):
        plan_security("tcp://*:5555", "x.key_secret", None, insecure=False)


@time_limit(30)
def test_silent_worker_expires_and_its_batch_is_requeued(tmp_path):
    """A worker that takes a batch and goes silent (hung host) is expired after
    3 missed heartbeats; its requests go to a live worker within their deadline."""
    import zmq

    from cloud.server import worker_protocol as wp

    server = Server(ServerOptions(bind="tcp://127.0.0.1:*", worker_bind="tcp://127.0.0.1:*", max_queue_delay_ms=0))
    loop = threading.Thread(target=server.run, daemon=True)
    loop.start()
    ctx = zmq.Context()
    hung = ctx.socket(zmq.DEALER)
    hung.linger = 0
    live = None
    try:
        hung.connect(server.worker_endpoint)
        hung.send_multipart([wp.HEADER, wp.READY, wp.pack({"name": "hung", "model_id": "m", "max_batch_size": 4})])
        with Client(server.endpoint) as client:
            while not client.ping().ready:
                time.sleep(0.02)
            fut = client.submit(request("stuck"), deadline_ms=8000)
            t_end = time.monotonic() + 5
            while True:  # the hung worker gets the batch, then never answers or heartbeats
                assert hung.poll(int(1000 * (t_end - time.monotonic()))), "no batch for the hung worker"
                frames = hung.recv_multipart()
                if frames[1] == wp.REQUEST:
                    break
            t_hung = time.monotonic()
            live = Worker(server.worker_endpoint, lambda: FakeBackend(name="live"), name="live")
            threading.Thread(target=live.run, daemon=True).start()
            result = fut.result()
            waited = time.monotonic() - t_hung
        assert result.answer == "live heard stuck"
        assert 2.0 < waited < 6.0, waited  # liveness 3 x 1 s heartbeat, then re-queued at the front
        assert server.pool.counters.expired == 1
    finally:
        if live is not None:
            live.stop()
        hung.close()
        ctx.term()
        server.stop()
        loop.join(timeout=10)
        server.close()


@pytest.mark.slow  # server processes
@time_limit(60)
def test_worker_killed_mid_batch_is_noticed_at_once_and_its_batch_requeued(procs, tmp_path):
    """kill -9 closes the worker's connection; the broker's socket monitor sees it and a probe
    fails at once (ROUTER_MANDATORY), so the batch goes to another worker long before three
    missed heartbeats (~3 s, more than this request's whole budget)."""
    broker, (client_ep, worker_ep) = start_double(procs, tmp_path, "broker", "--max-delay-ms", "0", ready=False)
    start_double(procs, tmp_path, "worker", "--connect", worker_ep, "--batch-ms", "5000", name="slow")
    wait_for_text(broker, "1 worker(s)")
    start_double(procs, tmp_path, "worker", "--connect", worker_ep, "--batch-ms", "50", name="fast")
    wait_for_text(broker, "2 worker(s)")
    slow = procs[1]
    with Client(client_ep) as client:
        while not client.ping().ready:
            time.sleep(0.02)
        fut = client.submit(request("rescued"), deadline_ms=2500)  # the longest-idle worker, "slow", takes it
        time.sleep(0.3)
        t_kill = time.monotonic()
        slow.kill9()
        result = fut.result()
        waited = time.monotonic() - t_kill
    assert result.answer == "fast heard rescued"
    assert waited < 1.0, waited
    assert "connection gone" in broker.text() and "re-queued 1 request(s)" in broker.text()


@pytest.mark.slow  # server processes
@time_limit(30)
def test_closed_worker_connection_is_noticed_without_waiting_for_a_heartbeat(tmp_path):
    """The monitor path alone: heartbeats 30 s apart, a worker takes a batch and its socket closes
    (what the kernel does for a killed process); the batch reaches the live worker at once."""
    import zmq

    from cloud.server import worker_protocol as wp

    server = Server(ServerOptions(bind="tcp://127.0.0.1:*", worker_bind="tcp://127.0.0.1:*", max_queue_delay_ms=0))
    server.pool.interval_s = 30.0  # expiry and the next heartbeat probe are far away
    server.pool.next_heartbeat = time.monotonic() + 30.0
    loop = threading.Thread(target=server.run, daemon=True)
    loop.start()
    ctx = zmq.Context()
    doomed = ctx.socket(zmq.DEALER)
    doomed.linger = 0
    live = None
    try:
        doomed.connect(server.worker_endpoint)
        doomed.send_multipart([wp.HEADER, wp.READY, wp.pack({"name": "doomed", "model_id": "m", "max_batch_size": 4})])
        with Client(server.endpoint) as client:
            while not client.ping().ready:
                time.sleep(0.02)
            live = Worker(server.worker_endpoint, lambda: FakeBackend(name="live", batch_ms=20), name="live",
                          heartbeat_interval_ms=30_000)
            threading.Thread(target=live.run, daemon=True).start()
            while len(server.pool.workers) < 2:
                time.sleep(0.02)
            fut = client.submit(request("orphan"), deadline_ms=5000)  # "doomed" is the longest idle
            assert doomed.poll(3000) and doomed.recv_multipart()[1] == wp.REQUEST
            t_close = time.monotonic()
            doomed.close()
            result = fut.result()
            waited = time.monotonic() - t_close
        assert result.answer == "live heard orphan"
        assert waited < 0.5, waited
    finally:
        if live is not None:
            live.stop()
        ctx.term()
        server.stop()
        loop.join(timeout=10)
        server.close()
