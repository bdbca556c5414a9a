"""Statistics every Earshot figure is reported with: recording-level
bootstrap intervals and paired comparisons.

Questions, queries and events from one recording are not independent (the
same scene, noise level and layout), so every interval resamples *recordings*
with replacement and recomputes the figure from all the items of the drawn
recordings (a cluster bootstrap). A comparison of two systems on the same
items resamples the same recordings for both (paired), and its interval is
the interval of the difference; a claim holds when that interval excludes 0.

Torch-free and numpy-only, so every part (cloud, sim, distill, scripts) may
use it.

    >>> ci = bootstrap_mean([1, 0, 1, 1], groups=["a", "a", "b", "b"], seed=0)
    >>> ci.value, ci.n, ci.n_groups
    (0.75, 4, 2)
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Hashable, Sequence

import numpy as np

__all__ = [
    "DEFAULT_RESAMPLES",
    "Interval",
    "bootstrap_mean",
    "bootstrap_ratio",
    "bootstrap_quantile",
    "paired_quantile_difference",
    "paired_difference",
    "paired_ratio",
    "group_index",
    "format_interval",
]

#: Resamples per interval: 2000 keeps the 2.5/97.5 percentiles within about
#: 0.3 points of their limit for the bench sizes here, in milliseconds.
DEFAULT_RESAMPLES = 2000
_CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """A figure with its 95% bootstrap interval.

    Attributes:
        value: the figure on the full sample.
        lo, hi: the 2.5th and 97.5th percentiles over the resamples
            (percentile method); equal to ``value`` when there is only one group.
        n: items (questions, pairs, queries) behind the figure.
        n_groups: recordings behind the figure (the resampled unit).
        p_value: for a paired difference, a two-sided bootstrap p-value of
            "no difference" (share of resampled differences on the other
            side of 0, doubled, at most 1); None for a plain figure.
    """

    value: float
    lo: float
    hi: float
    n: int
    n_groups: int
    p_value: float | None = None

    @property
    def excludes_zero(self) -> bool:
        return self.lo > 0.0 or self.hi < 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Interval":
        return cls(**d)


def group_index(groups: Sequence[Hashable]) -> tuple[np.ndarray, int]:
    """Dense group ids (n,) in first-seen order and the number of groups."""
    ids: dict[Hashable, int] = {}
    out = np.fromiter((ids.setdefault(g, len(ids)) for g in groups), dtype=np.int64, count=len(groups))
    return out, len(ids)


def _resample_weights(n_groups: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n_groups) counts: how often each group is drawn."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_groups, size=(resamples, n_groups))
    w = np.zeros((resamples, n_groups), np.float64)
    np.add.at(w, (np.repeat(np.arange(resamples), n_groups), draws.ravel()), 1.0)
    return w


def _group_sums(values: np.ndarray, gid: np.ndarray, n_groups: int) -> np.ndarray:
    return np.bincount(gid, weights=values, minlength=n_groups)


def _percentiles(samples: np.ndarray) -> tuple[float, float]:
    a = (1.0 - _CONFIDENCE) / 2.0
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(samples, [a, 1.0 - a])
    return float(lo), float(hi)


def bootstrap_ratio(
    numerators: Sequence[float],
    denominators: Sequence[float],
    groups: Sequence[Hashable],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """sum(num) / sum(den) with a recording-level bootstrap interval.

    The general form: a mean is num = value, den = 1; a rate per hour is
    num = count, den = hours. Items with den 0 contribute to the numerator only.

    Raises:
        ValueError: lengths differ, or nothing to average.
    """
    num, den = np.asarray(numerators, np.float64), np.asarray(denominators, np.float64)
    if not (len(num) == len(den) == len(groups)):
        raise ValueError(f"lengths differ: {len(num)} numerators, {len(den)} denominators, {len(groups)} groups")
    if len(num) == 0 or den.sum() <= 0:
        raise ValueError("nothing to average: no items, or every denominator is 0")
    gid, k = group_index(groups)
    gn, gd = _group_sums(num, gid, k), _group_sums(den, gid, k)
    value = float(gn.sum() / gd.sum())
    if k < 2:
        return Interval(value, value, value, len(num), k)
    w = _resample_weights(k, resamples, seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        samples = (w @ gn) / (w @ gd)
    lo, hi = _percentiles(samples)
    return Interval(value, lo, hi, len(num), k)


def bootstrap_mean(
    values: Sequence[float],
    groups: Sequence[Hashable],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """Mean of per-item ``values`` (e.g. 0/1 correct) with a recording-level interval."""
    return bootstrap_ratio(values, np.ones(len(values)), groups, resamples=resamples, seed=seed)


def _paired_arrays(treatment, baseline, groups) -> tuple[np.ndarray, np.ndarray]:
    """Both systems' per-item values as float arrays, checked to be the same items."""
    t, b = np.asarray(treatment, np.float64), np.asarray(baseline, np.float64)
    if not (len(t) == len(b) == len(groups)):
        raise ValueError(f"lengths differ: {len(t)} treatment, {len(b)} baseline, {len(groups)} groups")
    if len(t) == 0:
        raise ValueError("no items to compare")
    return t, b


def _two_sided_p(samples: np.ndarray) -> float:
    """Bootstrap p-value of a zero difference: the share of samples on the other side of 0, doubled."""
    return min(1.0, 2.0 * min(float(np.mean(samples <= 0.0)), float(np.mean(samples >= 0.0))))


def _resampled_quantiles(arrays: Sequence[np.ndarray], gid: np.ndarray, k: int, q: float, resamples: int,
                         seed: int) -> np.ndarray:
    """(resamples, len(arrays)): the ``q`` quantile of each array's items over the same drawn recordings."""
    rng = np.random.default_rng(seed)
    members = [[a[gid == g] for g in range(k)] for a in arrays]
    out = np.empty((resamples, len(arrays)))
    for r in range(resamples):
        draw = rng.integers(0, k, k)
        for j, m in enumerate(members):
            out[r, j] = np.quantile(np.concatenate([m[g] for g in draw]), q)
    return out


def bootstrap_quantile(
    values: Sequence[float],
    groups: Sequence[Hashable],
    q: float,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """The ``q`` quantile (0.95: p95) of per-item ``values`` with a recording-level interval.

    Each resample draws recordings with replacement and takes the quantile of all
    their items, so a recording with many slow items moves the interval as it should.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q: must be in [0, 1], got {q}")
    v = np.asarray(values, np.float64)
    if len(v) != len(groups):
        raise ValueError(f"{len(v)} values but {len(groups)} groups")
    if not len(v):
        raise ValueError("bootstrap_quantile: no values")
    gid, k = group_index(groups)
    value = float(np.quantile(v, q))
    if k < 2:
        return Interval(value, value, value, len(v), k)
    lo, hi = _percentiles(_resampled_quantiles([v], gid, k, q, resamples, seed)[:, 0])
    return Interval(value, lo, hi, len(v), k)


def paired_quantile_difference(
    treatment: Sequence[float],
    baseline: Sequence[float],
    groups: Sequence[Hashable],
    q: float,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """quantile_q(treatment) - quantile_q(baseline) on the same items, paired by recording
    (each resample draws recordings once for both); ``p_value`` as `paired_difference`."""
    t, b = _paired_arrays(treatment, baseline, groups)
    gid, k = group_index(groups)
    value = float(np.quantile(t, q) - np.quantile(b, q))
    if k < 2:
        return Interval(value, value, value, len(t), k, p_value=1.0 if value == 0 else float("nan"))
    both = _resampled_quantiles([t, b], gid, k, q, resamples, seed)
    samples = both[:, 0] - both[:, 1]
    lo, hi = _percentiles(samples)
    return Interval(value, lo, hi, len(t), k, p_value=_two_sided_p(samples))


def paired_difference(
    treatment: Sequence[float],
    baseline: Sequence[float],
    groups: Sequence[Hashable],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """mean(treatment) - mean(baseline) on the same items, paired by recording.

    Both systems are scored on the same items (same order); each resample
    draws recordings once and uses them for both, so recording-to-recording
    variation cancels. ``p_value`` is the two-sided bootstrap p-value of a
    zero difference.

    Raises:
        ValueError: lengths differ or no items.
    """
    t, b = _paired_arrays(treatment, baseline, groups)
    gid, k = group_index(groups)
    gt, gb, gc = _group_sums(t, gid, k), _group_sums(b, gid, k), np.bincount(gid, minlength=k).astype(np.float64)
    value = float((gt.sum() - gb.sum()) / gc.sum())
    if k < 2:
        return Interval(value, value, value, len(t), k, p_value=1.0 if value == 0 else float("nan"))
    w = _resample_weights(k, resamples, seed)
    samples = (w @ (gt - gb)) / (w @ gc)
    lo, hi = _percentiles(samples)
    return Interval(value, lo, hi, len(t), k, p_value=_two_sided_p(samples))


def paired_ratio(
    numerators_a: Sequence[float],
    denominators_a: Sequence[float],
    groups_a: Sequence[Hashable],
    numerators_b: Sequence[float],
    denominators_b: Sequence[float],
    groups_b: Sequence[Hashable],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """(sum num_a / sum den_a) / (sum num_b / sum den_b), both resampled by the same recordings.

    For "A reaches x% of B's success" or "A spends y% of B's energy": the two
    systems may have different items (episodes that ended at different
    times), but each resample draws recordings once and recomputes both
    ratios from the items of those recordings, so what the recordings share
    cancels. Groups missing from one side contribute nothing to it.

    Raises:
        ValueError: lengths differ, or either side has nothing to average.
    """
    na, da = np.asarray(numerators_a, np.float64), np.asarray(denominators_a, np.float64)
    nb, db = np.asarray(numerators_b, np.float64), np.asarray(denominators_b, np.float64)
    if not (len(na) == len(da) == len(groups_a)) or not (len(nb) == len(db) == len(groups_b)):
        raise ValueError("lengths differ between numerators, denominators and groups")
    if da.sum() <= 0 or db.sum() <= 0 or nb.sum() == 0:
        raise ValueError("nothing to compare: a side with no items, every denominator 0, or a zero baseline")
    gid, k = group_index(list(groups_a) + list(groups_b))
    ga, gb = gid[: len(na)], gid[len(na):]
    sa_n, sa_d = _group_sums(na, ga, k), _group_sums(da, ga, k)
    sb_n, sb_d = _group_sums(nb, gb, k), _group_sums(db, gb, k)
    value = float((sa_n.sum() / sa_d.sum()) / (sb_n.sum() / sb_d.sum()))
    if k < 2:
        return Interval(value, value, value, len(na) + len(nb), k)
    w = _resample_weights(k, resamples, seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        samples = ((w @ sa_n) / (w @ sa_d)) / ((w @ sb_n) / (w @ sb_d))
    lo, hi = _percentiles(samples)
    return Interval(value, lo, hi, len(na) + len(nb), k)


def format_interval(iv: Interval | dict[str, Any] | None, *, scale: float = 100.0, digits: int = 1,
                    signed: bool = False) -> str:
    """``62.5 [55.1, 69.8]`` (scaled, e.g. to percent); ``-`` for None or NaN."""
    if iv is None:
        return "-"
    if isinstance(iv, dict):
        iv = Interval.from_dict(iv)
    if not math.isfinite(iv.value):
        return "-"
    fmt = f"{{:{'+' if signed else ''}.{digits}f}}"
    v = fmt.format(scale * iv.value)
    if not (math.isfinite(iv.lo) and math.isfinite(iv.hi)) or iv.n_groups < 2:
        return v
    return f"{v} [{fmt.format(scale * iv.lo)}, {fmt.format(scale * iv.hi)}]"
