#!/usr/bin/env python
"""Write ``<run>/report.html``: one self-contained page from one demo run's files.

    python scripts/report.py runs/demo            # what scripts/demo's last stage runs
    python scripts/report.py runs/demo --out /tmp/report.html

Sections (each reads files the run wrote; nothing is typed in by hand):

1. **Teacher benchmark**: the counterfactual bench (every closed-form
   question asked on two windows of one held-out recording with different
   gold), per question and per pair with recording-level 95% intervals, the
   three teachers (AV + gate, vision-only + gate, AV + context-blind) beside
   the controls (question only, question + scene, shuffled clip, constant
   answer); narrations apart; by evidence and SNR bin
   (``teacher/<variant>/model/eval_bench.scores.json``).
2. **Students vs teacher**: each exported program's model card (size,
   parameters, MACs, macro-F1 against the labels, the teacher's, pair
   accuracy on the bench's event probes, retention); then the event probes in
   full, each int8 student beside the teacher and the controls
   (``kd/*/export/*int8.probes.json``, `section_student_probes`).
3. **Edge size and latency**: the edge-model benchmark
   (``bench/edge_models.json``) and the Python and native runtimes' runs on
   held-out recordings (``edge/*.jsonl``, ``native/*.jsonl`` event logs).
4. **Policies**: the held-out simulator study (``--sim-heldout``: ``scripts/sim_heldout.py``'s
   output) and this run's own simulator table (``sim/``), figures with 95% intervals.
5. **Timeline** of one held-out recording from the Python runtime's event log.

Images are embedded as base64 PNG, styles inline: the file opens anywhere.
A section whose inputs are missing says so in red, and ``--strict`` (the demo
uses it) then exits 1 naming them.
"""
from __future__ import annotations

import argparse
import base64
import datetime as dt
import html
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

CATEGORIES = ("SSA", "AVDN", "AVSN", "TR", "AVH")
TEACHER_NAMES = {"av_gate": "AV narrations + gate", "visual_gate": "vision-only narrations + gate",
                 "av_blind": "AV narrations + context-blind"}

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;color:#1d1d1f;padding:0 1rem}
h1{margin-bottom:.2rem} h2{border-bottom:2px solid #e5e5ea;padding-bottom:.3rem;margin-top:2.2rem}
table{border-collapse:collapse;margin:.8rem 0;font-size:.9rem}
th,td{border:1px solid #d2d2d7;padding:.3rem .6rem;text-align:right} th{background:#f5f5f7}
td:first-child,th:first-child{text-align:left} .missing{color:#c00;font-weight:600}
.note{color:#555;font-size:.85rem} .wide{overflow-x:auto} img{max-width:100%;border:1px solid #e5e5ea}
"""


class Report:
    def __init__(self, run: Path, heldout: Path | None = None) -> None:
        self.run = run
        self.heldout = heldout
        self.parts: list[str] = []
        self.missing: list[str] = []

    def h2(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def p(self, text: str, cls: str = "note") -> None:
        self.parts.append(f'<p class="{cls}">{html.escape(text)}</p>')

    def miss(self, what: str) -> None:
        self.missing.append(what)
        self.parts.append(f'<p class="missing">missing: {html.escape(what)}</p>')

    def table(self, header: Iterable[str], rows: Iterable[Iterable[Any]]) -> None:
        out = ["<div class='wide'><table><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>"]
        for row in rows:
            out.append("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>")
        out.append("</table></div>")
        self.parts.append("\n".join(out))

    def image(self, png: bytes, alt: str) -> None:
        self.parts.append(f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">')


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.3g}" if abs(x) < 1e-2 or abs(x) >= 1e4 else f"{x:.2f}"
    return str(x)


def _pct(x: Any) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _load(path: Path) -> Any:
    return json.loads(path.read_text())


# ----------------------------------------------------------------------------- sections
def _ci(iv: dict | None) -> str:
    from shared.stats import format_interval

    return format_interval(iv) if iv else "-"


def _teacher_scores(run: Path) -> dict[str, dict]:
    out = {}
    for name in TEACHER_NAMES:
        path = run / "teacher" / name / "model" / "eval_bench.scores.json"
        if path.exists():
            out[name] = _load(path)
    return out


def _bench_systems(scored: dict[str, dict]) -> dict[str, dict]:
    """Teacher name -> figures, then the controls (computed beside the main teacher)."""
    systems = {TEACHER_NAMES[n]: s["figures"]["model"] for n, s in scored.items() if "figures" in s}
    main = next((s for s in scored.values() if "figures" in s), None)
    if main:
        systems.update({f"control: {k}": v for k, v in main["figures"].items() if k != "model"})
    return systems


def section_teachers(r: Report) -> None:
    r.h2("1. Teacher benchmark: the counterfactual bench (held-out recordings)")
    scored = _teacher_scores(r.run)
    for name in TEACHER_NAMES:
        if name not in scored:
            r.miss(str((Path("teacher") / name / "model" / "eval_bench.scores.json")))
    if not scored:
        return
    systems = _bench_systems(scored)
    if systems:
        first = next(iter(systems.values()))
        closed = first.get("closed", {})
        n_pairs, n_rec = (closed["pair"]["n"], closed["pair"]["n_groups"]) if closed.get("pair") else (0, 0)
        r.p(f"Every closed-form question (SSA, TR, AVH) is asked on two windows of one held-out recording whose "
            f"gold answers differ ({n_pairs} pairs from {n_rec} recordings): a model that answers from the question "
            "or the scene gets at most one of the two. Accuracy % per question / per pair (both right), "
            "[95% bootstrap interval over recordings]. Controls: question only, question + scene, the AV+gate "
            "teacher on another recording's clip (shuffled clip), one constant answer per type.")
        cats = [c for c in ("closed", "SSA", "TR", "AVH") if c in first]
        r.table(["system", *[f"{c} {lvl}" for c in cats for lvl in ("per question", "per pair")]],
                [[name, *[_ci(fig.get(c, {}).get(lvl)) for c in cats for lvl in ("question", "pair")]]
                 for name, fig in systems.items()])
        r.p("Narrations (not closed-form; reported apart): AVDN F1 of time-stamped items, AVSN summary score.")
        r.table(["system", "AVDN", "AVSN"], [[name, _ci(fig.get("AVDN", {}).get("question")),
                                             _ci(fig.get("AVSN", {}).get("question"))]
                                            for name, fig in systems.items()])
    scores = {n: s["scores"] for n, s in scored.items()}
    names = list(scores)
    evid = sorted({k for n in names for k in scores[n]["evidence"]})
    r.p("By the evidence a question needs (per question, every category): 'visual' questions are the ones "
        "vision-only training should not lose.")
    r.table(["evidence", *(TEACHER_NAMES[n] for n in names)],
            [[e, *(_pct(scores[n]["evidence"].get(e)) for n in names)] for e in evid])
    bins = sorted({k for n in names for k in scores[n]["snr"]})
    r.p("By recording SNR: context-aware gate vs context-blind fusion (audio / visual trust is the gate's mean weight).")
    r.table(["SNR bin", *(TEACHER_NAMES[n] for n in names), "gate audio trust", "gate visual trust"],
            [[b, *(_pct(scores[n]["snr"].get(b)) for n in names),
              *((scores.get("av_gate", {}).get("gate", {}).get(b) or [None, None])[:2])] for b in bins])


def section_students(r: Report) -> None:
    r.h2("2. Students vs teacher")
    # Model cards only: the trigger's detector report (*.trigger_eval.json) and the probes
    # report (*.probes.json) sit beside them.
    cards = sorted(p for p in (r.run / "kd").glob("*/export/*.json")
                   if not p.name.endswith((".trigger_eval.json", ".probes.json")))
    if not cards:
        r.miss("kd/*/export/*.json (model cards)")
        return
    rows = []
    for path in cards:
        c = _load(path)
        m = c["metrics"]
        rows.append([c["program"], c["precision"], f"{c['size_bytes'] / 1024:.0f}", f"{c['num_parameters'] / 1e3:.1f}",
                     f"{c['macs'] / 1e6:.2f}", m.get("macro_f1"), m.get("teacher_macro_f1"), m.get("agreement_f1"),
                     _pct(m.get("probe_pair_accuracy")), _pct(m.get("teacher_probe_pair_accuracy")),
                     _pct(m.get("retention")), m.get("n_windows")])
    r.p("Macro-F1 on held-out windows against the annotation labels (per-token labels, thresholds from val); "
        "pairs: accuracy per pair on the counterfactual bench's event probes (both windows right); "
        "retention = student pairs / teacher pairs on the same pairs (section 2c).")
    r.table(["program", "precision", "size kB", "params k", "MMAC/call", "student F1", "teacher F1", "agreement F1",
             "student pairs %", "teacher pairs %", "retention %", "windows"], rows)


def section_student_probes(r: Report) -> None:
    """The int8 students on the bench's event probes, beside the teacher and the controls."""
    from shared.stats import format_interval as fi

    r.h2("2c. Students on the counterfactual bench's event probes (held-out recordings)")
    reports = sorted((r.run / "kd").glob("*/export/*int8.probes.json"))
    if not reports:
        cards = sorted((r.run / "kd").glob("*/export/*int8.json"))
        if cards:  # export ran and skipped the probes: it says why in its log (e.g. a bench without pairs)
            r.p("Not scored: `earshot export` wrote no probes report (it skips the probes when the bench has "
                "no event-probe pair, as a tiny world's bench; logs/export.*.log says why).")
        else:
            r.miss("kd/*/export/*int8.probes.json (earshot export with the teacher's bench)")
        return
    r.p("'Did you hear X?' (audio), 'did you X in this clip?' and 'did you see X?' (visual), each asked on two "
        "windows of one held-out recording whose answers differ. A student answers from its own outputs at every "
        "0.25 s hop over the window (its max probability of X against the card's threshold); the teacher by option "
        "likelihood. Controls: the question's prior answers from training (both windows alike: 0 pairs by "
        "construction) and each model on another recording's window (shuffled clip). Retention = student pair "
        "accuracy / teacher pair accuracy, paired bootstrap over recordings; target >= 90% on the audio and the "
        "visual probes for the AV student. [95% intervals]")
    for path in reports:
        rep = _load(path)
        mods = rep["modalities"]
        rows = [[name, *[fi((rep["figures"][name].get(m) or {}).get(lvl)) for m in mods for lvl in ("question", "pair")]]
                for name in rep["systems"]]
        rows.append(["retention (student / teacher pairs)", *[x for m in mods for x in ("", fi(rep["retention"][m]))]])
        r.p(f"{path.name.split('.')[0]}: {rep['n_pairs']} pairs on {rep['n_recordings']} recordings "
            f"({', '.join(f'{k} {v}' for k, v in rep['by_form'].items() if v)}).")
        r.table(["system", *[f"{m} per {lvl} %" for m in mods for lvl in ("question", "pair")]], rows)


def section_trigger(r: Report) -> None:
    """The trigger as a detector (earshot export's report) and the camera it turns on (bench_trigger.py)."""
    from shared.stats import format_interval as fi

    r.h2("2b. The always-on trigger as a detector (held-out recordings)")
    reports = sorted((r.run / "kd" / "trigger" / "export").glob("*int8.trigger_eval.json"))
    if not reports:
        r.miss("kd/trigger/export/*int8.trigger_eval.json (earshot export of the trigger)")
        return
    rep = _load(reports[0])
    t, op, tg = rep["test"], rep["operating_point"], rep["targets"]
    scope = op.get("budget_on", "all")
    budget = (f"{op['fa_per_hour_budget']:g} false triggers per val background hour and "
              f"{op['confusions_per_hour_budget']:g} per labelled val hour"
              if scope == "background" and op.get("confusions_per_hour_budget") is not None
              else f"{op['fa_per_hour_budget']:g} false triggers per val "
              + ("background hour" if scope == "background" else "hour"))
    r.p(f"{reports[0].name.split('.')[0]}: operating point chosen on val ({op['rule']} thresholds, budget "
        f"{budget}), refractory hold {rep['refractory_s']:g} s, one "
        f"call per {rep['hop_s']:g} s hop. False triggers per hour on {t['background_source']} "
        f"({t['hours_background']:.2f} h); on labelled recordings a false trigger is mostly a wrong label during "
        f"another sound. Audible: events at or above {t.get('audible_snr_db', -5.0):g} dB, the data engine's "
        f"audibility (a quieter sound is never a \"heard\" answer in its QA); 95% intervals resample recordings.")
    single = t["single_threshold"]
    r.table(["setting", "event recall %", "audible events %", "false triggers / h", "false / h on labelled recordings",
             "events", "event F1 (sed_eval, onset collar)", "target"],
            [[f"card ({op['rule']})", fi(t["event_recall"]), fi(t.get("event_recall_audible")),
              fi(t["fa_per_hour_background"], scale=1.0),
              fi(t["fa_per_hour_labelled"], scale=1.0), t["n_events"],
              _fmt(t["event_f1"]["micro_f1"]), f"recall >= {100 * tg['recall']:.0f}% at <= {tg['fa_per_hour']:g}/h: "
              + ("met" if tg["met"] else "NOT met")],
             [f"control: one threshold {single['threshold']:g}", fi(single["event_recall"]), "-",
              fi(single["fa_per_hour_background"], scale=1.0), "-", t["n_events"], "-", ""]])
    det = reports[0].with_name(reports[0].name.replace(".trigger_eval.json", ".det.png"))
    if det.exists():
        r.image(det.read_bytes(), "DET curve: event recall vs false triggers per hour")
    r.p("Per class (label must match; a trigger of another label during a sound is a false trigger).")
    r.table(["label", "threshold", "events", "recall %", "false triggers / h"],
            [[c["label"], c["threshold"], c["n_events"], fi(c["recall"]), fi(c["fa_per_hour_background"], scale=1.0)]
             for c in rep["per_class"]])
    r.p("Robustness: recall per event SNR (dB, the event against the scene noise), and per scene.")
    r.table(["event SNR bin", "events", "recall %"], [[b["snr_bin"], b["n_events"], fi(b["recall"])] for b in rep["snr_bins"]])
    r.table(["scene", "background h", "false triggers / h", "recall %"],
            [[sc["scenario"], f"{sc['hours_background']:.2f}", fi(sc["fa_per_hour_background"], scale=1.0),
              fi(sc["recall"])] for sc in rep["scenes"]])
    n = rep["noisiest"]
    r.p(f"Noisiest scenes ({n['rule']}): recall {fi(n['recall'])}%, false triggers / h "
        f"{fi(n['fa_per_hour_background'], scale=1.0)}.", cls="")
    bench = r.run / "bench" / "trigger.json"
    if bench.exists():
        for text in camera_paragraphs(_load(bench)):
            r.p(text, cls="")
    else:
        r.miss("bench/trigger.json (scripts/bench_trigger.py: camera-on share)")


def camera_paragraphs(bench: dict) -> list[str]:
    """The camera it turns on (bench_trigger.py's JSON): share, share woken by the important
    sounds only, and query success with that camera beside its never-on control."""
    from shared.stats import format_interval as fi

    cam = bench["camera"]
    out = [f"Camera on under audio_trigger ({len(cam['recordings'])} held-out recordings, earshot edge event logs): "
           f"{fi(cam['camera_on_share'])}% of the recording; an oracle trigger needs {fi(cam['oracle_share'])}%, an "
           f"always-on camera 100%; target <= {100 * cam['target']:.0f}%: {'met' if cam['met'] else 'NOT met'}."]
    imp = bench.get("camera_important")
    if imp:
        out.append(f"Camera woken only by the important sounds ({', '.join(imp['wake_labels'])}): "
                   f"{fi(imp['camera_on_share'])}% (oracle {fi(imp['oracle_share'])}%); target: "
                   f"{'met' if imp['met'] else 'NOT met'}.")
    qs = (imp or {}).get("query_success") or cam.get("query_success")
    if qs:
        out.append(f"Query success with that camera ({qs['queries']} traced wearer queries, {qs['recordings']} "
                   f"recordings; the cloud's answer under the capture the camera gives): {fi(qs['trigger'])}% vs "
                   f"{fi(qs['always_on'])}% with an always-on camera, {fi(qs['ratio'])}% of it (target >= "
                   f"{100 * qs['target']:.0f}%). Control, a camera never on: {fi(qs['never_on'])}%, "
                   f"{fi(qs['never_on_ratio'])}% of always-on: "
                   + ("the camera matters for these questions." if qs["camera_matters"] else
                      "the camera does not matter for these questions, so the target says nothing here."))
    return out


def _event_logs(folder: Path) -> dict[str, list[dict]]:
    from report_timeline import read_event_log

    return {p.stem: read_event_log(p) for p in sorted(folder.glob("*.jsonl"))}


def _runtime_rows(name: str, logs: dict[str, list[dict]]) -> list[list[Any]]:
    rows = []
    for rec, events in logs.items():
        end = next((e for e in reversed(events) if e.get("kind") == "end"), None)
        if end is None:
            continue
        lat = sorted(e["latency_ms"] for e in events if e.get("kind") == "local_inference" and "latency_ms" in e)
        cloud = sorted(e["latency_ms"] for e in events if e.get("kind") == "result")
        med = lat[len(lat) // 2] if lat else None
        cmed = cloud[len(cloud) // 2] if cloud else None
        steps = end.get("steps") or 0
        rows.append([name, rec, steps, end.get("frames_captured"), end.get("offloads"), end.get("bytes_sent"),
                     f"{end.get('answers_correct')}/{end.get('queries')}", med, cmed,
                     end.get("energy_mj"), (end.get("energy_mj") or 0) / max(steps * 0.25, 1e-9)])
    return rows


def section_edge(r: Report) -> None:
    r.h2("3. Edge: size and latency")
    bench = r.run / "bench" / "edge_models.json"
    if bench.exists():
        b = _load(bench)
        rows = []
        for s in b["students"]:
            for row in s["rows"]:
                rows.append([s["student"], row["variant"], None if row["size_bytes"] is None else f"{row['size_bytes'] / 1024:.0f}",
                             row["median_ms"], row["p90_ms"], row["speedup_vs_eager"],
                             f"{row['realtime_factor']:.0f}x" if "realtime_factor" in row else "-"])
        r.p(f"One thread, median (p90) of {b['calls']} calls per variant, interleaved (scripts/bench_edge_models.py).")
        r.table(["program", "variant", "size kB", "median ms", "p90 ms", "x eager", "real-time factor"], rows)
    else:
        r.miss("bench/edge_models.json")
    rows = []
    for name, folder in (("python", r.run / "edge"), ("native", r.run / "native")):
        logs = _event_logs(folder) if folder.exists() else {}
        got = _runtime_rows(name, logs)
        if not got:
            r.miss(f"{folder.name}/*.jsonl (event logs with an 'end' line)")
        rows += got
    if rows:
        r.p("Held-out recordings through each runtime against the live server (event logs, docs/edge.md).")
        r.table(["runtime", "recording", "hops", "frames", "offloads", "bytes sent", "queries right",
                 "student ms (median)", "cloud ms (median)", "energy mJ", "mean mW"], rows)


def _policy_rows(results: Path) -> tuple[list[str], list[list[Any]]]:
    """The simulator's table with its intervals (sim/evaluate.py's results.json)."""
    from shared.stats import format_interval
    from sim.evaluate import EVENTS_COLUMN, events_cell

    cols = ["policy", "cap mW", "deadline ms", "query success %", EVENTS_COLUMN, "power mW", "battery out",
            "throttled", "frames %", "p95 ms", "MB/h"]
    rows = [[x["policy"], x["power_cap_mw"], x["deadline_ms"], format_interval(x["query_acc"]),
             events_cell(x), format_interval(x["power_mw"], scale=1.0, digits=0),
             f"{x['battery_out']:.0%}", f"{x['throttled']:.0%}", format_interval(x["frames_share"]), x["p95_ms"],
             x["mb_per_h"]]
            for x in _load(results)]
    return cols, rows


def section_policies(r: Report) -> None:
    """The held-out study (scripts/sim_heldout.py) when there is one, then the demo's own simulator run."""
    from sim.evaluate import targets_text

    r.h2("4. Offloading policies (simulator)")
    study = r.heldout / "heldout.json" if r.heldout else None
    if study is not None and study.exists():
        info = _load(study)
        s = info["scale"]
        r.p(f"Held-out study ({r.heldout}): {s['test']['recordings']} held-out recordings, {s['test']['queries']} "
            f"wearer queries, policies trained on {s['train']['recordings']} other recordings ({info['seeds']} PPO "
            f"seeds, pooled); teacher {', '.join(s['teacher_model_ids'])} ({info['teacher']}). Query success "
            "within the deadline is the headline; 95% recording-level bootstrap intervals.")
        cols, rows = _policy_rows(Path(info["eval_dir"]) / "results.json")
        r.table(cols, rows)
        for line in targets_text(info["eval"]).splitlines():
            r.p(line, cls="")
        pareto = Path(info["eval_dir"]) / "pareto.png"
        if pareto.exists():
            r.image(pareto.read_bytes(), "held-out query success vs power")
    results, summary = r.run / "sim" / "results.json", r.run / "sim" / "summary.json"
    if not results.exists():
        r.miss("sim/results.json")
        return
    info = _load(summary) if summary.exists() else {}
    where = ("the same recordings the policy was trained on (in-sample: a check that the pipeline runs, not a claim)"
             if info.get("split") in (None, "all") else f"the {info.get('split')} split")
    r.p(f"This run's simulator (earshot sim eval): {len(info.get('recordings', []))} traced recording(s), {where}.")
    cols, rows = _policy_rows(results)
    r.table(cols, rows)
    if info.get("targets"):
        for line in targets_text(info).splitlines():
            r.p(line, cls="")
    pareto = r.run / "sim" / "pareto.png"
    if pareto.exists():
        r.image(pareto.read_bytes(), "query success vs power")
    else:
        r.miss("sim/pareto.png")


def section_timeline(r: Report) -> None:
    r.h2("5. Timeline of one held-out recording")
    logs = sorted((r.run / "edge").glob("*.jsonl")) if (r.run / "edge").exists() else []
    if not logs:
        r.miss("edge/*.jsonl")
        return
    from report_timeline import read_event_log, render_timeline

    log = logs[0]
    events = read_event_log(log)
    start = next((e for e in events if e.get("kind") == "start"), {})
    rec_dir = r.run / "world" / "recordings" / log.stem
    if not rec_dir.exists():
        r.miss(str(rec_dir.relative_to(r.run)))
        return
    said = r.run / "sentences" / f"{log.stem}.json"
    sentences = json.loads(said.read_text()) if said.is_file() else None
    r.p(f"Recording {log.stem}, policy {start.get('policy')}: spectrogram, frames, trigger rising edges, camera, "
        "offloads (blue: answered, orange: fallback), the wearer's queries, the answers given and, in quotes, "
        "the language model's sentence for the same question.")
    r.image(render_timeline(rec_dir, events, sentences={row["query_id"]: row["sentence"] for row in sentences["rows"]}
                            if sentences else None), f"timeline of {log.stem}")
    if sentences is None:
        r.miss(str(said.relative_to(r.run)))
        return
    section_sentences(r, sentences)


def section_sentences(r: Report, s: dict) -> None:
    """The timeline's questions answered in words: question, evidence, label answer and sentence."""
    lm = s.get("lm_ms") or {}
    r.p(f"The same questions asked of the served teacher with a language model (lm={s['lm']}), each on the model's "
        f"full window ending at the question (what an always-on camera sends): {s['n']} questions, label answer right "
        f"on {s['correct']}; language model time p50 {lm.get('p50', '-')} ms, p95 {lm.get('p95', '-')} ms. "
        "The sentence is written only from the evidence column (docs/lm.md).")
    rows = []
    for row in s["rows"]:
        ev = "; ".join(f"{e['label']} ({e['modality']}) {e['onset_s']:+.1f}..{e['offset_s']:+.1f} s p={e['p']:.2f}"
                       for e in row["events"][:6]) or "nothing perceived"
        rows.append([f"{row['t_s']:.1f} s", row["question"], row["gold"], f"{row['answer']} ({'right' if row['correct'] else 'wrong'})",
                     row["sentence"] or "-", ev])
    r.table(["at", "question", "gold", "teacher's label answer", "sentence", "evidence (first 6 events)"], rows)


def readme_markdown(run: Path) -> str:
    """The demo's headline results as Markdown (for the README's demo-results block)."""
    out = []
    systems = _bench_systems(_teacher_scores(run))
    if systems:
        first = next(iter(systems.values()))
        closed = first.get("closed", {})
        n = f"{closed['pair']['n']} pairs from {closed['pair']['n_groups']} held-out recordings" if closed.get("pair") else ""
        out += [f"Teacher on the counterfactual bench ({n}): accuracy % per question / per pair, "
                "[95% interval over recordings], beside the controls:", "",
                "| system | closed q | closed pair | SSA pair | TR pair | AVH pair |", "| --- |" + " ---: |" * 5]
        for name, fig in systems.items():
            cells = [_ci(fig.get("closed", {}).get("question")), _ci(fig.get("closed", {}).get("pair")),
                     *(_ci(fig.get(c, {}).get("pair")) for c in ("SSA", "TR", "AVH"))]
            out.append(f"| {name} | " + " | ".join(cells) + " |")
        out.append("")
    cards = [_load(p) for p in sorted((run / "kd").glob("*/export/*int8.json"))]
    if cards:
        out += ["| int8 program | size | params | MMAC/call | macro-F1 (teacher) | probe pairs % (teacher) | retention |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for c in cards:
            m = c["metrics"]
            out.append(f"| {c['program']} | {c['size_bytes'] / 1024:.0f} kB | {c['num_parameters'] / 1e3:.1f} k | "
                       f"{c['macs'] / 1e6:.2f} | {_fmt(m.get('macro_f1'))} ({_fmt(m.get('teacher_macro_f1'))}) | "
                       f"{_pct(m.get('probe_pair_accuracy'))} ({_pct(m.get('teacher_probe_pair_accuracy'))}) | "
                       f"{_pct(m.get('retention'))}{'%' if m.get('retention') is not None else ''} |")
        out.append("")
    trig = sorted((run / "kd" / "trigger" / "export").glob("*int8.trigger_eval.json"))
    if trig:
        from shared.stats import format_interval as fi

        t = _load(trig[0])["test"]
        cam = _load(run / "bench" / "trigger.json")["camera"] if (run / "bench" / "trigger.json").exists() else None
        out.append(f"- Trigger on held-out recordings: event recall {fi(t['event_recall'])}% at "
                   f"{fi(t['fa_per_hour_background'], scale=1.0)} false triggers per hour ({t['background_source']})"
                   + (f"; camera on {fi(cam['camera_on_share'])}% of the time under `audio_trigger`" if cam else "") + ".")
    summary = run / "sim" / "summary.json"
    if summary.exists():
        info = _load(summary)
        rows = {(x["policy"], x["power_cap_mw"], x["deadline_ms"]): x for x in _load(run / "sim" / "results.json")}
        for t in info.get("targets", []):
            b = t["budget"]
            acc = {p: (rows.get((p, b["power_cap_mw"], b["deadline_ms"])) or {}).get("query_acc")
                   for p in ("never_on", "always_cloud", "learned")}
            from shared.stats import format_interval

            out.append(f"- Simulator smoke run ({len(info.get('recordings', []))} traced recording(s), "
                       f"{'in-sample' if info.get('split') in (None, 'all') else info.get('split')}, cap "
                       f"{b['power_cap_mw']:g} mW, deadline {b['deadline_ms']:g} ms): query success never-on "
                       f"{format_interval(acc['never_on'])}%, always-cloud {format_interval(acc['always_cloud'])}%, "
                       f"learned {format_interval(acc['learned'])}%; the held-out figures are in the simulator "
                       "section below.")
    stages = run / "stages.json"
    if stages.exists():
        info = _load(stages)
        out.append(f"- Demo wall time: {info['total_s'] / 60:.1f} min ({info.get('preset')} preset), "
                   + ", ".join(f"{k} {v:.0f} s" for k, v in info["seconds"].items()) + ".")
    return "\n".join(out)


def update_readme(readme: Path, run: Path) -> None:
    from pipelines.readme_block import replace_block

    replace_block(readme, "demo-results", readme_markdown(run))
    print(f"updated the demo results in {readme}")


SECTIONS = (section_teachers, section_students, section_trigger, section_student_probes, section_edge, section_policies,
            section_timeline)


def build(run: Path, heldout: Path | None = None) -> Report:
    r = Report(run, heldout)
    stages = run / "stages.json"
    info = _load(stages) if stages.exists() else {}
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    r.parts.append("<h1>Earshot demo report</h1>")
    r.p(f"run {run.name} (preset {info.get('preset', '?')}), written {dt.datetime.now().isoformat(timespec='seconds')}, "
        f"commit {commit or '?'}; every number below comes from this run's files.")
    if info.get("seconds"):
        r.table(["stage", "seconds"], [[k, round(v)] for k, v in info["seconds"].items()])
    for section in SECTIONS:
        section(r)
    return r


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a scripts/demo output folder")
    ap.add_argument("--out", type=Path, default=None, help="default: <run>/report.html")
    ap.add_argument("--strict", action="store_true", help="exit 1 if any section's inputs are missing")
    ap.add_argument("--readme", type=Path, default=None,
                    help="also rewrite the <!-- demo-results --> block of this README from the run")
    ap.add_argument("--sim-heldout", type=Path, default=None,
                    help="a scripts/sim_heldout.py output folder: its held-out study heads the policy section")
    args = ap.parse_args(argv)
    if args.readme:
        update_readme(args.readme, args.run)
    r = build(args.run, args.sim_heldout)
    out = args.out or args.run / "report.html"
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>Earshot report: {html.escape(args.run.name)}</title>"
            f"<style>{CSS}</style></head><body>{''.join(r.parts)}</body></html>")
    out.write_text(page, encoding="utf-8")
    print(f"wrote {out} ({len(page) / 1024:.0f} kB)")
    if r.missing:
        print("missing inputs: " + "; ".join(r.missing), file=sys.stderr)
        return 1 if args.strict else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
