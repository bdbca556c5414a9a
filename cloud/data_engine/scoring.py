"""Exact scoring of predictions against QA records (no judge model).

Every score is in [0, 1] and depends only on the record's ``answer_type``;
predictions go through ``records.normalize_answer`` first (lower case,
trimmed, quotes and a trailing full stop dropped; names with spaces or
hyphens become snake_case), so ``"Timer beep."`` matches ``timer_beep``.

=============  ==============================================================
answer_type    score
=============  ==============================================================
``label``      1 if the normalised prediction equals the answer, else 0
``yes_no``     1 if the prediction's first word is the answer (``yes``/``no``)
``sequence``   1 if the normalised item list equals the answer (order matters)
``dense``      F1 over ``(second, label)`` items (AVDN): a predicted item
               matches an unmatched gold item with the same label whose second
               differs by at most :data:`DENSE_TOLERANCE_S` (one-to-one,
               greedy in time order, which is optimal on a line); an item
               that does not parse as ``<int>s <label>`` counts as a wrong
               prediction; ``none`` is the empty list; two empty lists -> 1
``summary``    mean of three parts (AVSN): environment exact (0/1), F1 of the
               ``heard`` label set, F1 of the ``did`` label set; a part that is
               missing from the prediction scores 0; F1 of two empty sets is 1
=============  ==============================================================

:func:`aggregate` averages per category; a record without a prediction
scores 0.
"""
from __future__ import annotations

from typing import Mapping, Sequence

from cloud.data_engine.records import CATEGORIES, QARecord, RecordError, normalize_answer, parse_dense, parse_summary

__all__ = ["DENSE_TOLERANCE_S", "score", "score_answer", "aggregate", "aggregate_by"]

#: Dense stamps are whole seconds rounded from the onset, so a prediction one
#: second off is still the same event.
DENSE_TOLERANCE_S = 1


def _f1(n_match: int, n_gold: int, n_pred: int) -> float:
    if n_gold == 0 and n_pred == 0:
        return 1.0
    if n_gold == 0 or n_pred == 0:
        return 0.0
    return 2.0 * n_match / (n_gold + n_pred)


def _dense(gold: str, pred: str) -> float:
    g_items, _ = parse_dense(gold)
    p_items, bad = parse_dense(pred)
    unmatched = sorted(p_items)
    matches = 0
    for t, label in sorted(g_items):
        for i, (pt, pl) in enumerate(unmatched):
            if pl == label and abs(pt - t) <= DENSE_TOLERANCE_S:
                del unmatched[i]
                matches += 1
                break
    return _f1(matches, len(g_items), len(p_items) + bad)


def _set_f1(gold: list[str], pred: list[str] | None) -> float:
    if pred is None:
        return 0.0
    g, p = set(gold), set(pred)
    return _f1(len(g & p), len(g), len(p))


def _summary(gold: str, pred: str) -> float:
    g, p = parse_summary(gold), parse_summary(pred)
    env = 1.0 if p["environment"] is not None and p["environment"] == g["environment"] else 0.0
    return (env + _set_f1(g["heard"], p["heard"]) + _set_f1(g["did"], p["did"])) / 3.0


def score_answer(answer_type: str, gold: str, prediction: str | None) -> float:
    """Score one prediction against a gold answer of ``answer_type`` (see the table)."""
    if prediction is None:
        return 0.0
    if answer_type == "dense":
        return _dense(gold, prediction)
    if answer_type == "summary":
        return _summary(gold, prediction)
    return 1.0 if normalize_answer(prediction, answer_type) == gold else 0.0


def score(record: QARecord, prediction: str | None) -> float:
    """Score of ``prediction`` for ``record``, in [0, 1]."""
    return score_answer(record.answer_type, record.answer, prediction)


def _predictions(records: Sequence[QARecord], predictions: Mapping[str, str] | Sequence[str]) -> list[str | None]:
    if isinstance(predictions, Mapping):
        return [predictions.get(r.id) for r in records]
    if len(predictions) != len(records):
        raise RecordError(f"predictions: {len(predictions)} given for {len(records)} records")
    return list(predictions)


def aggregate_by(records: Sequence[QARecord], predictions: Mapping[str, str] | Sequence[str],
                 key) -> dict[str, float]:
    """Mean score per ``key(record)`` (e.g. ``lambda r: r.meta["noise"]``), keys sorted."""
    sums: dict[str, list[float]] = {}
    for r, p in zip(records, _predictions(records, predictions)):
        sums.setdefault(str(key(r)), []).append(score(r, p))
    return {k: sum(v) / len(v) for k, v in sorted(sums.items())}


def aggregate(records: Sequence[QARecord], predictions: Mapping[str, str] | Sequence[str]) -> dict[str, float]:
    """Accuracy (mean score) per category, in ``CATEGORIES`` order, for the
    categories present. ``predictions`` maps record id -> text, or is a list
    aligned with ``records``; a missing prediction scores 0."""
    per = aggregate_by(records, predictions, lambda r: r.category)
    return {c: per[c] for c in CATEGORIES if c in per}
