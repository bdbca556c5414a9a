"""``earshot instruct`` end to end: a dataset folder in, a QA folder out.

Reads ``manifest.json`` and each recording's ``annotations.json`` (through
``shared.dataset``; signals are never decoded), builds one context graph per
recording, cuts windows, poses questions, answers them from both narrations,
splits by recording and samples the benchmark. The output layout is
documented in :mod:`cloud.data_engine.records`.

Splits: ``train_*`` from the manifest's ``train`` recordings, ``val_*`` from
``val``, ``bench`` from ``test`` only (AV gold). Same dataset, parameters and
seed -> byte-identical files: every random draw comes from a
``random.Random`` seeded by a hash of (seed, recording, window), and every
file is written in a fixed order.
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from shared.config import UserError
from shared.dataset import load_dataset

from cloud.data_engine.graph import ContextGraph, build_graph
from cloud.data_engine.narration import narrate
from cloud.data_engine.qa import (
    Pools,
    QAParams,
    Window,
    answer_in,
    event_ids_of,
    evidence_of,
    make_pools,
    make_windows,
    noise_of,
    seed_for,
    window_questions,
)
from cloud.data_engine.records import (
    CATEGORIES,
    EVIDENCE,
    INFO_FILE,
    NARRATIONS_DIR,
    SPLIT_FILES,
    QARecord,
    write_jsonl,
)

__all__ = ["INFO_SCHEMA_VERSION", "RunPlan", "recording_records", "sample_bench", "build_instruct", "answer_vocab"]

INFO_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class RunPlan:
    """How much to generate (plain values; the verb builds it from its config)."""

    seed: int = 0
    windows_per_recording: int = 6  # train and val recordings
    bench_windows_per_recording: int = 16  # test recordings: more windows, then sampled
    bench_per_category: int = 100


def recording_records(g: ContextGraph, windows: list[Window], p: QAParams, pools: Pools, seed: int
                      ) -> tuple[list[QARecord], list[QARecord]]:
    """``(av_records, visual_records)`` of one recording, in window then question order.

    Each question is posed once from the av view; its av answer is the gold,
    its visual answer comes from the vision-only view (the question is
    dropped from the visual list when that view cannot pose it).
    """
    av, vis = g.view("av"), g.view("visual")
    base = {"environment": g.environment, "snr_db": g.snr_db, "noise": noise_of(g.snr_db, p.noisy_below_db)}
    av_out, vis_out = [], []
    for w in windows:
        rng = random.Random(seed_for(seed, g.recording_id, "qa", w.index, w.start_s))
        counter: dict[str, int] = {}
        for q in window_questions(g, w, p, rng, pools):
            gold = answer_in(q, av, w, p)
            if gold is None:  # cannot happen: questions are posed from the av view
                raise AssertionError(f"{g.recording_id}: {q} has no av answer")
            j = counter[q.category] = counter.get(q.category, -1) + 1
            stem = f"{g.recording_id}.w{w.index:02d}.{q.category.lower()}{j:02d}"
            meta = {"form": q.form, "window": w.index, "event_ids": event_ids_of(q, av, w, p), **base, **q.meta}
            common: dict[str, Any] = dict(
                recording_id=g.recording_id, category=q.category, window_s=[w.start_s, w.end_s],
                t_query_s=w.end_s, question=q.text, answer_type=q.answer_type, evidence=evidence_of(q, av),
            )
            av_out.append(QARecord(id=f"{stem}.av", answer=gold, narration="av", meta=meta, **common))
            said = answer_in(q, vis, w, p)
            if said is not None:
                vis_out.append(QARecord(id=f"{stem}.vis", answer=said, narration="visual",
                                        meta={**meta, "agrees_with_av": said == gold}, **common))
    return av_out, vis_out


def _stratum(r: QARecord) -> str:
    """Bench strata: the form; AVH by sound vs visual probe x polarity, so half
    of the AVH bench probes sounds (what audio-visual hallucination is about)."""
    if r.category == "AVH":
        return f"{'sound' if r.meta['probe_kind'] == 'sound' else 'visual'}/{r.meta['polarity']}"
    return str(r.meta["form"])


def _dedup_key(r: QARecord) -> tuple | None:
    """Overlapping windows repeat questions: the same events (SSA, TR, AVH
    positives) or the same narration (AVDN, AVSN) count once per recording."""
    if r.category in ("SSA", "TR") or (r.category == "AVH" and r.meta.get("polarity") == "positive"):
        return (r.recording_id, r.category, r.meta["form"], tuple(sorted(r.meta["event_ids"])))
    if r.category in ("AVDN", "AVSN"):
        return (r.recording_id, r.category, r.answer)
    return None


def sample_bench(candidates: list[QARecord], per_category: int, seed: int
                 ) -> tuple[list[QARecord], dict[str, int]]:
    """Exactly ``per_category`` records of each category when there are enough.

    Per category, candidates are grouped by :func:`_stratum`, each group is
    shuffled with a seeded rng, and groups are
    drawn round-robin so forms stay balanced; duplicates (:func:`_dedup_key`)
    are skipped. Returns the chosen records in candidate order and the
    available (deduplicated) count per category.
    """
    order = {r.id: i for i, r in enumerate(candidates)}
    chosen: list[QARecord] = []
    available: dict[str, int] = {}
    for cat in CATEGORIES:
        rng = random.Random(seed_for(seed, "bench", cat))
        groups: dict[str, list[QARecord]] = {}
        for r in candidates:
            if r.category == cat:
                groups.setdefault(_stratum(r), []).append(r)
        for g in groups.values():
            rng.shuffle(g)
        seen: set = set()
        unique = []
        keys = sorted(groups)
        while any(groups[k] for k in keys):
            for k in keys:
                if groups[k]:
                    r = groups[k].pop(0)
                    key = _dedup_key(r)
                    if key is None or key not in seen:
                        seen.add(key)
                        unique.append(r)
        available[cat] = len(unique)
        chosen += unique[:per_category]
    chosen.sort(key=lambda r: order[r.id])
    return chosen, available


_VOCAB_SPLIT = re.compile(r"[;,:\s]+")


def answer_vocab(records: Iterable[QARecord]) -> list[str]:
    """Sorted distinct answer tokens (labels, objects, yes/no, ``<n>s`` stamps, ``none``)."""
    return sorted({t for r in records for t in _VOCAB_SPLIT.split(r.answer) if t})


def _counts(records: list[QARecord], noisy: bool = False) -> dict[str, Any]:
    by_cat = {c: sum(r.category == c for r in records) for c in CATEGORIES}
    ev = {e: sum(r.evidence == e for r in records) for e in EVIDENCE}
    needs = [r for r in records if r.evidence != "visual"]
    return {
        "categories": {**by_cat, "total": len(records)},
        "evidence": ev,
        "needs_audio_share": round(len(needs) / len(records), 4) if records else 0.0,
        "needs_audio_by_noise": {k: sum(r.meta["noise"] == k for r in needs) for k in ("noisy", "quiet", "unknown")},
    }


def _visual_vs_av(av: list[QARecord], vis: list[QARecord]) -> dict[str, int]:
    kept = {r.id.rsplit(".", 1)[0]: r for r in vis}
    same = sum(1 for r in vis if r.meta["agrees_with_av"])
    return {"same": same, "changed": len(vis) - same, "dropped": sum(r.id.rsplit(".", 1)[0] not in kept for r in av)}


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _prepare_out(out: Path, dataset: Path) -> Path:
    if out.resolve() == dataset.resolve() or dataset.resolve() in out.resolve().parents:
        raise UserError(f"out: {out} is inside the dataset {dataset}; write the QA elsewhere")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / INFO_FILE).exists())):
        raise UserError(f"out: {out} exists and is not an earshot instruct output; refusing to replace it")
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / NARRATIONS_DIR).mkdir(parents=True)
    return tmp


def build_instruct(dataset: str | Path, out: str | Path, p: QAParams, plan: RunPlan, *,
                   config: dict[str, Any] | None = None, progress: bool = False) -> dict[str, Any]:
    """Write the QA folder ``out`` from the dataset folder ``dataset``; returns info.json's content.

    Raises:
        UserError: unreadable dataset (RecordingError names file and field),
            a dataset without recordings, or an ``out`` that is not ours to replace.
    """
    dataset, out = Path(dataset), Path(out)
    ds = load_dataset(dataset)
    if not ds.entries:
        raise UserError(f"dataset: {dataset} lists no recordings")
    graphs = {e.id: build_graph(ds.annotations(e)) for e in ds.entries}
    pools = make_pools([graphs[e.id] for e in ds.split("train")], graphs.values())

    tmp = _prepare_out(out, dataset)
    try:
        files: dict[str, list[QARecord]] = {k: [] for k in SPLIT_FILES}
        bench_candidates: list[QARecord] = []
        from rich.progress import Progress

        with Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task("instruct", total=len(ds.entries))
            for e in ds.entries:
                g = graphs[e.id]
                n = plan.bench_windows_per_recording if e.split == "test" else plan.windows_per_recording
                windows = make_windows(g, n, p.window_s, random.Random(seed_for(plan.seed, e.id, "windows", n)))
                av, vis = recording_records(g, windows, p, pools, plan.seed)
                if e.split == "test":
                    bench_candidates += av
                else:
                    files[f"{e.split}_av"] += av
                    files[f"{e.split}_visual"] += vis
                _write_json(tmp / NARRATIONS_DIR / f"{e.id}.json", {
                    "recording_id": e.id,
                    "split": e.split,
                    "windows_s": [[w.start_s, w.end_s] for w in windows],
                    "graph": g.summary(),
                    "narration_visual": narrate(g.view("visual")),
                    "narration_av": narrate(g.view("av")),
                })
                bar.advance(task)
        files["bench"], available = sample_bench(bench_candidates, plan.bench_per_category, plan.seed)

        for key, name in SPLIT_FILES.items():
            write_jsonl(tmp / name, files[key])
        every = [r for recs in files.values() for r in recs]
        vocab = answer_vocab(every)
        short = {c: plan.bench_per_category - available[c] for c in CATEGORIES if available[c] < plan.bench_per_category}
        info = {
            "schema_version": INFO_SCHEMA_VERSION,
            "dataset": str(dataset),
            "dataset_generator": ds.generator,
            "config": config or {},
            "files": dict(SPLIT_FILES),
            "recordings": {s: [e.id for e in ds.split(s)] for s in ("train", "val", "test")},
            "counts": {k: _counts(v) for k, v in files.items()},
            "visual_vs_av": {s: _visual_vs_av(files[f"{s}_av"], files[f"{s}_visual"]) for s in ("train", "val")},
            "bench": {
                "per_category": plan.bench_per_category,
                "available": available,
                "shortfall": short,
                "complete": not short,
            },
            "answer_vocab_size": len(vocab),
            "answer_vocab": vocab,
        }
        _write_json(tmp / INFO_FILE, info)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info
