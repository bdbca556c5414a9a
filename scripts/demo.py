#!/usr/bin/env python
"""The whole story in one command: world -> data -> teacher -> students -> server -> edge -> simulator -> report.

Run through ``scripts/demo`` (which sets up ``.venv`` first)::

    scripts/demo                           # the embedded default into runs/demo/
    EARSHOT_DEMO_PRESET=tiny scripts/demo  # the same stages on tiny presets (what the tests run)
    python scripts/demo.py --preset demo --out runs/demo [--only report] [--fresh]

Every stage is a documented ``earshot`` command (or two in parallel, one
core each), run as a subprocess with its output in ``<out>/logs/<stage>.log``;
a rich progress display shows the stage and its time, and a table of stage
times closes the run (also in ``<out>/stages.json``). A stage that finished
before with the same commands is skipped (``--fresh`` redoes them: with
``--only``, just those stages, whose outputs are overwritten; without, the
whole run, deleting ``<out>`` first). The server is started for the edge stages and stopped
after them. Every figure in ``<out>/report.html`` comes from this run's files.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
console = Console()


# ----------------------------------------------------------------------------- presets
# What differs between the full demo and the tiny one the tests run; everything
# else is each verb's default. Sizes are set so the demo fits 15 minutes on 2 cores.
PRESETS: dict[str, dict] = {
    "demo": {
        # enough held-out recordings for >= 60 counterfactual pairs per category, enough
        # training recordings for per-token perception to generalise
        "synth": ["n_recordings=120", "world.duration_s=30.0", "splits.train=0.7", "splits.val=0.1", "splits.test=0.2"],
        "instruct": ["bench_pairs_per_category=150", "bench_per_category=30"],
        "train": ["train/preset=demo"],
        "distill": ["distill/preset=demo"],
        "export": ["max_eval_windows=128", "tflite=off"],
        "edge_recordings": 2,
        "trace_recordings": 2,
        "sim_train": [],
        "edge_policy": "confidence_threshold",
        "lm": "default",
        "bench_calls": 200,
    },
    "tiny": {
        "synth": ["synth/preset=tiny"],
        "instruct": ["windows_per_recording=2", "bench_per_category=10", "bench_pairs_per_category=10"],
        "train": ["train/preset=tiny"],
        "distill": ["distill/preset=tiny"],
        "export": ["max_eval_windows=32", "tflite=off"],
        "edge_recordings": 1,
        "trace_recordings": 1,
        "sim_train": ["sim/train=tiny"],
        "edge_policy": "confidence_threshold",
        "lm": "default",
        "bench_calls": 30,
    },
}

#: The teacher variants the report compares: the main one (served) first.
TEACHERS = {
    "av_gate": [],                               # joint audio-visual narrations, context-aware gate
    "visual_gate": ["data.narration=visual"],    # vision-only narrations (the EgoAVU baseline)
    "av_blind": ["model.fusion=blind"],          # context-blind fusion
}


@dataclass
class Ctx:
    out: Path
    preset: str
    p: dict
    workers: int
    logs: Path = field(init=False)

    def __post_init__(self) -> None:
        self.logs = self.out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)


class StageFailed(RuntimeError):
    pass


def earshot(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("earshot")), *args]


def run_parallel(ctx: Ctx, stage: str, commands: list[list[str]], max_parallel: int | None = None) -> None:
    """Run commands, ``max_parallel`` at a time (default: the worker count), each logging to its own file."""
    max_parallel = max_parallel or ctx.workers
    pending = list(enumerate(commands))
    running: list[tuple[int, subprocess.Popen, Path]] = []
    env = {**os.environ, "OMP_NUM_THREADS": "1" if len(commands) > 1 else os.environ.get("OMP_NUM_THREADS", "")}
    env = {k: v for k, v in env.items() if v != ""}
    failed = []
    while pending or running:
        while pending and len(running) < max_parallel:
            i, cmd = pending.pop(0)
            log = ctx.logs / (f"{stage}.log" if len(commands) == 1 else f"{stage}.{i}.log")
            with open(log, "w") as f:
                f.write("$ " + " ".join(cmd) + "\n")
                f.flush()
                proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ctx.out, env=env)
            running.append((i, proc, log))
        time.sleep(0.2)
        for item in list(running):
            i, proc, log = item
            if proc.poll() is not None:
                running.remove(item)
                if proc.returncode != 0:
                    failed.append((commands[i], log, proc.returncode))
    if failed:
        cmd, log, rc = failed[0]
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise StageFailed(f"{' '.join(cmd)} exited {rc}; last lines of {log}:\n{tail}")


# ----------------------------------------------------------------------------- stages
def stage_world(ctx: Ctx) -> None:
    run_parallel(ctx, "world", [earshot("synth", *ctx.p["synth"], f"out={ctx.out / 'world'}", f"workers={ctx.workers}",
                                        f"hydra.run.dir={ctx.logs / 'hydra' / 'synth'}")])


def stage_instruct(ctx: Ctx) -> None:
    run_parallel(ctx, "instruct", [earshot("instruct", f"dataset={ctx.out / 'world'}", f"out={ctx.out / 'qa'}",
                                           *ctx.p["instruct"], f"hydra.run.dir={ctx.logs / 'hydra' / 'instruct'}")])


def stage_teachers(ctx: Ctx) -> None:
    # Phase 1 (per-token perception) once, on both cores: one process per core under torchrun,
    # each taking half of every batch (two OpenMP threads in one process are slower here);
    # the three teachers differ only after it.
    perception = ctx.out / "teacher" / "perception"
    phase1 = earshot("train", *ctx.p["train"], "phase=perception", f"data.qa_dir={ctx.out / 'qa'}", f"out={perception}",
                     "threads=1", "mlflow.enabled=false", f"hydra.run.dir={ctx.logs / 'hydra' / 'train-perception'}")
    if ctx.workers > 1:
        phase1 = [str(Path(sys.executable).with_name("torchrun")), "--standalone", f"--nproc_per_node={ctx.workers}",
                  "--no-python", *phase1]
    run_parallel(ctx, "teachers-perception", [phase1])
    cmds = [earshot("train", *ctx.p["train"], *extra, f"data.qa_dir={ctx.out / 'qa'}", f"out={ctx.out / 'teacher' / name}",
                    f"perception.init={perception}", "threads=1", f"mlflow.run_name=demo-{name}",
                    f"hydra.run.dir={ctx.logs / 'hydra' / ('train-' + name)}")
            for name, extra in TEACHERS.items()]
    run_parallel(ctx, "teachers", cmds, max_parallel=len(cmds))  # one thread each; no idle tail on 2 cores
    cmds = [earshot("eval", f"checkpoint={ctx.out / 'teacher' / name / 'model'}", f"qa_dir={ctx.out / 'qa'}", "split=bench",
                    f"mlflow.run_name=demo-{name}", f"hydra.run.dir={ctx.logs / 'hydra' / ('eval-' + name)}")
            for name in TEACHERS]
    run_parallel(ctx, "teachers-eval", cmds)


def stage_students(ctx: Ctx) -> None:
    teacher = ctx.out / "teacher" / "av_gate" / "model"
    cmds = [earshot("distill", *ctx.p["distill"], f"distill/student={s}", f"teacher={teacher}", f"out={ctx.out / 'kd' / s}",
                    f"hydra.run.dir={ctx.logs / 'hydra' / ('distill-' + s)}")
            for s in ("trigger", "av")]
    run_parallel(ctx, "students", cmds)
    cmds = [earshot("export", f"checkpoint={ctx.out / 'kd' / s}", "precisions=[fp32,int8]", *ctx.p["export"],
                    f"hydra.run.dir={ctx.logs / 'hydra' / ('export-' + s)}")
            for s in ("trigger", "av")]
    run_parallel(ctx, "export", cmds)


def held_out(ctx: Ctx, n: int) -> list[Path]:
    """The first ``n`` test-split recordings of the demo's world (held out from every training step)."""
    from shared.dataset import load_dataset

    world = load_dataset(ctx.out / "world")
    return [e.path for e in (world.split("test") or world.entries)[:n]]


def program(ctx: Ctx, student: str) -> Path:
    return sorted((ctx.out / "kd" / student / "export").glob(f"{student}_xnnpack_int8.pte"))[0]


def serve_teacher(ctx: Ctx, lm: str | None = None) -> "ServedTeacher":
    """``earshot serve`` with the main teacher on a free loopback port, for the edge stages
    (``lm``: with a language model that writes sentences)."""
    from pipelines.served import ServedTeacher, ServeFailed

    log = ctx.logs / ("serve-lm.log" if lm else "serve.log")
    try:
        return ServedTeacher(ctx.out / "teacher" / "av_gate" / "model", ctx.out, log, lm=lm)
    except ServeFailed as exc:
        raise StageFailed(str(exc)) from exc


NATIVE = REPO / "edge" / "native" / "build" / "earshot-edge"


def stage_edge(ctx: Ctx) -> None:
    """Serve the teacher; run both edge runtimes on held-out recordings; trace them for the simulator."""
    if not NATIVE.is_file():
        raise StageFailed(f"{NATIVE} is not built (scripts/demo builds it; or run edge/native/build.sh)")
    recs = held_out(ctx, max(ctx.p["edge_recordings"], ctx.p["trace_recordings"]))
    trigger, student = program(ctx, "trigger"), program(ctx, "av")
    for d in ("edge", "native", "traces"):
        (ctx.out / d).mkdir(exist_ok=True)
    server = serve_teacher(ctx)
    try:
        policy = ctx.p["edge_policy"]
        python_runs = [earshot("edge", f"recording={r}", f"trigger={trigger}", f"student={student}",
                               f"endpoint={server.endpoint}", f"policy={policy}", f"log={ctx.out / 'edge' / (r.name + '.jsonl')}",
                               f"hydra.run.dir={ctx.logs / 'hydra' / ('edge-' + r.name)}")
                       for r in recs[: ctx.p["edge_recordings"]]]
        run_parallel(ctx, "edge-python", python_runs, max_parallel=1)
        run_parallel(ctx, "edge-frames", [[sys.executable, str(REPO / "edge" / "native" / "decode_frames.py"), str(r)]
                                          for r in recs[: ctx.p["edge_recordings"]]])
        native_runs = [[str(NATIVE), "--recording", str(r), "--trigger", str(trigger), "--student", str(student),
                        "--endpoint", server.endpoint, "--policy", policy, "--threads", "1",
                        "--log", str(ctx.out / "native" / (r.name + ".jsonl")),
                        "--summary-json", str(ctx.out / "native" / (r.name + ".summary.json"))]
                       for r in recs[: ctx.p["edge_recordings"]]]
        run_parallel(ctx, "edge-native", native_runs, max_parallel=1)
        traces = [earshot("trace", f"recording={r}", f"trigger={trigger}", f"student={student}",
                          f"endpoint={server.endpoint}", f"out={ctx.out / 'traces'}",
                          f"hydra.run.dir={ctx.logs / 'hydra' / ('trace-' + r.name)}")
                  for r in recs[: ctx.p["trace_recordings"]]]
        run_parallel(ctx, "trace", traces)
    finally:
        server.stop()


def stage_sentences(ctx: Ctx) -> None:
    """Serve the teacher with the language model (``earshot serve lm=default``) and ask it the
    wearer's questions of the timeline's recordings, each on the model's full window: the label
    answer, the sentence and its evidence into ``sentences/<recording>.json`` (report section 5).

    Asked after the edge runs, not by them: a sentence costs about a second of language model,
    beyond the edge's 800 ms query deadline (docs/lm.md has the latency)."""
    from edge.client import Client, ClientError
    from pipelines.ask import ask_recording
    import numpy as np

    (ctx.out / "sentences").mkdir(exist_ok=True)
    server = serve_teacher(ctx, lm=ctx.p["lm"])
    try:
        with Client(server.endpoint) as client:
            for rec in held_out(ctx, ctx.p["edge_recordings"]):
                try:
                    rows = ask_recording(client, rec)
                except (ClientError, RuntimeError) as exc:
                    raise StageFailed(f"asking {rec.name}: {exc} (server log: {server.log_path})") from exc
                lm_ms = [r["lm_ms"] for r in rows]
                summary = {"recording": rec.name, "model_id": server.model_id, "lm": ctx.p["lm"], "n": len(rows),
                           "correct": sum(r["correct"] for r in rows),
                           "with_sentence": sum(bool(r["sentence"]) for r in rows),
                           "lm_ms": {q: round(float(np.percentile(lm_ms, int(q[1:]))), 1) for q in ("p50", "p95")} if lm_ms else None,
                           "rows": rows}
                (ctx.out / "sentences" / f"{rec.name}.json").write_text(json.dumps(summary, indent=1) + "\n")
                if rows and summary["with_sentence"] < len(rows):
                    raise StageFailed(f"{rec.name}: {len(rows) - summary['with_sentence']} of {len(rows)} answers "
                                      f"came without a sentence (server log: {server.log_path})")
    finally:
        server.stop()


def stage_sim(ctx: Ctx) -> None:
    """Train PPO on the traces, then evaluate every policy (the learned one too) under a budget grid.

    The demo traces a few held-out recordings only, so its simulator trains and evaluates on the same
    ones (``env.split=all``): a check that the pipeline runs; the held-out figures come from
    ``scripts/sim_heldout.py``.
    """
    run_parallel(ctx, "sim-train", [earshot("sim", "train", *ctx.p["sim_train"], f"env.traces={ctx.out / 'traces'}",
                                            "env.split=all", f"out={ctx.out / 'sim_train'}",
                                            f"hydra.run.dir={ctx.logs / 'hydra' / 'sim-train'}")])
    learned = ctx.out / "sim_train" / "policy_xnnpack_fp32.pte"
    policies = ("[{name: never_on}, {name: query_only}, {name: always_local}, {name: always_cloud, params: {offload: full}},"
                " {name: periodic}, {name: audio_trigger}, {name: confidence_threshold}, {name: context_aware},"
                f" {{name: learned, params: {{program: '{learned}'}}}}, {{name: random}}, {{name: oracle}}]")
    run_parallel(ctx, "sim-eval", [earshot("sim", "eval", f"env.traces={ctx.out / 'traces'}", "env.split=all",
                                           f"out={ctx.out / 'sim'}", f"policies={policies}", "days=1",
                                           "grid.deadline_ms=[300,800]",
                                           f"hydra.run.dir={ctx.logs / 'hydra' / 'sim-eval'}")])


def print_headline(out: Path) -> None:
    """The run's headline figures: the main teacher on the paired bench beside its controls,
    and the students' retention (the same files the report reads; nothing recomputed)."""
    from shared.stats import format_interval

    main = next(iter(TEACHERS))
    scores = out / "teacher" / main / "model" / "eval_bench.scores.json"
    if scores.is_file():
        figures = json.loads(scores.read_text())["figures"]
        closed = figures["model"].get("closed", {})
        n = f"{closed['pair']['n']} pairs, {closed['pair']['n_groups']} held-out recordings" if closed.get("pair") else ""
        table = Table(title=f"teacher ({main}) on the counterfactual bench ({n}): accuracy %, [95% interval]")
        table.add_column("system", no_wrap=True)
        cells = [("closed", "question"), ("closed", "pair"), ("SSA", "pair"), ("TR", "pair"), ("AVH", "pair")]
        for c, lvl in cells:
            table.add_column(f"{c} per {lvl}", justify="right", no_wrap=True)
        for name, fig in figures.items():
            table.add_row(name if name == "model" else f"control: {name}",
                          *(format_interval(fig.get(c, {}).get(lvl)) for c, lvl in cells))
        Console(width=max(console.width, 140)).print(table)  # five intervals side by side
    for card in sorted((out / "kd").glob("*/export/*int8.json")):
        m = json.loads(card.read_text()).get("metrics", {})
        if None not in (m.get("retention"), m.get("probe_pair_accuracy"), m.get("teacher_probe_pair_accuracy")):
            console.print(f"{card.stem}: event-probe pairs {100 * m['probe_pair_accuracy']:.1f}% vs the teacher's "
                          f"{100 * m['teacher_probe_pair_accuracy']:.1f}%, retention {100 * m['retention']:.1f}%")


def stage_report(ctx: Ctx) -> None:
    """Benchmark the exported programs (one thread), then write report.html from this run's files."""
    (ctx.out / "bench").mkdir(exist_ok=True)
    run_parallel(ctx, "bench-edge-models", [[sys.executable, str(REPO / "scripts" / "bench_edge_models.py"),
                                             str(ctx.out / "kd" / "trigger"), str(ctx.out / "kd" / "av"),
                                             "--calls", str(ctx.p["bench_calls"]), "--json",
                                             str(ctx.out / "bench" / "edge_models.json")],
                                            # the trigger's camera-on share from earshot edge's event logs
                                            [sys.executable, str(REPO / "scripts" / "bench_trigger.py"),
                                             "--export", str(ctx.out / "kd" / "trigger" / "export"),
                                             "--dataset", str(ctx.out / "world"),
                                             "--json", str(ctx.out / "bench" / "trigger.json")]])
    run_parallel(ctx, "report", [[sys.executable, str(REPO / "scripts" / "report.py"), str(ctx.out), "--strict"]])


@dataclass
class Stage:
    name: str
    title: str
    fn: Callable[[Ctx], None]


STAGES = [
    Stage("world", "synthetic egocentric world", stage_world),
    Stage("instruct", "instruction data: narrations + QA", stage_instruct),
    Stage("teachers", "teacher x3 (AV+gate, visual+gate, AV+blind) and the benchmark", stage_teachers),
    Stage("students", "distil + export the trigger and the AV student", stage_students),
    Stage("edge", "serve; Python + native edge runtimes; traces", stage_edge),
    Stage("sentences", "serve with the language model; the timeline's questions in sentences", stage_sentences),
    Stage("sim", "simulator: PPO, then policies x budgets", stage_sim),
    Stage("report", "edge-model benchmark and report.html", stage_report),
]


# ----------------------------------------------------------------------------- driver
def _fingerprint(ctx: Ctx, stage: Stage) -> str:
    return hashlib.sha256(json.dumps([ctx.preset, ctx.p, stage.name, str(ctx.out)], default=str).encode()).hexdigest()[:16]


def record(out: Path, preset: str, seconds: dict[str, float], invocation_s: float | None = None) -> None:
    """Merge stage times into <out>/stages.json (stages skipped or run by another invocation keep theirs)."""
    path = out / "stages.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    merged = {**data.get("seconds", {}), **seconds}
    merged = {s.name: merged[s.name] for s in STAGES if s.name in merged}
    data.update({"preset": preset, "seconds": merged, "total_s": sum(merged.values())})
    if invocation_s is not None:
        data["last_invocation_s"] = invocation_s
    path.write_text(json.dumps(data, indent=1) + "\n")


def _init_mlflow_store(uri: str) -> None:
    """Create the store's schema once: parallel stages racing to migrate a fresh SQLite file fail."""
    import mlflow

    with console.status("preparing the MLflow store"):
        mlflow.set_tracking_uri(uri)
        mlflow.search_experiments(max_results=1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default=os.environ.get("EARSHOT_DEMO_PRESET", "demo"))
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("EARSHOT_DEMO_DIR", REPO / "runs" / "demo")))
    ap.add_argument("--only", action="append", default=[], help="run only these stages (repeatable)")
    ap.add_argument("--fresh", action="store_true",
                    help="redo stages that finished before (with --only: just those; else delete --out first)")
    args = ap.parse_args(argv)
    if args.preset not in PRESETS:
        console.print(f"[bold red]EARSHOT_DEMO_PRESET must be demo or tiny, got {args.preset!r}[/]")
        return 2
    unknown = sorted(set(args.only) - {s.name for s in STAGES})
    if unknown:
        console.print(f"[bold red]--only: unknown stages {unknown}; stages: {[s.name for s in STAGES]}[/]")
        return 2
    out = args.out.resolve()
    if args.fresh and out.exists() and not args.only:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    workers = max(1, min(2, os.cpu_count() or 1))
    ctx = Ctx(out, args.preset, PRESETS[args.preset], workers)
    done_dir = out / ".done"
    done_dir.mkdir(exist_ok=True)
    # MLflow: one store for the whole demo, in its folder (mlflow ui --backend-store-uri sqlite:///<out>/mlflow.db).
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{out / 'mlflow.db'}")
    _init_mlflow_store(os.environ["MLFLOW_TRACKING_URI"])
    stages = [s for s in STAGES if not args.only or s.name in args.only]
    times: dict[str, float] = {}
    t_all = time.perf_counter()
    for k, stage in enumerate(stages, 1):
        marker = done_dir / stage.name
        fp = _fingerprint(ctx, stage)
        label = f"stage {k}/{len(stages)}: {stage.title}"
        if marker.exists() and marker.read_text() == fp and not args.fresh:
            console.print(f"[dim]{label}: done before, skipped[/]")
            times[stage.name] = 0.0
            continue
        t0 = time.perf_counter()
        try:
            with console.status(f"[bold]{label}[/] (logs: {ctx.logs})", spinner="dots"):
                stage.fn(ctx)
        except StageFailed as exc:
            console.print(f"[bold red]{label} failed[/] after {time.perf_counter() - t0:.0f} s\n{exc}")
            return 1
        times[stage.name] = time.perf_counter() - t0
        marker.write_text(fp)
        record(out, args.preset, {stage.name: times[stage.name]})  # the report stage reads it
        console.print(f"[green]✓[/] {label} [dim]{times[stage.name]:.0f} s[/]")
    total = time.perf_counter() - t_all
    table = Table(title=f"demo ({args.preset}) in {total:.0f} s")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    for s in stages:
        table.add_row(s.title, f"{times[s.name]:.0f}")
    table.add_row("total", f"{total:.0f}", style="bold")
    console.print(table)
    record(out, args.preset, {}, total)
    print_headline(out)
    console.print(f"demo finished in {total:.0f} s; outputs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
