#!/usr/bin/env python
"""Audio onset -> cloud answer at the edge, split by stage, over >= 200 onsets of held-out recordings.

    python scripts/bench_latency.py --run runs/demo                 # the demo's trigger, student and teacher
    python scripts/bench_latency.py --run runs/demo --hops 0.25,0.1 # and a shorter hop, paired on the same onsets
    python scripts/bench_latency.py --trigger T.pte --student S.pte --teacher runs/teacher/model
    python scripts/bench_latency.py ... --trigger T2.pte --baseline-trigger T.pte  # two triggers, paired

What runs, all of it the product: ``earshot serve`` with the teacher; the
link emulator (pipelines/link_emulator.py) with a network profile (``--network wifi``:
40 ms RTT, jitter, 80 Mbit/s, rare loss) between it and the edge; the Python
edge runtime (``--policy audio_trigger``, as fast as possible on its virtual
clock, or ``--realtime``) over every recording of a world generated for this
benchmark with its own seed (``--seed``), so no recording was seen by any
model: they were trained on the demo's world.

Per annotated audio event whose label the trigger knows, the first offload
sent from its onset to its offset + 2 hops that got a result, split with the
``stages_ms`` of its ``result`` event (docs/edge.md):

1. onset -> trigger fires: the step of the trigger's first rising edge after
   the onset, minus the onset, plus the trigger call;
2. trigger -> request sent: steps between that edge and the offload, plus
   building the request (policy, camera, student, JPEG, msgpack) and the
   client's hand-off to the wire;
3. network + queue + model: the round trip (link + the server's ``total_ms``);
4. reply -> answer shown: until the loop merges the answer.

Events with no such offload are counted as missed; the stage split needs
``--min-onsets`` (200) answered ones, or the script exits 1. Every figure comes with a
recording-level bootstrap 95% interval (shared/stats.py). Writes ``--json``.
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
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from pipelines.link_emulator import LinkEmulator  # noqa: E402

from shared.stats import bootstrap_mean, bootstrap_quantile, format_interval  # noqa: E402

EARSHOT = Path(sys.executable).parent / "earshot"
STAGES = ("onset -> trigger fires", "trigger -> request sent", "network + queue + model", "reply -> answer shown")


# --- inputs --------------------------------------------------------------------------------


def make_world(out: Path, n: int, seed: int, duration_s: float) -> Path:
    """A synthetic world of ``n`` recordings with its own seed (reused when it is already there)."""
    manifest = out / "manifest.json"
    if manifest.is_file():
        cfg = json.loads(manifest.read_text()).get("config", {})
        if cfg.get("seed") == seed and cfg.get("n_recordings") == n:
            return out
    cmd = [str(EARSHOT), "synth", f"out={out}", f"n_recordings={n}", f"seed={seed}",
           f"world.duration_s={duration_s}", "workers=2", "progress=false", f"hydra.run.dir={out}.hydra"]
    print(f"generating the held-out world: {' '.join(cmd[1:])}", flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return out


def start_server(teacher: Path, workdir: Path, threads: int) -> tuple[subprocess.Popen, str]:
    ep = workdir / "serve.endpoint"
    proc = subprocess.Popen([str(EARSHOT), "serve", f"checkpoint={teacher}", "bind=tcp://127.0.0.1:*",
                             f"endpoint_file={ep}", f"threads={threads}", f"hydra.run.dir={workdir / 'hydra'}"],
                            stdout=open(workdir / "serve.log", "w"), stderr=subprocess.STDOUT, cwd=workdir)
    t_end = time.monotonic() + 120
    while not (ep.exists() and ep.read_text().strip()):
        if proc.poll() is not None or time.monotonic() > t_end:
            raise SystemExit(f"earshot serve did not start; see {workdir / 'serve.log'}")
        time.sleep(0.1)
    endpoint = ep.read_text().split()[0]
    from edge.client import Client, ClientError

    with Client(endpoint) as client:
        while time.monotonic() < t_end and proc.poll() is None:
            try:
                if client.ping(timeout_ms=1000).ready:
                    return proc, endpoint
            except ClientError:
                pass
            time.sleep(0.2)
    tail = (workdir / "serve.log").read_text(errors="replace").strip().splitlines()[-3:]
    raise SystemExit(f"earshot serve {'exited' if proc.poll() is not None else 'not ready in 120 s'}: "
                     + " / ".join(tail))


# --- one recording -----------------------------------------------------------------------------


def run_recording(folder: Path, trigger, student, endpoint: str, log_path: Path, args, network) -> None:
    from edge.eventlog import EventLog
    from edge.policy import make_policy
    from edge.runtime import EdgeRuntime
    from edge.source import RecordingSource
    from edge.edge_config import make_client
    from shared.profiles import EnergyMeter, load_device_profile

    device = load_device_profile("glasses_2025")
    client = make_client(endpoint, None, None, 4, args.deadline_ms)
    try:
        with EventLog(log_path, keep=False) as log:
            rt = EdgeRuntime(RecordingSource(folder, realtime=args.realtime), trigger, student,
                             make_policy(args.policy), EnergyMeter(device, network), log, client=client,
                             hop_s=args.hop_s, deadline_ms=args.deadline_ms, link_rtt_ms=network.rtt_ms,
                             link_mbps=network.uplink_mbps,
                             run_info={"device": device.name, "network": network.name, "trigger_program": "bench",
                                       "student_program": "bench", "endpoint": endpoint})
            rt.run()
    finally:
        client.close()


def onset_stages(events: list[dict], annotations, trigger_labels: set[str], hop_s: float) -> list[dict]:
    """One row per annotated audio event of a label the trigger knows (module docstring)."""
    offloads = [e for e in events if e["kind"] == "offload"]
    results = {e["request_id"]: e for e in events if e["kind"] == "result"}
    edges = [e for e in events if e["kind"] in ("trigger", "early")]  # the early stage's edges send too
    rows = []
    for ev in annotations.events:
        if ev.label not in trigger_labels:
            continue
        window = [o for o in offloads if ev.onset_s - 1e-9 <= o["t_s"] <= ev.offset_s + 2 * hop_s + 1e-9]
        answered = [o for o in window if o["request_id"] in results]
        row = {"label": ev.label, "onset_s": ev.onset_s, "offloaded": bool(window), "answered": bool(answered)}
        if answered:
            o = answered[0]
            st = results[o["request_id"]]["stages_ms"]
            fired = [e for e in edges if ev.onset_s - 1e-9 <= e["t_s"] <= o["t_s"] + 1e-9]
            t_fire = fired[0]["t_s"] if fired else o["t_s"]
            parts = [1000 * (t_fire - ev.onset_s) + st["trigger_ms"],
                     1000 * (o["t_s"] - t_fire) + st["build_ms"] + st["send_ms"],
                     st["network_ms"] + st["server_ms"],
                     st["shown_ms"]]
            # What stage 4 was before answers were shown on arrival: the wait for the next step
            # (the merge), on the virtual clock: merge step - (offload step + the wall stages).
            arrival_ms = st["trigger_ms"] + st["build_ms"] + st["send_ms"] + st["network_ms"] + st["server_ms"]
            at_merge = max(0.0, 1000 * (results[o["request_id"]]["t_s"] - o["t_s"]) - arrival_ms)
            top = [lab for lab, _p in results[o["request_id"]].get("top") or []]
            row.update(stages_ms=dict(zip(STAGES, parts)), total_ms=sum(parts), server_ms=st["server_ms"],
                       shown_at_next_step_ms=at_merge, fired_label=fired[0]["label"] if fired else None,
                       fired_by=fired[0]["kind"] if fired else None, offload=o["offload"],
                       cloud_heard=ev.label in top)
        rows.append(row)
    return rows


def without_early_stage(trigger_path: Path, folder: Path):
    """A copy of the trigger program whose card has no early stage (the control of ``--early both``)."""
    from edge.programs import load_program
    from shared.model_card import card_path_for, copy_with_card, load_model_card

    card = load_model_card(card_path_for(trigger_path), check_program=True)
    card.early_thresholds = None
    card.threshold_rule += "; early stage removed (bench_latency --early)"
    return load_program(copy_with_card(trigger_path, folder, card), expect="trigger")


def plan_variants(hops: list[float], modes: list[bool], tags: list[str], has_early: bool) -> dict:
    """The runs and the comparisons of one invocation.

    ``runs``: (name, hop, trigger tag, early stage on) for every trigger (``tags``: ``[""]`` for one,
    ``["trigger", "baseline"]`` with ``--baseline-trigger``), hop and early mode. ``pairs``: (variant,
    baseline variant), each compared on the onsets both answered: every hop against the first (the first
    trigger, the first early mode); with the early stage against without it (same trigger and hop); the
    trigger against the baseline trigger (same hop and early mode).
    """
    def variant(hop: float, early: bool, tag: str = tags[0]) -> str:
        name = f"hop {hop:g} s" + ((", early stage" if early else ", no early stage") if has_early else "")
        return f"{tag}: {name}" if tag else name

    runs = [(variant(h, e, tag), h, tag, e) for tag in tags for h in hops for e in modes]
    pairs = [(variant(h, modes[0]), variant(hops[0], modes[0])) for h in hops[1:]]
    if len(modes) == 2:
        pairs += [(variant(h, True, tag), variant(h, False, tag)) for tag in tags for h in hops]
    if len(tags) == 2:
        pairs += [(variant(h, e, tags[0]), variant(h, e, tags[1])) for h in hops for e in modes]
    return {"runs": runs, "pairs": pairs}


# --- statistics --------------------------------------------------------------------------------


def summarize(rows: list[dict]) -> dict:
    done = [r for r in rows if r.get("total_ms") is not None]
    groups = [r["recording"] for r in done]
    out = {"onsets": len(rows), "answered": len(done), "recordings": len(set(r["recording"] for r in rows)),
           "missed_share": bootstrap_mean([0.0 if r.get("total_ms") is not None else 1.0 for r in rows],
                                          [r["recording"] for r in rows]).to_dict(), "stages": {}}
    for name in (*STAGES, "onset -> answer"):
        vals = [r["total_ms"] if name == "onset -> answer" else r["stages_ms"][name] for r in done]
        out["stages"][name] = {"mean": bootstrap_mean(vals, groups).to_dict(),
                               "p50": bootstrap_quantile(vals, groups, 0.5).to_dict(),
                               "p95": bootstrap_quantile(vals, groups, 0.95).to_dict()}
    before = [r["shown_at_next_step_ms"] for r in done]
    out["shown_at_next_step"] = {"mean": bootstrap_mean(before, groups).to_dict(),
                                 "p50": bootstrap_quantile(before, groups, 0.5).to_dict(),
                                 "p95": bootstrap_quantile(before, groups, 0.95).to_dict()}
    worst = max(STAGES, key=lambda s: out["stages"][s]["mean"]["value"])
    out["worst_stage"] = worst
    # Answered onsets whose offload came before any trigger (or early) edge: the policy's own
    # schedule or a query sent it, and their first stage is onset -> that offload's step.
    out["offloaded_before_a_trigger"] = sum(1 for r in done if r.get("fired_by") is None)
    return out


def compare(variants: dict[str, list[dict]], pairs: list[tuple[str, str]]) -> dict:
    """Onset -> answer of each (variant, baseline) pair, paired on the onsets both answered:
    the mean and the p95 difference with recording-level intervals."""
    from shared.stats import paired_difference, paired_quantile_difference

    key = lambda r: (r["recording"], r["onset_s"], r["label"])  # noqa: E731
    out = {}
    for name, baseline in pairs:
        base = {key(r): r for r in variants[baseline] if r.get("total_ms") is not None}
        other = {key(r): r for r in variants[name] if r.get("total_ms") is not None}
        common = sorted(set(base) & set(other))
        if not common:
            continue
        a, b, g = [other[k]["total_ms"] for k in common], [base[k]["total_ms"] for k in common], [k[0] for k in common]
        diff, p95 = paired_difference(a, b, g), paired_quantile_difference(a, b, g, 0.95)
        out[name] = {"vs": baseline, "paired_onsets": len(common), "difference_ms": diff.to_dict(),
                     "p95_difference_ms": p95.to_dict()}
        print(f"{name} vs {baseline}, onset -> answer on the {len(common)} onsets both answered: mean "
              f"{format_interval(diff, scale=1.0, digits=0, signed=True)} ms (p = {diff.p_value:.3f}), p95 "
              f"{format_interval(p95, scale=1.0, digits=0, signed=True)} ms")
    return out


def print_table(summary: dict, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col, just in (("stage", "left"), ("mean ms", "right"), ("p50 ms", "right"), ("p95 ms", "right")):
        table.add_column(col, justify=just)
    for name, s in [*summary["stages"].items(),
                    ("(before: answer shown at the next step)", summary["shown_at_next_step"])]:
        fmt = lambda k: format_interval(s[k], scale=1.0, digits=0)  # noqa: E731
        table.add_row(name, fmt("mean"), fmt("p50"), fmt("p95"))
    Console(width=140).print(table)
    print(f"{summary['answered']} of {summary['onsets']} onsets answered by the cloud across "
          f"{summary['recordings']} recordings (missed {format_interval(summary['missed_share'])} %); "
          f"worst stage by mean: {summary['worst_stage']}")
    early = summary.get("offloaded_before_a_trigger", 0)
    if early:
        print(f"{early} of {summary['answered']} answered onsets were offloaded before any trigger edge (the "
              "policy's own schedule, or a query): for them 'onset -> trigger fires' is onset -> that offload's step")


# --- main ------------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", help="a scripts/demo output: its trigger, student and teacher")
    ap.add_argument("--trigger")
    ap.add_argument("--baseline-trigger", help="a second trigger program run on the same recordings, onsets and "
                    "server: every variant of --trigger is compared with it, paired on the onsets both answered")
    ap.add_argument("--student")
    ap.add_argument("--teacher")
    ap.add_argument("--world", help="held-out recordings (default: generate --recordings with --seed)")
    ap.add_argument("--recordings", type=int, default=50)
    ap.add_argument("--duration-s", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=1000, help="world seed; the demo's world uses 0")
    ap.add_argument("--min-onsets", type=int, default=200,
                    help="fail (exit 1) with fewer answered onsets than this (the stage split needs an answer)")
    ap.add_argument("--network", default="wifi", help="network profile for the link emulator; 'none': raw loopback")
    ap.add_argument("--policy", default="audio_trigger")
    ap.add_argument("--hops", default="0.25", help="edge hop sizes (s) to compare, e.g. 0.25,0.1 (the first is the "
                                                  "baseline of the paired comparison)")
    ap.add_argument("--early", choices=("card", "off", "both"), default="card",
                    help="the trigger card's early stage (early_thresholds): as the card says, off (a card copy "
                         "without it), or both, paired on the same onsets")
    ap.add_argument("--deadline-ms", type=int, default=800)
    ap.add_argument("--realtime", action="store_true", help="pace by the wall clock (slow: 1x real time)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the server")
    ap.add_argument("--quick", action="store_true", help="4 recordings of 12 s, no minimum (a smoke run)")
    ap.add_argument("--json", type=Path, default=Path("runs/bench/latency.json"))
    args = ap.parse_args()
    if args.quick:
        args.recordings, args.duration_s, args.min_onsets = 4, 12.0, 0
    if args.run:
        run = Path(args.run)
        args.trigger = args.trigger or str(sorted(run.glob("kd/trigger/export/*int8.pte"))[0])
        args.student = args.student or str(sorted(run.glob("kd/av/export/*int8.pte"))[0])
        args.teacher = args.teacher or str(run / "teacher" / "av_gate" / "model")
    if not (args.trigger and args.student and args.teacher):
        ap.error("give --run, or --trigger, --student and --teacher")

    import torch

    from edge.eventlog import read_events
    from edge.programs import load_program
    from edge.edge_config import recording_folders
    from shared.annotations import Annotations
    from shared.profiles import load_network_profile

    torch.set_num_threads(1)
    trigger, student = load_program(args.trigger, expect="trigger"), load_program(args.student, expect="av")
    baseline = load_program(args.baseline_trigger, expect="trigger") if args.baseline_trigger else None
    if baseline is not None and list(baseline.card.labels) != list(trigger.card.labels):
        ap.error(f"--baseline-trigger {args.baseline_trigger}: its labels differ from {args.trigger}'s")
    has_early = trigger.card.early_thresholds is not None
    for path, prog in ((args.trigger, trigger), (args.baseline_trigger, baseline)):
        if prog is not None and args.early != "card" and prog.card.early_thresholds is None:
            ap.error(f"--early {args.early}: {path}'s card has no early stage (export it with "
                     "trigger.early_fires_per_hour=N)")
    if baseline is not None and (baseline.card.early_thresholds is None) != (not has_early):
        ap.error("--baseline-trigger: one card has an early stage and the other not; compare like with like")
    world = Path(args.world) if args.world else make_world(
        Path(f"runs/bench/latency_world_s{args.seed}_n{args.recordings}_{args.duration_s:g}s").resolve(),
        args.recordings, args.seed, args.duration_s)
    folders = recording_folders(world)
    network = load_network_profile("wifi" if args.network == "none" else args.network)
    workdir = Path(tempfile.mkdtemp(prefix="bench_latency_"))
    server, endpoint = start_server(Path(args.teacher).resolve(), workdir, args.threads)
    link = None
    hops = [float(h) for h in args.hops.split(",")]
    modes = {"card": [True], "off": [False], "both": [True, False]}[args.early]  # early stage on?
    # (tag, program with its card's early stage, program without it); the tag names the trigger when two run
    triggers = [("", Path(args.trigger), trigger)]
    if baseline is not None:
        triggers = [("trigger", Path(args.trigger), trigger), ("baseline", Path(args.baseline_trigger), baseline)]
    programs = {tag: {True: prog, False: without_early_stage(path, workdir / f"no_early_{tag or 'trigger'}")
                      if False in modes else None} for tag, path, prog in triggers}

    plan = plan_variants(hops, modes, [tag for tag, _, _ in triggers], has_early)
    runs = [(name, hop, programs[tag][early]) for name, hop, tag, early in plan["runs"]]
    pairs = plan["pairs"]
    variants: dict[str, list[dict]] = {}
    power: dict[str, list[float]] = {name: [] for name, _, _ in runs}  # mean device power per recording (mW)
    offloads: dict[str, list[float]] = {name: [] for name, _, _ in runs}  # offloads per hour per recording
    try:
        if args.network != "none":
            link = LinkEmulator(endpoint, network, seed=args.seed).__enter__()
        target = link.endpoint if link else endpoint
        labels = set(trigger.card.labels)
        t0 = time.monotonic()
        from rich.progress import Progress

        for v, (name, hop, program) in enumerate(runs):
            args.hop_s = hop
            rows: list[dict] = []
            with Progress() as progress:
                task = progress.add_task(f"{name}: edge runtime over {len(folders)} recordings", total=len(folders))
                for folder in folders:
                    log = workdir / f"{folder.name}-v{v}.jsonl"
                    run_recording(folder, program, student, target, log, args, network)
                    ann = Annotations.from_dict(json.loads((folder / "annotations.json").read_text()))
                    events = list(read_events(log))
                    for row in onset_stages(events, ann, labels, hop):
                        rows.append({**row, "recording": folder.name})
                    end = events[-1]  # the device energy of the run: what a shorter hop costs
                    power[name].append(end["energy_mj"] / max(end["t_s"], 1e-9))
                    offloads[name].append(3600.0 * sum(e["kind"] == "offload" for e in events) / max(end["t_s"], 1e-9))
                    progress.advance(task)
            variants[name] = rows
        wall_s = time.monotonic() - t0
    finally:
        if link:
            link.close()
        os.kill(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    out = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "world": str(world),
           "wall_s": wall_s, "load_average": os.getloadavg(), "variants": {}}
    for name, hop, _ in runs:
        rows = variants[name]
        summary = summarize(rows)
        title = (f"audio onset -> cloud answer: {len(folders)} held-out recordings (seed {args.seed}), {name}, "
                 f"{args.policy}, {'loopback' if args.network == 'none' else args.network + ' (emulated)'}, "
                 f"{'real time' if args.realtime else 'virtual clock'}")
        print_table(summary, title)
        mean_mw, per_h = float(np.mean(power[name])), float(np.mean(offloads[name]))
        done = [r for r in rows if r.get("total_ms") is not None]
        heard = float(np.mean([r["cloud_heard"] for r in done])) if done else float("nan")
        print(f"mean device power over the run: {mean_mw:.1f} mW (glasses_2025 profile, {args.policy}); "
              f"{per_h:.0f} offloads per hour; the answering result's top tags name the onset's sound for "
              f"{100 * heard:.1f}% of answered onsets")
        out["variants"][name] = {"hop_s": hop, "summary": summary, "rows": rows, "mean_power_mw": mean_mw,
                                 "offloads_per_hour": per_h, "cloud_heard_share": heard}
    if pairs:
        out["comparison"] = compare(variants, pairs)
    base = out["variants"][runs[0][0]]["summary"]
    out["summary"] = base  # the first hop: what earshot bench reports
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {args.json}")
    if base["answered"] < args.min_onsets:
        print(f"only {base['answered']} answered onsets (< --min-onsets {args.min_onsets}): add --recordings")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
