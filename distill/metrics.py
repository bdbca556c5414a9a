"""Tag metrics: per-label decision thresholds, macro-F1, confidence AUROC.

Conventions (used by the recipe's validation, ``earshot export`` and the cards):

- A label *counts* in a macro average only where the reference has at least
  one positive window in the split; a label that never occurs has no defined
  recall and would add an arbitrary 0 or 1.
- An optional ``mask`` (N, C) leaves entries out (``distill/data.py``: a
  label that only grazes a window is neither right nor wrong): a masked entry
  is neither a hit, a miss nor a false alarm.
- Thresholds are chosen per label on the validation split: the value in
  `THRESHOLD_GRID` that maximises that label's F1 against the reference,
  ties to the value nearest 0.5; a label with no positive window in val keeps
  `DEFAULT_THRESHOLD`.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["DEFAULT_THRESHOLD", "THRESHOLD_GRID", "f1_per_label", "macro_f1", "choose_thresholds", "auroc"]

DEFAULT_THRESHOLD = 0.5
THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.025), 4)


def f1_per_label(decisions: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """F1 of each column of 0/1 ``decisions`` (N, C) against 0/1 ``reference`` over the
    entries ``mask`` keeps; NaN where the reference has no (kept) positive."""
    d, r = decisions.astype(bool), reference.astype(bool)
    if mask is not None:
        keep = np.asarray(mask) > 0.5
        d, r = d & keep, r & keep
    tp = (d & r).sum(0).astype(np.float64)
    fp = (d & ~r).sum(0)
    fn = (~d & r).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = 2 * tp / (2 * tp + fp + fn)
    return np.where(r.sum(0) > 0, f1, np.nan)


def macro_f1(probs: np.ndarray, reference: np.ndarray, thresholds: Sequence[float] | np.ndarray,
             mask: np.ndarray | None = None) -> float:
    """Mean F1 over labels with a positive in ``reference`` (NaN if there is none)."""
    f1 = f1_per_label(probs >= np.asarray(thresholds)[None, :], reference, mask)
    return float(np.nanmean(f1)) if np.isfinite(f1).any() else float("nan")


def choose_thresholds(probs: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Per-label F1-maximising thresholds on a validation split (module docstring)."""
    out = np.full(probs.shape[1], DEFAULT_THRESHOLD)
    keep = np.ones(reference.shape, bool) if mask is None else np.asarray(mask) > 0.5
    r = reference.astype(bool) & keep
    for c in range(probs.shape[1]):
        if not r[:, c].any():
            continue
        n = len(THRESHOLD_GRID)
        f1 = f1_per_label(probs[:, c : c + 1] >= THRESHOLD_GRID[None, :], np.repeat(r[:, c : c + 1], n, 1),
                          np.repeat(keep[:, c : c + 1], n, 1))
        best = np.nanmax(f1)
        ties = THRESHOLD_GRID[np.isclose(f1, best)]
        out[c] = float(ties[np.argmin(np.abs(ties - DEFAULT_THRESHOLD))])
    return out


def auroc(scores: np.ndarray, targets: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted half); NaN if one class is missing."""
    scores, targets = np.asarray(scores, np.float64), np.asarray(targets).astype(bool)
    n_pos, n_neg = int(targets.sum()), int((~targets).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = 0.5 * (i + j) + 1.0
        i = j + 1
    return float((ranks[targets].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
