"""Benchmark the on-device programs: size, MACs and latency per call on one thread.

    python scripts/bench_edge_models.py runs/distill/trigger runs/distill/av
    python scripts/bench_edge_models.py runs/distill/trigger --calls 200 --json bench.json

Each argument is an ``earshot distill`` out (its ``student/`` and the
``export/`` that ``earshot export`` wrote). For every student, in one process
and one run, on one thread:

    eager fp32   the PyTorch module (torch.set_num_threads(1))
    .pte fp32    ExecuTorch runtime, XNNPACK delegate (threadpool reset to 1)
    .pte int8    the same, PT2E int8 program
    .tflite      LiteRT interpreter, num_threads=1 (when the 'tflite' extra is installed)

Latency per call is the median (and p90) over ``--calls`` timed calls after
``--warmup`` untimed ones, on one real window (the first test window of the
student's recordings; the registry's example input if they are gone). The
variants are timed in interleaved rounds, so a neighbour's load on a shared
machine hits all of them alike. Ratios are quoted against eager fp32; the
trigger's real-time factor is audio seconds per call over seconds per call
(how many times faster than real time one call runs).

Prints a Markdown table and writes JSON (``--json``).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _real_window(student_card: dict[str, Any], cfg: Any) -> tuple[Any, ...] | None:
    """The first test window of the student's recordings (None if they are gone)."""
    from distill.data import TeacherView, load_split
    from shared.dataset import load_dataset

    try:
        dataset = load_dataset(student_card["data"]["dataset"])
        windows = load_split(
            dataset, "test", audio_s=cfg.audio_s, stride_s=student_card["data"]["stride_s"],
            teacher_view=TeacherView(1.0, 16, 64),
            frame_size_px=cfg.frame_size_px if cfg.name == "av" else None, max_recordings=1, keep_camera=True,
        )
    except Exception:  # recordings moved or deleted: fall back to the example input
        return None
    return windows.student_inputs([len(windows) // 2], camera=True) if len(windows) else None


def _variants(distill_out: Path) -> tuple[dict[str, Any], list[tuple[str, Path | None, Callable[..., Any]]]]:
    """(info, [(variant, file, call)]) for one student."""
    import torch

    from distill.io import load_student
    from distill.macs import count_macs
    from distill.programs import EagerProgram, PteProgram
    from distill.students import example_inputs, num_parameters
    from distill.tflite import TfliteProgram, tflite_status
    from shared.model_card import load_model_card

    model, cfg, card = load_student(distill_out)
    export = distill_out / "export"
    real = _real_window(card, cfg)
    inputs = real if real is not None else example_inputs(cfg)
    info = {
        "student": cfg.name,
        "parameters": num_parameters(model),
        "macs": count_macs(model, example_inputs(cfg)).total,
        "audio_s": cfg.audio_s,
        "input": "real test window" if real is not None else "example input",
    }
    variants: list[tuple[str, Path | None, Callable[..., Any]]] = [("eager fp32", None, EagerProgram(model))]
    for variant, file in (("pte fp32", f"{cfg.name}_xnnpack_fp32.pte"), ("pte int8", f"{cfg.name}_xnnpack_int8.pte")):
        if (export / file).is_file():
            load_model_card((export / file).with_suffix(".json"), check_program=True)
            variants.append((variant, export / file, PteProgram(export / file)))
    tfl = export / f"{cfg.name}_litert_fp32.tflite"
    available, why = tflite_status()
    if tfl.is_file() and available:
        variants.append(("tflite fp32", tfl, TfliteProgram(tfl, num_threads=1)))
    else:
        info["tflite"] = why if not available else f"{tfl} not exported"
    info["_inputs"] = [x.numpy() if isinstance(x, torch.Tensor) else x for x in inputs]
    return info, variants


def _time(call: Callable[..., Any], inputs: list[np.ndarray], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        call(*inputs)
        out.append(time.perf_counter() - t0)
    return out


def bench(distill_outs: list[Path], calls: int = 300, warmup: int = 30, rounds: int = 5) -> dict[str, Any]:
    """Measure every variant of every student; returns the JSON-able results."""
    import torch
    from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool

    torch.set_num_threads(1)
    _unsafe_reset_threadpool(1)  # XNNPACK's threadpool in the ExecuTorch runtime: one thread
    results: dict[str, Any] = {"threads": 1, "calls": calls, "warmup": warmup, "rounds": rounds, "students": []}
    for out in distill_outs:
        info, variants = _variants(Path(out))
        inputs = info.pop("_inputs")
        samples: dict[str, list[float]] = {name: [] for name, _, _ in variants}
        for name, _, call in variants:
            _time(call, inputs, warmup)
        per_round = max(1, calls // rounds)
        for _ in range(rounds):  # interleaved: background load hits every variant alike
            for name, _, call in variants:
                samples[name] += _time(call, inputs, per_round)
        rows = []
        for name, file, _ in variants:
            t = np.asarray(samples[name])
            rows.append({
                "variant": name,
                "file": file.name if file else None,
                "size_bytes": file.stat().st_size if file else None,
                "median_ms": float(np.median(t) * 1e3),
                "p90_ms": float(np.percentile(t, 90) * 1e3),
            })
        eager = rows[0]["median_ms"]
        for row in rows:
            row["speedup_vs_eager"] = eager / row["median_ms"]
            if info["student"] == "trigger":
                row["realtime_factor"] = info["audio_s"] * 1e3 / row["median_ms"]
        results["students"].append({**info, "rows": rows})
    return results


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"One thread; median (p90) of {results['calls']} calls after {results['warmup']} warm-up, "
        f"{results['rounds']} interleaved rounds.",
        "",
        "| student | params | MACs/call | variant | file size | latency ms (p90) | x eager fp32 | real-time factor |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for s in results["students"]:
        for r in s["rows"]:
            size = "-" if r["size_bytes"] is None else f"{r['size_bytes'] / 1024:.0f} kB"
            rtf = f"{r['realtime_factor']:.0f}x" if "realtime_factor" in r else "-"
            lines.append(
                f"| {s['student']} | {s['parameters'] / 1e3:.1f} k | {s['macs'] / 1e6:.2f} M | {r['variant']} | {size} | "
                f"{r['median_ms']:.3f} ({r['p90_ms']:.3f}) | {r['speedup_vs_eager']:.1f} | {rtf} |"
            )
        if "tflite" in s:
            lines.append(f"\n{s['student']}: {s['tflite']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("distill_outs", nargs="+", type=Path, help="earshot distill outs, each with export/")
    parser.add_argument("--calls", type=int, default=300, help="timed calls per variant")
    parser.add_argument("--warmup", type=int, default=30, help="untimed calls per variant first")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds the timed calls are split into")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    results = bench(args.distill_outs, args.calls, args.warmup, args.rounds)
    print(markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}")
    return results


if __name__ == "__main__":
    main()
