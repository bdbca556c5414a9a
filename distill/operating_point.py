"""The trigger's operating point, chosen on validation recordings only.

Per-label thresholds that buy the most detected events for a false-trigger
budget (``fa_per_hour``, false triggers per hour of validation audio), found
by a greedy exchange over a threshold grid. What the budget counts is
``budget_on``:

- ``"background"`` (when there are background recordings): triggers on the
  val background hours, which is how the targets count false triggers
  (each scene's noise at its level, no sound event). The labelled
  recordings' false triggers are mostly *confusions*: a wrong label during
  another sound (a timer's beep taken for the alarm ringing with it). They
  still wake the camera for a real sound, but they put wrong labels in the
  device's memory, so they get their own, looser budget
  (``confusions_per_hour`` per labelled val hour); left unbounded, the
  greedy exchange below drops a label's threshold to 0.05 for one more
  event at dozens of confusions. Both are reported on test
  (``fa_per_hour_background``, ``fa_per_hour_labelled``);
- ``"all"``: background hours plus the labelled recordings' time outside
  events of each label (wrong-label triggers during other sounds included):
  a stricter budget that buys fewer events.

The greedy exchange:

1. every label starts *off* (threshold 1: no trigger, no false trigger);
2. repeatedly, over every label and every lower grid threshold, take the move
   with the most newly detected val events per added false trigger
   (``gain / (added_false + 1)``; ties go to the higher threshold) that keeps
   the total within the budget;
3. stop when no move detects one more event within the budget.

A single threshold shared by every label is chosen on the same data (the
lowest one within the budget) as the control: per-label thresholds are kept
only where they help, i.e. the card gets the per-label setting when it
detects more val events, else the single threshold. A label with no val
event gets the median of the others' thresholds (no evidence either way).

The DET curve shifts every chosen threshold by the same amount in logit space
(`shifted`), so it passes through the operating point.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from distill.detection import TriggerStream, score_streams
from distill.trigger_config import BUDGET_SCOPES
from shared.trigger import OFF_THRESHOLD

__all__ = ["THRESHOLD_GRID", "OperatingPoint", "choose_operating_point", "shifted", "DET_SHIFTS", "EARLY_SHIFTS",
           "EarlyStage", "choose_early_stage"]

#: Candidate thresholds: fine near 1, where a low false-trigger budget puts them (a trigger
#: trained with ``pos_weight`` > 1 is confident: its operating points sit above 0.999).
THRESHOLD_GRID = np.unique(np.round(np.concatenate([
    np.arange(0.05, 0.90, 0.05), np.arange(0.90, 0.99, 0.01), [0.992, 0.995, 0.997, 0.998, 0.999],
    [0.9995, 0.9998, 0.9999, 0.99995, 0.99998, 0.99999]]), 6))
#: Logit shifts of the DET curve (negative: more triggers).
DET_SHIFTS = np.round(np.linspace(-8.0, 8.0, 33), 3)


@dataclass
class OperatingPoint:
    """What `choose_operating_point` decided, with its val figures.

    Attributes:
        thresholds: per label, in label order (what the card gets).
        rule: ``"per_label"`` or ``"single"``.
        single_threshold: the control's shared threshold.
        val_detected, val_events: events detected / present on val (chosen setting).
        val_false, val_hours: false triggers and hours of val audio the budget counts (chosen setting).
        single_detected, single_false: the control's val figures.
        fa_per_hour_budget, budget_on: the budget and what it counted (``BUDGET_SCOPES``).
        confusions_per_hour_budget, val_confusions, val_labelled_hours: under ``background``,
            the labelled recordings' own budget, their false triggers and hours (chosen setting).
    """

    thresholds: list[float]
    rule: str
    single_threshold: float
    val_detected: int
    val_events: int
    val_false: int
    val_hours: float
    single_detected: int
    single_false: int
    fa_per_hour_budget: float
    budget_on: str = "all"
    confusions_per_hour_budget: float | None = None
    val_confusions: int = 0
    val_labelled_hours: float = 0.0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _tables(streams: list[TriggerStream], n_labels: int, refractory_s: float, hop_s: float, audio_s: float,
            counts_false=lambda s: True):
    """(tp, fa, other) int arrays (K, C) over the grid, summed over recordings, and events per
    label: ``fa`` the false triggers of the recordings ``counts_false`` picks, ``other`` those of
    the rest."""
    grid = np.tile(THRESHOLD_GRID[:, None], (1, n_labels))
    scores = score_streams(streams, grid, refractory_s, hop_s, audio_s)
    tp = np.zeros(grid.shape, np.int64)
    n_events = np.zeros(n_labels, np.int64)
    for s, d in zip(scores.streams, scores.detected):
        for c in range(n_labels):
            mask = s.events[:, 0] == c
            tp[:, c] += d[:, mask].sum(axis=1)
            n_events[c] += int(mask.sum())
    keep = np.asarray([bool(counts_false(s)) for s in scores.streams], bool)
    return tp, scores.false[keep].sum(axis=0), scores.false[~keep].sum(axis=0), n_events


def choose_operating_point(streams: Sequence[TriggerStream], n_labels: int, *, refractory_s: float, hop_s: float,
                           audio_s: float, fa_per_hour: float, budget_on: str = "all",
                           confusions_per_hour: float | None = None) -> OperatingPoint:
    """Per-label thresholds within ``fa_per_hour`` on the val ``streams`` (module docstring).

    ``budget_on="background"`` counts false triggers and hours on the background streams only
    (all streams when there are none: then ``budget_on`` in the result says ``"all"``); the
    labelled recordings' false triggers (confusions) then have their own budget,
    ``confusions_per_hour`` per labelled val hour (None: unbounded).

    Raises:
        ValueError: no val audio, or an unknown ``budget_on``.
    """
    if budget_on not in BUDGET_SCOPES:
        raise ValueError(f"budget_on must be one of {BUDGET_SCOPES}, got {budget_on!r}")
    streams = list(streams)
    if budget_on == "background" and not any(s.background for s in streams):
        budget_on = "all"
    counts_false = (lambda s: s.background) if budget_on == "background" else (lambda s: True)
    hours = sum(s.hours for s in streams if counts_false(s))
    if hours <= 0:
        raise ValueError("no validation audio to choose an operating point on")
    budget = fa_per_hour * hours
    other_hours = sum(s.hours for s in streams if not counts_false(s))
    other_budget = np.inf if confusions_per_hour is None or budget_on == "all" else confusions_per_hour * other_hours
    tp, fa, other, n_events = _tables(streams, n_labels, refractory_s, hop_s, audio_s, counts_false)
    grid = THRESHOLD_GRID

    # The control: one threshold for all labels, the lowest within the budgets.
    fits = np.flatnonzero((fa.sum(axis=1) <= budget) & (other.sum(axis=1) <= other_budget))
    k_single = len(grid) - 1
    if len(fits):  # most detections; among equals, the highest threshold
        best = tp[fits].sum(axis=1).max()
        k_single = int(max(k for k in fits if tp[k].sum() == best))

    # Greedy exchange (module docstring). choice[c] = grid index, or None for off.
    choice: list[int | None] = [None] * n_labels
    used, used_other = 0, 0
    while True:
        best_move, best_eff = None, 0.0
        for c in range(n_labels):
            tp0 = 0 if choice[c] is None else tp[choice[c], c]
            fa0 = 0 if choice[c] is None else fa[choice[c], c]
            ot0 = 0 if choice[c] is None else other[choice[c], c]
            top = len(grid) if choice[c] is None else choice[c]
            for k in range(top - 1, -1, -1):  # lower thresholds, highest first
                gain, cost, cost_other = tp[k, c] - tp0, fa[k, c] - fa0, other[k, c] - ot0
                if gain <= 0 or used + cost > budget or used_other + cost_other > other_budget:
                    continue
                eff = gain / (max(cost, 0) + max(cost_other, 0) + 1.0)
                if eff > best_eff + 1e-12:
                    best_move, best_eff = (c, k, cost, cost_other), eff
        if best_move is None:
            break
        c, k, cost, cost_other = best_move
        choice[c] = k
        used += cost
        used_other += cost_other
    per_label = np.array([OFF_THRESHOLD if k is None else grid[k] for k in choice])
    seen = n_events > 0
    chosen = [k for k, s in zip(choice, seen) if s and k is not None]
    if chosen:  # labels without val evidence: the median of the others
        per_label[~seen] = float(np.median(grid[chosen]))
    det_per = int(sum(tp[k, c] for c, k in enumerate(choice) if k is not None))
    fa_per = int(sum(fa[k, c] for c, k in enumerate(choice) if k is not None))
    det_single, fa_single = int(tp[k_single].sum()), int(fa[k_single].sum())
    if det_per > det_single:
        thresholds, rule, det, false = per_label, "per_label", det_per, fa_per
        conf = int(sum(other[k, c] for c, k in enumerate(choice) if k is not None))
    else:
        thresholds, rule, det, false = np.full(n_labels, grid[k_single]), "single", det_single, fa_single
        conf = int(other[k_single].sum())
    return OperatingPoint([round(float(x), 6) for x in thresholds], rule, float(grid[k_single]), det,
                          int(n_events.sum()), false, hours, det_single, fa_single, fa_per_hour, budget_on,
                          None if budget_on == "all" else confusions_per_hour, conf, other_hours)


def shifted(thresholds: Sequence[float], shifts: Sequence[float] = DET_SHIFTS) -> np.ndarray:
    """(len(shifts), C) thresholds moved by each logit shift; 1 (off) stays off."""
    th = np.clip(np.asarray(thresholds, np.float64), 1e-6, 1.0)
    with np.errstate(divide="ignore"):
        logit = np.log(th) - np.log1p(-th)
    out = 1.0 / (1.0 + np.exp(-(logit[None, :] + np.asarray(shifts)[:, None])))
    out[:, th >= 1.0] = 1.0
    return out


#: Logit shifts tried for the early stage, from none (0) to far below the operating point.
EARLY_SHIFTS = np.round(np.arange(0.0, -8.001, -0.25), 3)


@dataclass
class EarlyStage:
    """The early stage `choose_early_stage` chose on val, with its val figures.

    Attributes:
        shift: logit shift of every operating-point threshold (<= 0; 0: fires with the trigger).
        thresholds: per label, in label order (the card's ``early_thresholds``).
        fires_per_hour_budget: the val budget (early fires per background hour outside events).
        val_fires_per_hour: background fires per hour outside events at the chosen shift.
        val_labelled_fires_per_hour: the same on the labelled val recordings (wrong labels during
            other sounds, and sounds before the trigger's window reaches them).
    """

    shift: float
    thresholds: list[float]
    fires_per_hour_budget: float
    val_fires_per_hour: float
    val_labelled_fires_per_hour: float

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def choose_early_stage(streams: Sequence[TriggerStream], thresholds: Sequence[float], *, refractory_s: float,
                       hop_s: float, audio_s: float, fires_per_hour: float) -> EarlyStage:
    """The lowest early thresholds (one logit shift of every operating-point threshold) whose
    val fires outside events stay within ``fires_per_hour`` per background hour (the labelled
    recordings outside events when there is no background).

    Every early fire is an offload of audio the cloud hears, so the budget is a request rate:
    a false early fire costs one request, not a camera wake-up. Labels off at the operating
    point (threshold 1) stay off.
    """
    streams = list(streams)
    has_bg = any(s.background for s in streams)
    counts = (lambda s: s.background) if has_bg else (lambda s: True)
    hours = sum(s.hours for s in streams if counts(s))
    lab_hours = sum(s.hours for s in streams if not s.background)
    if hours <= 0:
        raise ValueError("choose_early_stage: no val audio to count early fires on")
    settings = shifted(thresholds, EARLY_SHIFTS)
    sc = score_streams(streams, settings, refractory_s, hop_s, audio_s)
    keep = np.asarray([bool(counts(s)) for s in sc.streams], bool)
    lab = np.asarray([not s.background for s in sc.streams], bool)
    rate = sc.false[keep].sum(axis=(0, 2)) / hours
    lab_rate = sc.false[lab].sum(axis=(0, 2)) / lab_hours if lab_hours > 0 else np.zeros(len(EARLY_SHIFTS))
    over = np.flatnonzero(rate > fires_per_hour + 1e-9)
    # shifts go down from 0: take the last one before the budget is first exceeded (0 if at once)
    k = max(int(over[0]) - 1, 0) if len(over) else len(EARLY_SHIFTS) - 1
    return EarlyStage(float(EARLY_SHIFTS[k]), [float(x) for x in settings[k]], float(fires_per_hour),
                      float(rate[k]), float(lab_rate[k]))
