"""Benchmark the simulator: env steps per second on one core, and the evaluation sweep's wall time.

    .venv/bin/python scripts/bench_sim.py                       # traces: the tests' trace double (3 x 30 s)
    .venv/bin/python scripts/bench_sim.py --traces traces       # real traces from 'earshot trace'

Steps/s is measured on the unwrapped env with integer actions (the PPO hot
path), over whole wearing days including their resets, recording switches and
idle gaps; the target is >= 100,000 on one core, an absolute figure: quote the
machine's load with it (this script prints the 1-minute load average). The
sweep is ``earshot sim eval``'s body over the default policies, one 1-hour day
each, on a 2 x 2 budget grid.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]  # the repository: shared, sim, and tests.helpers (the trace double)

import numpy as np  # noqa: E402

TARGET_STEPS_PER_S = 100_000


def steps_per_second(traces: str, n: int) -> float:
    import gymnasium as gym

    import sim  # noqa: F401
    from sim.env import ENV_ID

    env = gym.make(ENV_ID, traces=traces).unwrapped
    actions = np.random.default_rng(0).integers(0, env.action_space.n, n).tolist()
    env.reset(seed=0)
    for a in actions[:5000]:  # warm-up: per-trace tables and the device-answer cache fill once per process
        if env.step(a)[2]:
            env.reset()
    env.reset(seed=1)
    t0 = time.perf_counter()
    for a in actions:
        if env.step(a)[2]:
            env.reset()
    return n / (time.perf_counter() - t0)


def sweep_seconds(traces: str, out: str) -> float:
    from hydra import compose, initialize_config_dir

    import sim.verbs  # noqa: F401
    from shared.config import CONFIG_DIR, to_schema
    from sim.config import SimEvalConfig
    from sim.evaluate import run

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = to_schema(compose("sim_eval", [f"env.traces={traces}", f"out={out}", "plot=false", "env.split=all",
                                             "days=1", "env.day_h=1.0", "grid.power_cap_mw=[300,500]",
                                             "grid.deadline_ms=[300,800]"]), SimEvalConfig)
    t0 = time.perf_counter()
    run(cfg)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", default=None, help="trace folder (default: build the test double)")
    ap.add_argument("--steps", type=int, default=200_000)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench_sim_")
    traces = args.traces
    if traces is None:
        from tests.helpers.trace_double import make_trace_dir

        traces = str(make_trace_dir(Path(tmp) / "traces", n=3, duration_s=30.0))
    load = os.getloadavg()[0]
    sps = max(steps_per_second(traces, args.steps) for _ in range(3))
    wall = sweep_seconds(traces, str(Path(tmp) / "eval"))
    print(f"env steps/s (one core, best of 3 x {args.steps}): {sps:,.0f}  (target >= {TARGET_STEPS_PER_S:,}); "
          f"1-minute load average {load:.2f} on {os.cpu_count()} cores")
    print(f"evaluation sweep (11 policies x 4 budgets x one 1-hour day of {traces}): {wall:.2f} s wall")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"traces": traces, "steps": args.steps, "steps_per_s": sps,
                                         "target_steps_per_s": TARGET_STEPS_PER_S, "sweep_wall_s": wall,
                                         "load_avg_1m": load, "cpus": os.cpu_count()}, indent=1) + "\n")


if __name__ == "__main__":
    main()
