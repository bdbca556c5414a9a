"""``earshot sim eval``: policies x budgets x recordings, vectorized, into a table and a Pareto plot.

For every budget of the grid, one ``gymnasium.vector.SyncVectorEnv`` holds
one environment per recording; each policy then plays all recordings at
once (one policy object per sub-environment, as each glasses would have
its own), for ``episodes`` seeds. Per (policy, budget) the table reports:

    success      (queries answered correctly + important events notified) / (queries + events)
    query_acc    queries answered correctly / queries
    event_recall important events notified / events
    power_mw     mean power = energy / time;  energy_j_h = J per hour of use
    battery_h    a full battery (device profile) at that mean power
    p50/p95_ms   latency of the answers (cloud: end to end; fallback: the deadline + local)
    mb_sent      bytes sent (MB, all recordings); frames (captured) and frames_share of an always-on camera
    misses       deadline misses (offloaded queries answered by the fallback); throttled steps

Files in ``out``: ``results.csv`` / ``results.json`` (one row per policy x
budget, and ``episodes.json`` per recording), ``pareto.png`` (success
against energy, the non-dominated points joined) and ``summary.json`` (the
issue's targets checked against always_cloud and an always-on camera).
"""
from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import asdict, replace
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np

from sim.config import BudgetConfig, SimEvalConfig, make_env_kwargs, write_profiles
from sim.env import CAMERA_FPS, ENV_ID
from sim.policies import make_sim_policy
from sim.traces import load_traces

__all__ = ["budget_grid", "run_policy", "aggregate", "pareto_front", "run"]

COLUMNS = ["policy", "power_cap_mw", "deadline_ms", "energy_budget_j", "success", "query_acc", "event_recall",
           "power_mw", "energy_j_h", "battery_h", "p50_ms", "p95_ms", "mb_sent", "frames", "frames_share",
           "misses", "throttled", "episodes"]


def budget_grid(base: BudgetConfig, grid) -> list[BudgetConfig]:
    """The base budget with every combination of the grid's lists substituted."""
    keys = [k for k in ("power_cap_mw", "deadline_ms", "energy_budget_j") if getattr(grid, k)]
    if not keys:
        return [base]
    return [replace(base, **dict(zip(keys, vals))) for vals in product(*(getattr(grid, k) for k in keys))]


def run_policy(envs, name: str, params: dict[str, Any], seed: int) -> list[dict[str, Any]]:
    """Play one episode per sub-environment with policy ``name``; return each episode's stats."""
    subs = [e.unwrapped for e in envs.envs]
    policies = [make_sim_policy(name, params, env=sub) for sub in subs]
    seeds = [seed * 1000 + k for k in range(len(subs))]
    obs, _ = envs.reset(seed=seeds)
    for p, s in zip(policies, seeds):
        p.reset(seed=s)
    n = len(subs)
    stats: list[dict | None] = [None] * n
    learned = name == "learned"
    while any(s is None for s in stats):
        if learned:  # the vector is what observation_vector would build (tests/sim check it)
            actions = [p.act_vector(obs[k]) for k, p in enumerate(policies)]
        else:
            actions = [policies[k].act(subs[k].observation()).index if stats[k] is None else 0 for k in range(n)]
        obs, _, term, trunc, _ = envs.step(np.asarray(actions))
        for k in np.flatnonzero(term | trunc):
            if stats[k] is None:
                stats[k] = subs[k].episode_stats()
    return stats  # type: ignore[return-value]


def aggregate(episodes: list[dict[str, Any]], battery_wh: float) -> dict[str, Any]:
    """One table row's figures from its episodes (sums over recordings, then ratios)."""
    s = lambda k: float(sum(e[k] for e in episodes))  # noqa: E731
    tasks = s("queries") + s("events")
    lat = np.concatenate([np.asarray(e["latencies_ms"], float) for e in episodes]) if episodes else np.zeros(0)
    power = s("energy_mj") / max(s("duration_s"), 1e-9)
    return {
        "success": (s("answers_correct") + s("events_notified")) / tasks if tasks else math.nan,
        "query_acc": s("answers_correct") / s("queries") if s("queries") else math.nan,
        "event_recall": s("events_notified") / s("events") if s("events") else math.nan,
        "power_mw": power, "energy_j_h": power * 3.6,
        "battery_h": battery_wh * 1000.0 / power if power > 0 else math.inf,
        "p50_ms": float(np.percentile(lat, 50)) if lat.size else math.nan,
        "p95_ms": float(np.percentile(lat, 95)) if lat.size else math.nan,
        "mb_sent": s("bytes_sent") / 1e6, "frames": s("frames_captured"),
        "frames_share": s("frames_captured") / (CAMERA_FPS * max(s("duration_s"), 1e-9)),
        "misses": s("deadline_misses"), "throttled": s("throttled_steps"), "episodes": len(episodes),
    }


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats (less or equal energy and more or equal success, one strictly)."""
    front = []
    for i, (e, a) in enumerate(points):
        if not any((e2 <= e and a2 >= a) and (e2 < e or a2 > a) for j, (e2, a2) in enumerate(points) if j != i):
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def _targets(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's targets per budget: best non-oracle policy vs always_cloud and an always-on camera."""
    out = []
    keyf = lambda r: (r["power_cap_mw"], r["deadline_ms"], r["energy_budget_j"])  # noqa: E731
    for key in sorted({keyf(r) for r in rows}):
        group = [r for r in rows if keyf(r) == key]
        cloud = next((r for r in group if r["policy"].startswith("always_cloud")), None)
        if cloud is None:
            continue
        cands = [r for r in group if r["policy"] not in ("oracle", "random") and not r["policy"].startswith("always_")]
        ok = [r for r in cands if r["success"] >= 0.95 * cloud["success"] and r["power_mw"] <= 0.25 * cloud["power_mw"]]
        best = max(ok or cands, key=lambda r: (r["success"], -r["power_mw"]), default=None)
        if best is None:
            continue
        out.append({
            "budget": dict(zip(("power_cap_mw", "deadline_ms", "energy_budget_j"), key)), "best": best["policy"],
            "success_vs_cloud": best["success"] / cloud["success"] if cloud["success"] else math.nan,
            "energy_vs_cloud": best["power_mw"] / cloud["power_mw"],
            "fewer_frames_than_always_on": 1.0 - best["frames_share"],
            "meets_success_and_energy": bool(ok), "meets_frames": 1.0 - best["frames_share"] >= 0.70,
        })
    return {"targets": out}


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    points = [(r["energy_j_h"], r["success"]) for r in rows]
    for name in dict.fromkeys(r["policy"] for r in rows):
        xs = [r["energy_j_h"] for r in rows if r["policy"] == name]
        ys = [r["success"] for r in rows if r["policy"] == name]
        ax.scatter(xs, ys, label=name, s=36)
    front = pareto_front(points)
    ax.plot([points[i][0] for i in front], [points[i][1] for i in front], "k--", lw=1, label="Pareto front")
    ax.set_xscale("log")
    ax.set_xlabel("energy (J per hour of use, log)")
    ax.set_ylabel("task success")
    ax.set_title("success vs energy: policies x budgets")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _print_table(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="earshot sim eval: policies x budgets (sums over recordings)")
    cols = ["policy", "power_cap_mw", "deadline_ms", "success", "query_acc", "event_recall", "power_mw",
            "battery_h", "p50_ms", "p95_ms", "mb_sent", "frames", "misses", "throttled"]
    for c in cols:
        t.add_column(c, justify="left" if c == "policy" else "right")
    for r in rows:
        t.add_row(*[r[c] if isinstance(r[c], str) else f"{r[c]:.3g}" if isinstance(r[c], float) else str(r[c]) for c in cols])
    Console(width=200).print(t)


def run(cfg: SimEvalConfig) -> dict[str, Any]:
    """The verb's body: sweep, write the files, print the table. Returns the summary."""
    import gymnasium as gym

    import sim  # noqa: F401  (registers the env id)

    t0 = time.perf_counter()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device, network = write_profiles(cfg.device, cfg.network, out)
    traces = load_traces(cfg.env.traces, cfg.env.important_labels)
    if cfg.env.recordings:
        traces = traces.subset(cfg.env.recordings)
    rows, episodes = [], []
    battery_wh = None
    for budget in budget_grid(cfg.budget, cfg.grid):
        kwargs = make_env_kwargs(cfg.env, budget, cfg.reward, device, network)
        kwargs["traces"] = traces  # loaded once, shared by every sub-environment

        def make(rid: str):
            return lambda: gym.make(ENV_ID, **{**kwargs, "recordings": [rid]})

        envs = gym.vector.SyncVectorEnv([make(rid) for rid in traces.recording_ids])
        battery_wh = envs.envs[0].unwrapped.device.battery_wh
        cap = budget.power_cap_mw or envs.envs[0].unwrapped.device.sustained_power_mw
        for spec in cfg.policies:
            label = spec.label or spec.name
            eps = []
            for k in range(cfg.episodes):
                for st in run_policy(envs, spec.name, dict(spec.params), cfg.seed + k):
                    eps.append(st)
                    episodes.append({"policy": label, **asdict(budget), "seed": cfg.seed + k, **st})
            rows.append({"policy": label, "power_cap_mw": cap, "deadline_ms": budget.deadline_ms,
                         "energy_budget_j": budget.energy_budget_j, **aggregate(eps, battery_wh)})
        envs.close()
    wall_s = time.perf_counter() - t0

    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    (out / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
    (out / "episodes.json").write_text(json.dumps(episodes) + "\n")
    summary = {"out": str(out.resolve()), "wall_s": round(wall_s, 3), "rows": len(rows),
               "recordings": traces.recording_ids, "device": device, "network": network, **_targets(rows)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    if cfg.plot:
        _plot(rows, out / "pareto.png")
    _print_table(rows)
    for t in summary["targets"]:
        print(f"budget {t['budget']}: best {t['best']}: {t['success_vs_cloud']:.1%} of always_cloud success at "
              f"{t['energy_vs_cloud']:.1%} of its energy, {t['fewer_frames_than_always_on']:.0%} fewer frames than an "
              f"always-on camera")
    print(f"sweep wall time {wall_s:.2f} s -> {out}")
    return summary
