#!/usr/bin/env python
"""Benchmark the cloud's language model (cloud/lm): load time, memory, warm latency at the server,
and the grounding check on the paired bench's audio-event probes beside the controls.

    python scripts/bench_lm.py --teacher runs/demo/teacher/av_gate/model --qa runs/demo/qa --json lm.json
    python scripts/bench_lm.py --teacher /tmp/t --qa /work/data/qa300 --pairs 40 --answers 30
    python scripts/bench_lm.py ... --quick                 # a smoke run: 6 pairs, 6 answers

What it measures, in this order (one torch thread everywhere, as the server runs):

1. **Load** (this process): import + GGUF de-quantization + tokenizer + the answerer's LoRA
   merge (``cloud.lm.tune.load_answerer``), seconds; resident memory before / after (MB).
2. **Grounding** (``cloud.lm.grounding.grounding_check``): on ``--pairs`` audio-event probe
   pairs of the bench split (AVH "did you hear <sound>?": heard in one window of a recording,
   absent near the other), the wearer asks "What did you hear?" and the LM answers from the
   teacher's evidence; a pair is right when the sentence names the sound on the window where
   it happened and not on the other. Beside: the teacher's own closed-form answer, the
   evidence text itself, the LM asked the probe in words (option scoring), and the controls
   (no evidence, another recording's evidence). Recording-level bootstrap intervals
   (shared/stats.py). Target: the sentence within 5 points of the teacher.
3. **Server latency, warm**: ``earshot serve checkpoint=<teacher> lm=<lm>`` in its own
   process (loaded once); ``--answers`` free-form queries on bench windows (10 s of audio, the
   frames at the model's rate, JPEG), one in flight, then as many requests without a query:
   client round trip p50 / p95 and the server's ``lm_ms``; the server's RSS.
   Target: p95 <= 1.5 s for a free-form answer on 2 cores.

Prints markdown tables and writes everything to ``--json``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

EARSHOT = Path(sys.executable).parent / "earshot"
QUESTIONS = ("What did you hear?", "What was that sound?", "Did you hear a timer beep?", "What did I just do?",
             "What happened just now?")
P95_TARGET_MS = 1500.0


def rss_mb(pid: int | str = "self") -> float:
    """Resident set size (VmRSS) of a process, MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def teacher_folder(path: str) -> Path:
    folder = Path(path)
    return folder / "model" if (folder / "model" / "model.safetensors").is_file() else folder


def measure_load(lm: str | None, adapter: str | None, threads: int = 1) -> tuple[object, dict]:
    from cloud.lm.tune import load_answerer

    before = rss_mb()
    t0 = time.perf_counter()
    answerer = load_answerer(lm, adapter, threads=threads)
    wall = time.perf_counter() - t0
    # one warm-up answer, as the server does before READY
    t1 = time.perf_counter()
    answerer.answer("What did you hear?", "heard nothing; saw nothing; the sound was clear, the view was clear.")
    first = time.perf_counter() - t1
    return answerer, {"lm": answerer.model_id, "path": str(answerer.lm.path), "load_s": round(wall, 2),
                      "lm_load_s": round(answerer.lm.load_s, 2), "first_answer_s": round(first, 2),
                      "parameters_m": round(answerer.lm.num_parameters / 1e6, 1),
                      "rss_before_mb": round(before, 0), "rss_after_mb": round(rss_mb(), 0)}


def measure_grounding(answerer, teacher_dir: Path, qa: str, dataset: str | None, split: str, pairs: int,
                      seed: int) -> dict:
    from rich.progress import Progress

    from cloud.data import RecordingStore, WindowSpec, load_records, resolve_dataset
    from cloud.lm.grounding import audio_probe_pairs, grounding_check
    from cloud.model.io import load_teacher

    teacher, tokenizer, card = load_teacher(teacher_dir)
    spec = WindowSpec(**card["data"])
    records = audio_probe_pairs(load_records(qa, split), pairs)
    store = RecordingStore(resolve_dataset(qa, dataset), spec.frame_size_px, spec.n_mels)
    t0 = time.perf_counter()
    with Progress() as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(f"grounding: {stage}", total=total)
            bar.update(tasks[stage], completed=done)

        out = grounding_check(answerer, teacher, tokenizer, records, store, spec, seed=seed, progress=progress)
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    out["n_recordings"] = len({r.recording_id for r in records})
    out.pop("sentences")
    return out


def measure_answer_cost(answerer, teacher_dir: Path, qa: str, dataset: str | None, split: str, n: int) -> dict:
    """In this process, one answer at a time on ``n`` bench windows' evidence: wall time and the
    thread's CPU time per answer (CPU time is what the answer costs on an idle core; wall time
    also counts the neighbours' load on a shared machine), prompt and sentence lengths."""
    from cloud.data import RecordingStore, WindowSpec, load_records, resolve_dataset
    from cloud.lm.grounding import audio_probe_pairs, teacher_evidence
    from cloud.model.io import load_teacher

    teacher, tokenizer, card = load_teacher(teacher_dir)
    spec = WindowSpec(**card["data"])
    records = audio_probe_pairs(load_records(qa, split), max(1, n // 2))[:n]
    store = RecordingStore(resolve_dataset(qa, dataset), spec.frame_size_px, spec.n_mels)
    evidences = teacher_evidence(teacher, tokenizer, records, store, spec)
    wall, cpu, prompt, new = [], [], [], []
    for k, ev in enumerate(evidences):
        t0, c0 = time.perf_counter(), time.thread_time()
        answerer.answer(QUESTIONS[k % len(QUESTIONS)], ev)
        wall.append(1e3 * (time.perf_counter() - t0))
        cpu.append(1e3 * (time.thread_time() - c0))
        prompt.append(answerer.last_timing.prompt_tokens)
        new.append(answerer.last_timing.new_tokens)
    return {"wall_ms": percentiles(wall), "cpu_ms": percentiles(cpu), "prompt_tokens": percentiles(prompt),
            "new_tokens": percentiles(new), "target_p95_ms": P95_TARGET_MS,
            "cpu_target_met": percentiles(cpu)["p95"] <= P95_TARGET_MS}


def bench_requests(qa: str, dataset: str | None, split: str, n: int, spec, seed: int) -> list:
    """``n`` free-form requests on bench windows of distinct recordings: the model's audio
    history and its frames (JPEG) ending at the question (``pipelines.ask.window_request``)."""
    from cloud.data import load_records, resolve_dataset
    from pipelines.ask import window_request
    from shared.dataset import load_dataset
    from shared.protocol import ModelInput
    from shared.recording import load_recording

    world = load_dataset(resolve_dataset(qa, dataset))
    records = load_records(qa, split)
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(records), size=min(n, len(records)), replace=False)
    cache: dict[str, object] = {}
    out = []
    for k, i in enumerate(picks):
        r = records[int(i)]
        if r.recording_id not in cache:
            cache = {r.recording_id: load_recording(world.entry(r.recording_id).path)}  # one in memory at a time
        rec = cache[r.recording_id]
        model_input = ModelInput(audio_s=spec.audio_history_s, sample_rate_hz=rec.sample_rate_hz,
                                 frame_hz=spec.frame_hz, frames=spec.n_frames, frame_size_px=spec.frame_size_px)
        out.append(window_request(rec, float(r.t_query_s), model_input, QUESTIONS[k % len(QUESTIONS)]))
    return out


def percentiles(xs: list[float]) -> dict:
    a = np.asarray(xs, float)
    return {"n": len(a), "p50": round(float(np.percentile(a, 50)), 1), "p95": round(float(np.percentile(a, 95)), 1),
            "mean": round(float(a.mean()), 1), "max": round(float(a.max()), 1)}


def measure_server(teacher_dir: Path, lm: str | None, adapter: str | None, requests: list, workdir: Path,
                   threads: int = 1) -> dict:
    from dataclasses import replace

    from edge.client import Client, ClientError

    ep_file = workdir / "endpoint.txt"
    argv = [str(EARSHOT), "serve", f"checkpoint={teacher_dir}", "bind=tcp://127.0.0.1:*", f"endpoint_file={ep_file}",
            f"lm={lm or 'default'}", f"lm_adapter={adapter if adapter else 'null'}", f"threads={threads}", "max_batch_size=1"]
    log = open(workdir / "serve.log", "w")
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    try:
        while not ep_file.exists() or not ep_file.read_text().strip():
            if proc.poll() is not None or time.perf_counter() - t0 > 120:
                raise RuntimeError(f"earshot serve did not start: {(workdir / 'serve.log').read_text()[-2000:]}")
            time.sleep(0.2)
        ep = ep_file.read_text().split()[0]
        with Client(ep) as client:
            while True:  # the model loads in the server's worker thread: pings may time out meanwhile
                try:
                    if client.ping().ready:
                        break
                except ClientError:
                    pass
                if proc.poll() is not None or time.perf_counter() - t0 > 300:
                    raise RuntimeError(f"server never ready: {(workdir / 'serve.log').read_text()[-2000:]}")
                time.sleep(0.2)
            ready_s = time.perf_counter() - t0
            rows = {"query": [], "no_query": []}
            samples = []
            for kind in ("query", "no_query"):
                for i, req in enumerate(requests):
                    if kind == "no_query":
                        req = replace(req, query=None, query_t_s=None)
                    t1 = time.perf_counter()
                    res = client.infer(replace(req, id=i), deadline_ms=30_000)
                    rows[kind].append({"rtt_ms": 1e3 * (time.perf_counter() - t1), "lm_ms": res.timing_ms.get("lm_ms", 0.0),
                                       "model_ms": res.timing_ms.get("model_ms", 0.0),
                                       "total_ms": res.timing_ms["total_ms"]})
                    if kind == "query" and len(samples) < 6:
                        samples.append({"question": req.query, "answer": res.answer, "sentence": res.sentence,
                                        "events": [f"{e.label} {e.onset_s:+.1f}..{e.offset_s:+.1f} s"
                                                   for e in res.evidence.events][:6]})
            server_rss = rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()
    out = {"ready_s": round(ready_s, 1), "server_rss_mb": round(server_rss, 0), "samples": samples}
    for kind, rs in rows.items():
        out[kind] = {k: percentiles([r[k] for r in rs]) for k in ("rtt_ms", "total_ms", "lm_ms", "model_ms")}
    out["target_p95_ms"] = P95_TARGET_MS
    out["target_met"] = out["query"]["rtt_ms"]["p95"] <= P95_TARGET_MS
    return out


def print_report(d: dict) -> None:
    from shared.stats import format_interval

    ld = d["load"]
    print(f"\n## Language model: {ld['lm']} ({ld['parameters_m']} M parameters, {ld['path']})\n")
    print(f"load {ld['load_s']} s (of which LM {ld['lm_load_s']} s), first answer {ld['first_answer_s']} s, "
          f"RSS {ld['rss_before_mb']:.0f} -> {ld['rss_after_mb']:.0f} MB")
    g = d.get("grounding")
    if g:
        print(f"\n## Grounding: {g['n_pairs']} audio-event probe pairs, {g['n_recordings']} recordings "
              f"(question: {g['question']!r})\n")
        print("| system | pair accuracy % | question accuracy % |\n| --- | ---: | ---: |")
        for name, fig in g["figures"].items():
            print(f"| {name} | {format_interval(fig['pair'])} | {format_interval(fig['question'])} |")
        diff = g["difference"]
        print(f"\nsentence - teacher (pairs): {format_interval(diff)} points; gap {g['gap_points']:.1f} points, "
              f"target <= {g['target_points']:g}: {'met' if g['target_met'] else 'NOT met'}")
        print("\n| label | gold | evidence | sentence |\n| --- | --- | --- | --- |")
        for s in g["samples"]:
            print(f"| {s['label']} | {s['gold']} | {s['evidence']} | {s['sentence']} |")
    c = d.get("answer_cost")
    if c:
        print(f"\n## One answer at a time in this process ({c['wall_ms']['n']} bench windows, {d['args']['threads']} thread(s))\n")
        print("| figure | p50 | p95 |\n| --- | ---: | ---: |")
        for key, name in (("wall_ms", "wall ms"), ("cpu_ms", "CPU ms (the cost on an idle core)"),
                          ("prompt_tokens", "prompt tokens"), ("new_tokens", "sentence tokens")):
            print(f"| {name} | {c[key]['p50']:.0f} | {c[key]['p95']:.0f} |")
    s = d.get("server")
    if s:
        q, nq = s["query"], s["no_query"]
        print(f"\n## Server, warm (ready after {s['ready_s']} s, RSS {s['server_rss_mb']:.0f} MB), one in flight\n")
        print("| requests | n | round trip p50 / p95 ms | lm_ms p50 / p95 | model_ms p50 |\n| --- | ---: | ---: | ---: | ---: |")
        for name, r in (("with a query (sentence)", q), ("without a query", nq)):
            print(f"| {name} | {r['rtt_ms']['n']} | {r['rtt_ms']['p50']:.0f} / {r['rtt_ms']['p95']:.0f} | "
                  f"{r['lm_ms']['p50']:.0f} / {r['lm_ms']['p95']:.0f} | {r['model_ms']['p50']:.0f} |")
        print(f"\np95 with a query {q['rtt_ms']['p95']:.0f} ms, target <= {s['target_p95_ms']:.0f} ms: "
              f"{'met' if s['target_met'] else 'NOT met'}")
        for smp in s["samples"]:
            print(f"- {smp['question']} -> {smp['sentence']!r} (teacher: {smp['answer']!r}; events {smp['events']})")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--teacher", required=True, help="teacher folder (or an 'earshot train' out/ holding model/)")
    ap.add_argument("--qa", required=True, help="QA folder with the bench split (earshot instruct)")
    ap.add_argument("--dataset", default=None, help="recordings folder (default: the one the QA folder names)")
    ap.add_argument("--split", default="bench")
    ap.add_argument("--lm", default=None, help="model.lm (default: the embedded SmolLM2)")
    ap.add_argument("--adapter", default="default", help="answerer adapter folder | default | none")
    ap.add_argument("--pairs", type=int, default=40,
                    help="audio-event probe pairs for the grounding check (0 = every pair of the split)")
    ap.add_argument("--answers", type=int, default=30, help="free-form requests for the server latency")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip", default="", help="comma list of parts to skip: grounding,cost,server")
    ap.add_argument("--quick", action="store_true", help="6 pairs, 6 answers: a smoke run")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads for the language model, in process and in the server (earshot serve threads=)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))
    import torch

    torch.set_num_threads(a.threads)
    if a.quick:
        a.pairs, a.answers = 6, 6
    skip = set(filter(None, a.skip.split(",")))
    adapter = None if a.adapter in ("none", "null", "") else a.adapter
    folder = teacher_folder(a.teacher)
    d: dict = {"args": vars(a), "teacher": str(folder), "load_avg_start": os.getloadavg()}
    print("loading the language model ...", flush=True)
    answerer, d["load"] = measure_load(a.lm, adapter, a.threads)
    if "grounding" not in skip:
        d["grounding"] = measure_grounding(answerer, folder, a.qa, a.dataset, a.split, a.pairs, a.seed)
        save(d, a.json)  # a later part's failure keeps this one's figures
    if "cost" not in skip:
        d["answer_cost"] = measure_answer_cost(answerer, folder, a.qa, a.dataset, a.split, a.answers)
        save(d, a.json)
    del answerer
    if "server" not in skip:
        from cloud.data import WindowSpec
        from cloud.model.io import load_teacher

        spec = WindowSpec(**load_teacher(folder)[2]["data"])
        reqs = bench_requests(a.qa, a.dataset, a.split, a.answers, spec, a.seed)
        with tempfile.TemporaryDirectory(prefix="bench_lm_") as tmp:
            d["server"] = measure_server(folder.resolve(), a.lm, adapter, reqs, Path(tmp), a.threads)
    d["load_avg_end"] = os.getloadavg()
    print_report(d)
    if save(d, a.json):
        print(f"\nwrote {a.json}")


def save(d: dict, path: str | None) -> bool:
    if not path:
        return False
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(d, indent=1, default=str) + "\n")
    return True


if __name__ == "__main__":
    main()
