"""``earshot bench``: every part's benchmark in one run, one JSON file and one markdown summary.

    earshot bench run=runs/demo                       # all parts, on the demo's models and recordings
    earshot bench run=runs/demo parts=[native,sim] quick=true

The schema is ``pipelines/bench_config.py``, the verb is declared in
``pipelines/verbs.py``. Each part is a script in ``scripts/`` (run as a subprocess with this Python,
its output streamed to ``<out>/<part>.log``); it writes its own JSON, which
this verb gathers into ``<out>/bench.json`` and summarises in
``<out>/bench.md`` with the figures that have targets. Speeds are quoted as
ratios measured inside the same script run (int8 program vs eager, native vs
Python runtime, batch 16 vs batch 1), because this machine is shared and
absolute times drift with the neighbours' load.

The artefacts come from a ``scripts/demo`` run (``run=``): the teacher, the
exported students, a held-out recording and the traces. What a part needs is
checked before anything runs, and a missing file is named.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pipelines.bench_config import BenchConfig
from shared.config import ConfigError

__all__ = ["PARTS", "run"]

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _held_out_recording(run: Path) -> Path:
    """The first test-split recording of the demo's world."""
    from shared.dataset import load_dataset

    world = load_dataset(run / "world")
    return (world.split("test") or world.entries)[0].path


def _pick(run: Path, pattern: str) -> Path:
    hits = sorted(run.glob(pattern))
    if not hits:
        raise ConfigError(f"run: {run} has no {pattern} (run scripts/demo first, or point run= at a demo output)")
    return hits[0]


@dataclass(frozen=True)
class Part:
    script: str
    needs: tuple[str, ...]  # globs under run/ that must match
    argv: Callable[[Path, Path, bool], list[str]]  # (run, json_out, quick) -> script arguments
    summary: Callable[[dict], list[tuple[str, str, str]]]  # json -> [(figure, value, target)]


def _world_summary(d: dict) -> list[tuple[str, str, str]]:
    rows = [("generation, x real time per core", f"{d['realtime_factor']:.1f}x", ">= 20x")]
    if d.get("realtime_factor_with_save"):
        rows.append(("with writing the folders", f"{d['realtime_factor_with_save']:.1f}x", ""))
    return rows


def _server_summary(d: dict) -> list[tuple[str, str, str]]:
    sat = d["saturation"]
    best = max(sat, key=lambda r: r["throughput_rps"])
    one = next(r for r in sat if r["max_batch"] == 1)
    slo = {r["max_batch"]: r for r in d.get("slo", [])}
    rows = []
    if slo:
        top = slo[d["best_batch_at_slo"]]
        rows.append((f"batching speed-up at p99 <= {d['slo_ms']} ms (best max batch vs 1)",
                     f"x{d['speedup_at_slo'] or 0:.2f} at batch {top['max_batch']} "
                     f"({top['rate_rps']:.1f} vs {slo[1]['rate_rps']:.1f} req/s)", ">= 3x"))
    rows += [
        ("batching speed-up at saturation", f"x{best['speedup']:.2f} at batch {best['max_batch']}", ""),
        ("requests per server CPU-second, best vs batch 1", f"x{max(r['cpu_speedup'] for r in sat):.2f}", ""),
        ("throughput at max batch 1", f"{one['throughput_rps']:.1f} req/s", ""),
    ]
    prof = d.get("profile", [])
    if prof:
        big = prof[-1]
        rows.append((f"CPU ms per request at batch {prof[0]['max_batch']} / {big['max_batch']} "
                     f"(model, JPEG, audio at batch {big['max_batch']})",
                     f"{prof[0]['total_ms']:.1f} / {big['total_ms']:.1f} ({big['model_ms']:.1f}, {big['jpeg_ms']:.1f}, "
                     f"{big['audio_ms']:.1f})", ""))
    rows += [(f"{r['message']} message encode / decode ({r['bytes'] / 1024:.0f} kB)",
              f"{r['encode_us']:.0f} / {r['decode_us']:.0f} µs", "") for r in d.get("codec", [])
             if r["message"].startswith("infer")]
    return rows


def _latency_summary(d: dict) -> list[tuple[str, str, str]]:
    from shared.stats import format_interval

    s = d["summary"]
    total = s["stages"]["onset -> answer"]
    hop = d["args"]["hops"].split(",")[0]
    rows = [(f"audio onset -> cloud answer p95, {d['args']['network']} emulated, hop {hop} s "
             f"({s['answered']} onsets, {s['recordings']} recordings)",
             f"{format_interval(total['p95'], scale=1.0, digits=0)} ms", "<= 500 ms"),
            ("audio onset -> cloud answer p50", f"{format_interval(total['p50'], scale=1.0, digits=0)} ms", "")]
    for name in ("onset -> trigger fires", "trigger -> request sent", "network + queue + model", "reply -> answer shown"):
        st = s["stages"][name]
        rows.append((f"  stage {name}: mean / p95", f"{st['mean']['value']:.0f} / {st['p95']['value']:.0f} ms",
                     "worst" if name == s["worst_stage"] else ""))
    rows.append(("onsets the cloud never answered", f"{format_interval(s['missed_share'])} %", ""))
    for name, c in (d.get("comparison") or {}).items():
        rows.append((f"{name} vs {c['vs']} ({c['paired_onsets']} onsets both answered): p95 difference",
                     f"{format_interval(c['p95_difference_ms'], scale=1.0, digits=0, signed=True)} ms"
                     if c.get("p95_difference_ms") else "-", ""))
    return rows


def _reliability_summary(d: dict) -> list[tuple[str, str, str]]:
    rows = []
    if "fuzz" in d:
        f = d["fuzz"]
        rows += [(f"fuzz: {f['messages']:,} messages, server alive / replies / valid answered right",
                  f"{f['server_alive']} / {f['replies']:,} of {f['expected_replies']:,} / "
                  f"{f['valid_answered_right']:,} of {f['valid_requests']:,}", "True / all / all"),
                 ("fuzz: server RSS MB after warm-up, min / max",
                  f"{f['rss_mb']['min_after_warmup']:.0f} / {f['rss_mb']['max']:.0f}", "bounded")]
    if "soak" in d:
        s = d["soak"]
        rows += [(f"soak {s['seconds']:.0f} s at {s['offered_rps']:.1f} req/s (2 x capacity): shed replies p99",
                  f"{s['busy_p99_ms'] or 0:.1f} ms", "<= 10 ms"),
                 ("soak: admitted requests answered within their deadline",
                  f"{100 * (s['admitted_in_deadline_share'] or 0):.1f}% of {s['admitted']:,}", "all"),
                 ("soak: server RSS MB, first minute / last minute",
                  f"{s['rss_mb']['first_minute']:.0f} / {s['rss_mb']['last_minute']:.0f}", "flat")]
    if "chaos" in d:
        c = d["chaos"]
        rows.append(("chaos (worker kill -9, broker restart): requests silently lost",
                     f"{c['silently_lost']} of {c['submitted']:,}", "0"))
        if "late_verdicts" in c:  # the client's timer fired first, the server's verdict came after
            late = c["late_verdicts"]
            rows.append(("chaos: client timeouts whose server verdict came late (max ms late)",
                         f"{late}" + (f" ({c['late_ms_max']:.1f} ms)" if late else ""), ""))
    if "burst" in d:
        b = d["burst"]
        n = b["requests"] * len(b["reps"])
        rows.append((f"burst ({len(b['reps'])} x {b['requests']} at once, {b['deadline_ms']} ms): "
                     "verdicts after the client's timer (max ms late) / silently lost",
                     f"{b['late_verdicts']} of {n:,}" + (f" ({b['late_ms_max']:.1f} ms)" if b["late_verdicts"] else "")
                     + f" / {b['silently_lost']}", "- / 0"))
    return rows


def _edge_models_summary(d: dict) -> list[tuple[str, str, str]]:
    rows = []
    for s in d["students"]:
        by = {r["variant"]: r for r in s["rows"]}
        int8 = next((r for k, r in by.items() if "int8" in k), None)
        if int8:
            rows.append((f"{s['student']}: int8 .pte vs eager fp32", f"x{int8['speedup_vs_eager']:.1f}", ""))
            if "realtime_factor" in int8:
                rows.append((f"{s['student']}: int8 real-time factor (1 thread)", f"{int8['realtime_factor']:.0f}x", ""))
    return rows


def _students_summary(d: dict) -> list[tuple[str, str, str]]:
    from shared.stats import format_interval

    rows, tg = [], d["targets"]
    for s in d["students"]:
        who = s["student"]
        if s["probes"] is None:
            rows.append((f"{who} int8: event-probe pairs", "not scored (no probes report)", ""))
        ret = (s["probes"] or {}).get("retention", {})
        target = f">= {100 * tg['retention']:.0f}%" if who == "av" else ""
        for m in (s["probes"] or {}).get("modalities", []):
            if m != "all":
                fig = s["probes"]["figures"]
                rows.append((f"{who} int8: {m} event-probe pairs, student / teacher",
                             f"{format_interval(fig['student'][m]['pair'])}% / {format_interval(fig['teacher'][m]['pair'])}%", ""))
                rows.append((f"{who} int8: retention of the teacher's {m} pair accuracy", f"{format_interval(ret[m])}%", target))
        if who == "av":
            rows += [("av int8: parameters", f"{s['parameters'] / 1e3:.1f} k", f"<= {tg['max_parameters'] / 1e6:g} M"),
                     ("av int8 .pte vs eager fp32 (1 thread)", f"x{s['speedup_vs_eager']:.1f}", f">= {tg['speedup_vs_eager']:g}x")]
    return rows


def _native_summary(d: dict) -> list[tuple[str, str, str]]:
    rows = d["rows"]
    nat = rows.get("native (earshot-edge)", {})
    py = rows.get("python (edge.runtime)")
    out = [("native trigger, x real time (1 thread)", f"{nat.get('trigger_rtf', 0):.0f}x", ">= 1000x"),
           ("native peak RSS", f"{nat.get('peak_rss_mb', 0):.1f} MB", "< 50 MB"),
           ("native binary size", f"{d['sizes']['binary_bytes'] / 1024:.0f} KiB", "")]
    if py and nat.get("step_p50_ms"):
        out.append(("Python vs native per-hop p50", f"x{py['step_p50_ms'] / nat['step_p50_ms']:.1f}", ""))
    return out


def _trigger_summary(d: dict) -> list[tuple[str, str, str]]:
    from shared.stats import format_interval

    rows = []
    det = d.get("detector")
    if det:
        t, tg = det["test"], det["targets"]
        rows += [("trigger event recall (held-out)", f"{format_interval(t['event_recall'])}%", f">= {100 * tg['recall']:.0f}%")]
        if t.get("event_recall_audible"):
            rows.append((f"trigger recall, audible events (>= {t.get('audible_snr_db', -5.0):g} dB)", f"{format_interval(t['event_recall_audible'])}%", ""))
        rows.append(("trigger false triggers / h (" + ("background" if t["hours_background"] else "outside events") + ")",
                     format_interval(t["fa_per_hour_background"], scale=1.0), f"<= {tg['fa_per_hour']:g}"))
        delay = t.get("delay_s") or {}
        if delay.get("p95"):
            rows.append(("trigger onset -> first trigger p50 / p95 (ms)",
                         f"{format_interval(delay['p50'], scale=1000.0, digits=0)} / "
                         f"{format_interval(delay['p95'], scale=1000.0, digits=0)}", ""))
        early = det.get("early_stage")
        if early and early.get("delay_s"):
            first = early["delay_s"]["first_fire"]
            rows.append((f"early stage (logit shift {early['shift']:+g}): fires / h outside events, background / "
                         "labelled", f"{format_interval(early['fires_per_hour_background'], scale=1.0)} / "
                         f"{format_interval(early['fires_per_hour_labelled'], scale=1.0, digits=0)}",
                         f"<= {early['fires_per_hour_budget']:g} (val)"))
            rows.append(("onset -> first fire, early or trigger, p50 / p95 (ms)",
                         f"{format_interval(first['p50'], scale=1000.0, digits=0)} / "
                         f"{format_interval(first['p95'], scale=1000.0, digits=0)}", ""))
    cam = d["camera"]
    rows.append(("camera on under audio_trigger", f"{format_interval(cam['camera_on_share'])}% "
                 f"(oracle {format_interval(cam['oracle_share'])}%)", f"<= {100 * cam['target']:.0f}%"))
    imp = d.get("camera_important")
    if imp:
        rows.append((f"camera on, woken by {len(imp['wake_labels'])} important sounds only",
                     f"{format_interval(imp['camera_on_share'])}% (oracle {format_interval(imp['oracle_share'])}%)",
                     f"<= {100 * imp['target']:.0f}%"))
    qs = (imp or {}).get("query_success") or cam.get("query_success")
    if qs:
        rows.append((f"query success under the trigger's camera vs always-on ({qs['queries']} traced queries)",
                     f"{format_interval(qs['ratio'])}% (never-on control {format_interval(qs['never_on_ratio'])}%"
                     f"{'' if qs['camera_matters'] else ': the camera does not matter for these questions'})",
                     f">= {100 * qs['target']:.0f}%"))
    return rows


def _sim_summary(d: dict) -> list[tuple[str, str, str]]:
    return [("env steps/s, one core", f"{d['steps_per_s']:,.0f}", ">= 100,000"),
            ("evaluation sweep wall time", f"{d['sweep_wall_s']:.2f} s", "")]


def _edge_runtime_summary(d: dict) -> list[tuple[str, str, str]]:
    return [(str(k), str(v), "") for k, v in d.get("summary", {}).items()]


def _lm_summary(d: dict) -> list[tuple[str, str, str]]:
    from shared.stats import format_interval

    ld = d["load"]
    rows = [(f"language model load ({ld['lm']}, {ld['parameters_m']} M parameters)", f"{ld['load_s']:.1f} s", ""),
            ("language model RSS, this process before / after loading",
             f"{ld['rss_before_mb']:.0f} / {ld['rss_after_mb']:.0f} MB", "")]
    g = d.get("grounding")
    if g:
        fig = g["figures"]
        rows += [(f"audio-event probes: sentence names the sound, pair accuracy ({g['n_pairs']} pairs)",
                  f"{format_interval(fig['sentence']['pair'])}%",
                  f"teacher - {g['target_points']:g} = {100 * fig['teacher']['pair']['value'] - g['target_points']:.1f}%"),
                 ("  teacher closed-form / no-evidence control / shuffled-clip control",
                  " / ".join(format_interval(fig[k]['pair']) if k in fig else "-"
                             for k in ("teacher", "no_evidence", "shuffled_clip")) + " %", "")]
    c = d.get("answer_cost")
    if c:
        rows.append(("one free-form answer, CPU ms p50 / p95 (1 thread; wall on a shared host is higher)",
                     f"{c['cpu_ms']['p50']:.0f} / {c['cpu_ms']['p95']:.0f} ms", f"p95 <= {c['target_p95_ms']:.0f} ms"))
    s = d.get("server")
    if s:
        rows += [("server, free-form answer round trip p50 / p95 (warm, 1 thread)",
                  f"{s['query']['rtt_ms']['p50']:.0f} / {s['query']['rtt_ms']['p95']:.0f} ms",
                  f"p95 <= {s['target_p95_ms']:.0f} ms"),
                 ("server RSS with the language model", f"{s['server_rss_mb']:.0f} MB", "")]
    return rows


PARTS: dict[str, Part] = {
    "world": Part("bench_world.py", (), lambda run, js, q: ["--duration", "12" if q else "30", "--per-scenario", "1",
                                                             "--json", str(js)], _world_summary),
    "server": Part("bench_server.py", ("teacher/av_gate/model/model.safetensors",),
                   lambda run, js, q: ["--checkpoint", str(run / "teacher/av_gate/model"), "--out", str(js),
                                       *(["--quick"] if q else ["--batch-sizes", "1,4,8,16"])],
                   _server_summary),
    "latency": Part("bench_latency.py", ("kd/trigger/export/*int8.pte", "kd/av/export/*int8.pte",
                                         "teacher/av_gate/model/model.safetensors"),
                    lambda run, js, q: ["--run", str(run), *(["--quick"] if q else ["--hops", "0.25,0.1"]),
                                        "--json", str(js)], _latency_summary),
    "reliability": Part("bench_reliability.py", ("teacher/av_gate/model/model.safetensors",),
                        lambda run, js, q: ["--run", str(run), *(["--quick"] if q else []), "--json", str(js)],
                        _reliability_summary),
    "edge_models": Part("bench_edge_models.py", ("kd/trigger/export/*.pte", "kd/av/export/*.pte"),
                        lambda run, js, q: [str(run / "kd/trigger"), str(run / "kd/av"),
                                            "--calls", "60" if q else "300", "--json", str(js)], _edge_models_summary),
    "students": Part("bench_students.py", ("kd/av/export/*int8.json", "kd/trigger/export/*int8.json"),
                     lambda run, js, q: [str(run / "kd/av"), str(run / "kd/trigger"), "--calls", "60" if q else "300",
                                         "--json", str(js)], _students_summary),
    "edge_runtime": Part("bench_edge_runtime.py", ("kd/trigger/export/*int8.pte", "kd/av/export/*int8.pte",
                                                   "teacher/av_gate/model/model.safetensors"),
                         lambda run, js, q: ["--run", str(run), *(["--quick"] if q else []), "--json", str(js)],
                         _edge_runtime_summary),
    "native": Part("bench_native.py", ("kd/trigger/export/*int8.pte", "kd/av/export/*int8.pte"),
                   lambda run, js, q: ["--recording", str(_held_out_recording(run)),
                                       "--trigger", str(_pick(run, "kd/trigger/export/*int8.pte")),
                                       "--student", str(_pick(run, "kd/av/export/*int8.pte")), "--json", str(js)],
                   _native_summary),
    "trigger": Part("bench_trigger.py", ("kd/trigger/export/*int8.pte", "world/manifest.json"),
                    lambda run, js, q: ["--export", str(run / "kd/trigger/export"), "--dataset", str(run / "world"),
                                        "--recordings", "2" if q else "0", "--json", str(js),
                                        *(["--traces", str(run / "traces")] if any(run.glob("traces/*.jsonl")) else [])],
                    _trigger_summary),
    "lm": Part("bench_lm.py", ("teacher/av_gate/model/model.safetensors", "qa/bench.jsonl"),
               lambda run, js, q: ["--teacher", str(run / "teacher/av_gate/model"), "--qa", str(run / "qa"),
                                   *(["--quick"] if q else []), "--json", str(js)], _lm_summary),
    "sim": Part("bench_sim.py", ("traces/*.jsonl",),
                lambda run, js, q: ["--traces", str(run / "traces"), "--steps", "50000" if q else "200000",
                                    "--json", str(js)], _sim_summary),
}


def _check_inputs(cfg: BenchConfig) -> Path:
    run = Path(cfg.run).resolve()  # the scripts start servers in their own temporary folders
    needs = [g for p in cfg.parts for g in PARTS[p].needs]
    if needs and not run.is_dir():
        raise ConfigError(f"run: {run} is not a folder (run scripts/demo first, or point run= at a demo output)")
    for p in cfg.parts:
        for g in PARTS[p].needs:
            if not any(run.glob(g)):
                raise ConfigError(f"run: part {p!r} needs {run / g}, which is missing (run scripts/demo first)")
        if not (SCRIPTS / PARTS[p].script).is_file():
            raise ConfigError(f"parts: {p!r} runs scripts/{PARTS[p].script}, which is missing (a source checkout is needed)")
    return run


def run(cfg: BenchConfig) -> None:
    """The verb's body: run every part's benchmark; write bench.json and bench.md."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(140, Console().width))  # keep the summary table whole in logs and pipes
    run = _check_inputs(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"run": str(run.resolve()), "quick": cfg.quick, "parts": {}}
    rows: list[tuple[str, str, str, str]] = []
    for k, name in enumerate(cfg.parts, 1):
        part = PARTS[name]
        js, log = out / f"{name}.json", out / f"{name}.log"
        cmd = [sys.executable, str(SCRIPTS / part.script), *part.argv(run, js, cfg.quick)]
        t0 = time.perf_counter()
        with console.status(f"[bold]bench {k}/{len(cfg.parts)}: {name}[/] (log: {log})"), open(log, "w") as f:
            f.write("$ " + " ".join(cmd) + "\n")
            f.flush()
            rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode
        wall = time.perf_counter() - t0
        if rc != 0 or not js.exists():
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            console.print(f"[bold red]bench {name} failed (exit {rc})[/]; last lines of {log}:\n{tail}")
            results["parts"][name] = {"ok": False, "exit": rc, "wall_s": wall}
            continue
        data = json.loads(js.read_text())
        summary = part.summary(data)
        results["parts"][name] = {"ok": True, "wall_s": wall, "summary": summary, "data": data}
        rows += [(name, *s) for s in summary]
        console.print(f"[green]✓[/] {name} [dim]{wall:.0f} s[/]")
    (out / "bench.json").write_text(json.dumps(results, indent=1) + "\n")
    lines = [f"# Earshot benchmarks ({'quick' if cfg.quick else 'full'} run on {run})", "",
             "| part | figure | value | target |", "| --- | --- | ---: | ---: |"]
    lines += [f"| {p} | {fig} | {val} | {tgt} |" for p, fig, val, tgt in rows]
    failed = [n for n, r in results["parts"].items() if not r["ok"]]
    if failed:
        lines += ["", f"Failed parts: {', '.join(failed)} (see their logs)."]
    (out / "bench.md").write_text("\n".join(lines) + "\n")
    table = Table(title=f"earshot bench ({run})")
    for col in ("part", "figure", "value", "target"):
        table.add_column(col, justify="right" if col in ("value", "target") else "left")
    for r in rows:
        table.add_row(*r)
    console.print(table)
    console.print(f"wrote {out / 'bench.json'} and {out / 'bench.md'}")
    if failed:
        raise SystemExit(1)
