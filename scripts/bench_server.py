#!/usr/bin/env python
"""Benchmark the reasoning server: batching, load, and wire-protocol cost, in one run.

    python scripts/bench_server.py                                   # fresh default-size teacher
    python scripts/bench_server.py --checkpoint runs/teacher/model   # a trained one
    python scripts/bench_server.py --quick                           # ~1 min smoke run

What it measures (everything through the product path: ``earshot serve``
processes on loopback and the edge client library):

1. **Protocol cost**: encode and decode time per message and its size, for
   ping, a realistic infer (4 JPEG frames of 128x128 + 2 s of 16 kHz audio),
   result (all tags) and stats.
2. **Saturation throughput per max batch size**: a closed loop keeps
   2 x max batch + 2 requests outstanding for ``--seconds`` (a full batch is
   always waiting); the batching speed-up is this throughput over the one at
   max batch size 1.
3. **Open-loop load**: Poisson arrivals at multiples of the batch-1 capacity
   (``--loads``) with a ``--deadline-ms`` budget; served throughput, p50/p99
   latency (client-measured, results only), mean batch size, and the share
   shed at once (``busy``, or ``deadline_exceeded`` refused without computing
   because the expected wait already exceeded the budget) and the share that
   expired at its deadline.

Saturation runs are repeated (``--repeats``) and the best kept, and the
server's CPU time is read from /proc: on a shared host, requests per server
CPU-second is the contention-robust measure of what batching buys.

A freshly initialised teacher never emits its end token, so it always decodes
``max_answer_tokens``: the worst case for a trained one. Prints tables
(markdown) and writes everything to ``--out`` as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import timeit
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.client import Client, ClientError  # noqa: E402
from shared.protocol import (AudioWindow, Frame, InferRequest, Ping, Result, Stats, StatsRequest,  # noqa: E402
                             decode, encode)

EARSHOT = Path(sys.executable).parent / "earshot"


# --- inputs ----------------------------------------------------------------------


def make_checkpoint(folder: Path) -> Path:
    """A freshly initialised teacher of the default size (ModelConfig defaults)."""
    import torch

    from cloud.data_engine.qa import DENSE_QUESTION, SUMMARY_QUESTION
    from cloud.model.config import ModelConfig
    from cloud.model.io import save_teacher
    from cloud.model.teacher import AVTeacher
    from cloud.model.tokenizer import Tokenizer
    from shared.labels import names

    torch.manual_seed(0)
    words = " ".join(names("audio_event") + names("visual_action") + names("environment"))
    tok = Tokenizer.build([SUMMARY_QUESTION, DENSE_QUESTION, words, "yes no ; heard : did , 0s 1s 2s 3s"])
    model = AVTeacher(ModelConfig(), len(tok), tok.pad_id, tok.bos_id, tok.eos_id)
    save_teacher(folder, model, tok)
    return folder


def make_request(seed: int) -> InferRequest:
    """4 frames (smooth 128x128 scenes with noise, ~4 KB JPEG each) + 2 s of audio."""
    from cloud.server.backend import encode_jpeg

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:128, 0:128]
    frames = []
    for k in range(4):
        base = np.stack([(xx + 8 * k) % 256, (yy * 2) % 256, (xx + yy) % 256], -1)
        img = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
        frames.append(Frame(t_s=40.0 + 0.5 * k, jpeg=encode_jpeg(img)))
    t = np.arange(32000) / 16000
    pcm = (3000 * np.sin(2 * np.pi * 880 * t) + rng.normal(0, 300, t.size)).astype(np.int16)
    return InferRequest(id=0, deadline_ms=1000, trigger_label="timer_beep", trigger_score=0.9,
                        student_scores={"timer_beep": 0.9, "door_open": 0.1}, student_confidence=0.55,
                        query="what was that?", query_t_s=41.9,
                        audio=AudioWindow.from_samples(pcm, start_s=40.0, rate_hz=16000), frames=frames)


# --- 1. protocol cost ------------------------------------------------------------------


def codec_costs(req: InferRequest) -> list[dict]:
    from cloud.model.teacher import TAG_NAMES

    result = Result(id=7, model_id="avlm-0123456789ab", batch_size=8,
                    answer="kitchen; heard: timer_beep; did: open_oven",
                    tags={t: 0.5 for t in TAG_NAMES},
                    timing_ms={"decode_ms": 12.0, "model_ms": 80.0, "queue_ms": 3.0, "total_ms": 96.0})
    stats = Stats(id=9, uptime_s=100.0, requests_total=1000, results_total=900, dropped_total=0,
                  errors_by_code={"busy": 100}, queue_depth=3, queue_capacity=64,
                  batch_size_counts=tuple(range(1, 9)), latency_samples=900, latency_p50_ms=80.0,
                  latency_p95_ms=150.0, latency_p99_ms=200.0)
    rows = []
    for name, msg in [("ping", Ping(id=1, t_client_s=12.5)), ("infer (4 JPEG + 2 s audio)", req),
                      ("result (all tags)", result), ("stats_request", StatsRequest(id=3)), ("stats", stats)]:
        data = encode(msg)
        n = 200 if len(data) > 10_000 else 5000
        enc = min(timeit.repeat(lambda: encode(msg), number=n, repeat=3)) / n
        dec = min(timeit.repeat(lambda: decode(data), number=n, repeat=3)) / n
        rows.append({"message": name, "bytes": len(data), "encode_us": 1e6 * enc, "decode_us": 1e6 * dec})
    return rows


# --- server processes ------------------------------------------------------------------------


class Server:
    def __init__(self, checkpoint: Path, max_batch: int, workdir: Path, args) -> None:
        self.ep_file = workdir / f"ep-{max_batch}.txt"
        self.log = open(workdir / f"serve-{max_batch}.log", "w")
        cmd = [str(EARSHOT), "serve", f"checkpoint={checkpoint}", "bind=tcp://127.0.0.1:*",
               f"endpoint_file={self.ep_file}", f"max_batch_size={max_batch}", f"threads={args.threads}",
               f"max_queue_delay_ms={args.max_queue_delay_ms}", f"queue_capacity={args.queue_capacity}"]
        self.proc = subprocess.Popen(cmd, cwd=workdir, stdout=self.log, stderr=subprocess.STDOUT)

    def endpoint(self, timeout: float = 120) -> str:
        t_end = time.monotonic() + timeout
        while time.monotonic() < t_end:
            if self.ep_file.exists() and self.ep_file.read_text().strip():
                return self.ep_file.read_text().split()[0]
            if self.proc.poll() is not None:
                raise RuntimeError(f"earshot serve exited with {self.proc.returncode}; see {self.log.name}")
            time.sleep(0.05)
        raise RuntimeError("earshot serve did not bind in time")

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the server process has used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def wait_ready(client: Client, timeout: float = 120) -> None:
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        try:
            if client.ping().ready:
                return
        except ClientError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server not ready in time")


def classify(err: ClientError) -> str:
    """busy / refused (deadline_exceeded at once, never computed) / expired (at the deadline) / other code."""
    if err.code == "deadline_exceeded":
        return "refused" if "refused without computing" in err.message else "expired"
    return err.code


def summarize(latencies_ms: list[float], codes: Counter, n: int, seconds: float, batch_counts: list[int]) -> dict:
    lat = np.asarray(latencies_ms)
    batches = np.asarray(batch_counts, dtype=float)
    mean_batch = float((batches * np.arange(1, len(batches) + 1)).sum() / batches.sum()) if batches.sum() else 0.0
    return {
        "requests": n, "results": int(codes["result"]), "throughput_rps": codes["result"] / seconds,
        "p50_ms": float(np.percentile(lat, 50)) if lat.size else None,
        "p99_ms": float(np.percentile(lat, 99)) if lat.size else None,
        "shed_share": (codes["busy"] + codes["refused"]) / max(n, 1), "expired_share": codes["expired"] / max(n, 1),
        "busy": codes["busy"], "refused": codes["refused"], "expired": codes["expired"],
        "other_errors": {k: v for k, v in codes.items() if k not in ("result", "busy", "refused", "expired")},
        "mean_batch": mean_batch,
    }


def batch_delta(before: Stats, after: Stats) -> list[int]:
    a, b = list(after.batch_size_counts), list(before.batch_size_counts)
    b += [0] * (len(a) - len(b))
    return [x - y for x, y in zip(a, b)]


def closed_loop(client: Client, req: InferRequest, in_flight: int, seconds: float, deadline_ms: int) -> dict:
    """Keep ``in_flight`` requests outstanding: the saturation throughput (with
    two batches' worth in flight the worker always has a full batch waiting)."""
    import threading

    lock = threading.Lock()
    latencies, codes = [], Counter()
    sent = [0]
    t_end = time.monotonic() + seconds
    slots = threading.Semaphore(in_flight)

    def done(fut, t0):
        try:
            fut.result()
            with lock:
                latencies.append(1e3 * (time.monotonic() - t0))
                codes["result"] += 1
        except ClientError as err:
            with lock:
                codes[classify(err)] += 1
        slots.release()

    before = client.stats()
    t_start = time.monotonic()
    while time.monotonic() < t_end:
        if not slots.acquire(timeout=0.1):
            continue
        t0 = time.monotonic()
        sent[0] += 1
        client.submit(req, deadline_ms=deadline_ms, callback=lambda f, t0=t0: done(f, t0))
    for _ in range(in_flight):  # wait for the stragglers
        slots.acquire(timeout=deadline_ms / 1000 + 5)
    elapsed = time.monotonic() - t_start
    return summarize(latencies, codes, sent[0], elapsed, batch_delta(before, client.stats()))


def open_loop(client: Client, req: InferRequest, rate_hz: float, seconds: float, deadline_ms: int, seed: int) -> dict:
    """Poisson arrivals at ``rate_hz`` for ``seconds`` (the client never waits for replies)."""
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1 / rate_hz, int(rate_hz * seconds * 1.5) + 10))
    arrivals = arrivals[arrivals < seconds]
    latencies, codes, finished = [], Counter(), [0.0]

    def done(fut, t0):
        finished[0] = max(finished[0], time.monotonic())
        try:
            fut.result()
            latencies.append(1e3 * (time.monotonic() - t0))
            codes["result"] += 1
        except ClientError as err:
            codes[classify(err)] += 1

    before = client.stats()
    futs = []
    t_start = time.monotonic()
    for at in arrivals:
        delay = t_start + at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        t0 = time.monotonic()
        futs.append(client.submit(req, deadline_ms=deadline_ms, callback=lambda f, t0=t0: done(f, t0)))
    for f in futs:
        try:
            f.result(timeout=deadline_ms / 1000 + 5)
        except ClientError:
            pass
    span = max(seconds, finished[0] - t_start)  # served rate over arrivals + the tail they caused
    row = summarize(latencies, codes, len(futs), span, batch_delta(before, client.stats()))
    row["arrivals_rps"] = len(futs) / seconds
    return row


# --- report -----------------------------------------------------------------------------------


def table(rows: list[dict], cols: list[tuple[str, str, str]]) -> str:
    head = "| " + " | ".join(c[1] for c in cols) + " |"
    sep = "| " + " | ".join("---" if i == 0 else "---:" for i in range(len(cols))) + " |"
    body = []
    for r in rows:
        cells = []
        for key, _, fmt in cols:
            v = r.get(key)
            cells.append("-" if v is None else format(v, fmt))
        body.append("| " + " | ".join(cells) + " |")
    return "\n".join([head, sep, *body])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", help="teacher folder; default: a fresh default-size teacher")
    ap.add_argument("--batch-sizes", default="1,2,4,8,16")
    ap.add_argument("--loads", default="0.5,1,2,4", help="offered loads, multiples of the batch-1 capacity")
    ap.add_argument("--seconds", type=float, default=6.0, help="per measurement")
    ap.add_argument("--deadline-ms", type=int, default=1000, help="open-loop budget (conversational: 300-800+)")
    ap.add_argument("--saturation-in-flight", type=int, default=0, help="default: 2 x max batch + 2")
    ap.add_argument("--queue-capacity", type=int, default=64)
    ap.add_argument("--max-queue-delay-ms", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the server")
    ap.add_argument("--repeats", type=int, default=2, help="saturation runs per batch size (the best is kept: "
                    "other load on a shared host only ever slows a run down)")
    ap.add_argument("--quick", action="store_true", help="batch sizes 1,8; loads 1,4; 3 s each")
    ap.add_argument("--out", default="runs/bench/server.json")
    args = ap.parse_args()
    if args.quick:
        args.batch_sizes, args.loads, args.seconds = "1,8", "1,4", 3.0
    batch_sizes = [int(x) for x in args.batch_sizes.split(",")]
    loads = [float(x) for x in args.loads.split(",")]
    if batch_sizes[0] != 1:
        batch_sizes = [1, *batch_sizes]

    workdir = Path(tempfile.mkdtemp(prefix="bench_server_"))
    checkpoint = Path(args.checkpoint) if args.checkpoint else make_checkpoint(workdir / "teacher")
    req = make_request(0)
    fresh = " (fresh, untrained: decodes max_answer_tokens every time)" if not args.checkpoint else ""
    print(f"checkpoint: {checkpoint}{fresh}")
    print(f"host: {os.cpu_count()} cores; server torch threads {args.threads}; request {len(encode(req))} bytes")

    codec = codec_costs(req)
    print("\n## wire protocol cost per message\n")
    print(table(codec, [("message", "message", "s"), ("bytes", "bytes", "d"), ("encode_us", "encode µs", ".1f"),
                        ("decode_us", "decode µs", ".1f")]))

    saturation, load_rows = [], []
    capacity_1 = efficiency_1 = None
    for b in batch_sizes:
        server = Server(checkpoint, b, workdir, args)
        try:
            with Client(server.endpoint(), max_in_flight=4096, honor_retry_after=False) as client:
                wait_ready(client)
                for f in [client.submit(req, deadline_ms=30_000) for _ in range(2 * b)]:  # warm
                    f.result()
                runs = []
                for _ in range(args.repeats):
                    cpu0 = server.cpu_s()
                    run = closed_loop(client, req, args.saturation_in_flight or 2 * b + 2, args.seconds, 30_000)
                    run["req_per_cpu_s"] = run["results"] / max(server.cpu_s() - cpu0, 1e-9)
                    runs.append(run)
                sat = max(runs, key=lambda r: r["throughput_rps"])
                sat["req_per_cpu_s"] = max(r["req_per_cpu_s"] for r in runs)
                sat["max_batch"] = b
                saturation.append(sat)
                if capacity_1 is None:
                    capacity_1, efficiency_1 = sat["throughput_rps"], sat["req_per_cpu_s"]
                sat["speedup"] = sat["throughput_rps"] / capacity_1
                sat["cpu_speedup"] = sat["req_per_cpu_s"] / efficiency_1
                print(f"max_batch {b}: saturation {sat['throughput_rps']:.1f} req/s (x{sat['speedup']:.2f}), "
                      f"{sat['req_per_cpu_s']:.1f} req per server CPU-s (x{sat['cpu_speedup']:.2f}), "
                      f"mean batch {sat['mean_batch']:.1f}", flush=True)
                for k, load in enumerate(loads):
                    row = open_loop(client, req, load * capacity_1, args.seconds, args.deadline_ms, seed=k)
                    row.update(max_batch=b, load=load, offered_rps=load * capacity_1)
                    load_rows.append(row)
                    print(f"  offered {row['arrivals_rps']:.1f} req/s: {row['throughput_rps']:.1f} req/s, "
                          f"p50 {row['p50_ms'] or 0:.0f} ms, p99 {row['p99_ms'] or 0:.0f} ms, "
                          f"shed {100 * row['shed_share']:.0f}%, expired {100 * row['expired_share']:.0f}%", flush=True)
        finally:
            server.stop()

    print("\n## saturation throughput and batching speed-up\n")
    print(table(saturation, [("max_batch", "max batch", "d"), ("throughput_rps", "req/s", ".1f"),
                             ("speedup", "speed-up vs 1", ".2f"), ("req_per_cpu_s", "req / server CPU-s", ".1f"),
                             ("cpu_speedup", "CPU speed-up", ".2f"), ("mean_batch", "mean batch", ".1f"),
                             ("p50_ms", "p50 ms", ".0f"), ("p99_ms", "p99 ms", ".0f")]))
    print(f"\n## open-loop load (Poisson; 1x = batch-1 capacity {capacity_1:.1f} req/s; "
          f"deadline {args.deadline_ms} ms; queue {args.queue_capacity})\n")
    print(table(load_rows, [("max_batch", "max batch", "d"), ("load", "load", ".1f"),
                            ("arrivals_rps", "offered req/s", ".1f"), ("throughput_rps", "served req/s", ".1f"),
                            ("p50_ms", "p50 ms", ".0f"), ("p99_ms", "p99 ms", ".0f"),
                            ("mean_batch", "mean batch", ".1f"), ("shed_share", "shed at once", ".0%"),
                            ("expired_share", "expired", ".0%")]))
    best = max(saturation, key=lambda r: r["throughput_rps"])
    print(f"\nbatching speed-up: x{best['speedup']:.2f} at max batch {best['max_batch']} "
          f"({best['throughput_rps']:.1f} vs {capacity_1:.1f} req/s at max batch 1); per server CPU-second "
          f"x{max(r['cpu_speedup'] for r in saturation):.2f}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"checkpoint": str(checkpoint), "fresh_checkpoint": not args.checkpoint,
                               "cores": os.cpu_count(), "args": vars(args), "codec": codec,
                               "saturation": saturation, "load": load_rows}, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
