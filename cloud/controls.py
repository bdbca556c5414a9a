"""Controls beside every score, and the paired bench's figures with intervals.

A bench score means something only next to what can be had without looking
and listening. ``earshot eval`` (and the experiments, the demo report) show
four controls beside the model:

=============  ================================================================
``blind``      question only: the most frequent training answer of the exact
               question text (then of its form, then of its answer type)
``scene``      question + scene: the same, per (environment, question text)
``shuffled``   the model itself, on the same question but another held-out
               recording's clip (same window times): what it says from
               priors when the clip is uninformative
``constant``   one answer per answer type (the most frequent in training)
=============  ================================================================

On the counterfactual bench (``cloud/data_engine/pairs.py``) the two records of
a pair share their question and recording, so ``blind``, ``scene`` and
``constant`` answer both alike and get at most one right: 50% per question and
0% per pair on yes/no pairs, by construction.

:func:`bench_figures` turns per-record scores into the figures every table
shows: per category, accuracy per question and per pair (both right), with
their recording-level bootstrap 95% intervals and sizes; closed-form
categories pooled as ``closed`` (the headline); the narration categories
(AVDN, AVSN) apart. Torch-free.
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Iterable, Mapping, Sequence

from shared.stats import bootstrap_mean, paired_difference

from cloud.data_engine.records import QARecord

__all__ = [
    "CONTROLS",
    "CLOSED_CATEGORIES",
    "NARRATION_CATEGORIES",
    "Priors",
    "fit_priors",
    "prior_answers",
    "shuffled_records",
    "bench_figures",
    "compare",
]

CONTROLS = ("blind", "scene", "shuffled", "constant")
CLOSED_CATEGORIES = ("SSA", "TR", "AVH")
NARRATION_CATEGORIES = ("AVDN", "AVSN")


def _majority(counter: Counter) -> str:
    # ties broken alphabetically so the control is deterministic
    return min(counter.items(), key=lambda kv: (-kv[1], kv[0]))[0]


@dataclass(frozen=True)
class Priors:
    """Majority answers learned from training records (no signal)."""

    by_question: dict[str, str]
    by_scene_question: dict[tuple[str, str], str]
    by_form: dict[tuple[str, str], str]
    by_type: dict[str, str]


def fit_priors(train: Iterable[QARecord]) -> Priors:
    q: dict[str, Counter] = {}
    sq: dict[tuple[str, str], Counter] = {}
    f: dict[tuple[str, str], Counter] = {}
    t: dict[str, Counter] = {}
    for r in train:
        q.setdefault(r.question, Counter())[r.answer] += 1
        sq.setdefault((str(r.meta.get("environment")), r.question), Counter())[r.answer] += 1
        f.setdefault((r.category, str(r.meta.get("form"))), Counter())[r.answer] += 1
        t.setdefault(r.answer_type, Counter())[r.answer] += 1
    m = lambda d: {k: _majority(v) for k, v in d.items()}  # noqa: E731
    return Priors(m(q), m(sq), m(f), m(t))


def _options_pick(r: QARecord, answer: str | None, fallback: str) -> str:
    """A prior answer that is one of the record's options when it names options."""
    options = r.meta.get("options")
    if answer is not None and (not options or answer in options):
        return answer
    if options and fallback in options:
        return fallback
    return options[0] if options else (answer or fallback)


def prior_answers(priors: Priors, records: Sequence[QARecord], control: str) -> list[str]:
    """``blind``, ``scene`` or ``constant`` answers, one per record."""
    out = []
    for r in records:
        const = priors.by_type.get(r.answer_type, "none")
        if control == "constant":
            out.append(_options_pick(r, const, const))
            continue
        a = priors.by_question.get(r.question) or priors.by_form.get((r.category, str(r.meta.get("form"))))
        if control == "scene":
            a = priors.by_scene_question.get((str(r.meta.get("environment")), r.question)) or a
        elif control != "blind":
            raise ValueError(f"control: must be blind, scene or constant, got {control!r}")
        out.append(_options_pick(r, a, const))
    return out


def shuffled_records(records: Sequence[QARecord], seed: int = 0) -> list[QARecord]:
    """The same questions on another recording's clip (a seeded derangement of recordings).

    Every record of recording A is moved to the same donor B != A, with its
    window times kept (clipped into B by the caller's data loader if B is
    shorter). With a single recording nothing can be shuffled: raises.
    """
    recs = sorted({r.recording_id for r in records})
    if len(recs) < 2:
        raise ValueError("shuffled control: needs at least two held-out recordings")
    rng = random.Random(seed)
    donors = recs[:]
    while True:  # a derangement: nobody keeps its own clip
        rng.shuffle(donors)
        if all(a != b for a, b in zip(recs, donors)):
            break
    to = dict(zip(recs, donors))
    return [replace(r, recording_id=to[r.recording_id], meta={**r.meta, "clip_of": to[r.recording_id]})
            for r in records]


# --- figures -----------------------------------------------------------------------


def _pair_outcomes(records: Sequence[QARecord], scores: Sequence[float]) -> tuple[list[float], list[str], list[str]]:
    """(both-right per pair, recording per pair, category per pair)."""
    by_pair: dict[str, list[tuple[QARecord, float]]] = {}
    for r, s in zip(records, scores):
        pid = r.meta.get("pair_id")
        if pid is not None:
            by_pair.setdefault(pid, []).append((r, s))
    vals, groups, cats = [], [], []
    for members in by_pair.values():
        if len(members) != 2:
            continue  # half a pair (a limited eval): not a pair
        vals.append(float(all(s >= 1.0 for _, s in members)))
        groups.append(members[0][0].recording_id)
        cats.append(members[0][0].category)
    return vals, groups, cats


def _iv(values: list[float], groups: list[str], seed: int) -> dict[str, Any] | None:
    return bootstrap_mean(values, groups, seed=seed).to_dict() if values else None


def bench_figures(records: Sequence[QARecord], scores: Sequence[float], *, seed: int = 0,
                  select=None) -> dict[str, Any]:
    """Per category: ``question`` and ``pair`` accuracy intervals (``shared.stats.Interval``
    dicts: value, lo, hi, n, n_groups); ``closed`` pools SSA, TR and AVH (the headline);
    narration categories get ``question`` only. ``select(record) -> bool`` restricts the
    figures to a subset (a whole pair is kept only when both records are selected)."""
    if len(records) != len(scores):
        raise ValueError(f"scores: {len(scores)} for {len(records)} records")
    if select is not None:
        keep = [(r, s) for r, s in zip(records, scores) if select(r)]
        records, scores = [r for r, _ in keep], [s for _, s in keep]
    out: dict[str, Any] = {}
    pv, pg, pc = _pair_outcomes(records, scores)
    for cat in (*CLOSED_CATEGORIES, *NARRATION_CATEGORIES):
        sel = [(r.recording_id, s) for r, s in zip(records, scores) if r.category == cat]
        if not sel:
            continue
        row = {"question": _iv([s for _, s in sel], [g for g, _ in sel], seed)}
        if cat in CLOSED_CATEGORIES:
            row["pair"] = _iv([v for v, c in zip(pv, pc) if c == cat], [g for g, c in zip(pg, pc) if c == cat], seed)
        out[cat] = row
    closed = [(r.recording_id, s) for r, s in zip(records, scores) if r.category in CLOSED_CATEGORIES]
    if closed:
        out["closed"] = {"question": _iv([s for _, s in closed], [g for g, _ in closed], seed),
                         "pair": _iv(pv, pg, seed)}
    return out


def compare(records: Sequence[QARecord], treatment: Sequence[float], baseline: Sequence[float], *,
            level: str = "pair", seed: int = 0, select=None) -> dict[str, Any] | None:
    """treatment - baseline on the same records, paired by recording (``Interval`` dict
    with ``p_value``), at ``level`` ``question`` or ``pair``; None when nothing is left."""
    if select is not None:
        idx = [i for i, r in enumerate(records) if select(r)]
        records = [records[i] for i in idx]
        treatment, baseline = [treatment[i] for i in idx], [baseline[i] for i in idx]
    if level == "question":
        if not records:
            return None
        return paired_difference(treatment, baseline, [r.recording_id for r in records], seed=seed).to_dict()
    t, g, _ = _pair_outcomes(records, treatment)
    b, _, _ = _pair_outcomes(records, baseline)
    if not t:
        return None
    return paired_difference(t, b, g, seed=seed).to_dict()


def figures_of(rows: Mapping[str, Sequence[float]], records: Sequence[QARecord], seed: int = 0) -> dict[str, Any]:
    """:func:`bench_figures` for every system of ``rows`` (name -> scores per record)."""
    return {name: bench_figures(records, scores, seed=seed) for name, scores in rows.items()}
