#!/usr/bin/env python
"""What the teacher's perception hears, without its decoder: "did you hear X?" from the sound head.

    python scripts/probe_perception.py runs/experiments/perception/seed0 --qa-dir data/experiments/qa
    python scripts/probe_perception.py A B C --qa-dir data/experiments/qa --split val_av --json probe.json

Each argument is a teacher folder (``earshot train``'s ``model/``, a run's out,
or a ``perception/`` folder from phase 1). For every AVH "did you hear X?"
record of the split (validation by default: choose recipes on it, not on the
bench), the answer is yes iff the largest per-token logit of X over the
window's audio tokens is above 0 (``cloud.eval.sound_presence``): what the
decoder's label pointer reads as "present". Printed per folder: accuracy per
question and per pair (both windows of a counterfactual pair right) with
recording-level 95% intervals, the ranking AUC, recall of the "yes" windows
per event SNR bin and per label, and the false "yes" rate. With several
folders, each is compared with the first on the same pairs (paired by
recording).

This is the ceiling the decoder works under on AVH sound pairs: a sound the
head does not find cannot be answered "yes" from the clip. It is how the
perception phase's length was chosen (docs/teacher.md section 4).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from distill.metrics import auroc  # noqa: E402  (ties counted half)

#: Event SNR bins (dB, lower edge inclusive) for the recall of "yes" windows.
SNR_EDGES = (float("-inf"), 0.0, 10.0, 20.0, float("inf"))


def _folder(path: str) -> Path:
    p = Path(path)
    for cand in (p / "model", p / "perception", p):
        if (cand / "model.safetensors").is_file():
            return cand
    raise SystemExit(f"error: {path}: no model.safetensors in it, its model/ or its perception/")


def probe(folder: Path, qa_dir: str, split: str, max_records: int = 0) -> dict[str, Any]:
    import numpy as np
    import torch

    from cloud.controls import subset_figures
    from cloud.data import RecordingStore, WindowSpec, load_records, resolve_dataset
    from cloud.eval import _heard_label, sound_presence
    from cloud.model.io import load_teacher

    torch.set_num_threads(1)
    model, tokenizer, card = load_teacher(folder)
    if "data" not in card:
        raise SystemExit(f"error: {folder}: the model card has no 'data' window spec (not written by earshot train)")
    spec = WindowSpec(**card["data"])
    store = RecordingStore(resolve_dataset(qa_dir, None), spec.frame_size_px, spec.n_mels)
    records, logits = sound_presence(model, load_records(qa_dir, split, max_records), store, tokenizer, spec)
    gold = np.array([r.answer == "yes" for r in records])
    right = ((logits > 0) == gold).astype(float)
    figs = subset_figures(records, list(right), None)
    snr = np.array([r.meta.get("event_snr_db", np.nan) for r in records], float)
    by_snr = {}
    for lo, hi in zip(SNR_EDGES[:-1], SNR_EDGES[1:]):
        m = gold & (snr >= lo) & (snr < hi)
        name = f"<{hi:g}" if lo == float("-inf") else (f">={lo:g}" if hi == float("inf") else f"{lo:g}-{hi:g}")
        by_snr[name] = {"n": int(m.sum()), "recall": float((logits[m] > 0).mean()) if m.any() else None}
    per_label: dict[str, dict[str, Any]] = {}
    for label in sorted({_heard_label(r) for r in records}):
        m = gold & np.array([_heard_label(r) == label for r in records])
        per_label[label] = {"n": int(m.sum()), "recall": float((logits[m] > 0).mean()) if m.any() else None}
    return {"folder": str(folder), "split": split, "n_records": len(records),
            "n_recordings": len({r.recording_id for r in records}),
            "question": figs["question"], "pair": figs["pair"], "auc": auroc(logits, gold),
            "false_yes": float((logits[~gold] > 0).mean()) if (~gold).any() else None,
            "recall_by_event_snr_db": by_snr, "recall_by_label": per_label,
            "_records": records, "_right": right}


def _short(folder: str) -> str:
    """The last two parts of a folder (seed0/perception): enough to tell the rows apart."""
    return "/".join(Path(folder).parts[-2:])


def _cell(iv: dict[str, Any] | None) -> str:
    return "-" if iv is None else f"{100 * iv['value']:.1f} [{100 * iv['lo']:.1f}, {100 * iv['hi']:.1f}]"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", help="teacher folders (model/, a run's out, or perception/)")
    ap.add_argument("--qa-dir", required=True, help="an earshot instruct output (its dataset is read from info.json)")
    ap.add_argument("--split", default="val_av", help="QA split to probe (default val_av; the bench is for the end)")
    ap.add_argument("--max-records", type=int, default=0, help="0 = every record of the split")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args(argv)
    folders = [_folder(f) for f in args.folders]  # every path checked before any work

    from rich.console import Console
    from rich.progress import track
    from rich.table import Table

    from cloud.controls import compare

    results = [probe(f, args.qa_dir, args.split, args.max_records)
               for f in track(folders, description="probing", transient=True)]
    first = results[0]
    table = Table(title=f"'did you hear X?' from the sound head alone ({args.split}: {first['n_records']} "
                        f"questions, {first['n_recordings']} recordings): accuracy %, [95% interval]")
    for col in ("folder", "per question", "per pair", "AUC", "false yes %",
                *(f"recall {k} dB" for k in first["recall_by_event_snr_db"])):  # event SNR of the "yes" windows
        table.add_column(col, justify="left" if col == "folder" else "right")
    for r in results:
        table.add_row(_short(r["folder"]), _cell(r["question"]), _cell(r["pair"]), f"{r['auc']:.3f}",
                      "-" if r["false_yes"] is None else f"{100 * r['false_yes']:.1f}",
                      *("-" if v["recall"] is None else f"{100 * v['recall']:.0f} ({v['n']})"
                        for v in r["recall_by_event_snr_db"].values()))
    console = Console()
    console.print(table)
    labels = Table(title="recall of the 'yes' windows per label, %")
    labels.add_column("label")
    labels.add_column("n", justify="right")
    for r in results:
        labels.add_column(_short(r["folder"]), justify="right")
    for label, v in sorted(first["recall_by_label"].items(), key=lambda kv: (kv[1]["recall"] or 0.0)):
        labels.add_row(label, str(v["n"]), *("-" if r["recall_by_label"][label]["recall"] is None
                                             else f"{100 * r['recall_by_label'][label]['recall']:.0f}" for r in results))
    console.print(labels)
    for r in results[1:]:
        if [x.id for x in r["_records"]] != [x.id for x in first["_records"]]:
            console.print(f"{r['folder']}: not the same records as {first['folder']}; no paired difference")
            continue
        d = compare(first["_records"], list(r["_right"]), list(first["_right"]), level="pair")
        r["pair_minus_first"] = d
        if d is not None:
            console.print(f"{r['folder']} - {first['folder']} (pair): {100 * d['value']:+.1f} "
                          f"[{100 * d['lo']:+.1f}, {100 * d['hi']:+.1f}] points, n={d['n']} pairs")
    if args.json:
        Path(args.json).write_text(json.dumps([{k: v for k, v in r.items() if not k.startswith("_")} for r in results],
                                              indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
