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

import dataclasses
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
from shared.labels import names

from cloud.data_engine.graph import SOUND, ContextGraph, build_graph
from cloud.data_engine.narration import narrate
from cloud.data_engine.pairs import PAIR_CATEGORIES, Options, Pair, PairParams, make_options, probe_pairs
from cloud.data_engine.pairs import answer as pair_answer
from cloud.data_engine.qa import (
    QAParams,
    Window,
    answer_in,
    event_ids_of,
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

__all__ = ["INFO_SCHEMA_VERSION", "RunPlan", "narration_records", "pair_records", "sample_bench",
           "sample_bench_pairs", "build_instruct", "answer_vocab"]

INFO_SCHEMA_VERSION = 2
NARRATION_CATEGORIES = ("AVDN", "AVSN")


@dataclass(frozen=True)
class RunPlan:
    """How much to generate (plain values; the verb builds it from its config)."""

    seed: int = 0
    windows_per_recording: int = 6  # narration windows (AVDN, AVSN), train and val recordings
    bench_windows_per_recording: int = 16  # narration windows of test recordings, then sampled
    pairs_per_probe: int = 2  # counterfactual pairs per probe, train and val recordings
    bench_pairs_per_category: int = 100  # SSA, TR, AVH pairs in the bench
    bench_per_category: int = 50  # AVDN, AVSN records in the bench


def _base_meta(g: ContextGraph, p: QAParams) -> dict[str, Any]:
    return {"environment": g.environment, "snr_db": g.snr_db, "noise": noise_of(g.snr_db, p.noisy_below_db)}


def narration_records(g: ContextGraph, windows: list[Window], p: QAParams, seed: int
                      ) -> tuple[list[QARecord], list[QARecord]]:
    """``(av_records, visual_records)``: AVDN and AVSN of every window, from both views."""
    av, vis = g.view("av"), g.view("visual")
    base = _base_meta(g, p)
    av_out, vis_out = [], []
    for w in windows:
        for q in window_questions(g, w, p):
            gold = answer_in(q, av, w, p)
            stem = f"{g.recording_id}.w{w.index:02d}.{q.category.lower()}00"
            meta = {"form": q.form, "window": w.index, "event_ids": event_ids_of(av, w, p), **base, **q.meta}
            common: dict[str, Any] = dict(
                recording_id=g.recording_id, category=q.category, window_s=[w.start_s, w.end_s],
                t_query_s=w.end_s, question=q.text, answer_type=q.answer_type, evidence="audiovisual",
            )
            av_out.append(QARecord(id=f"{stem}.av", answer=gold, narration="av", meta=meta, **common))
            said = answer_in(q, vis, w, p)
            vis_out.append(QARecord(id=f"{stem}.vis", answer=said, narration="visual",
                                    meta={**meta, "agrees_with_av": said == gold}, **common))
    return av_out, vis_out


_SOUND_LABELS = frozenset(names("audio_event"))


def _evidence(pair: Pair) -> str:
    """What a model needs for *both* windows of the pair (one value per pair)."""
    f = pair.probe.form
    if f == "sound":
        return "audio"
    if f in ("action", "state"):
        return "visual"
    if f in ("source", "sound_of"):
        seen = any(m.get("source_visible") is True for m in pair.meta)
        return "audiovisual" if seen else "audio"
    if f == "before":
        mods = {"audio" if k in _SOUND_LABELS else "visual" for k in pair.probe.key}
        return mods.pop() if len(mods) == 1 else "audiovisual"
    return "audiovisual"  # visible, cause, response


def pair_records(g: ContextGraph, pairs: list[Pair], pp: PairParams, p: QAParams, options: Options,
                 start_index: int = 0) -> tuple[list[QARecord], list[QARecord], list[str]]:
    """``(av_records, visual_records, pair_ids)``: two av records per pair (roles a, b)
    and their vision-only twins (a twin is dropped when that narration cannot pose it).

    Every record's meta holds ``pair_id``, ``pair_role``, ``pair_kind`` (contrast |
    presence), ``options`` (the closed-form answers to choose from) and ``probe``
    (the labels it names); AVH records keep ``probe_kind`` and ``polarity``.
    """
    av_view, vis_view = g.view("av"), g.view("visual")
    base = _base_meta(g, p)
    av_out, vis_out, ids = [], [], []
    for j, pair in enumerate(pairs, start_index):
        probe = pair.probe
        pair_id = f"{g.recording_id}.{probe.category.lower()}.{j:03d}"
        ids.append(pair_id)
        evidence = _evidence(pair)
        offscreen = any(m.get("offscreen") is True for m in pair.meta)
        for role, w0, gold, extra in zip("ab", pair.starts, pair.answers, pair.meta):
            w1 = round(w0 + pp.window_s, 3)
            meta: dict[str, Any] = {
                "form": probe.form, "window": w0, **base, **extra,
                "pair_id": pair_id, "pair_role": role, "pair_kind": pair.kind, "pair_offscreen": offscreen,
                "probe": list(probe.key), "options": options.for_probe(probe),
            }
            meta.setdefault("event_ids", [])
            if probe.category == "AVH":
                meta.update(probe_kind=probe.form, label=probe.key[0],
                            polarity="positive" if gold == "yes" else "negative")
            common: dict[str, Any] = dict(
                recording_id=g.recording_id, category=probe.category, window_s=[w0, w1], t_query_s=w1,
                question=probe.text, answer_type=probe.answer_type, evidence=evidence,
            )
            stem = f"{pair_id}{role}"
            av_out.append(QARecord(id=f"{stem}.av", answer=gold, narration="av", meta=meta, **common))
            said, _ = pair_answer(probe, vis_view, g, w0, pp)
            if said is not None:
                vis_out.append(QARecord(id=f"{stem}.vis", answer=said, narration="visual",
                                        meta={**meta, "agrees_with_av": said == gold}, **common))
    return av_out, vis_out, ids


def _stratum(r: QARecord) -> str:
    return str(r.meta["form"])


def _dedup_key(r: QARecord) -> tuple | None:
    """Overlapping windows repeat the same narration: count it once per recording."""
    return (r.recording_id, r.category, r.answer)


def sample_bench(candidates: list[QARecord], per_category: int, seed: int, categories=NARRATION_CATEGORIES
                 ) -> tuple[list[QARecord], dict[str, int]]:
    """Up to ``per_category`` narration records of each category, duplicates skipped;
    returns the chosen records in candidate order and the available count per category."""
    order = {r.id: i for i, r in enumerate(candidates)}
    chosen: list[QARecord] = []
    available: dict[str, int] = {}
    for cat in categories:
        rng = random.Random(seed_for(seed, "bench", cat))
        pool = [r for r in candidates if r.category == cat]
        rng.shuffle(pool)
        seen: set = set()
        unique = []
        for r in pool:
            key = _dedup_key(r)
            if key not in seen:
                seen.add(key)
                unique.append(r)
        available[cat] = len(unique)
        chosen += unique[:per_category]
    chosen.sort(key=lambda r: order[r.id])
    return chosen, available


def sample_bench_pairs(candidates: list[QARecord], per_category: int, seed: int
                       ) -> tuple[list[QARecord], dict[str, int]]:
    """Up to ``per_category`` *pairs* of each closed-form category (both records of each).

    Per category, pairs are grouped by (form, pair kind), each group is shuffled
    with a seeded rng and ordered so that recordings take turns, and groups are
    drawn round-robin: forms and recordings stay balanced. Returns the chosen
    records in candidate order and the available pair count per category.
    """
    order = {r.id: i for i, r in enumerate(candidates)}
    by_pair: dict[str, list[QARecord]] = {}
    for r in candidates:
        by_pair.setdefault(r.meta["pair_id"], []).append(r)
    chosen: list[QARecord] = []
    available: dict[str, int] = {}
    for cat in PAIR_CATEGORIES:
        rng = random.Random(seed_for(seed, "bench-pairs", cat))
        groups: dict[str, list[str]] = {}
        for pid, recs in by_pair.items():
            if recs[0].category == cat:
                groups.setdefault(f"{recs[0].meta['form']}/{recs[0].meta['pair_kind']}", []).append(pid)
        for key, pids in groups.items():
            rng.shuffle(pids)
            turn: dict[str, int] = {}
            ranked = []
            for pid in pids:
                rec_id = by_pair[pid][0].recording_id
                ranked.append((turn.get(rec_id, 0), pid))
                turn[rec_id] = turn.get(rec_id, 0) + 1
            groups[key] = [pid for _, pid in sorted(ranked, key=lambda x: x[0])]
        keys = sorted(groups)
        picked: list[str] = []
        while len(picked) < per_category and any(groups[k] for k in keys):
            for k in keys:
                if groups[k] and len(picked) < per_category:
                    picked.append(groups[k].pop(0))
        available[cat] = sum(len(v) for v in groups.values()) + len(picked)
        for pid in picked:
            chosen += by_pair[pid]
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


def build_instruct(dataset: str | Path, out: str | Path, p: QAParams, plan: RunPlan, pp: PairParams | None = None, *,
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
    pp = pp or PairParams(window_s=p.window_s, min_overlap_s=p.min_overlap_s)
    graphs = {e.id: build_graph(ds.annotations(e)) for e in ds.entries}
    options = make_options(graphs.values())

    tmp = _prepare_out(out, dataset)
    try:
        files: dict[str, list[QARecord]] = {k: [] for k in SPLIT_FILES}
        bench_pairs: list[QARecord] = []
        bench_narrations: list[QARecord] = []
        n_pairs = {s: 0 for s in ("train", "val", "test")}
        from rich.progress import Progress

        with Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task("instruct", total=len(ds.entries))
            for e in ds.entries:
                g = graphs[e.id]
                n = plan.bench_windows_per_recording if e.split == "test" else plan.windows_per_recording
                windows = make_windows(g, n, p.window_s, random.Random(seed_for(plan.seed, e.id, "windows", n)))
                av, vis = narration_records(g, windows, p, plan.seed)
                per_probe = 1 if e.split == "test" else plan.pairs_per_probe
                pairs = probe_pairs(g, pp, random.Random(seed_for(plan.seed, e.id, "pairs", per_probe)), per_probe)
                pav, pvis, _ = pair_records(g, pairs, pp, p, options)
                n_pairs[e.split] += len(pairs)
                if e.split == "test":
                    bench_narrations += av
                    bench_pairs += pav
                else:
                    files[f"{e.split}_av"] += pav + av
                    files[f"{e.split}_visual"] += pvis + vis
                _write_json(tmp / NARRATIONS_DIR / f"{e.id}.json", {
                    "recording_id": e.id,
                    "split": e.split,
                    "windows_s": [[w.start_s, w.end_s] for w in windows],
                    "graph": g.summary(),
                    "narration_visual": narrate(g.view("visual")),
                    "narration_av": narrate(g.view("av")),
                })
                bar.advance(task)
        paired, available = sample_bench_pairs(bench_pairs, plan.bench_pairs_per_category, plan.seed)
        narrated, available_n = sample_bench(bench_narrations, plan.bench_per_category, plan.seed)
        order = {r.id: i for i, r in enumerate(bench_pairs + bench_narrations)}
        files["bench"] = sorted(paired + narrated, key=lambda r: order[r.id])

        for key, name in SPLIT_FILES.items():
            write_jsonl(tmp / name, files[key])
        every = [r for recs in files.values() for r in recs]
        vocab = answer_vocab(every)
        want = {**{c: plan.bench_pairs_per_category for c in PAIR_CATEGORIES},
                **{c: plan.bench_per_category for c in NARRATION_CATEGORIES}}
        have = {**available, **available_n}
        short = {c: want[c] - have[c] for c in CATEGORIES if have[c] < want[c]}
        info = {
            "schema_version": INFO_SCHEMA_VERSION,
            "dataset": str(dataset),
            "dataset_generator": ds.generator,
            "config": config or {},
            "files": dict(SPLIT_FILES),
            "recordings": {s: [e.id for e in ds.split(s)] for s in ("train", "val", "test")},
            "counts": {k: _counts(v) for k, v in files.items()},
            "visual_vs_av": {s: _visual_vs_av(files[f"{s}_av"], files[f"{s}_visual"]) for s in ("train", "val")},
            "pairs": {"generated": n_pairs, "params": dataclasses.asdict(pp)},
            "bench": {
                "pairs_per_category": plan.bench_pairs_per_category,
                "per_category": plan.bench_per_category,
                "wanted": want,
                "available": have,
                "pairs": {c: len({r.meta["pair_id"] for r in paired if r.category == c}) for c in PAIR_CATEGORIES},
                "recordings": len({r.recording_id for r in files["bench"]}),
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
