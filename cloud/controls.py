"""Controls beside every score, and the paired bench's figures with intervals.

A bench score means something only next to what can be had without looking
and listening. ``earshot eval`` (and the experiments, the demo report) show
four controls beside the model:

===================  ==========================================================
``question_only``    the most frequent training answer of the exact question
                     text (then of its form, then of its answer type)
``question_scene``   the same, per (environment, question text)
``shuffled_clip``    the model itself, on the same question but another
                     held-out recording's clip (same window times): what it
                     says from priors when the clip is uninformative
``constant_answer``  one answer per answer type (the most frequent in training)
===================  ==========================================================

On the counterfactual bench (``cloud/data_engine/pairs.py``) the two records of
a pair share their question and recording, so ``question_only``,
``question_scene`` and ``constant_answer`` answer both alike and get at most one right: 50% per question and
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
    "subset_figures",
    "compare",
]

CONTROLS = ("question_only", "question_scene", "shuffled_clip", "constant_answer")
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
    """``question_only``, ``question_scene`` or ``constant_answer`` answers, one per record."""
    out = []
    for r in records:
        const = priors.by_type.get(r.answer_type, "none")
        if control == "constant_answer":
            out.append(_options_pick(r, const, const))
            continue
        a = priors.by_question.get(r.question) or priors.by_form.get((r.category, str(r.meta.get("form"))))
        if control == "question_scene":
            a = priors.by_scene_question.get((str(r.meta.get("environment")), r.question)) or a
        elif control != "question_only":
            raise ValueError(f"control: must be question_only, question_scene or constant_answer, got {control!r}")
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


Scores = Sequence[float] | Sequence[Sequence[float]]


def _by_seed(records: Sequence[QARecord], scores: Scores) -> list[list[float]]:
    """Scores of one run (a flat list) or of several seeds (a list of lists), as a list of runs."""
    runs = [list(scores)] if not scores or not isinstance(scores[0], (list, tuple)) else [list(s) for s in scores]
    for run in runs:
        if len(run) != len(records):
            raise ValueError(f"scores: {len(run)} for {len(records)} records")
    return runs


def _pair_outcomes(records: Sequence[QARecord], runs: list[list[float]]) -> tuple[list[float], list[str], list[str]]:
    """(both-right per pair averaged over runs, recording per pair, category per pair)."""
    by_pair: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        pid = r.meta.get("pair_id")
        if pid is not None:
            by_pair.setdefault(pid, []).append(i)
    vals, groups, cats = [], [], []
    for idx in by_pair.values():
        if len(idx) != 2:
            continue  # half a pair (a limited eval or a subset): not a pair
        vals.append(sum(float(all(run[i] >= 1.0 for i in idx)) for run in runs) / len(runs))
        groups.append(records[idx[0]].recording_id)
        cats.append(records[idx[0]].category)
    return vals, groups, cats


def _iv(values: list[float], groups: list[str], seed: int) -> dict[str, Any] | None:
    return bootstrap_mean(values, groups, seed=seed).to_dict() if values else None


def _subset(records: Sequence[QARecord], runs: list[list[float]], select) -> tuple[list[QARecord], list[list[float]]]:
    if select is None:
        return list(records), runs
    idx = [i for i, r in enumerate(records) if select(r)]
    return [records[i] for i in idx], [[run[i] for i in idx] for run in runs]


def bench_figures(records: Sequence[QARecord], scores: Scores, *, seed: int = 0, select=None) -> dict[str, Any]:
    """Per category: ``question`` and ``pair`` accuracy intervals (``shared.stats.Interval``
    dicts: value, lo, hi, n, n_groups); ``closed`` pools SSA, TR and AVH (the headline);
    narration categories get ``question`` only.

    ``scores`` is one run's per-record scores, or a list of them (several seeds):
    per question the seeds' mean, per pair the share of seeds that got both right,
    so the interval is over recordings of seed-averaged outcomes. ``select(record)
    -> bool`` restricts the figures to a subset (a pair counts only when both of its
    records are selected)."""
    records, runs = _subset(records, _by_seed(records, scores), select)
    mean = [sum(run[i] for run in runs) / len(runs) for i in range(len(records))]
    out: dict[str, Any] = {}
    pv, pg, pc = _pair_outcomes(records, runs)
    for cat in (*CLOSED_CATEGORIES, *NARRATION_CATEGORIES):
        sel = [(r.recording_id, s) for r, s in zip(records, mean) if r.category == cat]
        if not sel:
            continue
        row = {"question": _iv([s for _, s in sel], [g for g, _ in sel], seed)}
        if cat in CLOSED_CATEGORIES:
            row["pair"] = _iv([v for v, c in zip(pv, pc) if c == cat], [g for g, c in zip(pg, pc) if c == cat], seed)
        out[cat] = row
    closed = [(r.recording_id, s) for r, s in zip(records, mean) if r.category in CLOSED_CATEGORIES]
    if closed:
        out["closed"] = {"question": _iv([s for _, s in closed], [g for g, _ in closed], seed),
                         "pair": _iv(pv, pg, seed)}
    return out


def subset_figures(records: Sequence[QARecord], scores: Scores, select, *, seed: int = 0) -> dict[str, Any]:
    """``question`` and ``pair`` intervals over the selected records, all categories pooled."""
    records, runs = _subset(records, _by_seed(records, scores), select)
    mean = [sum(run[i] for run in runs) / len(runs) for i in range(len(records))]
    pv, pg, _ = _pair_outcomes(records, runs)
    return {"question": _iv(mean, [r.recording_id for r in records], seed), "pair": _iv(pv, pg, seed)}


def compare(records: Sequence[QARecord], treatment: Scores, baseline: Scores, *,
            level: str = "pair", seed: int = 0, select=None) -> dict[str, Any] | None:
    """treatment - baseline on the same records, paired by recording (``Interval`` dict
    with ``p_value``), at ``level`` ``question`` or ``pair``; several seeds are averaged
    first; None when nothing is left."""
    recs, t_runs = _subset(records, _by_seed(records, treatment), select)
    _, b_runs = _subset(records, _by_seed(records, baseline), select)
    if level == "question":
        if not recs:
            return None
        t = [sum(run[i] for run in t_runs) / len(t_runs) for i in range(len(recs))]
        b = [sum(run[i] for run in b_runs) / len(b_runs) for i in range(len(recs))]
        return paired_difference(t, b, [r.recording_id for r in recs], seed=seed).to_dict()
    t, g, _ = _pair_outcomes(recs, t_runs)
    b, _, _ = _pair_outcomes(recs, b_runs)
    if not t:
        return None
    return paired_difference(t, b, g, seed=seed).to_dict()
