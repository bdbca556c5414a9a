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
before with the same commands is skipped (delete ``<out>`` or pass
``--fresh`` to redo). The server is started for the edge stages and stopped
after them. Every figure in ``<out>/report.html`` comes from this run's files.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
console = Console()


# ----------------------------------------------------------------------------- presets
# What differs between the full demo and the tiny one the tests run; everything
# else is each verb's default. Sizes are set so the demo fits 15 minutes on 2 cores.
PRESETS: dict[str, dict] = {
    "demo": {
        "synth": ["n_recordings=24", "world.duration_s=30.0"],
        "instruct": ["bench_per_category=60"],
        "train": ["train/preset=demo"],
        "distill": ["distill/preset=demo"],
        "export": ["max_eval_windows=256", "tflite=off"],
        "edge_recordings": 2,
        "trace_recordings": 2,
        "sim_train": ["sim_train/preset=demo"] if False else [],
    },
    "tiny": {
        "synth": ["synth/preset=tiny"],
        "instruct": ["windows_per_recording=2", "bench_per_category=10"],
        "train": ["train/preset=tiny"],
        "distill": ["distill/preset=tiny"],
        "export": ["max_eval_windows=32", "tflite=off"],
        "edge_recordings": 1,
        "trace_recordings": 1,
        "sim_train": [],
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
    cmds = [earshot("train", *ctx.p["train"], *extra, f"data.qa_dir={ctx.out / 'qa'}", f"out={ctx.out / 'teacher' / name}",
                    "threads=1", f"mlflow.run_name=demo-{name}", f"hydra.run.dir={ctx.logs / 'hydra' / ('train-' + name)}")
            for name, extra in TEACHERS.items()]
    run_parallel(ctx, "teachers", cmds)
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
]


# ----------------------------------------------------------------------------- driver
def _fingerprint(ctx: Ctx, stage: Stage) -> str:
    return hashlib.sha256(json.dumps([ctx.preset, ctx.p, stage.name, str(ctx.out)], default=str).encode()).hexdigest()[:16]


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
    ap.add_argument("--fresh", action="store_true", help="redo stages that finished before")
    args = ap.parse_args(argv)
    if args.preset not in PRESETS:
        console.print(f"[bold red]EARSHOT_DEMO_PRESET must be demo or tiny, got {args.preset!r}[/]")
        return 2
    unknown = sorted(set(args.only) - {s.name for s in STAGES})
    if unknown:
        console.print(f"[bold red]--only: unknown stages {unknown}; stages: {[s.name for s in STAGES]}[/]")
        return 2
    out = args.out.resolve()
    if args.fresh and out.exists():
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
        if marker.exists() and marker.read_text() == fp:
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
        console.print(f"[green]✓[/] {label} [dim]{times[stage.name]:.0f} s[/]")
    total = time.perf_counter() - t_all
    table = Table(title=f"demo ({args.preset}) in {total:.0f} s")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    for s in stages:
        table.add_row(s.title, f"{times[s.name]:.0f}")
    table.add_row("total", f"{total:.0f}", style="bold")
    console.print(table)
    (out / "stages.json").write_text(json.dumps({"preset": args.preset, "seconds": times, "total_s": total}, indent=1) + "\n")
    console.print(f"demo finished in {total:.0f} s; outputs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
