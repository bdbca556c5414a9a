"""`earshot eval`: score a teacher per category beside its controls, print the
tables, log to MLflow.

    earshot eval checkpoint=runs/teacher/model qa_dir=data/qa split=bench

Loads a model folder (``cloud/model/io.py``), answers every record of a QA
split with greedy decoding, and scores the answers exactly with
``cloud.data_engine.scoring``. The headline is the counterfactual bench
(``cloud/controls.py``): per category, accuracy per question and per pair
(both windows right) with recording-level bootstrap 95% intervals, beside
the controls (question only, question + scene, shuffled clip, constant
answer). Further breakdowns:

- per category (SSA, AVDN, AVSN, TR, AVH) and their macro mean (``overall``);
- per evidence type (audio, visual, audiovisual): did the model use the
  modality the question needs;
- per recording SNR bin: where the reliability gate should help most;
  the table also shows the gate's mean audio and visual trust per bin.

`predict` and `score_predictions` are also what ``earshot train`` calls for
its periodic validation.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from cloud.data import FeatureCache, QADataset, RecordingStore, WindowSpec, collate, load_records, resolve_dataset
from cloud.controls import CLOSED_CATEGORIES, CONTROLS, bench_figures, fit_priors, prior_answers, shuffled_records
from cloud.data_engine.records import CATEGORIES, EVIDENCE, QARecord
from cloud.data_engine.scoring import score
from cloud.model.io import load_teacher
from cloud.model.teacher import AVTeacher
from cloud.model.tokenizer import Tokenizer
from shared.config import UserError
from shared.tracking import make_tracker

__all__ = ["SNR_BINS", "snr_bin", "predict", "score_predictions", "evaluate", "flat_metrics", "bench_metrics",
           "print_table", "print_bench", "run", "sound_presence"]

#: Recording SNR bins (dB, lower edge inclusive) and their metric-safe names.
SNR_BINS = (
    (float("-inf"), 0.0, "snr_lt0"),
    (0.0, 10.0, "snr_0_10"),
    (10.0, 20.0, "snr_10_20"),
    (20.0, float("inf"), "snr_ge20"),
)


def snr_bin(snr_db: float | None) -> str:
    if snr_db is None:
        return "snr_unknown"
    for lo, hi, name in SNR_BINS:
        if lo <= snr_db < hi:
            return name
    return "snr_unknown"


@torch.no_grad()
def predict(model: AVTeacher, tokenizer: Tokenizer, dataset: QADataset, batch_size: int) -> list[dict[str, Any]]:
    """Answers for every record of ``dataset``, in order.

    A record that names its answer ``options`` (the closed-form SSA, TR, AVH)
    is answered with the option of highest likelihood under the model; the
    others (AVDN, AVSN narrations) by greedy decoding. Returns one dict per
    record: ``id``, ``prediction`` (text), ``option_logprobs`` (closed-form
    only), ``reliability`` ([audio, visual] gate trust) and ``tag_probs``
    (list in ``TAG_NAMES`` order). The model is put in eval mode and left there.
    """
    model.eval()
    out = []
    for i in range(0, len(dataset), batch_size):
        rows = list(range(i, min(i + batch_size, len(dataset))))
        batch = collate([dataset[j] for j in rows], tokenizer.pad_id)
        enc = model.encode(batch)
        records = [dataset.records[j] for j in rows]
        options = [r.meta.get("options") or [] for r in records]
        scored = model.option_logprobs(batch, [[tokenizer.encode_answer(o) for o in opts] for opts in options], enc=enc)
        free = [k for k, opts in enumerate(options) if not opts]
        generated = {}
        if free:
            sub = {key: v[free] for key, v in batch.items() if v.shape[0] == len(rows)}
            for k, ids in zip(free, model.generate(sub)["ids"].tolist()):
                generated[k] = tokenizer.decode(ids)
        tag_probs = torch.sigmoid(enc.tag_logits)
        for k, rec in enumerate(records):
            row: dict[str, Any] = {"id": rec.id}
            if options[k]:
                best = max(range(len(options[k])), key=lambda o: scored[k][o])
                row["prediction"] = options[k][best]
                row["option_logprobs"] = {o: round(lp, 4) for o, lp in zip(options[k], scored[k])}
            else:
                row["prediction"] = generated[k]
            row["reliability"] = [round(x, 4) for x in enc.reliability[k].tolist()]
            row["tag_probs"] = [round(x, 4) for x in tag_probs[k].tolist()]
            out.append(row)
    return out


def _on_token_grid(r: QARecord, model: AVTeacher) -> bool:
    per_tok = model.cfg.mel_frames_per_token
    return int(round(float(r.window_s[1]) * 100)) % per_tok == 0


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def score_predictions(records: Sequence[QARecord], predictions: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Scores and breakdowns; see the module docstring.

    Returns ``{"category": {cat: acc}, "overall": macro mean over present
    categories, "evidence": {ev: acc}, "snr": {bin: acc}, "count": {...},
    "gate": {bin: [audio, visual]}, "n": len(records)}``.
    """
    if len(records) != len(predictions):
        raise ValueError(f"predictions: {len(predictions)} for {len(records)} records")
    groups: dict[str, dict[str, list[float]]] = {"category": {}, "evidence": {}, "snr": {}}
    gate: dict[str, list[list[float]]] = {}
    for r, p in zip(records, predictions):
        s = score(r, p["prediction"])
        b = snr_bin(r.meta.get("snr_db"))
        groups["category"].setdefault(r.category, []).append(s)
        groups["evidence"].setdefault(r.evidence, []).append(s)
        groups["snr"].setdefault(b, []).append(s)
        gate.setdefault(b, []).append(p["reliability"])
    order = {"category": CATEGORIES, "evidence": EVIDENCE, "snr": [name for *_, name in SNR_BINS] + ["snr_unknown"]}
    result: dict[str, Any] = {"n": len(records), "count": {}}
    for key, by in groups.items():
        result[key] = {k: _mean(by[k]) for k in order[key] if k in by}
        result["count"][key] = {k: len(by[k]) for k in order[key] if k in by}
    result["overall"] = _mean(list(result["category"].values()))
    result["gate"] = {b: [_mean([g[0] for g in gs]), _mean([g[1] for g in gs])] for b, gs in gate.items()}
    result["bench"] = bench_figures(records, [score(r, p["prediction"]) for r, p in zip(records, predictions)])
    return result


def evaluate(model: AVTeacher, tokenizer: Tokenizer, records: Sequence[QARecord], store: RecordingStore,
             spec: WindowSpec, train_records: Sequence[QARecord] | None, batch_size: int, seed: int = 0,
             cache: FeatureCache | None = None) -> dict[str, Any]:
    """The model and its controls on ``records``.

    Returns ``{"predictions": [...], "scores": score_predictions(...), "systems":
    {name: per-record scores}, "figures": {name: bench_figures(...)}}`` where
    systems are ``model`` and every control that can be computed (``blind``,
    ``scene`` and ``constant`` need ``train_records``; ``shuffled`` needs two
    or more recordings).
    """
    q, a = model.cfg.max_question_tokens, model.cfg.max_answer_tokens
    dataset = QADataset(records, store, tokenizer, spec, q, a, cache=cache)
    predictions = predict(model, tokenizer, dataset, batch_size)
    systems = {"model": [score(r, p["prediction"]) for r, p in zip(records, predictions)]}
    answers: dict[str, list[str]] = {}
    if train_records:
        priors = fit_priors(train_records)
        for control in ("question_only", "question_scene", "constant_answer"):
            answers[control] = prior_answers(priors, records, control)
    if len({r.recording_id for r in records}) >= 2:
        moved = shuffled_records(records, seed)
        answers["shuffled_clip"] = [p["prediction"] for p in
                               predict(model, tokenizer, QADataset(moved, store, tokenizer, spec, q, a, cache=cache),
                                       batch_size)]
    for control in CONTROLS:
        if control in answers:
            systems[control] = [score(r, x) for r, x in zip(records, answers[control])]
    return {
        "predictions": predictions,
        "control_answers": answers,
        "scores": score_predictions(records, predictions),
        "systems": systems,
        "figures": {name: bench_figures(records, sc, seed=seed) for name, sc in systems.items()},
    }


def flat_metrics(scores: dict[str, Any], prefix: str) -> dict[str, float]:
    """MLflow metric names: ``<prefix>/acc/<category>``, ``<prefix>/acc/overall``,
    ``<prefix>/evidence/<type>``, ``<prefix>/snr/<bin>``, ``<prefix>/gate_audio/<bin>``."""
    out = {f"{prefix}/acc/{k}": v for k, v in scores["category"].items()}
    out[f"{prefix}/acc/overall"] = scores["overall"]
    out.update({f"{prefix}/evidence/{k}": v for k, v in scores["evidence"].items()})
    out.update({f"{prefix}/snr/{k}": v for k, v in scores["snr"].items()})
    out.update({f"{prefix}/gate_audio/{k}": v[0] for k, v in scores["gate"].items()})
    out.update({f"{prefix}/gate_visual/{k}": v[1] for k, v in scores["gate"].items()})
    return out


def _cell(iv: dict[str, Any] | None) -> str:
    from shared.stats import format_interval

    return format_interval(iv) if iv else "-"


def print_bench(figures: dict[str, dict[str, Any]], title: str) -> None:
    """The counterfactual bench: per category, the model beside every control,
    accuracy per question and per pair with 95% intervals and sizes."""
    from rich.console import Console
    from rich.table import Table

    import sys

    console = Console() if sys.stdout.isatty() else Console(width=140)  # logs keep whole cells
    table = Table(title=title)
    for col in ("category", "system", "per question %", "per pair %", "n"):
        table.add_column(col, justify="left" if col in ("category", "system") else "right", no_wrap=True)
    first = next(iter(figures), None)
    cats = [c for c in ("closed", *CLOSED_CATEGORIES, "AVDN", "AVSN") if c in figures.get(first, {})]
    for cat in cats:
        for k, (name, fig) in enumerate(figures.items()):
            row = fig.get(cat, {})
            qv, pv = row.get("question"), row.get("pair")
            n = (f"{pv['n']} pairs, {qv['n_groups']} rec" if pv else f"{qv['n']} q, {qv['n_groups']} rec") if qv else "-"
            control = name in CONTROLS
            table.add_row(cat if k == 0 else "", name, _cell(qv), _cell(pv), n, style="dim" if control else "bold")
        table.add_section()
    console.print(table)
    console.print("[95% bootstrap interval over recordings]; closed = SSA + TR + AVH pooled (the headline). "
                  "Controls: question_only, question_scene (question + scene), shuffled_clip (the model on another "
                  "recording's clip), constant_answer. AVDN/AVSN are unpaired narrations, reported apart.")


def bench_metrics(figures: dict[str, dict[str, Any]], prefix: str) -> dict[str, float]:
    """``<prefix>/<system>/<category>/<question|pair>`` (and ``_lo``/``_hi``) for MLflow."""
    out = {}
    for name, fig in figures.items():
        for cat, row in fig.items():
            for level, iv in row.items():
                if iv:
                    base = f"{prefix}/{name}/{cat}/{level}"
                    out[base], out[base + "_lo"], out[base + "_hi"] = iv["value"], iv["lo"], iv["hi"]
    return out


def print_table(scores: dict[str, Any], title: str) -> None:
    """Rich tables: accuracy per category, per evidence type, per SNR bin (with gate trust)."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=title)
    for col in ("category", "n", "accuracy"):
        table.add_column(col, justify="left" if col == "category" else "right")
    for k, v in scores["category"].items():
        table.add_row(k, str(scores["count"]["category"][k]), f"{100 * v:.1f}")
    table.add_row("overall", str(scores["n"]), f"{100 * scores['overall']:.1f}", style="bold")
    console.print(table)
    table = Table(title="by evidence needed")
    for col in ("evidence", "n", "accuracy"):
        table.add_column(col, justify="left" if col == "evidence" else "right")
    for k, v in scores["evidence"].items():
        table.add_row(k, str(scores["count"]["evidence"][k]), f"{100 * v:.1f}")
    console.print(table)
    table = Table(title="by recording SNR (gate trust: mean reliability)")
    for col in ("snr bin", "n", "accuracy", "audio trust", "visual trust"):
        table.add_column(col, justify="left" if col == "snr bin" else "right")
    for k, v in scores["snr"].items():
        a, vis = scores["gate"][k]
        table.add_row(k, str(scores["count"]["snr"][k]), f"{100 * v:.1f}", f"{a:.2f}", f"{vis:.2f}")
    console.print(table)


def run(cfg) -> dict[str, Any]:
    """The verb: load, predict, score, print, log. Returns the scores."""
    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
    folder = Path(cfg.checkpoint)
    if (folder / "model").is_dir() and not (folder / "model.safetensors").exists():
        folder = folder / "model"  # a training out/ folder
    model, tokenizer, card = load_teacher(folder)
    spec = WindowSpec(**card["data"]) if "data" in card else None
    if spec is None:
        raise UserError(f"{folder}: the model card has no 'data' window spec (not written by earshot train)")

    records = load_records(cfg.qa_dir, cfg.split, cfg.max_records)
    store = RecordingStore(resolve_dataset(cfg.qa_dir, cfg.dataset), spec.frame_size_px, spec.n_mels)
    narration = (card.get("trained_on") or {}).get("narration", "av")
    train_records = load_records(cfg.qa_dir, f"train_{narration}") if cfg.controls else None
    t0 = time.perf_counter()
    # every window the data engine writes ends on the token grid: the exact cached path is faster
    cache = FeatureCache(model, store) if all(_on_token_grid(r, model) for r in records) else None
    result = evaluate(model, tokenizer, records, store, spec, train_records, cfg.batch_size, cfg.seed, cache)
    if not cfg.controls:
        result["figures"] = {"model": result["figures"]["model"]}
    seconds = time.perf_counter() - t0
    predictions, scores = result["predictions"], result["scores"]
    print(f"checkpoint: {folder}")
    print_bench(result["figures"], f"{cfg.split}: counterfactual bench, {len(records)} records, "
                                   f"{len({r.recording_id for r in records})} recordings")
    print_table(scores, f"{cfg.split}: {len(records)} records (unpaired breakdowns)")

    out = Path(cfg.predictions) if cfg.predictions else folder / f"eval_{cfg.split}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        for i, (r, p) in enumerate(zip(records, predictions)):
            controls = {k: v[i] for k, v in result["control_answers"].items()}
            f.write(json.dumps({**p, "answer": r.answer, "category": r.category, "score": score(r, p["prediction"]),
                                "pair_id": r.meta.get("pair_id"), "controls": controls}) + "\n")
    print(f"predictions: {out}  ({seconds:.1f} s with controls, {len(records) / max(seconds, 1e-9):.1f} records/s)")
    scores_path = out.with_suffix(".scores.json")
    scores_path.write_text(json.dumps({"checkpoint": str(folder), "split": cfg.split, "fusion": model.cfg.fusion,
                                       "audio_history_s": spec.audio_history_s, "scores": scores,
                                       "figures": result["figures"]}, indent=1) + "\n")
    print(f"scores: {scores_path}")

    tracker = make_tracker(cfg.mlflow)
    tracker.start(run_name=cfg.mlflow.run_name)
    tracker.params({"checkpoint": str(folder.resolve()), "split": cfg.split, "qa_dir": str(cfg.qa_dir),
                    "n_records": len(records), "fusion": model.cfg.fusion, "audio_history_s": spec.audio_history_s,
                    "trained_run_id": card.get("mlflow_run_id") or ""})
    tracker.metrics({**flat_metrics(scores, cfg.split), **bench_metrics(result["figures"], cfg.split)}, step=0)
    tracker.artifact(out)
    tracker.end()
    return scores


@torch.no_grad()
def perception_scores(model: AVTeacher, store: RecordingStore, recording_ids: Sequence[str], spec: WindowSpec,
                      n_windows: int = 64, seed: int = 0) -> dict[str, Any]:
    """Per-token perception on ``n_windows`` random windows of ``recording_ids`` (held out).

    Returns ``{"sound": {...}, "frame": {...}}``, each with the micro-averaged
    ``precision``, ``recall``, ``f1`` at p > 0.5 over supervised entries, the
    ``macro_f1`` over labels with positives, and ``n`` supervised positives.
    """
    from cloud.data import PerceptionWindows
    from cloud.model.perception import FRAME_LABELS, SOUND_LABELS

    model.eval()
    windows = PerceptionWindows(store, list(recording_ids), spec, seed)
    out: dict[str, Any] = {}
    counts = {k: np.zeros((3, n)) for k, n in (("sound", len(SOUND_LABELS)), ("frame", len(FRAME_LABELS)))}
    for start in range(0, n_windows, 16):
        batch = collate(windows.batch(start, min(16, n_windows - start)))
        p = model.perceive(batch)
        for key, logits in (("sound", p["sound_logits"]), ("frame", p["frame_logits"])):
            pred = (logits > 0).numpy()
            target, mask = batch[key].numpy() > 0.5, batch[f"{key}_mask"].numpy() > 0.5
            counts[key][0] += (pred & target & mask).sum((0, 1))
            counts[key][1] += (pred & ~target & mask).sum((0, 1))
            counts[key][2] += (~pred & target & mask).sum((0, 1))
    for key, (tp, fp, fn) in counts.items():
        prec, rec = tp.sum() / max(tp.sum() + fp.sum(), 1), tp.sum() / max(tp.sum() + fn.sum(), 1)
        has = (tp + fn) > 0
        f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
        out[key] = {"precision": float(prec), "recall": float(rec), "f1": float(2 * prec * rec / max(prec + rec, 1e-9)),
                    "macro_f1": float(f1[has].mean()) if has.any() else float("nan"), "n": int((tp + fn).sum())}
    return out


def _heard_label(r: QARecord) -> str | None:
    """The sound an AVH "did you hear X?" record asks about (its ``label``, or the question's word)."""
    if r.category != "AVH" or r.meta.get("probe_kind", "sound") != "sound":
        return None
    label = r.meta.get("label")
    if label is None and r.question.startswith("did you hear ") and r.question.endswith("?"):
        label = r.question[len("did you hear "):-1]
    return label


@torch.no_grad()
def sound_presence(model: AVTeacher, records: Sequence[QARecord], store: RecordingStore, tokenizer: Tokenizer,
                   spec: WindowSpec, batch_size: int = 64) -> tuple[list[QARecord], np.ndarray]:
    """The perception heads alone on "did you hear X?": per record, the window's largest
    per-token logit of X (``sound_head`` over the audio tokens the window holds).

    A diagnostic of what the decoder's label pointer can read (``AVTeacher._label_pointers``:
    "present" is this logit's sigmoid): yes iff the logit > 0. Returns the AVH sound records
    (those whose label is a perception label) and their logits.

    Raises:
        UserError: no such record.
    """
    from cloud.model.perception import SOUND_LABELS

    index = {l: i for i, l in enumerate(SOUND_LABELS)}
    recs = [r for r in records if _heard_label(r) in index]
    if not recs:
        raise UserError("no AVH 'did you hear X?' records with a perception label among the records given")
    model.eval()
    ds = QADataset(recs, store, tokenizer, spec, model.cfg.max_question_tokens, model.cfg.max_answer_tokens)
    out = np.empty(len(recs))
    for start in range(0, len(recs), batch_size):
        idx = range(start, min(start + batch_size, len(recs)))
        p = model.perceive(collate([ds[i] for i in idx]))
        lab = torch.tensor([index[_heard_label(recs[i])] for i in idx])
        logits = p["sound_logits"].gather(2, lab[:, None, None].expand(-1, p["sound_logits"].shape[1], 1))[..., 0]
        out[start : idx.stop] = logits.masked_fill(~p["audio_valid"], -1e4).amax(1).numpy()
    return recs, out
