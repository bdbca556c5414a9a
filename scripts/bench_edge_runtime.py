#!/usr/bin/env python
"""Benchmark the Python edge runtime (edge/runtime.py) and print a rich table.

    .venv/bin/python scripts/bench_edge_runtime.py --data data/world \\
        --trigger runs/kd/export/trigger_xnnpack_int8.pte --student runs/kd_av/export/av_xnnpack_int8.pte \\
        --teacher runs/teacher/model

Three measurements, each over every recording of the dataset (as fast as possible, one thread):

1. the loop without models: per-hop cost of source, ring buffer, SNR estimate, policy,
   event log and energy accounting, with a trigger that returns zeros and no student;
2. trigger and student calls inside the loop (audio_trigger policy, no cloud);
3. end-to-end latency on loopback from an annotated audio event's onset to the cloud's
   answer arriving at the edge (``earshot serve`` started here with the teacher): per event of a
   label the trigger knows, the first offload sent while it sounds (onset .. offset + 2 hops)
   that got a result: (offload step - onset) + measured round trip. The step wait (up to one hop)
   plus the policy's reaction are part of it, as the wearer would feel them.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.eventlog import EventLog, read_events  # noqa: E402
from edge.policy import make_policy  # noqa: E402
from edge.programs import load_program  # noqa: E402
from edge.runtime import EdgeRuntime  # noqa: E402
from edge.source import RecordingSource  # noqa: E402
from edge.edge_config import make_client, recording_folders  # noqa: E402
from shared.profiles import EnergyMeter, load_device_profile, load_network_profile  # noqa: E402


class NullTrigger:
    """A trigger with the real card's interface that returns zeros (the loop's own cost)."""

    def __init__(self, card) -> None:
        self.card, self.last_ms = card, 0.0
        self._out = [np.zeros((1, len(card.labels)), np.float32)]

    def __call__(self, *inputs):
        return self._out


def pct(xs, q):
    return float(np.percentile(xs, q)) if len(xs) else float("nan")


def run(folder, trigger, student, log_path, endpoint=None, policy="audio_trigger"):
    device, network = load_device_profile("glasses_2025"), load_network_profile("wifi")
    client = make_client(endpoint, None, None, 4, 2000)
    try:
        with EventLog(log_path) as log:
            rt = EdgeRuntime(RecordingSource(folder), trigger, student, make_policy(policy), EnergyMeter(device, network),
                             log, client=client, deadline_ms=2000, link_rtt_ms=network.rtt_ms,
                             link_mbps=network.uplink_mbps, run_info={"device": device.name, "network": network.name,
                             "trigger_program": "bench", "student_program": "bench", "endpoint": endpoint})
            summary = rt.run()
    finally:
        if client is not None:
            client.close()
    return summary, rt.source.recording.annotations


def onset_to_answer_ms(log_path, ann, trigger_labels, hop_s=0.25):
    """Per annotated audio event (of a label the trigger knows): ms from its onset to the answer of
    the first offload sent while it sounds (onset .. offset + 2 hops) that got a result."""
    events = list(read_events(log_path))
    offloads = [e for e in events if e["kind"] == "offload"]
    results = {e["request_id"]: e for e in events if e["kind"] == "result"}
    out = []
    for ev in ann.events:
        if ev.label not in trigger_labels:
            continue
        sent = [o for o in offloads if ev.onset_s <= o["t_s"] <= ev.offset_s + 2 * hop_s and o["request_id"] in results]
        if sent:
            o = sent[0]
            out.append(1000 * (o["t_s"] - ev.onset_s) + results[o["request_id"]]["latency_ms"])
    return out


def wait_ready(endpoint: str, server: subprocess.Popen, timeout_s: float = 120.0) -> None:
    """Ping until the server says ready (model loaded and warmed up)."""
    from edge.client import Client, ClientError

    with Client(endpoint) as client:
        t_end = time.monotonic() + timeout_s
        while time.monotonic() < t_end and server.poll() is None:
            try:
                if client.ping(timeout_ms=1000).ready:
                    return
            except ClientError:
                pass
            time.sleep(0.2)
    raise SystemExit(f"server at {endpoint} not ready in {timeout_s} s")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/world")
    ap.add_argument("--trigger", default="runs/kd/export/trigger_xnnpack_int8.pte")
    ap.add_argument("--student", default="runs/kd_av/export/av_xnnpack_int8.pte")
    ap.add_argument("--teacher", default="runs/teacher/model")
    ap.add_argument("--run", default=None, help="a scripts/demo output: its world, students and teacher "
                                                "(overrides --data/--trigger/--student/--teacher)")
    ap.add_argument("--quick", action="store_true", help="the first two recordings only")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()
    if args.run:
        run_dir = Path(args.run)
        args.data = str(run_dir / "world")
        args.trigger = str(sorted(run_dir.glob("kd/trigger/export/*int8.pte"))[0])
        args.student = str(sorted(run_dir.glob("kd/av/export/*int8.pte"))[0])
        args.teacher = str(run_dir / "teacher" / "av_gate" / "model")
    import torch

    torch.set_num_threads(1)
    folders = recording_folders(args.data)
    if args.run:  # the demo's held-out (test split) recordings: what the runtimes run on in the demo
        from shared.dataset import load_dataset

        test = {e.id for e in load_dataset(args.data).split("test")}
        folders = [f for f in folders if f.name in test] or folders
    if args.quick:
        folders = folders[:2]
    trigger, student = load_program(args.trigger, expect="trigger"), load_program(args.student, expect="av")
    tmp = Path(tempfile.mkdtemp(prefix="bench_edge_"))
    rows = []
    # 1. the loop alone
    steps = []
    for f in folders:
        s, _ = run(f, NullTrigger(trigger.card), None, tmp / "null.jsonl")
        steps += s.timings_ms["step"][1:]
    rows.append(("loop per hop, no models (ms)", pct(steps, 50), pct(steps, 95), len(steps)))
    # 2. with the programs
    trig_ms, stud_ms, step_ms = [], [], []
    for f in folders:
        s, _ = run(f, trigger, student, tmp / "models.jsonl")
        trig_ms += s.timings_ms["trigger"][1:]
        stud_ms += s.timings_ms["student"]
        step_ms += s.timings_ms["step"][1:]
    rows.append((f"trigger call in the loop (ms), {trigger.path.name}", pct(trig_ms, 50), pct(trig_ms, 95), len(trig_ms)))
    rows.append((f"student call in the loop (ms), {student.path.name}", pct(stud_ms, 50), pct(stud_ms, 95), len(stud_ms)))
    rows.append(("loop per hop with models, no cloud (ms)", pct(step_ms, 50), pct(step_ms, 95), len(step_ms)))
    # 3. onset -> cloud answer on loopback
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"
    ep_file = tmp / "ep"
    server = subprocess.Popen([str(Path(sys.executable).parent / "earshot"), "serve", f"checkpoint={args.teacher}",
                               f"bind={endpoint}", f"endpoint_file={ep_file}", f"hydra.run.dir={tmp / 'hydra'}"],
                              stdout=open(tmp / "serve.log", "w"), stderr=subprocess.STDOUT, cwd=tmp)
    try:
        wait_ready(endpoint, server)
        lat, rtts = [], []
        for f in folders:
            log = tmp / f"cloud_{f.name}.jsonl"
            _, ann = run(f, trigger, student, log, endpoint=endpoint)
            lat += onset_to_answer_ms(log, ann, set(trigger.card.labels))
            rtts += [e["latency_ms"] for e in read_events(log) if e["kind"] == "result"]
        rows.append(("cloud round trip on loopback (ms)", pct(rtts, 50), pct(rtts, 95), len(rtts)))
        rows.append(("audio onset -> cloud answer at the edge (ms)", pct(lat, 50), pct(lat, 95), len(lat)))
    finally:
        os.kill(server.pid, signal.SIGTERM)
        server.wait(timeout=60)

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"edge runtime: {len(folders)} recordings of {args.data}, hop 0.25 s, 1 thread")
    for col, just in (("measure", "left"), ("p50", "right"), ("p95", "right"), ("n", "right")):
        table.add_column(col, justify=just)
    for name, p50, p95, n in rows:
        table.add_row(name, f"{p50:.2f}", f"{p95:.2f}", str(n))
    Console().print(table)
    if args.json:
        import json

        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "recordings": len(folders), "trigger": str(args.trigger), "student": str(args.student),
            "rows": [{"measure": n, "p50": a, "p95": b, "n": k} for n, a, b, k in rows],
            "summary": {n: f"p50 {a:.2f} / p95 {b:.2f}" for n, a, b, k in rows},
        }, indent=1) + "\n")


if __name__ == "__main__":
    main()
