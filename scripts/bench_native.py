"""Benchmark the native edge binary against the Python runtime on the same recording.

    .venv/bin/python scripts/bench_native.py                          # defaults below
    .venv/bin/python scripts/bench_native.py --recording data/world/recordings/kitchen_s0_00000 \\
        --trigger runs/kd/export/trigger_xnnpack_int8.pte --student runs/kd_av/export/av_xnnpack_int8.pte

Both runtimes replay the recording as fast as possible with no endpoint (every
offload falls back locally), the audio_trigger policy, pinned to one CPU core
(taskset) and with their inference thread pools off (``--threads 1`` for the
binary; ``torch.set_num_threads(1)`` for Python), each in its own child process
so that process's peak RSS is read from ``os.wait4``. Printed (rich table):
per-hop step latency p50/p95, trigger latency p50, the trigger's real-time
factor (audio seconds per second of trigger compute), peak RSS, and the size
of the binary (alone, and with the ExecuTorch libraries it loads).
Targets (issue 8): trigger >= 1000x real time on one thread, peak RSS < 50 MB.

    .venv/bin/python scripts/bench_native.py --no-python --baseline /tmp/earshot-edge-main --rounds 5 ...

``--baseline`` times another earshot-edge build (say, main's) in the same run,
alternating with this build ``--rounds`` times (timings pooled per binary), and
prints this build's step and trigger p50 as ratios of the baseline's.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / "edge" / "native" / "build" / "earshot-edge"
RTF_TARGET = 1000.0
RSS_TARGET_MB = 50.0

_PY_CHILD = r"""
import json, sys, torch
torch.set_num_threads(1)
sys.path.insert(0, sys.argv[1])
from edge.eventlog import EventLog
from edge.policy import make_policy
from edge.programs import load_program
from edge.runtime import EdgeRuntime
from edge.source import RecordingSource
from shared.profiles import EnergyMeter, load_device_profile, load_network_profile
rec, trig, stud, log, out = sys.argv[2:7]
dev, net = load_device_profile("glasses_2025"), load_network_profile("wifi")
with EventLog(log) as ev:
    rt = EdgeRuntime(RecordingSource(rec), load_program(trig), load_program(stud) if stud else None,
                     make_policy("audio_trigger"), EnergyMeter(dev, net), ev, client=None,
                     link_rtt_ms=net.rtt_ms, link_mbps=net.uplink_mbps,
                     run_info={"device": dev.name, "network": net.name, "trigger_program": trig,
                               "student_program": stud or None, "endpoint": None})
    s = rt.run()
json.dump({"step_ms": s.timings_ms["step"], "trigger_ms": s.timings_ms["trigger"],
           "student_ms": s.timings_ms["student"], "steps": s.steps}, open(out, "w"))
"""


def _run_child(argv: list[str]) -> tuple[int, float, float]:
    """(returncode, peak RSS MB, wall s) of one child process."""
    import time

    pin = ["taskset", "-c", "0"] if shutil.which("taskset") else []
    t0 = time.perf_counter()
    proc = subprocess.Popen(pin + argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    rc = os.waitstatus_to_exitcode(status)
    if rc != 0:
        raise SystemExit(f"{argv[0]} failed ({rc}):\n{err[-2000:]}")
    return rc, usage.ru_maxrss / 1024.0, wall


def _stats(timings: dict, duration_s: float, hop_s: float) -> dict:
    step, trig = np.asarray(timings["step_ms"]), np.asarray(timings["trigger_ms"])
    return {
        "steps": len(step),
        "step_p50_ms": float(np.percentile(step, 50)), "step_p95_ms": float(np.percentile(step, 95)),
        "trigger_p50_ms": float(np.percentile(trig, 50)), "trigger_p95_ms": float(np.percentile(trig, 95)),
        # audio seconds covered per second of trigger compute, one call per hop of hop_s:
        # steady state (median call) and over the whole run (first call's warm-up included)
        "trigger_rtf": hop_s / (float(np.percentile(trig, 50)) / 1000.0),
        "trigger_rtf_run": hop_s * len(trig) / (trig.sum() / 1000.0),
        "student_p50_ms": float(np.percentile(timings["student_ms"], 50)) if timings["student_ms"] else None,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="native vs Python edge runtime benchmark")
    ap.add_argument("--recording", type=Path, default=ROOT / "data/world/recordings/kitchen_s0_00000")
    ap.add_argument("--trigger", type=Path, default=ROOT / "runs/kd/export/trigger_xnnpack_int8.pte")
    ap.add_argument("--student", type=Path, default=ROOT / "runs/kd_av/export/av_xnnpack_int8.pte",
                    help="the AV student program; 'none' runs the trigger alone")
    ap.add_argument("--no-python", action="store_true", help="benchmark the binary only")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    ap.add_argument("--baseline", type=Path, help="another earshot-edge build to time in the same run (ratios)")
    ap.add_argument("--rounds", type=int, default=1, help="with --baseline: runs of each binary, alternating")
    args = ap.parse_args(argv)
    if not BIN.is_file():
        raise SystemExit(f"{BIN} is not built: run edge/native/build.sh")
    sys.path.insert(0, str(ROOT))
    from shared.recording import read_wav

    pcm, rate = read_wav(args.recording / "audio.wav")
    duration_s, hop_s = len(pcm) / rate, 0.25
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rec = tmp / "rec"
        shutil.copytree(args.recording, rec)
        subprocess.run([sys.executable, str(ROOT / "edge/native/decode_frames.py"), str(rec)], check=True,
                       stdout=subprocess.DEVNULL)
        student = [] if str(args.student) == "none" else ["--student", str(args.student)]
        binaries = {"native (earshot-edge)": BIN}
        if args.baseline:
            binaries["baseline (--baseline)"] = args.baseline
        runs: dict[str, list] = {name: [] for name in binaries}
        for i in range(args.rounds if args.baseline else 1):  # alternate, so load drift hits both
            for name, binary in binaries.items():
                _, rss, wall = _run_child([str(binary), "--recording", str(rec), "--trigger", str(args.trigger),
                                           *student, "--threads", "1", "--log", str(tmp / f"n{i}.jsonl"),
                                           "--summary-json", str(tmp / "n.json")])
                runs[name].append((json.loads((tmp / "n.json").read_text()), rss, wall))
        for name, done in runs.items():
            pooled = {k: [x for t, _, _ in done for x in t[k]] for k in ("step_ms", "trigger_ms", "student_ms")}
            rows[name] = {**_stats(pooled, duration_s, hop_s), "steps": len(done[0][0]["step_ms"]),
                          "peak_rss_mb": max(r for _, r, _ in done),
                          "wall_s": float(np.mean([w for _, _, w in done]))}
        if not args.no_python:
            _, rss, wall = _run_child([sys.executable, "-c", _PY_CHILD, str(ROOT), str(rec), str(args.trigger),
                                       "" if str(args.student) == "none" else str(args.student),
                                       str(tmp / "p.jsonl"), str(tmp / "p.json")])
            rows["python (edge.runtime)"] = {**_stats(json.loads((tmp / "p.json").read_text()), duration_s, hop_s),
                                             "peak_rss_mb": rss, "wall_s": wall}
    et_lib = Path(subprocess.run([sys.executable, "-c", "import executorch; print(list(executorch.__path__)[0])"],
                                 capture_output=True, text=True).stdout.strip()) / "lib"
    libs = sum(p.stat().st_size for p in et_lib.glob("libexecutorch*.so"))
    sizes = {"binary_bytes": BIN.stat().st_size, "executorch_libs_bytes": libs}
    _print(rows, sizes, args.recording, duration_s)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "sizes": sizes}, indent=1))
    native = rows["native (earshot-edge)"]
    if args.baseline:
        base = rows["baseline (--baseline)"]
        print(f"this build / baseline over {args.rounds} alternating round(s): step p50 "
              f"{native['step_p50_ms'] / base['step_p50_ms']:.3f}x, step p95 {native['step_p95_ms'] / base['step_p95_ms']:.3f}x, "
              f"trigger p50 {native['trigger_p50_ms'] / base['trigger_p50_ms']:.3f}x, wall "
              f"{native['wall_s'] / base['wall_s']:.3f}x (below 1: this build is faster)")
    ok = native["trigger_rtf"] >= RTF_TARGET and native["peak_rss_mb"] < RSS_TARGET_MB
    print(f"targets (steady-state trigger >= {RTF_TARGET:.0f}x real time, peak RSS < {RSS_TARGET_MB:.0f} MB): "
          f"{'met' if ok else 'NOT met'}")
    return 0


def _print(rows: dict, sizes: dict, recording: Path, duration_s: float) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"edge runtimes on {recording.name} ({duration_s:.1f} s, hop 0.25 s, 1 core, no cloud)")
    t.add_column("runtime")
    for col in ("steps", "step p50 ms", "step p95 ms", "trigger p50 ms", "trigger RTF p50", "trigger RTF run",
                "student p50 ms", "peak RSS MB", "wall s"):
        t.add_column(col, justify="right")
    for name, r in rows.items():
        t.add_row(name, str(r["steps"]), f"{r['step_p50_ms']:.3f}", f"{r['step_p95_ms']:.3f}",
                  f"{r['trigger_p50_ms']:.3f}", f"{r['trigger_rtf']:.0f}x", f"{r['trigger_rtf_run']:.0f}x",
                  "-" if r["student_p50_ms"] is None else f"{r['student_p50_ms']:.3f}",
                  f"{r['peak_rss_mb']:.1f}", f"{r['wall_s']:.2f}")
    Console(width=160).print(t)
    print(f"binary size: {sizes['binary_bytes'] / 1024:.0f} KiB (earshot-edge), "
          f"{sizes['executorch_libs_bytes'] / 2**20:.1f} MiB of ExecuTorch shared libraries it links")


if __name__ == "__main__":
    sys.exit(main())
