#!/usr/bin/env python
"""Benchmark the reasoning server: where batch time goes, and throughput at a p99 SLO per batch size.

    python scripts/bench_server.py                                   # fresh default-size teacher
    python scripts/bench_server.py --checkpoint runs/teacher/model   # a trained one
    python scripts/bench_server.py --quick                           # ~2 min smoke run

What it measures (the server parts through the product path: ``earshot serve``
processes on loopback and the edge client library):

1. **Protocol cost**: encode and decode time per message and its size, for
   ping, a realistic infer (4 JPEG frames of 128x128 + 2 s of 16 kHz audio),
   result (all tags) and stats.
2. **Where batch time goes**: the teacher backend in this process (one torch
   thread), per request and per batch size: msgpack decode of the request,
   JPEG decoding, audio (resampling + log-mel), the rest of the input
   preparation, and the model (encoders, fusion, tag head, greedy decoding),
   in CPU time of the thread (best of ``--profile-repeats``), so a loaded
   host's preemptions do not land on one stage by chance.
3. **Saturation throughput per max batch size**: a closed loop keeps
   2 x max batch + 2 requests outstanding (a full batch is always waiting);
   best of ``--repeats`` runs; also requests per server CPU-second, which
   other load on a shared host does not distort.
4. **Throughput at a p99 SLO per max batch size**: Poisson arrivals with a
   budget of ``--slo-ms``; the offered rate steps down from the saturation
   throughput until the p99 latency of results is within the SLO and at least
   ``--answered`` of the requests get a result (not shed, not expired). The
   batching speed-up is this rate at the best batch size over the one at max
   batch 1: the figure that says whether batching pays *at a latency users
   accept*, not only at saturation.

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


# --- 2. where batch time goes ------------------------------------------------------------------


def stage_profile(checkpoint: Path, req: InferRequest, batch_sizes: list[int], threads: int,
                  repeats: int) -> list[dict]:
    """Per-request ms of each stage of a batch, in this process (best of ``repeats`` per size)."""
    import torch

    from cloud.server.backend import load_teacher_backend

    torch.set_num_threads(max(threads, 1))
    backend = load_teacher_backend(checkpoint, max_batch_size=max(batch_sizes), threads=threads)
    backend.warmup()
    data = encode(req)
    rows = []
    for b in batch_sizes:
        best = None
        for _ in range(repeats):  # CPU time of this thread: what the batch costs, not the neighbours' load
            c0 = time.thread_time()
            reqs = [decode(data) for _ in range(b)]
            c1 = time.thread_time()
            out = backend.infer(reqs)
            c2 = time.thread_time()
            if best is None or c2 - c0 < best[0]:
                best = (c2 - c0, c1 - c0, out)
        total_s, msgpack_s, out = best
        t = out.detail_ms
        row = {"max_batch": b, "msgpack_ms": 1e3 * msgpack_s / b, "jpeg_ms": t["jpeg_cpu_ms"] / b,
               "audio_ms": t["audio_cpu_ms"] / b,
               "prepare_ms": (t["prepare_cpu_ms"] - t["jpeg_cpu_ms"] - t["audio_cpu_ms"]) / b,
               "model_ms": t["model_cpu_ms"] / b, "total_ms": 1e3 * total_s / b}
        rows.append(row)
        print(f"  batch {b}: {row['total_ms']:.2f} ms per request (model {row['model_ms']:.2f}, "
              f"JPEG {row['jpeg_ms']:.2f}, audio {row['audio_ms']:.2f}, msgpack {row['msgpack_ms']:.2f})", flush=True)
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


def throughput_at_slo(client: Client, req: InferRequest, start_rps: float, args, seed: int) -> dict:
    """The highest offered rate (stepping down from ``start_rps``) whose results meet the SLO.

    A rate passes when the p99 latency of results is within ``args.slo_ms`` and at least
    ``args.answered`` of the offered requests got a result (budget = the SLO). Once a
    failing rate and a passing one below it are known, ``args.slo_refine`` more trials
    bisect between them: one ``slo_step`` (15%) is coarser than the differences the
    batching target is about. Every batch size gets the same search.
    """
    trials = []

    def trial(rate: float, k: int) -> dict:
        row = open_loop(client, req, rate, args.seconds, args.slo_ms, seed=seed + k)
        row["offered_target_rps"] = rate
        row["answered_share"] = row["results"] / max(row["requests"], 1)
        row["meets_slo"] = bool(row["p99_ms"] is not None and row["p99_ms"] <= args.slo_ms
                                and row["answered_share"] >= args.answered)
        trials.append(row)
        print(f"    offered {row['arrivals_rps']:.1f} req/s: answered {100 * row['answered_share']:.1f}%, "
              f"p99 {row['p99_ms'] or 0:.0f} ms, mean batch {row['mean_batch']:.1f} -> "
              f"{'meets' if row['meets_slo'] else 'misses'} the SLO", flush=True)
        return row

    rate, failed_at = start_rps, None
    for k in range(args.slo_trials):
        if trial(rate, k)["meets_slo"]:
            break
        failed_at = rate
        rate *= args.slo_step
    passed_at = rate if trials and trials[-1]["meets_slo"] else None
    for k in range(args.slo_refine if failed_at is not None and passed_at is not None else 0):
        mid = (failed_at + passed_at) / 2
        if trial(mid, args.slo_trials + k)["meets_slo"]:
            passed_at = mid
        else:
            failed_at = mid
    passing = [t for t in trials if t["meets_slo"]]
    best = max(passing, key=lambda t: t["throughput_rps"]) if passing else None
    return {"rate_rps": best["throughput_rps"] if best else 0.0, "offered_rps": best["arrivals_rps"] if best else 0.0,
            "p99_ms": best["p99_ms"] if best else None, "p50_ms": best["p50_ms"] if best else None,
            "answered_share": best["answered_share"] if best else 0.0, "mean_batch": best["mean_batch"] if best else 0.0,
            "trials": trials}


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
    ap.add_argument("--seconds", type=float, default=6.0, help="per measurement")
    ap.add_argument("--slo-ms", type=int, default=500,
                    help="p99 latency SLO (and request budget) for the throughput-at-SLO search")
    ap.add_argument("--answered", type=float, default=0.99, help="share of requests that must get a result")
    ap.add_argument("--slo-step", type=float, default=0.85, help="offered rate factor between SLO trials")
    ap.add_argument("--slo-trials", type=int, default=6, help="SLO trials per batch size at most")
    ap.add_argument("--slo-refine", type=int, default=2,
                    help="bisection trials between the lowest failing and the highest passing rate")
    ap.add_argument("--saturation-in-flight", type=int, default=0, help="default: 2 x max batch + 2")
    ap.add_argument("--queue-capacity", type=int, default=64)
    ap.add_argument("--max-queue-delay-ms", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the server")
    ap.add_argument("--repeats", type=int, default=2, help="saturation runs per batch size (the best is kept: "
                    "other load on a shared host only ever slows a run down)")
    ap.add_argument("--profile-repeats", type=int, default=5, help="runs per batch size in the stage profile")
    ap.add_argument("--quick", action="store_true", help="batch sizes 1,8; 2 s per measurement")
    ap.add_argument("--out", default="runs/bench/server.json")
    args = ap.parse_args()
    if args.quick:
        args.batch_sizes, args.seconds, args.repeats, args.slo_refine = "1,8", 2.0, 1, min(args.slo_refine, 1)
    batch_sizes = [int(x) for x in args.batch_sizes.split(",")]
    if batch_sizes[0] != 1:
        batch_sizes = [1, *batch_sizes]

    workdir = Path(tempfile.mkdtemp(prefix="bench_server_"))
    checkpoint = Path(args.checkpoint).resolve() if args.checkpoint else make_checkpoint(workdir / "teacher")
    req = make_request(0)
    fresh = " (fresh, untrained: decodes max_answer_tokens every time)" if not args.checkpoint else ""
    print(f"checkpoint: {checkpoint}{fresh}")
    print(f"host: {os.cpu_count()} cores; server torch threads {args.threads}; request {len(encode(req))} bytes")

    codec = codec_costs(req)
    print("\n## wire protocol cost per message\n")
    print(table(codec, [("message", "message", "s"), ("bytes", "bytes", "d"), ("encode_us", "encode µs", ".1f"),
                        ("decode_us", "decode µs", ".1f")]))

    print("\n## where batch time goes (this process, the teacher backend, CPU ms per request)\n", flush=True)
    profile = stage_profile(checkpoint, req, batch_sizes, args.threads, args.profile_repeats)
    print()
    print(table(profile, [("max_batch", "batch", "d"), ("msgpack_ms", "msgpack decode", ".2f"),
                          ("jpeg_ms", "JPEG", ".2f"), ("audio_ms", "audio (resample + log-mel)", ".2f"),
                          ("prepare_ms", "other input prep", ".2f"), ("model_ms", "model", ".2f"),
                          ("total_ms", "total ms / request", ".2f")]))

    saturation, slo_rows = [], []
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
                      f"mean batch {sat['mean_batch']:.1f}; p99 <= {args.slo_ms} ms search:", flush=True)
                row = throughput_at_slo(client, req, sat["throughput_rps"], args, seed=100 * b)
                row["max_batch"] = b
                slo_rows.append(row)
        finally:
            server.stop()
    base = slo_rows[0]["rate_rps"]
    for row in slo_rows:
        row["speedup"] = row["rate_rps"] / base if base else None

    print("\n## saturation throughput\n")
    print(table(saturation, [("max_batch", "max batch", "d"), ("throughput_rps", "req/s", ".1f"),
                             ("speedup", "speed-up vs 1", ".2f"), ("req_per_cpu_s", "req / server CPU-s", ".1f"),
                             ("cpu_speedup", "CPU speed-up", ".2f"), ("mean_batch", "mean batch", ".1f"),
                             ("p50_ms", "p50 ms", ".0f"), ("p99_ms", "p99 ms", ".0f")]))
    print(f"\n## throughput at p99 <= {args.slo_ms} ms (Poisson arrivals, budget {args.slo_ms} ms, "
          f">= {100 * args.answered:.0f}% answered)\n")
    print(table(slo_rows, [("max_batch", "max batch", "d"), ("rate_rps", "req/s at the SLO", ".1f"),
                           ("speedup", "speed-up vs 1", ".2f"), ("p50_ms", "p50 ms", ".0f"),
                           ("p99_ms", "p99 ms", ".0f"), ("answered_share", "answered", ".1%"),
                           ("mean_batch", "mean batch", ".1f")]))
    best = max(slo_rows, key=lambda r: r["rate_rps"])
    print(f"\nbatching speed-up at p99 <= {args.slo_ms} ms: x{best['speedup'] or 0:.2f} at max batch "
          f"{best['max_batch']} ({best['rate_rps']:.1f} vs {base:.1f} req/s at max batch 1); at saturation "
          f"x{max(r['speedup'] for r in saturation):.2f}, per server CPU-second x{max(r['cpu_speedup'] for r in saturation):.2f}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"checkpoint": str(checkpoint), "fresh_checkpoint": not args.checkpoint,
                               "cores": os.cpu_count(), "load_average": os.getloadavg(), "args": vars(args),
                               "codec": codec, "profile": profile, "saturation": saturation, "slo": slo_rows,
                               "slo_ms": args.slo_ms, "speedup_at_slo": best["speedup"],
                               "best_batch_at_slo": best["max_batch"]}, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
