"""The EgoAVU recipe in miniature: the teacher with a pretrained LM decoder vs the small decoder.

    .venv/bin/python scripts/bench_lm_decoder.py --out runs/lm_decoder          # docs/lm.md's table (~1 h)
    .venv/bin/python scripts/bench_lm_decoder.py --out /tmp/b --steps 4 --records 64 --bench-recordings 2

Same world, same instruction data, same frozen perception (``--perception``, a
finished phase 1), same records and batch; the variants differ only in the
decoder (``earshot train model.decoder=...``):

    lm           SmolLM2-135M (frozen) + LoRA r=8 on q/v, prefix projected 128 -> 576, ``--steps`` steps
    small_steps  the built-in 2-layer decoder over the words of the data, the same ``--steps``
    small_long   the built-in decoder, the same records, ``--small-long-steps`` steps (a fraction
                 of the LM's training wall time: what the small decoder does with the budget)
    reference    (``--reference``) the default teacher: the built-in decoder trained on all
                 records for 1200 steps of 32 (evaluated only; its training time is its
                 run's ``experiment_train.json``). The equal-budget comparison: on this
                 machine it trains in less wall time than the LM's ``--steps``.

Each trained variant is an ``earshot train`` run in ``<out>/<variant>`` (skipped
when its ``model/`` exists, so a finished run is reused); its training time is
the run's ``train/seconds`` in MLflow (the steps and their evaluation, not the
feature cache). Each variant's scores are kept in ``<out>/scores_<variant>.json``
(reused for the same bench subset), so ``--only`` can score variants in separate
processes. All are scored on the SAME bench subset: every closed-form
record (SSA, TR, AVH; option likelihood) of ``--bench-recordings`` held-out
recordings spread over the bench, with the controls (``cloud/controls.py``) and
recording-level 95% intervals; the LM beside each small run as a paired
difference per pair. Per-answer time: one record at a time (batch 1), p50 over
``--latency-records`` records after one warm-up. Prints a Markdown table and
writes ``<out>/lm_decoder.json`` and ``<out>/lm_decoder.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: earshot train overrides of every trained variant (besides data, steps, threads, out).
COMMON = ["data.corrupt_share=0.3", "batch_size=16", "log_every=10", "checkpoint_every=50", "data.max_val_records=64",
          "optim.warmup_steps=15"]
#: the LM's own: its word pieces are ~1.6 per word; LoRA + the new parts at half the small decoder's lr.
LM_ONLY = ["model.decoder=lm", "model.max_question_tokens=48", "model.max_answer_tokens=40", "optim.lr=1e-3"]


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} cores"


def train_variant(name: str, out: Path, overrides: list[str]) -> dict[str, Any]:
    """Train one variant unless ``out/model`` exists; returns steps, train seconds, run id."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from mlflow import MlflowClient

    import cloud.verbs  # noqa: F401  (registers the train schema)
    from cloud.teacher_config import TrainConfig
    from cloud.train import run
    from shared.config import CONFIG_DIR, to_schema

    if not (out / "model" / "model_config.json").is_file():
        print(f"[{time.strftime('%H:%M:%S')}] training {name}: {' '.join(overrides)}  (load {_load()})", flush=True)
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = to_schema(compose(config_name="train", overrides=[*overrides, f"out={out}"]), TrainConfig)
        run(cfg)
    card = json.loads((out / "model" / "model_config.json").read_text())
    client = MlflowClient(tracking_uri=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"))
    seconds = client.get_metric_history(card["mlflow_run_id"], "train/seconds")
    if not seconds:
        raise SystemExit(f"{out}: its MLflow run has no train/seconds (was it finished?)")
    return {"steps": card["step"], "train_s": seconds[-1].value, "mlflow_run_id": card["mlflow_run_id"]}


def bench_records(qa_dir: str, n_recordings: int) -> list:
    """Every closed-form bench record of ``n_recordings`` held-out recordings spread evenly
    over the sorted recording ids (fixed: the same subset for every variant)."""
    from cloud.controls import CLOSED_CATEGORIES
    from cloud.data import load_records

    records = [r for r in load_records(qa_dir, "bench") if r.category in CLOSED_CATEGORIES]
    ids = sorted({r.recording_id for r in records})
    step = len(ids) / min(n_recordings, len(ids))
    keep = {ids[int(i * step)] for i in range(min(n_recordings, len(ids)))}
    return [r for r in records if r.recording_id in keep]


def score_variant(folder: Path, records: list, train_records: list, qa_dir: str, dataset: str, threads: int,
                  latency_records: int, seed: int) -> dict[str, Any]:
    """The model and its controls on ``records``; per-record scores; per-answer time at batch 1."""
    import numpy as np
    import torch

    from cloud.data import FeatureCache, QADataset, RecordingStore, WindowSpec
    from cloud.eval import evaluate, predict
    from cloud.model.io import load_teacher

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    model, tokenizer, card = load_teacher(folder / "model")
    load_s = time.perf_counter() - t0
    spec = WindowSpec(**card["data"])
    store = RecordingStore(dataset, spec.frame_size_px, spec.n_mels)
    cache = FeatureCache(model, store)
    for rid in sorted({r.recording_id for r in records}):
        cache.add(rid)
    q, a = model.cfg.max_question_tokens, model.cfg.max_answer_tokens
    one = QADataset(records[: latency_records + 1], store, tokenizer, spec, q, a, cache=cache)
    times = []
    for i in range(len(one)):
        sub = QADataset([one.records[i]], store, tokenizer, spec, q, a, cache=cache)
        t = time.perf_counter()
        predict(model, tokenizer, sub, 1)
        times.append(time.perf_counter() - t)
    t0 = time.perf_counter()
    result = evaluate(model, tokenizer, records, store, spec, train_records, 16, seed, cache)
    eval_s = time.perf_counter() - t0
    return {"load_s": load_s, "answer_ms_p50": 1000 * float(np.median(times[1:])),
            "eval_s": eval_s, "records_per_s": 2 * len(records) / eval_s,  # the model and its shuffled-clip control
            "figures": result["figures"], "scores": result["systems"],
            "num_parameters": model.num_parameters(),
            "trainable_parameters": sum(p.numel() for n, p in model.named_parameters()
                                        if not n.startswith("decoder.lm.") or "lora_" in n)}


def pair_outcomes(records: list, scores: list[float]) -> tuple[list[float], list[str]]:
    """(1 if both records of a pair are right, recording) per complete pair."""
    by_pair: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        by_pair.setdefault(r.meta["pair_id"], []).append(i)
    out = [(float(all(scores[i] >= 1.0 for i in idx)), records[idx[0]].recording_id)
           for idx in by_pair.values() if len(idx) == 2]
    return [v for v, _ in out], [g for _, g in out]


def markdown(result: dict[str, Any]) -> str:
    from shared.stats import format_interval

    lines = ["| system | decoder | steps | records seen | train s/step | train wall s | answer ms (batch 1, p50) | "
             "closed per question % | closed per pair % |", "|---|---|---|---|---|---|---|---|---|"]
    for name, v in result["variants"].items():
        fig = v["figures"]["model"]["closed"]
        train = v.get("train")
        if train:
            steps = train["steps"]
            cost = f"{steps} | {steps * v['train_batch_size']} | {train['train_s'] / steps:.2f} | {train['train_s']:.0f}"
        else:
            cost = f"{v.get('steps_note', '-')} | - | - | -"
        lines.append(f"| **{name}** | {v['decoder']} | {cost} | {v['answer_ms_p50']:.0f} | "
                     f"{format_interval(fig['question'])} | {format_interval(fig['pair'])} |")
        if "shuffled_clip" in v["figures"]:
            sc = v["figures"]["shuffled_clip"]["closed"]
            lines.append(f"| &nbsp;&nbsp;{name} on a shuffled clip | | | | | | | {format_interval(sc['question'])} | "
                         f"{format_interval(sc['pair'])} |")
    first = next(iter(result["variants"].values()))
    for control in ("question_only", "question_scene", "constant_answer"):
        if control in first["figures"]:
            c = first["figures"][control]["closed"]
            lines.append(f"| {control} (control) | | | | | | | {format_interval(c['question'])} | "
                         f"{format_interval(c['pair'])} |")
    lines.append("")
    for name, d in result["differences"].items():
        lines.append(f"- {name}, per pair: {100 * d['value']:+.1f} points [{100 * d['lo']:+.1f}, {100 * d['hi']:+.1f}] "
                     f"(p = {d['p_value']:.3f}, {d['n']} pairs, {d['n_groups']} recordings)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="runs/lm_decoder")
    ap.add_argument("--qa-dir", default="data/experiments/qa")
    ap.add_argument("--dataset", default="data/experiments/world")
    ap.add_argument("--perception", default="runs/experiments/perception/seed0",
                    help="a finished phase 1 (perception.init) shared by every variant")
    ap.add_argument("--reference", default=None, help="a trained teacher's model folder to score beside (optional)")
    ap.add_argument("--lm", default=None, help="model.lm (default: the embedded SmolLM2)")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--records", type=int, default=2400, help="training records (evenly spaced subset)")
    ap.add_argument("--bench-recordings", type=int, default=10)
    ap.add_argument("--small-long-steps", type=int, default=1200)
    ap.add_argument("--only", default="lm,small_steps,small_long,reference", help="variants to train and score now")
    ap.add_argument("--latency-records", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    from cloud.data import load_records
    from shared.stats import paired_difference

    out = Path(a.out)
    data = [f"data.qa_dir={a.qa_dir}", f"data.dataset={a.dataset}", f"perception.init={a.perception}",
            f"data.max_train_records={a.records}", f"threads={a.threads}", f"seed={a.seed}", *COMMON]
    lm = [*LM_ONLY, *([f"model.lm={a.lm}"] if a.lm else [])]
    started = _load()
    only = a.only.split(",")
    runs = {"lm": [*data, *lm], "small_steps": data, "small_long": data}
    steps = {"lm": a.steps, "small_steps": a.steps, "small_long": a.small_long_steps}
    folders = {name: out / name for name in runs}
    if a.reference:
        folders["reference"] = Path(a.reference).parent if Path(a.reference).name == "model" else Path(a.reference)
    records = bench_records(a.qa_dir, a.bench_recordings)
    subset = sorted(r.id for r in records)
    train_records = None
    variants: dict[str, Any] = {}
    for name, folder in folders.items():
        saved = out / f"scores_{name}.json"
        if saved.is_file() and json.loads(saved.read_text())["records"] == subset:
            variants[name] = json.loads(saved.read_text())["result"]
            continue
        if name not in only:
            continue
        if name in runs:
            train = train_variant(name, folder, [*runs[name], f"max_steps={steps[name]}", f"eval_every={steps[name]}",
                                                 f"mlflow.run_name=lm_decoder_{name}"])
        else:
            done = json.loads((folder / "experiment_train.json").read_text()) \
                if (folder / "experiment_train.json").is_file() else None
            card = json.loads((folder / "model" / "model_config.json").read_text())
            train = {"steps": card["step"], "train_s": done["train_seconds"]} if done else None
        print(f"[{time.strftime('%H:%M:%S')}] scoring {name} on {len(records)} records (load {_load()})", flush=True)
        train_records = train_records or load_records(a.qa_dir, "train_av")
        v = score_variant(folder, records, train_records, a.qa_dir, a.dataset, a.threads, a.latency_records, a.seed)
        v.update(decoder="SmolLM2-135M + LoRA" if name == "lm" else "small (2 layers)", train=train,
                 load=_load(), train_batch_size=16 if name in runs else 32)
        saved.write_text(json.dumps({"records": subset, "result": v}) + "\n", encoding="utf-8")
        variants[name] = v
    if "lm" not in variants or len(variants) < 2:
        print(f"scored so far: {sorted(variants)}; the table needs lm and another")
        return {"variants": variants}
    lm_pairs, groups = pair_outcomes(records, variants["lm"]["scores"]["model"])
    differences = {}
    for name in [n for n in variants if n != "lm"]:
        other, _ = pair_outcomes(records, variants[name]["scores"]["model"])
        differences[f"lm - {name}"] = paired_difference(lm_pairs, other, groups, seed=a.seed).to_dict()
    result = {"records": a.records, "bench_records": len(records), "threads": a.threads,
              "bench_recordings": len({r.recording_id for r in records}), "load_at_start": started,
              "load_at_end": _load(), "variants": variants, "differences": differences}
    table = markdown(result)
    print(table)
    print(f"machine load: {started} at the start, {result['load_at_end']} at the end")
    (out / "lm_decoder.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    (out / "lm_decoder.md").write_text(table + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
