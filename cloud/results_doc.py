"""``docs/results.md``, generated from the experiments' ``results.json`` files.

Every number in the document comes from a ``<out>/<name>/results.json``
written by ``earshot experiment`` (``pipelines/experiments.py``); nothing is
typed by hand. Prose that explains the numbers lives between the markers
`NOTES_BEGIN` and `NOTES_END` in the document and is carried over verbatim
when the document is regenerated.

results.json (``RESULTS_SCHEMA_VERSION`` 2)::

    schema_version, experiment, claim, reference, command, scale, date,
    git_commit, config (the composed experiment config),
    world {path, recordings, splits}, qa {path, bench_records, pairs, recordings, corrupted},
    seeds, baseline, treatment,
    variants: {name: {role, overrides, runs: [{seed, model, reused, steps, train_seconds, mlflow_run_id}]}},
    figures: {system: cloud.controls.bench_figures (seed-averaged)},
    subsets: [{key, title, level, systems: {system: {question, pair}}, difference}],
    targets: [{target, measured, met}], mlflow_parent_run_id,
    trust only: trust_diagnostics {trust: {variant: {condition: {audio, visual, n}}},
                                   noisy_errors: {variant: {yes|no: {wrong, n}}}}

Systems are the two variants and the controls (blind, scene, shuffled,
constant); every figure is a ``shared.stats.Interval`` dict.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from cloud.experiment_analysis import KINDS
from shared.stats import format_interval

__all__ = ["RESULTS_FILE", "RESULTS_SCHEMA_VERSION", "NOTES_BEGIN", "NOTES_END", "load_results", "render",
           "write_doc", "figure_table", "subset_lines", "trust_lines"]

RESULTS_FILE = "results.json"
RESULTS_SCHEMA_VERSION = 2
NOTES_BEGIN = "<!-- notes: kept when this file is regenerated -->"
NOTES_END = "<!-- end of notes -->"
_CATS = ("closed", "SSA", "TR", "AVH")


def load_results(out_root: str | Path) -> list[dict[str, Any]]:
    """Every results.json under ``out_root`` (``<out_root>/<name>/``, and deeper for runs
    made with ``out=<out_root>/<scale>``), in the order data, temporal, trust."""
    found = []
    for path in sorted(Path(out_root).rglob(RESULTS_FILE)):
        res = json.loads(path.read_text(encoding="utf-8"))
        if res.get("schema_version") == RESULTS_SCHEMA_VERSION:
            found.append(res)
    rank = {k: i for i, k in enumerate(KINDS)}
    return sorted(found, key=lambda r: (rank.get(r["experiment"], len(rank)), r["experiment"], r["scale"]))


def _cell(iv: Mapping[str, Any] | None) -> str:
    return format_interval(dict(iv)) if iv else "-"


def figure_table(figures: Mapping[str, Mapping[str, Any]], cats: Sequence[str] = _CATS) -> str:
    """Markdown: one row per system, per category the accuracy per question and per pair [95% CI]."""
    head = ["system", *[f"{c} {lvl}" for c in cats for lvl in ("q", "pair")]]
    lines = ["| " + " | ".join(head) + " |", "| --- |" + " ---: |" * (len(head) - 1)]
    for name, fig in figures.items():
        cells = [_cell(fig.get(c, {}).get(lvl)) for c in cats for lvl in ("question", "pair")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    n = next(iter(figures.values())).get("closed", {})
    if n.get("pair"):
        lines.append("")
        lines.append(f"n = {n['pair']['n']} pairs ({n['question']['n']} questions) from {n['pair']['n_groups']} "
                     "held-out recordings; q = per question, pair = both windows of a pair right.")
    return "\n".join(lines)


def subset_lines(res: Mapping[str, Any]) -> list[str]:
    """Markdown tables of the claim subsets: every system, then the paired difference."""
    lines = []
    for sub in res.get("subsets", []):
        level = sub["level"]
        lines += [f"**{sub['title']}** (the claim is per {level})", "",
                  "| system | per question | per pair |", "| --- | ---: | ---: |"]
        for name, row in sub["systems"].items():
            lines.append(f"| {name} | {_cell(row.get('question'))} | {_cell(row.get('pair'))} |")
        d = sub.get("difference")
        lines.append(f"| **{res['treatment']} - {res['baseline']}** ({level}) | "
                     + (format_interval(dict(d), signed=True) + (f" p={d['p_value']:.3f}" if d.get('p_value') is not None else "")
                        if d else "-") + " | |")
        lines.append("")
    return lines


def trust_lines(res: Mapping[str, Any]) -> list[str]:
    """Markdown: the gate's mean trust per corruption, and the kind of error below 0 dB
    (``cloud.experiment_analysis.trust_diagnostics``); nothing for other experiments."""
    diag = res.get("trust_diagnostics")
    if not diag:
        return []
    trust = diag["trust"]
    conds = [c for c in next(iter(trust.values()))]
    lines = ["**The gate's trust per corruption** (mean reliability audio / visual over every bench window, "
             "all seeds; `blind` is one constant by design)", "",
             "| system | " + " | ".join(c.replace("_", " ") for c in conds) + " |",
             "| --- |" + " ---: |" * len(conds)]
    for name, row in trust.items():
        lines.append(f"| {name} | " + " | ".join(
            f"{row[c]['audio']:.2f} / {row[c]['visual']:.2f}" if row.get(c) else "-" for c in conds) + " |")
    lines += ["", "**Errors on cross-modal AVH below 0 dB** (seed-averaged share answered wrong)", "",
              "| system | gold \"yes\": missed | gold \"no\": answered \"yes\" |", "| --- | ---: | ---: |"]
    for name, row in diag["noisy_errors"].items():
        cells = [f"{100 * row[g]['wrong']:.1f}% (n={row[g]['n']})" if row[g]["wrong"] is not None else "-"
                 for g in ("yes", "no")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines + [""]


def _trained(v: Mapping[str, Any]) -> str:
    runs = v.get("runs", [])
    if not runs:
        return "not trained"
    mins = [r["train_seconds"] / 60 for r in runs if r.get("train_seconds")]
    how = f"{len(runs)} seed(s), {runs[0]['steps']} QA steps each"
    if mins:
        how += f", {sum(mins) / len(mins):.1f} min per run"
    if any(r.get("reused") for r in runs):
        how += " (shared with another experiment)"
    return how


def _section(res: Mapping[str, Any]) -> list[str]:
    lines = [f"## {res['experiment']}: {res['claim']} (scale `{res['scale']}`)", ""]
    if res.get("reference"):
        lines += [f"Reference: {res['reference']}", ""]
    lines += ["**Held-out counterfactual bench, seeds averaged** (the treatment, the baseline and the controls)", "",
              figure_table(res["figures"]), ""]
    lines += subset_lines(res)
    lines += trust_lines(res)
    lines += ["| target | measured | met |", "| --- | --- | :---: |"]
    for t in res["targets"]:
        lines.append(f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else '**no**'} |")
    lines.append("")
    world, qa = res["world"], res["qa"]
    splits = ", ".join(f"{k} {v}" for k, v in world.get("splits", {}).items())
    lines += [
        f"- command: `{res['command']}`",
        f"- scale: `{res['scale']}`; seeds {', '.join(map(str, res['seeds']))}; train overrides of every variant: "
        f"`{' '.join(res['config']['train_overrides']) or '(none)'}`",
        "- variants: " + "; ".join(f"`{n}` ({v['role']}): `{' '.join(v['overrides'])}`, {_trained(v)}"
                                   for n, v in res["variants"].items()),
        f"- world: `{world['path']}`, {world['recordings']} recordings ({splits})",
        f"- bench: {qa['bench_records']} records, pairs {qa['pairs']}, {qa['recordings']} held-out recordings"
        + ("; one modality corrupted per pair" if qa.get("corrupted") else ""),
        f"- run: {res['date']}, git commit `{res['git_commit']}`"
        + (f", MLflow parent run `{res['mlflow_parent_run_id']}`" if res.get("mlflow_parent_run_id") else ""),
        "",
    ]
    return lines


def render(results: Sequence[Mapping[str, Any]], notes: str = "") -> str:
    """The whole document for ``results`` (as `load_results` returns them)."""
    lines = [
        "# Results",
        "",
        "Generated by `earshot experiment` from the `results.json` files under `runs/experiments/`;",
        "do not edit the numbers by hand (regenerate: `earshot experiment report_only=true`).",
        "Each experiment trains two variants of the teacher that differ in one `earshot train`",
        "override, with several seeds each, and scores them on the same counterfactual bench:",
        "every closed-form question (SSA, TR, AVH) is asked on two windows of one held-out",
        "recording whose gold answers differ, so a model that answers from the question (or",
        "the question and the scene) gets at most one of the two right. Figures are per",
        "question and per pair (both right), averaged over seeds, with recording-level",
        "bootstrap 95% intervals in brackets; differences are paired by recording. The",
        "controls sit beside every row: `blind` (question only), `scene` (question + scene),",
        "`shuffled` (the treatment on another recording's clip), `constant` (one answer per",
        "type). Configs: `configs/experiment.yaml`, `configs/experiment/`.",
        "",
    ]
    if not results:
        lines += ["No experiment has been run yet.", ""]
    for res in results:
        lines += _section(res)
    lines += ["## Notes", "", NOTES_BEGIN, notes.strip("\n"), NOTES_END, ""]
    return "\n".join(lines)


def _notes_of(doc: Path) -> str:
    if not doc.is_file():
        return ""
    text = doc.read_text(encoding="utf-8")
    i, j = text.find(NOTES_BEGIN), text.find(NOTES_END)
    return text[i + len(NOTES_BEGIN) : j].strip("\n") if 0 <= i < j else ""


def write_doc(out_root: str | Path, doc: str | Path) -> Path:
    """Regenerate ``doc`` from every results.json under ``out_root``; keeps its notes."""
    doc = Path(doc)
    text = render(load_results(out_root), _notes_of(doc))
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text, encoding="utf-8")
    return doc
