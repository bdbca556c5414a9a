"""The trigger's decision rule: per-label thresholds plus a refractory hold.

One definition, used by the Python edge runtime (``edge/runtime.py``), the
trigger metrics (``distill/detection.py``) and, ported line for line, the
native runtime (``edge/native/src/trigger.cpp``). Both numbers come from the
trigger's model card (``thresholds``, ``refractory_s``)::

    hold = TriggerHold(card.labels, card.threshold_vector(), card.refractory_s)
    for t, probs in steps:                 # one call per hop, t in seconds
        held, new = hold.step(t, probs)    # labels held "on", labels triggered now

Rule, per label (``p`` its probability at step ``t``)::

    over = p >= threshold and threshold < 1
    if over:
        if not held: trigger (a new detection); held = True
        last_over = t
    elif held and t - last_over >= refractory_s: held = False

So a label triggers when it goes over its threshold while released, and is
released only after ``refractory_s`` seconds below it: a sound whose score
dips under the threshold for less than that (a beeping timer, a flickering
score at -5 dB) gives one trigger, not one per beep. With ``refractory_s = 0``
the rule is plain rising edges of ``p >= threshold``. A threshold of 1 turns
its label off (the operating point's "off", a camera woken only by some
labels): probabilities never exceed 1, but an int8 program's reach exactly
1.0, so without the exception ``p >= 1`` would still fire on a saturated score. The policies see the
held labels (``Observation.trigger_fired``) and act on their rising edges,
which are exactly the triggers.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = ["TIE_EPS_S", "OFF_THRESHOLD", "TriggerHold", "hold_runs", "over_threshold"]

#: Tolerance on the recording clock: step times are multiples of the hop in float.
TIE_EPS_S = 1e-6
#: A threshold at or above this turns its label off: it never triggers (module docstring).
OFF_THRESHOLD = 1.0


def over_threshold(probs, thresholds) -> np.ndarray:
    """``p >= threshold`` elementwise (broadcast), False where the threshold turns its label off."""
    th = np.asarray(thresholds, np.float64)
    return (np.asarray(probs, np.float64) >= th) & (th < OFF_THRESHOLD)


class TriggerHold:
    """The streaming form of the rule (module docstring): one `step` per hop.

    Args:
        labels: output labels, in output order.
        thresholds: decision threshold per label (same order).
        refractory_s: seconds a label must stay below its threshold before it is released.

    Raises:
        ValueError: lengths differ, or a negative ``refractory_s``.
    """

    def __init__(self, labels: Sequence[str], thresholds: Sequence[float], refractory_s: float = 0.0) -> None:
        if len(labels) != len(thresholds):
            raise ValueError(f"{len(labels)} labels but {len(thresholds)} thresholds")
        if not (math.isfinite(refractory_s) and refractory_s >= 0):
            raise ValueError(f"refractory_s: must be >= 0, got {refractory_s}")
        self.labels = list(labels)
        self.thresholds = np.asarray(thresholds, np.float64)
        self.refractory_s = float(refractory_s)
        self.reset()

    def reset(self) -> None:
        self._held = np.zeros(len(self.labels), bool)
        self._last_over = np.full(len(self.labels), -np.inf)

    def step(self, t_s: float, probs: Sequence[float]) -> tuple[list[str], list[str]]:
        """Advance to step time ``t_s`` with this step's ``probs`` (label order).

        Returns:
            (held labels, labels that triggered at this step), both in label order.
        """
        p = np.asarray(probs, np.float64).reshape(-1)
        over = over_threshold(p, self.thresholds)
        new = over & ~self._held
        released = ~over & self._held & (t_s - self._last_over >= self.refractory_s - TIE_EPS_S)
        self._held = (self._held | new) & ~released
        self._last_over = np.where(over, t_s, self._last_over)
        return ([lab for lab, h in zip(self.labels, self._held) if h],
                [lab for lab, n in zip(self.labels, new) if n])


def hold_runs(probs: np.ndarray, thresholds: np.ndarray, refractory_s: float, hop_s: float) -> tuple[np.ndarray, np.ndarray]:
    """The rule over a whole recording, for many threshold settings at once.

    Args:
        probs: (T, C) probabilities at steps ``t_i = (i + 1) * hop_s``.
        thresholds: (K, C) threshold settings (K candidate operating points).
        refractory_s, hop_s: seconds.

    Returns:
        ``(triggered, held)``: bool (K, T, C) arrays; ``triggered[k, i, c]`` is a
        trigger of label c at step i under setting k (what `TriggerHold.step`
        reports as new), ``held`` the held state after the step.
    """
    probs = np.asarray(probs, np.float64)
    thresholds = np.atleast_2d(np.asarray(thresholds, np.float64))
    k, (n, c) = thresholds.shape[0], probs.shape
    # A release needs this many consecutive steps below the threshold (at least one).
    quiet_steps = max(1, int(math.ceil(refractory_s / hop_s - TIE_EPS_S)))
    over = over_threshold(probs[None, :, :], thresholds[:, None, :])
    triggered = np.zeros((k, n, c), bool)
    held_out = np.zeros((k, n, c), bool)
    held = np.zeros((k, c), bool)
    below = np.zeros((k, c), np.int64)  # consecutive steps below the threshold while held
    for i in range(n):
        o = over[:, i, :]
        new = o & ~held
        below = np.where(o, 0, below + 1)
        released = ~o & held & (below >= quiet_steps)
        held = (held | new) & ~released
        triggered[:, i, :] = new
        held_out[:, i, :] = held
    return triggered, held_out
