"""``earshot sim eval``: policies x budgets over the same wearing days, every figure with its interval.

For every budget of the grid, each policy plays ``days`` days (seeds
``seed..seed+days-1``: the same recordings in the same order, the same links
and batteries for every policy, so comparisons are paired). Every query the
days plan is one item (answered right or not, asked or lost to an empty
battery), every important event one item, every recording played one
segment; intervals are recording-level bootstrap 95% intervals
(``shared/stats.py``), the recordings being the resampled unit. Specs that
share a label (several PPO seeds of ``learned``) are pooled.

Per (policy, budget) the table reports:

    query_acc      correct answers within the deadline / queries of the days (the headline)
    events         important events the trigger alone misses, notified in time / such events
    free_events    events the always-on trigger catches whatever the policy does (apart)
    power_mw       energy while recordings play / their time (idle gaps apart: the same for all)
    battery_out    share of days on which the battery ran out
    frames_share   frames captured / an always-on camera's; p50/p95_ms of the answers
    mb_per_h       MB sent per hour of recordings; misses, throttled and refused offloads

``summary.json`` checks the targets per budget: never-on vs always-cloud query
success, the learned policy against the best heuristic (``paired_difference``)
and against always-cloud (success and energy ratios, frames vs an always-on
camera). Files: ``results.{csv,json}``, ``queries.csv`` (every item),
``summary.json``, ``report.md`` and ``pareto.png``.
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

from shared.stats import Interval, bootstrap_mean, bootstrap_ratio, format_interval, paired_difference, paired_ratio
from sim.config import BudgetConfig, SimEvalConfig, make_env_kwargs, write_profiles
from sim.env import CAMERA_FPS, ENV_ID
from sim.policies import make_sim_policy
from sim.traces import load_traces

__all__ = ["budget_grid", "play_day", "figures", "compare", "pareto_front", "run", "HEURISTICS", "CONTROLS"]

#: Deployable policies without learning: the candidates for "the best heuristic".
HEURISTICS = ("never_on", "query_only", "always_local", "always_cloud", "periodic", "audio_trigger",
              "confidence_threshold", "context_aware")
#: The controls every table shows beside the policies (ARCHITECTURE.md section 10).
CONTROLS = ("never_on", "query_only", "oracle")
CSV_COLUMNS = ["policy", "power_cap_mw", "deadline_ms", "uplink_kbps", "query_acc", "query_acc_lo", "query_acc_hi",
               "events", "free_events", "power_mw", "power_mw_lo", "power_mw_hi", "battery_out", "frames_share",
               "frames_share_lo", "frames_share_hi", "p50_ms", "p95_ms", "mb_per_h", "misses", "throttled", "refused",
               "queries", "recordings", "days"]


def budget_grid(base: BudgetConfig, grid) -> list[BudgetConfig]:
    """The base budget with every combination of the grid's lists substituted."""
    keys = [k for k in ("power_cap_mw", "deadline_ms", "energy_budget_j") if getattr(grid, k)]
    if not keys:
        return [base]
    return [replace(base, **dict(zip(keys, vals))) for vals in product(*(getattr(grid, k) for k in keys))]


def play_day(env, policy, seed: int) -> dict[str, Any]:
    """Play one day (``env.reset(seed=seed)``) with ``policy``; returns ``env.episode_stats()``.

    A policy with ``act_vector`` (the learned one) reads the observation vector;
    the others read ``env.observation()`` (the same information, as on the glasses).
    """
    obs, _ = env.reset(seed=seed)
    policy.reset(seed=seed)
    vector = hasattr(policy, "act_vector")
    done = env._done
    while not done:
        a = policy.act_vector(obs) if vector else policy.act(env.observation()).index
        obs, _, done, _, _ = env.step(a)
    return env.episode_stats()


def _items(days: list[dict[str, Any]]) -> dict[str, Any]:
    """Flatten days into per-item arrays (queries, events, segments) with their recording ids."""
    q = [r for d in days for r in d["query_log"]]
    e = [r for d in days for r in d["event_log"]]
    seg = [r for d in days for r in d["segments"]]
    return {"q": q, "e": e, "seg": seg}


def figures(days: list[dict[str, Any]], seed: int = 0) -> dict[str, Any]:
    """One table row's figures with recording-level intervals (``Interval.to_dict()``)."""
    it = _items(days)
    q, e, seg = it["q"], it["e"], it["seg"]
    row: dict[str, Any] = {"queries": len(q), "recordings": len({r["recording_id"] for r in q} | {s["recording_id"]
                                                                                                   for s in seg}),
                           "days": len(days)}

    def iv(fn, *a):
        try:
            return fn(*a, seed=seed).to_dict()
        except ValueError:
            return None

    row["query_acc"] = iv(bootstrap_mean, [float(r["correct"]) for r in q], [r["recording_id"] for r in q])
    hard = [r for r in e if not r["free"]]
    row["events"] = iv(bootstrap_mean, [float(r["notified"]) for r in hard], [r["recording_id"] for r in hard])
    row["free_events"] = sum(1 for r in e if r["free"])
    groups = [s["recording_id"] for s in seg]
    row["power_mw"] = iv(bootstrap_ratio, [s["energy_mj"] for s in seg], [s["duration_s"] for s in seg], groups)
    row["frames_share"] = iv(bootstrap_ratio, [s["frames_captured"] for s in seg],
                             [CAMERA_FPS * s["duration_s"] for s in seg], groups)
    active_h = sum(s["duration_s"] for s in seg) / 3600.0
    row["mb_per_h"] = sum(s["bytes_sent"] for s in seg) / 1e6 / active_h if active_h else math.nan
    lat = np.asarray([r["latency_ms"] for r in q if r["source"] in ("cloud", "local")], float)
    row["p50_ms"] = float(np.percentile(lat, 50)) if lat.size else math.nan
    row["p95_ms"] = float(np.percentile(lat, 95)) if lat.size else math.nan
    row["battery_out"] = float(np.mean([d["ended_by"] == "battery" for d in days]))
    row["misses"] = sum(d["deadline_misses"] for d in days)
    row["throttled"] = sum(d["throttled_steps"] for d in days) / max(1, sum(d["steps"] for d in days))
    row["refused"] = sum(d["refused_in_flight"] + d["refused_tokens"] for d in days)
    row["by_kind"] = {k: float(np.mean([r["correct"] for r in q if r["kind"] == k]))
                      for k in sorted({r["kind"] for r in q})}
    # per wearer-question kind, with its recording-level interval (n: queries of that kind)
    row["by_kind_ci"] = {k: iv(bootstrap_mean, [float(r["correct"]) for r in q if r["kind"] == k],
                               [r["recording_id"] for r in q if r["kind"] == k]) for k in row["by_kind"]}
    row["by_source"] = {k: sum(1 for r in q if r["source"] == k) for k in ("cloud", "local", "unasked")}
    return row


def _paired_queries(a: list[dict], b: list[dict]) -> tuple[list[float], list[float], list[str]]:
    """Per-query correctness of two policies on the same items (matched by day, segment and query id)."""
    key = lambda r: (r["day"], r["segment"], r["query_id"])  # noqa: E731
    bmap = {key(r): r for r in b}
    ta, tb, g = [], [], []
    for r in a:
        other = bmap.get(key(r))
        if other is not None:
            ta.append(float(r["correct"]))
            tb.append(float(other["correct"]))
            g.append(r["recording_id"])
    return ta, tb, g


def compare(rows: dict[str, dict], days: dict[str, list[dict]], seed: int = 0,
            names: dict[str, str] | None = None) -> dict[str, Any]:
    """The targets at one budget (see the module docstring); ``days[label]`` are the label's days and
    ``names[label]`` its policy's name (default: the label), which decides who counts as a heuristic."""
    names = names or {label: label for label in rows}
    def queries(label):
        return [dict(r, day=d["day"]) for d in days.get(label, []) for r in d["query_log"]]

    out: dict[str, Any] = {}
    acc = lambda label: rows[label]["query_acc"]["value"] if rows.get(label, {}).get("query_acc") else math.nan  # noqa: E731
    if "never_on" in days and "always_cloud" in days:
        a, b = queries("never_on"), queries("always_cloud")
        try:
            iv = paired_ratio([r["correct"] for r in a], [1.0] * len(a), [r["recording_id"] for r in a],
                              [r["correct"] for r in b], [1.0] * len(b), [r["recording_id"] for r in b], seed=seed)
            out["never_on_vs_cloud"] = iv.to_dict()
            out["never_on_target_met"] = iv.value <= 0.5
        except ValueError:
            out["never_on_vs_cloud"] = None
    heur = [label for label in rows if names.get(label) in HEURISTICS and rows[label].get("query_acc")]
    if heur:
        best = max(heur, key=lambda h: (acc(h), -rows[h]["power_mw"]["value"]))
        out["best_heuristic"] = best
    if "learned" in days and heur:
        best = out["best_heuristic"]
        learned = queries("learned")
        ta, tb, g = _paired_queries(learned, queries(best))
        diff = paired_difference(ta, tb, g, seed=seed) if ta else None
        out["learned_minus_best"] = diff.to_dict() if diff else None
        lp, bp = rows["learned"]["power_mw"], rows[best]["power_mw"]
        out["learned_power_vs_best"] = _segment_ratio(days["learned"], days[best], seed)
        out["learned_beats_best"] = bool(diff and diff.lo > 0 and lp["value"] <= bp["value"] * 1.0 + 1e-9)
        if "always_cloud" in days:
            c = queries("always_cloud")
            succ = paired_ratio([r["correct"] for r in learned], [1.0] * len(learned),
                                [r["recording_id"] for r in learned], [r["correct"] for r in c], [1.0] * len(c),
                                [r["recording_id"] for r in c], seed=seed) if any(r["correct"] for r in c) else None
            energy = _segment_ratio(days["learned"], days["always_cloud"], seed)
            frames = rows["learned"]["frames_share"]
            out["learned_success_vs_cloud"] = succ.to_dict() if succ else None
            out["learned_energy_vs_cloud"] = energy
            out["learned_fewer_frames_than_always_on"] = {
                "value": 1 - frames["value"], "lo": 1 - frames["hi"], "hi": 1 - frames["lo"],
                "n": frames["n"], "n_groups": frames["n_groups"], "p_value": None}
            # "95% of always-cloud" means something only when the cloud is worth asking: while never-on
            # (nothing sent, camera off) may reach 95% of it (the upper end of its interval), the target
            # is vacuous, not met.
            never = (out.get("never_on_vs_cloud") or {}).get("hi", math.nan)
            out["learned_cloud_target_vacuous"] = bool(not never < 0.95)
            out["learned_cloud_target_met"] = bool(
                succ and succ.value >= 0.95 and energy and energy["value"] <= 0.25 and 1 - frames["value"] >= 0.70
                and not out["learned_cloud_target_vacuous"])
    return out


def _segment_ratio(a_days: list[dict], b_days: list[dict], seed: int) -> dict | None:
    """Power of A / power of B over the recordings both played (paired by recording)."""
    sa = [s for d in a_days for s in d["segments"]]
    sb = [s for d in b_days for s in d["segments"]]
    try:
        return paired_ratio([s["energy_mj"] for s in sa], [s["duration_s"] for s in sa], [s["recording_id"] for s in sa],
                            [s["energy_mj"] for s in sb], [s["duration_s"] for s in sb], [s["recording_id"] for s in sb],
                            seed=seed).to_dict()
    except ValueError:
        return None


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats (less or equal energy and more or equal success, one strictly)."""
    front = []
    for i, (e, a) in enumerate(points):
        if not any((e2 <= e and a2 >= a) and (e2 < e or a2 > a) for j, (e2, a2) in enumerate(points) if j != i):
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = sorted({(r["power_cap_mw"], r["deadline_ms"]) for r in rows})
    fig, axes = plt.subplots(1, len(budgets), figsize=(6.5 * len(budgets), 4.6), squeeze=False)
    for ax, (cap, dl) in zip(axes[0], budgets):
        group = [r for r in rows if (r["power_cap_mw"], r["deadline_ms"]) == (cap, dl) and r["query_acc"]]
        pts = [(r["power_mw"]["value"], r["query_acc"]["value"]) for r in group]
        for r in group:
            p, a = r["power_mw"], r["query_acc"]
            ax.errorbar(p["value"], a["value"], xerr=[[p["value"] - p["lo"]], [p["hi"] - p["value"]]],
                        yerr=[[a["value"] - a["lo"]], [a["hi"] - a["value"]]], fmt="o", capsize=2, label=r["policy"])
        front = pareto_front(pts)
        ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "k--", lw=1, label="Pareto front")
        ax.set_xscale("log")
        ax.set_xlabel("power while recordings play (mW, log)")
        ax.set_ylabel("query success within the deadline")
        ax.set_title(f"cap {cap:g} mW, deadline {dl:g} ms (95% intervals)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


EVENTS_COLUMN = "missed-by-trigger events % (n)"


def events_cell(row: dict[str, Any]) -> str:
    """The ``events`` figure with how many events it is over: the important events the always-on
    trigger misses, notified in time (``-`` when the days held none)."""
    iv = row.get("events")
    return "-" if not iv else f"{format_interval(iv)} ({iv['n']})"


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The results as a markdown table (query success and power with their intervals)."""
    lines = [f"| policy | cap mW | deadline ms | query success % | {EVENTS_COLUMN} | power mW | battery out | throttled | "
             "frames % | p95 ms |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['policy']} | {r['power_cap_mw']:g} | {r['deadline_ms']:g} | {format_interval(r['query_acc'])} "
                     f"| {events_cell(r)} | {format_interval(r['power_mw'], scale=1.0, digits=0)} "
                     f"| {r['battery_out']:.0%} | {r['throttled']:.0%} | {format_interval(r['frames_share'])} "
                     f"| {r['p95_ms']:.0f} |")
    return "\n".join(lines) + "\n"


def kind_table(rows: list[dict[str, Any]], policies: tuple[str, ...] = ("never_on", "query_only", "always_cloud",
                                                                      "learned", "oracle")) -> str:
    """Query success % per wearer-question kind (``shared.queries`` kinds) with its 95%
    recording-level interval, one column per policy present in ``rows`` (one budget's rows):
    which questions the cloud, the device or neither can answer. ``n``: queries of that kind
    in the first column's days (a policy pooled over several seeds plays as many times more)."""
    by = {r["policy"]: r for r in rows if r.get("by_kind_ci")}
    cols = [p for p in policies if p in by] or list(by)[:5]
    if not cols:
        return ""
    kinds = sorted({k for p in cols for k in by[p]["by_kind_ci"]})
    first = by[cols[0]]["by_kind_ci"]
    lines = ["| question kind | n | " + " | ".join(cols) + " |", "| --- | ---: |" + " ---: |" * len(cols)]
    for k in kinds:
        n = first[k]["n"] if first.get(k) else "-"
        lines.append(f"| {k} | {n} | " + " | ".join(format_interval(by[p]["by_kind_ci"].get(k)) for p in cols) + " |")
    return "\n".join(lines)


def _print_table(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="earshot sim eval: held-out query success and cost (95% recording-level intervals)")
    for c in ("policy", "cap mW", "deadline ms", "query success %", EVENTS_COLUMN, "power mW", "battery out",
              "throttled", "frames %", "p95 ms", "MB/h"):
        t.add_column(c, justify="left" if c == "policy" else "right")
    for r in rows:
        t.add_row(r["policy"], f"{r['power_cap_mw']:g}", f"{r['deadline_ms']:g}", format_interval(r["query_acc"]),
                  events_cell(r), format_interval(r["power_mw"], scale=1.0, digits=0),
                  f"{r['battery_out']:.0%}", f"{r['throttled']:.0%}", format_interval(r["frames_share"]),
                  f"{r['p95_ms']:.0f}", f"{r['mb_per_h']:.1f}")
    Console(width=200).print(t)


def _csv_row(r: dict[str, Any]) -> dict[str, Any]:
    out = {k: r.get(k) for k in CSV_COLUMNS}
    for k in ("query_acc", "power_mw", "frames_share"):
        iv = r.get(k) or {"value": math.nan, "lo": math.nan, "hi": math.nan}
        out[k], out[k + "_lo"], out[k + "_hi"] = iv["value"], iv["lo"], iv["hi"]
    out["events"] = (r.get("events") or {}).get("value", math.nan)
    return out


def run(cfg: SimEvalConfig) -> dict[str, Any]:
    """The verb's body: play, write the files, print the table. Returns the summary."""
    import gymnasium as gym
    from rich.progress import Progress

    import sim  # noqa: F401  (registers the env id)

    t0 = time.perf_counter()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device, network = write_profiles(cfg.device, cfg.network, out)
    traces = load_traces(cfg.env.traces, cfg.env.important_labels).split(cfg.env.split)
    if cfg.env.recordings:
        traces = traces.subset(cfg.env.recordings)
    labels = list(dict.fromkeys(p.label or p.name for p in cfg.policies))
    budgets = budget_grid(cfg.budget, cfg.grid)
    rows, targets, item_rows = [], [], []
    with Progress(transient=True) as progress:
        task = progress.add_task("days played", total=len(budgets) * len(cfg.policies) * cfg.days)
        for budget in budgets:
            kwargs = make_env_kwargs(cfg.env, budget, cfg.reward, device, network)
            kwargs.update(traces=traces, recordings=None, split=None)
            env = gym.make(ENV_ID, **kwargs).unwrapped
            cap = budget.power_cap_mw or env.device.sustained_power_mw
            days: dict[str, list[dict]] = {label: [] for label in labels}
            for spec in cfg.policies:
                policy = make_sim_policy(spec.name, dict(spec.params), env=env)
                for d in range(cfg.days):
                    days[spec.label or spec.name].append({**play_day(env, policy, cfg.seed + d), "day": d})
                    progress.advance(task)
            by_label = {}
            for label in labels:
                row = {"policy": label, "power_cap_mw": cap, "deadline_ms": budget.deadline_ms,
                       "uplink_kbps": budget.uplink_kbps, **figures(days[label], cfg.seed)}
                rows.append(row)
                by_label[label] = row
                for dstats in days[label]:
                    for r in dstats["query_log"]:
                        item_rows.append({"policy": label, "power_cap_mw": cap, "deadline_ms": budget.deadline_ms,
                                          "day": dstats["day"], **r})
            names = {p.label or p.name: p.name for p in cfg.policies}
            targets.append({"budget": {"power_cap_mw": cap, "deadline_ms": budget.deadline_ms,
                                       "uplink_kbps": budget.uplink_kbps}, **compare(by_label, days, cfg.seed, names)})
            env.close()
    wall_s = time.perf_counter() - t0
    with open(out / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        w.writeheader()
        w.writerows(_csv_row(r) for r in rows)
    with open(out / "queries.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(item_rows[0]) if item_rows else ["policy"])
        w.writeheader()
        w.writerows(item_rows)
    (out / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
    summary = {"out": str(out.resolve()), "wall_s": round(wall_s, 3), "rows": len(rows), "split": cfg.env.split,
               "recordings": traces.recording_ids, "days": cfg.days, "day_h": cfg.env.day_h,
               "device": device, "network": network, "teacher": _teacher_of(traces), "targets": targets}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out / "report.md").write_text(markdown_table(rows) + "\n" + targets_text(summary) + "\n")
    if cfg.plot:
        _plot(rows, out / "pareto.png")
    _print_table(rows)
    print(targets_text(summary))
    print(f"{len(traces)} recordings ({cfg.env.split}), {cfg.days} days per policy and budget; "
          f"wall time {wall_s:.1f} s -> {out}")
    return summary


def _teacher_of(traces) -> dict[str, Any]:
    """Which cloud model answered in the traces (the figures are about that teacher)."""
    ids = sorted({str(t.header["server"].get("model_id")) for t in traces})
    return {"model_ids": ids}


def targets_text(summary: dict[str, Any]) -> str:
    """The targets, one paragraph per budget, figures with intervals."""
    lines = []
    for t in summary["targets"]:
        b = t["budget"]
        head = f"Budget cap {b['power_cap_mw']:g} mW, deadline {b['deadline_ms']:g} ms"
        parts = []
        if t.get("never_on_vs_cloud"):
            parts.append(f"never-on reaches {format_interval(t['never_on_vs_cloud'])}% of always-cloud query success "
                         f"(target <= 50%: {'met' if t['never_on_target_met'] else 'NOT met'})")
        if t.get("best_heuristic"):
            parts.append(f"best heuristic: {t['best_heuristic']}")
        if t.get("learned_minus_best"):
            parts.append(f"learned - best heuristic: {format_interval(t['learned_minus_best'], signed=True)} points of "
                         f"query success at {format_interval(t['learned_power_vs_best'])}% of its power "
                         f"({'beats it' if t['learned_beats_best'] else 'does NOT beat it'})")
        if t.get("learned_success_vs_cloud"):
            parts.append(f"learned reaches {format_interval(t['learned_success_vs_cloud'])}% of always-cloud success "
                         f"at {format_interval(t['learned_energy_vs_cloud'])}% of its power, "
                         f"{format_interval(t['learned_fewer_frames_than_always_on'])}% fewer frames than an always-on "
                         f"camera (target >= 95% at <= 25% with >= 70% fewer: "
                         f"{'met' if t['learned_cloud_target_met'] else 'vacuous: never-on may reach 95% of always-cloud' if t.get('learned_cloud_target_vacuous') else 'NOT met'})")
        lines.append(head + ": " + ("; ".join(parts) if parts else "no comparison (a reference policy is missing)") + ".")
    return "\n".join(lines)
