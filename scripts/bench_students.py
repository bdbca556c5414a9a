#!/usr/bin/env python
"""The students against their targets: the bench's event probes, size, and speed over eager.

    python scripts/bench_students.py runs/demo/kd/av runs/demo/kd/trigger
    python scripts/bench_students.py runs/demo/kd/av --calls 60 --json students.json

Each argument is an ``earshot distill`` out whose ``export/`` holds the int8
program, its model card and ``<program>.probes.json`` (``earshot export``,
``distill/probes.py``). For every student this reads, from those files, the
int8 program's accuracy on the counterfactual bench's event probes (per
question and per pair, audio and visual, beside the teacher and the
controls, with recording-level 95% intervals) and its retention of the
teacher's pair accuracy, and it times eager fp32 against the int8 ``.pte`` on
one thread in the same run (``bench_edge_models.bench``: interleaved rounds,
medians).

Target (issue 17): the AV student int8 keeps >= 90% of the teacher's pair
accuracy on the audio and on the visual event probes, has <= 1 M parameters
and runs >= 2x faster than eager. The trigger is shown beside it (audio
probes only) without a target of its own here.

Prints a Markdown table and writes JSON (``--json``).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "scripts"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

#: Issue 17's AV-student targets.
TARGET_RETENTION = 0.9
TARGET_MAX_PARAMS = 1_000_000
TARGET_SPEEDUP = 2.0
SYSTEMS = ("student", "teacher", "student_shuffled_clip", "teacher_shuffled_clip", "question_only", "question_scene",
           "constant_answer")


def _student(distill_out: Path) -> dict[str, Any]:
    """The int8 program's card figures and probes report (raises SystemExit naming a missing card).
    ``probes`` is None, with ``probes_missing`` saying why, when export wrote no probes report
    (it skips them when the bench has no event-probe pair): speed and size are still measured."""
    export = distill_out / "export"
    cards = sorted(export.glob("*_xnnpack_int8.json"))
    if not cards:
        raise SystemExit(f"{export}: no *_xnnpack_int8.json model card (run earshot export)")
    card = json.loads(cards[0].read_text())
    probes_file = (card.get("extra") or {}).get("probes")
    base = {"student": card["name"], "program": card["program"], "parameters": card["num_parameters"],
            "macs": card["macs"], "size_bytes": card["size_bytes"], "metrics": card["metrics"]}
    if not probes_file or not (export / probes_file).is_file():
        return {**base, "probes": None, "probes_missing": f"{cards[0].name}: no probes report (export skips the "
                "probes when the teacher's bench has no event-probe pair; see its log)"}
    return {**base, "probes": json.loads((export / probes_file).read_text())}


def measure(distill_outs: list[Path], calls: int, warmup: int, rounds: int) -> dict[str, Any]:
    from bench_edge_models import bench

    results: dict[str, Any] = {"students": [], "targets": {"retention": TARGET_RETENTION, "max_parameters": TARGET_MAX_PARAMS,
                                                           "speedup_vs_eager": TARGET_SPEEDUP}}
    speeds = bench(distill_outs, calls, warmup, rounds)
    for out, timing in zip(distill_outs, speeds["students"]):
        s = _student(Path(out))
        int8 = next(r for r in timing["rows"] if r["variant"] == "pte int8")
        eager = next(r for r in timing["rows"] if r["variant"] == "eager fp32")
        s.update(int8_median_ms=int8["median_ms"], eager_median_ms=eager["median_ms"],
                 speedup_vs_eager=int8["speedup_vs_eager"])
        if s["student"] == "av" and s["probes"] is not None:
            ret = s["probes"]["retention"]
            per_mod = {m: ret.get(m) for m in ("audio", "visual")}
            s["targets"] = {
                "retention_audio": per_mod["audio"] is not None and per_mod["audio"]["value"] >= TARGET_RETENTION,
                "retention_visual": per_mod["visual"] is not None and per_mod["visual"]["value"] >= TARGET_RETENTION,
                "parameters": s["parameters"] <= TARGET_MAX_PARAMS,
                "speedup": s["speedup_vs_eager"] >= TARGET_SPEEDUP,
            }
            s["targets"]["met"] = all(s["targets"].values())
        results["students"].append(s)
    results.update(threads=1, calls=calls, warmup=warmup, rounds=rounds)
    return results


def markdown(results: dict[str, Any]) -> str:
    from shared.stats import format_interval as fi

    lines = []
    for s in results["students"]:
        p = s["probes"]
        if p is None:
            lines += [f"### {s['program']}: not scored on the bench ({s['probes_missing']})", "",
                      f"{s['parameters'] / 1e3:.1f} k parameters; int8 .pte {s['int8_median_ms']:.3f} ms vs eager "
                      f"{s['eager_median_ms']:.3f} ms per call on one thread (x{s['speedup_vs_eager']:.1f}).", ""]
            continue
        mods = p["modalities"]
        lines += [f"### {s['program']}: {p['n_pairs']} event-probe pairs on {p['n_recordings']} held-out recordings", "",
                  "| system | " + " | ".join(f"{m} per question % | {m} per pair %" for m in mods) + " |",
                  "| --- |" + " ---: | ---: |" * len(mods)]
        for name in SYSTEMS:
            fig = p["figures"].get(name)
            if fig:
                lines.append(f"| {name} | " + " | ".join(f"{fi((fig.get(m) or {}).get('question'))} | "
                                                          f"{fi((fig.get(m) or {}).get('pair'))}" for m in mods) + " |")
        cells = [c for m in mods for c in ("", fi(p["retention"][m]))]
        lines.append("| retention (student / teacher pairs) | " + " | ".join(cells) + " |")
        lines += ["", f"{s['parameters'] / 1e3:.1f} k parameters, {s['macs'] / 1e6:.2f} M MACs per call; int8 .pte "
                      f"{s['int8_median_ms']:.3f} ms vs eager {s['eager_median_ms']:.3f} ms per call on one thread "
                      f"(x{s['speedup_vs_eager']:.1f})."]
        if "targets" in s:
            t = s["targets"]
            lines.append(f"Targets (retention >= {100 * TARGET_RETENTION:.0f}% on audio and on visual probes, "
                         f"<= 1 M parameters, >= {TARGET_SPEEDUP:g}x eager): audio {'met' if t['retention_audio'] else 'NOT met'}, "
                         f"visual {'met' if t['retention_visual'] else 'NOT met'}, parameters "
                         f"{'met' if t['parameters'] else 'NOT met'}, speed {'met' if t['speedup'] else 'NOT met'}.")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("distill_outs", nargs="+", type=Path, help="earshot distill outs, each with export/")
    parser.add_argument("--calls", type=int, default=300, help="timed calls per variant")
    parser.add_argument("--warmup", type=int, default=30, help="untimed calls per variant first")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds the timed calls are split into")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    for out in args.distill_outs:
        _student(out)  # missing files fail before any timing
    results = measure(args.distill_outs, args.calls, args.warmup, args.rounds)
    print(markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return results


if __name__ == "__main__":
    main()
