#!/usr/bin/env python3
"""Benchmark the synthetic world: seconds of recording generated per second, on one core.

    python scripts/bench_world.py                      # 2 x 30 s per scenario, generate + save
    python scripts/bench_world.py --per-scenario 4 --duration 60 --no-save

One process, one thread: BLAS/OpenMP pools are pinned to a single thread
before numpy loads, x264 encodes with threads=1 (shared/recording.py), and
no worker pool is used, so the figure is "per core" (run N workers for ~N x
on N free cores). A short warm-up recording is generated first and not
counted (imports, espeak-ng start, decoding the real sound files).

Prints one row per scenario and a total: time per stage (plan, sounds, video,
mix, annotate), the real-time factor of generation in memory (wall clock,
and CPU time of this process, which is what one core delivers when other
work shares the machine), the time to write the recording folder (H.264 +
WAV + JSON) and the real-time factor of both together. The aim is >= 20x
for generation.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported: one thread, one core

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from shared.recording import save_recording  # noqa: E402
from sim.world.generator import generate_recording  # noqa: E402
from sim.world.world_config import SCENARIO_NAMES, WorldConfig  # noqa: E402

STAGES = ("plan", "sounds", "video", "mix", "annotate")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--duration", type=float, default=30.0, help="seconds per recording")
    ap.add_argument("--per-scenario", type=int, default=2, help="recordings per scenario")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-save", action="store_true", help="skip writing the recording folders")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args(argv)

    cfg = WorldConfig(duration_s=args.duration)
    generate_recording(WorldConfig(duration_s=6.0), args.seed + 1, 0)  # warm-up, not counted
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for s_i, scenario in enumerate(SCENARIO_NAMES):
            stages = dict.fromkeys(STAGES, 0.0)
            gen_wall = gen_cpu = save_wall = 0.0
            for k in range(args.per_scenario):
                index = s_i + len(SCENARIO_NAMES) * k  # index % 4 picks the scenario
                t0, c0 = time.perf_counter(), time.process_time()
                rec = generate_recording(cfg, args.seed, index, timings=stages)
                gen_wall += time.perf_counter() - t0
                gen_cpu += time.process_time() - c0
                if not args.no_save:
                    t0 = time.perf_counter()
                    save_recording(rec, Path(tmp) / rec.annotations.recording_id)
                    save_wall += time.perf_counter() - t0
            audio_s = args.duration * args.per_scenario
            rows.append((scenario, args.per_scenario, audio_s, stages, gen_wall, gen_cpu, save_wall))

    table = Table(title=f"sim.world generation speed, one core ({args.per_scenario} x {args.duration:g} s per scenario)")
    for col in ("scenario", "recs", "audio s", *(f"{s} s" for s in STAGES), "generate s", "x real time",
                "x (cpu time)", *(() if args.no_save else ("save s", "x incl. save"))):
        table.add_column(col, justify="left" if col == "scenario" else "right")
    tot = [0, 0.0, dict.fromkeys(STAGES, 0.0), 0.0, 0.0, 0.0]
    for scenario, n, audio_s, stages, gw, gc, sw in rows:
        table.add_row(scenario, str(n), f"{audio_s:.0f}", *(f"{stages[s]:.2f}" for s in STAGES), f"{gw:.2f}",
                      f"{audio_s / gw:.1f}x", f"{audio_s / gc:.1f}x",
                      *(() if args.no_save else (f"{sw:.2f}", f"{audio_s / (gw + sw):.1f}x")))
        tot[0] += n
        tot[1] += audio_s
        for s in STAGES:
            tot[2][s] += stages[s]
        tot[3] += gw
        tot[4] += gc
        tot[5] += sw
    n, audio_s, stages, gw, gc, sw = tot
    table.add_row("all", str(n), f"{audio_s:.0f}", *(f"{stages[s]:.2f}" for s in STAGES), f"{gw:.2f}",
                  f"[bold]{audio_s / gw:.1f}x[/bold]", f"{audio_s / gc:.1f}x",
                  *(() if args.no_save else (f"{sw:.2f}", f"{audio_s / (gw + sw):.1f}x")), end_section=True)
    console = Console(width=160)  # the table is wide; keep it whole in logs and pipes
    console.print(table)
    console.print(f"generation: {audio_s / gw:.1f}x real time per core (aim >= 20x)"
                  + ("" if args.no_save else f"; with writing the folders: {audio_s / (gw + sw):.1f}x"))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "args": {k: v for k, v in vars(args).items() if k != "json"},
            "scenarios": [{"scenario": sc, "recordings": n_, "audio_s": a_, "stages_s": st, "generate_s": g_,
                           "generate_cpu_s": c_, "save_s": s_} for sc, n_, a_, st, g_, c_, s_ in rows],
            "realtime_factor": audio_s / gw,
            "realtime_factor_cpu": audio_s / gc,
            "realtime_factor_with_save": None if args.no_save else audio_s / (gw + sw),
        }, indent=1) + "\n")
        console.print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
