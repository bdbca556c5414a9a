#!/usr/bin/env python
"""Reliability of the reasoning server, measured from outside: fuzz, soak, chaos.

    python scripts/bench_reliability.py --checkpoint runs/teacher/model    # ~13 min: the full figures
    python scripts/bench_reliability.py --run runs/demo --quick             # ~2 min smoke run

Four parts, each against real processes (``earshot serve``, ``earshot worker``):

1. **Fuzz**: ``--messages`` (100,000) messages on a raw DEALER: random bytes,
   truncated, bit-flipped, spliced and re-typed valid messages, huge length
   headers, deep nesting, ext types, NaN, invalid UTF-8, unknown versions and
   kinds, multi-frame and empty messages, JPEGs without a frame header or with
   a 8192 x 8192 one, out-of-range times, and (on a second socket) frames above
   ZMQ_MAXMSGSIZE, with a valid ``infer`` or ``ping`` every ``--valid-every``.
   Pass: the server never dies, every message but the oversize frames gets
   exactly one reply, every valid request gets the right reply, RSS bounded.
2. **Soak**: Poisson load at ``--overload`` (2) x the measured capacity for
   ``--soak-s`` (600) seconds through the edge client. Pass: requests shed
   without work (``busy``, or ``deadline_exceeded`` refused at once because
   the queue cannot make the budget) answered within 10 ms (p99), admitted
   requests answered within their deadline, RSS flat (last minute vs first).
3. **Chaos**: ``earshot serve mode=broker`` with two ``earshot worker``s at
   0.7 x capacity; kill -9 a worker, restart it; kill -9 the broker, restart
   it on the same address. Pass: no request silently lost: each gets a result
   or an error the client sees (a server error, or the client's notice that
   the connection dropped), never only its own timer while the server stays
   silent.

4. **Burst**: ``--burst`` (1,000) requests submitted at once through one edge
   client to a freshly started ``earshot serve`` (as after a restart, when
   the calls a client held while reconnecting leave together), budget
   ``--burst-deadline-ms`` (300), ``--burst-reps`` times. The requests wait
   in transport queues; the figure is how many verdicts reach the client
   after its own timer, and how late. Pass: none silently lost.

Prints each part's table and writes ``--json``.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import msgpack
import numpy as np
import zmq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_server import make_request  # noqa: E402

from edge.client import Client, ClientError  # noqa: E402
from shared.protocol import (MAX_MESSAGE_BYTES, ErrorReply, Ping, Pong, Result, decode, encode)  # noqa: E402

EARSHOT = Path(sys.executable).parent / "earshot"
VALID_ID_BASE = 10**12      # ids of valid requests; hostile ones use small ids
BUSY_TARGET_MS = 10.0


# --- processes --------------------------------------------------------------------------------


class Proc:
    def __init__(self, argv: list[str], log: Path, cwd: Path) -> None:
        self.log = log
        self.popen = subprocess.Popen(argv, stdout=open(log, "a"), stderr=subprocess.STDOUT, cwd=cwd)
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def kill9(self) -> None:
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
            self.popen.wait()

    def stop(self) -> None:
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill9()


def serve(workdir: Path, name: str, *args: str) -> tuple[Proc, list[str]]:
    ep = workdir / f"{name}.endpoint"
    ep.unlink(missing_ok=True)
    proc = Proc([str(EARSHOT), "serve", f"endpoint_file={ep}", f"hydra.run.dir={workdir / 'hydra' / name}", *args],
                workdir / f"{name}.log", workdir)
    t_end = time.monotonic() + 120
    while not (ep.exists() and ep.read_text().strip()):
        if not proc.alive() or time.monotonic() > t_end:
            raise SystemExit(f"earshot serve ({name}) did not start; see {proc.log}")
        time.sleep(0.05)
    return proc, ep.read_text().split()


def worker(workdir: Path, name: str, connect: str, checkpoint: Path, threads: int) -> Proc:
    return Proc([str(EARSHOT), "worker", f"connect={connect}", f"checkpoint={checkpoint}", f"name={name}",
                 f"threads={threads}", f"hydra.run.dir={workdir / 'hydra' / name}"], workdir / f"{name}.log", workdir)


def wait_ready(endpoint: str, proc: Proc, timeout_s: float = 180.0) -> None:
    """Ping until ready; fail at once (with the log's last lines) if ``proc`` exits."""
    with Client(endpoint) as client:
        t_end = time.monotonic() + timeout_s
        while time.monotonic() < t_end and proc.alive():
            try:
                if client.ping().ready:
                    return
            except ClientError:
                pass
            time.sleep(0.2)
    tail = proc.log.read_text(errors="replace").strip().splitlines()[-3:]
    raise SystemExit(f"{endpoint} {'exited' if not proc.alive() else f'not ready in {timeout_s} s'}: "
                     + " / ".join(tail))


# --- 1. fuzz ------------------------------------------------------------------------------------


def _pack(obj) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


class Mutator:
    """Hostile messages from valid ones (seeded); each returns (frames, expects_a_reply)."""

    def __init__(self, seed: int, valid_infer: bytes, valid_ping: bytes) -> None:
        self.rng = random.Random(seed)
        self.infer, self.ping = valid_infer, valid_ping
        self.infer_map = msgpack.unpackb(valid_infer, raw=False)

    def __call__(self, i: int) -> tuple[list[bytes], bool]:
        rng, rid = self.rng, i % 1_000_000
        base = self.rng.choice([self.infer, self.ping])
        kind = rng.randrange(18)
        if kind == 0:
            return [rng.randbytes(rng.randrange(0, 400))], True
        if kind == 1:
            return [base[: rng.randrange(1, len(base))]], True
        if kind == 2:
            data = bytearray(base)
            for _ in range(rng.randrange(1, 8)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            return [bytes(data)], True
        if kind == 3:
            data = bytearray(base)
            at = rng.randrange(len(data))
            if rng.random() < 0.5:
                del data[at:at + rng.randrange(1, 16)]
            else:
                data[at:at] = rng.randbytes(rng.randrange(1, 16))
            return [bytes(data)], True
        if kind == 4:
            head = rng.choice([b"\xc6\xff\xff\xff\xff", b"\xdb\xff\xff\xff\xff", b"\xdd\xff\xff\xff\xff",
                               b"\xdf\xff\xff\xff\xff"])
            return [b"\x84\xa1v\x01\xa4kind\xa5infer\xa2id" + bytes([rid % 100]) + b"\xa1x" + head], True
        if kind == 5:
            return [b"\x91" * rng.randrange(9, 5000) + b"\xc0"], True
        if kind == 6:
            field, value = rng.choice([("deadline_ms", 60001), ("deadline_ms", "soon"), ("frames", {"a": 1}),
                                       ("trigger_score", float("nan")), ("student_scores", [1, 2]), ("audio", 7),
                                       ("query", b"bytes"), ("student_confidence", None), ("deadline_ms", -5),
                                       ("query_t_s", 1e300), ("trigger_label", "")])
            return [_pack({**self.infer_map, "id": rid, field: value})], True
        if kind == 7:
            audio = {**self.infer_map["audio"], "start_s": rng.choice([1e300, -1.0, float("inf"), 2e10])}
            return [_pack({**self.infer_map, "id": rid, "audio": audio})], True
        if kind == 8:
            jpeg = rng.choice([bytes.fromhex("ffd8ffe000104a46494600ffd9"),
                               bytes.fromhex("ffd8ffc0000b082000200001011100ffd9"), b"\xff\xd8" + rng.randbytes(50)])
            frames = [{**self.infer_map["frames"][0], "jpeg": jpeg}]
            return [_pack({**self.infer_map, "id": rid, "frames": frames})], True
        if kind == 9:
            return [_pack({"v": rng.choice([0, 2, 99]), "kind": "infer", "id": rid})], True
        if kind == 10:
            return [_pack({"v": 1, "kind": rng.choice(["cancel", "result", "pong", "stats", "capabilities"]),
                           "id": rid})], True
        if kind == 11:
            return [b"\x83\xa1v\x01\xa4kind\xa4ping\xa2id" + bytes([rid % 100]) + b"\xa1x\xd4\x01\x00"], True
        if kind == 12:
            return [self.ping, self.ping], True  # two payload frames: one bad_request
        if kind == 13:
            return [b""], True
        if kind == 14:
            frames = [self.infer_map["frames"][0]] * 65
            return [_pack({**self.infer_map, "id": rid, "frames": frames})], True
        if kind == 15:
            return [b"\x82\xa1v\x01\xa1x\xa3" + rng.randbytes(3)], True  # often invalid UTF-8
        if kind == 16:
            return [_pack({**self.infer_map, "id": rid, "frames": [], "audio": None})], True
        # splice: the head of one valid message and the tail of the other
        a, b = self.infer, self.ping
        return [a[: rng.randrange(1, len(a))] + b[rng.randrange(len(b)):]], True


def fuzz(endpoint: str, server: Proc, n_messages: int, valid_every: int, seed: int) -> dict:
    from rich.progress import Progress

    req = make_request(seed)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.sndhwm = sock.rcvhwm = 100_000
    sock.connect(endpoint)
    big = ctx.socket(zmq.DEALER)
    big.linger = 0
    big.connect(endpoint)
    import dataclasses

    mut = Mutator(seed, encode(dataclasses.replace(req, id=1)), encode(Ping(id=2, t_client_s=1.0)))
    sent_expecting = 0
    replies = 0
    valid: dict[int, str] = {}
    valid_ok: set[int] = set()
    wrong: list[str] = []
    reply_kinds: Counter = Counter()
    rss: list[tuple[int, float]] = [(0, server.rss_mb())]
    in_flight_infers = 0
    oversize = 0

    def drain(timeout_ms: int = 0) -> None:
        nonlocal replies, in_flight_infers
        while sock.poll(timeout_ms):
            timeout_ms = 0
            frames = sock.recv_multipart()
            replies += 1
            msg = decode(frames[0])  # the server only sends valid messages
            reply_kinds[msg.code.value if isinstance(msg, ErrorReply) else msg.KIND] += 1
            if msg.id is not None and msg.id >= VALID_ID_BASE:
                expected = valid.get(msg.id)
                if expected == "infer":
                    in_flight_infers -= 1
                ok = (expected == "infer" and isinstance(msg, Result) and msg.tags) or \
                     (expected == "ping" and isinstance(msg, Pong))
                (valid_ok.add(msg.id) if ok else wrong.append(f"{msg.id}: {msg}"[:200]))

    t0 = time.monotonic()
    with Progress() as progress:
        task = progress.add_task(f"fuzz: {n_messages:,} messages", total=n_messages)
        for i in range(n_messages):
            if i % valid_every == 0:
                rid = VALID_ID_BASE + i
                if (i // valid_every) % 2 == 0:
                    while in_flight_infers >= 4:  # never more than the model can take: no busy for valid ones
                        drain(50)
                    sock.send(encode(dataclasses.replace(req, id=rid, deadline_ms=30_000)))
                    valid[rid] = "infer"
                    in_flight_infers += 1
                else:
                    sock.send(encode(Ping(id=rid, t_client_s=float(i))))
                    valid[rid] = "ping"
                sent_expecting += 1
            else:
                frames, expects = mut(i)
                sock.send_multipart(frames)
                sent_expecting += expects
            if i % 5000 == 0 and i:
                big.send(b"\x81\xa1x\xc6" + (MAX_MESSAGE_BYTES + 10).to_bytes(4, "big") + bytes(MAX_MESSAGE_BYTES + 10))
                oversize += 1
                rss.append((i, server.rss_mb()))
            while sent_expecting - replies > 2000:  # stay far below the server's high-water marks
                drain(20)
            drain()
            if i % 1000 == 0:
                progress.update(task, completed=i)
                if not server.alive():
                    break
        t_end = time.monotonic() + 60
        while replies < sent_expecting and time.monotonic() < t_end and server.alive():
            drain(200)
        progress.update(task, completed=n_messages)
    wall = time.monotonic() - t0
    rss.append((n_messages, server.rss_mb() if server.alive() else float("nan")))
    sock.close()
    big.close()
    ctx.term()
    warm = [r for _, r in rss[1:]] or [rss[0][1]]
    return {"messages": n_messages, "valid_requests": len(valid), "valid_answered_right": len(valid_ok),
            "valid_wrong": wrong[:5], "expected_replies": sent_expecting, "replies": replies, "oversize_frames": oversize,
            "server_alive": server.alive(), "reply_kinds": dict(reply_kinds), "wall_s": wall,
            "rss_mb": {"start": rss[0][1], "min_after_warmup": min(warm), "max": max(r for _, r in rss),
                       "end": rss[-1][1]}, "rss_trace": rss}


# --- load helpers ---------------------------------------------------------------------------------


def capacity(endpoint: str, req, seconds: float) -> float:
    """Closed-loop throughput with 2 x the default max batch outstanding (req/s)."""
    with Client(endpoint, max_in_flight=64, honor_retry_after=False) as client:
        done = [0]
        sem = threading.Semaphore(18)

        def on_done(f):
            if f.exception() is None:
                done[0] += 1
            sem.release()

        t_end = time.monotonic() + seconds
        t0 = time.monotonic()
        while time.monotonic() < t_end:
            if sem.acquire(timeout=0.1):
                client.submit(req, deadline_ms=30_000, callback=on_done)
        for _ in range(18):
            sem.acquire(timeout=35)
        return done[0] / (time.monotonic() - t0)


class Load:
    """Poisson arrivals through one edge client; every outcome is classified as it resolves."""

    def __init__(self, endpoint: str, req, rate_rps: float, deadline_ms: int, seed: int) -> None:
        self.client = Client(endpoint, max_in_flight=100_000, honor_retry_after=False, default_deadline_ms=deadline_ms)
        self.req, self.rate, self.deadline_ms = req, rate_rps, deadline_ms
        self.rng = np.random.default_rng(seed)
        self.lock = threading.Lock()
        self.outcomes: Counter = Counter()
        self.busy_ms: list[float] = []
        self.result_ms: list[float] = []
        self.submitted = 0
        # Only the requests still in flight are kept: holding every finished future (~350k in a
        # 10-minute soak) stalled this process and showed up as silent timeouts and a slow busy
        # p99 (docs/serving.md, section 8).
        self.pending: set = set()
        self.t_start = time.monotonic()
        self.silent_ids: dict[int, float] = {}  # wire id -> submit time (s) of each client timeout
        # Timeouts whose reply came after all (set by close()): (wire id, reply kind or code, ms late).
        self.late: list[tuple[int, str, float]] = []

    def _done(self, fut, t0: float) -> None:
        ms = 1e3 * (time.monotonic() - t0)
        with self.lock:
            self.pending.discard(fut)
            err = fut.exception()
            if err is None:  # the client delivers a result only before its own timer
                self.outcomes["result"] += 1
                self.result_ms.append(ms)
            elif err.from_server:
                key = err.code
                if err.code == "deadline_exceeded":  # refused on arrival, shed later in the queue, or expired
                    key = ("refused_at_once" if "expected wait" in err.message else
                           "shed_at_dispatch" if "refused without computing" in err.message else "expired_on_server")
                self.outcomes[key] += 1
                if key in ("busy", "refused_at_once"):  # shed without work: should come back at once
                    self.busy_ms.append(ms)
            elif err.code == "deadline_exceeded" and "no reply" in err.message:
                self.outcomes["silent_client_timeout"] += 1  # sent, and no word from the server in time
                self.silent_ids[getattr(fut, "wire_id", -1)] = round(t0 - self.t_start, 2)
            else:
                self.outcomes[f"client_{err.code}"] += 1  # e.g. unavailable: the client saw the connection drop

    def run(self, seconds: float, on_tick=None) -> None:
        t_start = self.t_start = time.monotonic()
        t_next = t_start
        while True:
            now = time.monotonic()
            if now - t_start >= seconds:
                break
            if on_tick:
                on_tick(now - t_start)
            if now < t_next:
                time.sleep(min(t_next - now, 0.05))
                continue
            t_next += self.rng.exponential(1 / self.rate)
            self.submit_one()

    def submit_one(self) -> None:
        t0 = time.monotonic()
        self.submitted += 1
        fut = self.client.submit(self.req, callback=lambda f, t0=t0: self._done(f, t0))
        with self.lock:
            if not fut.done():
                self.pending.add(fut)

    def close(self) -> None:
        with self.lock:
            left = list(self.pending)
        for f in left:
            try:
                f.result(timeout=self.deadline_ms / 1000 + 10)
            except Exception:
                pass
        time.sleep(1.0)  # a verdict that missed the client's timer may still arrive: late, not lost
        with self.lock:
            self.late = [(i, what, ms) for i, what, ms in list(self.client.late_replies) if i in self.silent_ids]
        self.client.close()

    def timeouts(self) -> dict:
        """The client timeouts split: the server's verdict came late, or never (silently lost)."""
        late_ids = {i for i, _, _ in self.late}
        ms = [m for _, _, m in self.late]
        return {"client_timeouts": len(self.silent_ids), "late_verdicts": len(self.late),
                "late_verdict_kinds": dict(Counter(w for _, w, _ in self.late)),
                "late_ms_p50": pct(ms, 50), "late_ms_max": max(ms) if ms else None,
                "late_at_s": sorted(self.silent_ids[i] for i in late_ids),
                "silently_lost": len(self.silent_ids) - len(late_ids),
                "lost_at_s": sorted(t for i, t in self.silent_ids.items() if i not in late_ids)}


def _times(ts: list[float], most: int = 12) -> str:
    """'12.3, 12.4, ... (+5 more)': when requests were submitted, for the tables."""
    if not ts:
        return "none"
    shown = ", ".join(f"{t:.1f}" for t in ts[:most])
    return shown + (f" ... (+{len(ts) - most} more)" if len(ts) > most else "")


def _timeout_rows(part: dict) -> list[tuple[str, str, str]]:
    """Table rows: client timeouts, split into late verdicts and silent losses."""
    late = part["late_verdicts"]
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(part["late_verdict_kinds"].items()))
    return [("client timer fired first (no reply by the deadline)", str(part["client_timeouts"]), ""),
            ("... the server's verdict came later: count (kinds), ms late p50 / max",
             f"{late}" + (f" ({kinds}), {part['late_ms_p50']:.1f} / {part['late_ms_max']:.1f}" if late else ""), ""),
            ("... submitted at (s into the run)", _times(part["late_at_s"]), ""),
            ("silently lost (no reply ever)", str(part["silently_lost"]), "0"),
            ("... submitted at (s into the run)", _times(part["lost_at_s"]), "")]


def pct(xs, q):
    return float(np.percentile(xs, q)) if len(xs) else None


# --- 2. soak ------------------------------------------------------------------------------------------


def soak(endpoint: str, server: Proc, req, cap: float, args) -> dict:
    from rich.progress import Progress

    load = Load(endpoint, req, args.overload * cap, args.deadline_ms, args.seed)
    rss: list[tuple[float, float]] = []
    next_sample = [0.0]

    def tick(elapsed: float) -> None:
        if elapsed >= next_sample[0]:
            rss.append((elapsed, server.rss_mb()))
            next_sample[0] += 10.0
            progress.update(task, completed=elapsed)

    with Progress() as progress:
        task = progress.add_task(f"soak: {args.overload:g} x {cap:.1f} req/s for {args.soak_s:.0f} s", total=args.soak_s)
        load.run(args.soak_s, tick)
        progress.update(task, completed=args.soak_s)
    load.close()
    with Client(endpoint) as probe:  # replies the server could not hand to a client that stopped reading
        dropped = probe.stats(timeout_ms=5000).dropped_total
    rss.append((args.soak_s, server.rss_mb()))
    o = load.outcomes
    admitted = o["result"] + o["shed_at_dispatch"] + o["expired_on_server"] + o["silent_client_timeout"]
    minute = [r for t, r in rss if t <= 60] or [rss[0][1]]
    last = [r for t, r in rss if t >= args.soak_s - 60] or [rss[-1][1]]
    return {"capacity_rps": cap, "offered_rps": args.overload * cap, "seconds": args.soak_s,
            "submitted": load.submitted, "outcomes": dict(o), **load.timeouts(),
            "server_dropped_replies": dropped,
            "busy_p50_ms": pct(load.busy_ms, 50), "busy_p99_ms": pct(load.busy_ms, 99),
            "busy_max_ms": max(load.busy_ms) if load.busy_ms else None,
            "admitted": admitted, "admitted_in_deadline_share": o["result"] / admitted if admitted else None,
            "result_p50_ms": pct(load.result_ms, 50), "result_p99_ms": pct(load.result_ms, 99),
            "rss_mb": {"first_minute": float(np.mean(minute)), "last_minute": float(np.mean(last)),
                       "max": max(r for _, r in rss)}, "rss_trace": rss, "server_alive": server.alive()}


# --- 3. chaos -----------------------------------------------------------------------------------------


def chaos(workdir: Path, checkpoint: Path, req, args) -> dict:
    broker, (client_ep, worker_ep) = serve(workdir, "broker", "mode=broker", "bind=tcp://127.0.0.1:*",
                                           "worker_bind=tcp://127.0.0.1:*")
    workers = {n: worker(workdir, n, worker_ep, checkpoint, args.threads) for n in ("w1", "w2")}
    wait_ready(client_ep, broker)
    time.sleep(2)  # let both register
    cap = capacity(client_ep, req, args.capacity_s)
    load = Load(client_ep, req, 0.7 * cap, args.deadline_ms, args.seed + 1)
    s = args.chaos_s
    plan = [(0.25 * s, "kill -9 worker w1"), (0.45 * s, "restart worker w1"), (0.6 * s, "kill -9 the broker"),
            (0.6 * s + 1.0, "restart the broker on the same address")]
    done: list[tuple[float, str]] = []
    procs = {"broker": broker}

    def tick(elapsed: float) -> None:
        while plan and elapsed >= plan[0][0]:
            at, what = plan.pop(0)
            if what == "kill -9 worker w1":
                workers["w1"].kill9()
            elif what == "restart worker w1":
                workers["w1"] = worker(workdir, "w1", worker_ep, checkpoint, args.threads)
            elif what == "kill -9 the broker":
                procs["broker"].kill9()
            else:
                procs["broker"], _ = serve(workdir, "broker2", "mode=broker", f"bind={client_ep}",
                                           f"worker_bind={worker_ep}")
            done.append((round(elapsed, 1), what))
            print(f"  t={elapsed:5.1f} s: {what}", flush=True)

    try:
        load.run(s, tick)
        load.close()
    finally:
        for p in (*workers.values(), procs["broker"]):
            p.stop()
    o = load.outcomes
    logs = "".join(p.read_text(errors="replace") for p in workdir.glob("*.log"))
    return {"capacity_rps": cap, "offered_rps": 0.7 * cap, "seconds": s, "events": done,
            "submitted": load.submitted, "outcomes": dict(o), **load.timeouts(),
            "accounted": sum(o.values()) == load.submitted,
            "worker_requeues_logged": logs.count("re-queued"),
            # a worker re-registers when the new broker tells it so, or after hearing nothing for 3 heartbeats
            "reregistrations_logged": logs.count("re-registering") + logs.count("; reconnecting in")}


# --- 4. burst -------------------------------------------------------------------------------------------


def burst(workdir: Path, checkpoint: Path, req, args) -> dict:
    reps = []
    for rep in range(args.burst_reps):
        server, (ep,) = serve(workdir, f"burst{rep}", f"checkpoint={checkpoint}", "bind=tcp://127.0.0.1:*",
                              f"threads={args.threads}")
        try:
            wait_ready(ep, server)
            load = Load(ep, req, 1.0, args.burst_deadline_ms, args.seed)
            for _ in range(args.burst):
                load.submit_one()
            load.close()
            reps.append({"submitted": load.submitted, "outcomes": dict(load.outcomes), **load.timeouts()})
        finally:
            server.stop()
    late_ms = [r["late_ms_max"] for r in reps if r["late_ms_max"] is not None]
    return {"requests": args.burst, "deadline_ms": args.burst_deadline_ms, "reps": reps,
            "client_timeouts": sum(r["client_timeouts"] for r in reps),
            "late_verdicts": sum(r["late_verdicts"] for r in reps),
            "late_ms_max": max(late_ms) if late_ms else None,
            "silently_lost": sum(r["silently_lost"] for r in reps)}


# --- main --------------------------------------------------------------------------------------------------


def table(title: str, rows: list[tuple[str, str, str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    for col, just in (("figure", "left"), ("value", "right"), ("target", "right")):
        t.add_column(col, justify=just)
    for r in rows:
        t.add_row(*r)
    Console(width=140).print(t)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", help="teacher folder")
    ap.add_argument("--run", help="a scripts/demo output (its teacher)")
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--valid-every", type=int, default=20)
    ap.add_argument("--soak-s", type=float, default=600.0)
    ap.add_argument("--overload", type=float, default=2.0, help="soak rate, multiples of the measured capacity")
    ap.add_argument("--chaos-s", type=float, default=60.0)
    ap.add_argument("--capacity-s", type=float, default=15.0)
    ap.add_argument("--deadline-ms", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--burst", type=int, default=1000, help="requests submitted at once in the burst part")
    ap.add_argument("--burst-deadline-ms", type=int, default=300)
    ap.add_argument("--burst-reps", type=int, default=5, help="bursts, each against a freshly started server")
    ap.add_argument("--parts", default="fuzz,soak,chaos,burst")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="2,000 messages, 6 s soak, 8 s chaos (a smoke run)")
    ap.add_argument("--json", type=Path, default=Path("runs/bench/reliability.json"))
    args = ap.parse_args()
    if args.quick:
        args.messages, args.soak_s, args.chaos_s, args.capacity_s = 2_000, 6.0, 8.0, 3.0
        args.burst, args.burst_reps = 100, 1
    checkpoint = Path(args.checkpoint or Path(args.run or ".") / "teacher" / "av_gate" / "model").resolve()
    if not (checkpoint / "model.safetensors").is_file():
        ap.error(f"{checkpoint}: not a teacher folder (give --checkpoint or --run)")
    parts = args.parts.split(",")
    workdir = Path(tempfile.mkdtemp(prefix="bench_reliability_"))
    req = make_request(args.seed)
    out: dict = {"checkpoint": str(checkpoint), "cores": os.cpu_count(), "args": {k: str(v) for k, v in vars(args).items()}}
    print(f"checkpoint {checkpoint}; logs in {workdir}; load average {os.getloadavg()[0]:.1f}")
    if "fuzz" in parts or "soak" in parts:
        server, (ep,) = serve(workdir, "server", f"checkpoint={checkpoint}", "bind=tcp://127.0.0.1:*",
                              f"threads={args.threads}")
        try:
            wait_ready(ep, server)
            if "fuzz" in parts:
                f = out["fuzz"] = fuzz(ep, server, args.messages, args.valid_every, args.seed)
                table("fuzz", [
                    ("messages (every %dth valid)" % args.valid_every, f"{f['messages']:,}", ""),
                    ("server alive at the end", str(f["server_alive"]), "True"),
                    ("replies / messages that must get one", f"{f['replies']:,} / {f['expected_replies']:,}", "equal"),
                    ("valid requests answered right", f"{f['valid_answered_right']:,} / {f['valid_requests']:,}", "all"),
                    ("oversize frames (dropped by libzmq, no reply)", str(f["oversize_frames"]), ""),
                    ("server RSS MB: start / after warm-up min / max / end",
                     " / ".join(f"{f['rss_mb'][k]:.0f}" for k in ("start", "min_after_warmup", "max", "end")), "bounded"),
                    ("internal errors (a server or decoder bug)", str(f["reply_kinds"].get("internal", 0)), "0"),
                    ("reply kinds", ", ".join(f"{k} {v}" for k, v in sorted(f["reply_kinds"].items())), "")])
            if "soak" in parts:
                cap = capacity(ep, req, args.capacity_s)
                s = out["soak"] = soak(ep, server, req, cap, args)
                table("soak", [
                    ("capacity (closed loop) / offered", f"{cap:.1f} / {s['offered_rps']:.1f} req/s", f"{args.overload:g}x"),
                    ("requests over " + f"{args.soak_s:.0f} s", f"{s['submitted']:,}", ""),
                    ("shed replies (busy, or refused at once) p50 / p99 / max",
                     f"{s['busy_p50_ms'] or 0:.1f} / {s['busy_p99_ms'] or 0:.1f} / "
                                                      f"{s['busy_max_ms'] or 0:.1f} ms", f"p99 <= {BUSY_TARGET_MS:g} ms"),
                    ("admitted requests answered within their deadline",
                     f"{100 * (s['admitted_in_deadline_share'] or 0):.1f}% of {s['admitted']:,}", "all"),
                    ("outcomes", ", ".join(f"{k} {v}" for k, v in sorted(s["outcomes"].items())), ""),
                    *_timeout_rows(s),
                    ("replies the server dropped (the client not reading: SNDHWM)", str(s["server_dropped_replies"]), "0"),
                    ("server RSS MB: first minute / last minute / max",
                     f"{s['rss_mb']['first_minute']:.0f} / {s['rss_mb']['last_minute']:.0f} / {s['rss_mb']['max']:.0f}",
                     "flat")])
        finally:
            server.stop()
    if "chaos" in parts:
        c = out["chaos"] = chaos(workdir, checkpoint, req, args)
        table("chaos", [
            ("load", f"{c['offered_rps']:.1f} req/s for {c['seconds']:.0f} s (0.7 x {c['capacity_rps']:.1f})", ""),
            ("events", "; ".join(f"{t} s {w}" for t, w in c["events"]), ""),
            ("requests submitted / accounted for", f"{c['submitted']:,} / {sum(c['outcomes'].values()):,}", "equal"),
            ("outcomes", ", ".join(f"{k} {v}" for k, v in sorted(c["outcomes"].items())), ""),
            *_timeout_rows(c),
            ("batches re-queued / worker re-registrations (logs)",
             f"{c['worker_requeues_logged']} / {c['reregistrations_logged']}", "")])
    if "burst" in parts:
        b = out["burst"] = burst(workdir, checkpoint, req, args)
        table("burst", [
            ("bursts (each against a fresh server)",
             f"{len(b['reps'])} x {b['requests']} requests at once, budget {b['deadline_ms']} ms", ""),
            *[(f"burst {i + 1}: outcomes", ", ".join(f"{k} {v}" for k, v in sorted(r["outcomes"].items())), "")
              for i, r in enumerate(b["reps"])],
            ("client timer fired first / of which the verdict came later",
             f"{b['client_timeouts']} / {b['late_verdicts']}", ""),
            ("latest verdict after the client's timer", f"{b['late_ms_max'] or 0:.1f} ms", ""),
            ("silently lost (no reply ever)", str(b["silently_lost"]), "0")])
    out["load_average"] = os.getloadavg()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
