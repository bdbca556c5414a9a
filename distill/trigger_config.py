"""Schema of the trigger's event-level evaluation in ``earshot export`` (``trigger.*`` keys).

Torch-free, like every schema, so listing verbs stays fast.
"""
from __future__ import annotations

from dataclasses import dataclass

from shared.config import check

__all__ = ["TriggerEvalConfig", "BUDGET_SCOPES"]

#: What the operating point's false-trigger budget counts (``distill/operating_point.py``).
BUDGET_SCOPES = ("background", "all")


@dataclass
class TriggerEvalConfig:
    """How the trigger is scored as a detector (``distill/trigger_eval.py``).

    Attributes:
        background: a dataset of event-free recordings (``earshot synth
            synth/preset=background``) with val and test splits: val hours pick
            the operating point, test hours give false triggers per hour.
            None: only the labelled recordings' time outside events counts.
        hop_s: the runtime's hop (s): the trigger runs once per hop.
        refractory_s: the refractory hold written into the card.
        fa_per_hour: false-trigger budget per hour of val audio for the
            operating point (below the 5 / h target: a rate this small is
            noisy on a couple of val hours).
        budget_on: what the budget counts (``distill/operating_point.py``):
            ``background`` (val background hours, as the targets count; the
            labelled recordings when there is no background set) or ``all``
            (also wrong-label triggers during other sounds on labelled
            recordings).
        confusions_per_hour: under ``budget_on=background``, the budget of
            false triggers per labelled val hour (mostly wrong labels during
            other sounds); null: unbounded.
        early_fires_per_hour: the early stage's budget (``distill/operating_point.py``,
            `choose_early_stage`): early fires outside events per val background hour; each
            is one audio offload the cloud hears before the trigger is sure. null: no early
            stage (the card has no ``early_thresholds``).
        target_recall, target_fa_per_hour: the targets the report checks.
        max_recordings: per split and dataset; 0 = all (tests use a few).
    """

    background: str | None = None
    hop_s: float = 0.25
    refractory_s: float = 1.0
    fa_per_hour: float = 2.5
    budget_on: str = "background"
    confusions_per_hour: float | None = 60.0
    early_fires_per_hour: float | None = None
    target_recall: float = 0.9
    target_fa_per_hour: float = 5.0
    max_recordings: int = 0

    def __post_init__(self) -> None:
        p = "trigger."
        check(0.05 <= self.hop_s <= 2.0, p + "hop_s", f"must be in [0.05, 2] s, got {self.hop_s}")
        check(0.0 <= self.refractory_s <= 60.0, p + "refractory_s", f"must be in [0, 60] s, got {self.refractory_s}")
        check(0.0 <= self.fa_per_hour <= 1000.0, p + "fa_per_hour", f"must be in [0, 1000], got {self.fa_per_hour}")
        check(self.budget_on in BUDGET_SCOPES, p + "budget_on",
              f"must be one of {BUDGET_SCOPES}, got {self.budget_on!r}")
        check(self.confusions_per_hour is None or 0.0 <= self.confusions_per_hour <= 10000.0,
              p + "confusions_per_hour", f"must be null or in [0, 10000], got {self.confusions_per_hour}")
        check(self.early_fires_per_hour is None or 0.0 <= self.early_fires_per_hour <= 3600.0,
              p + "early_fires_per_hour", f"must be null or in [0, 3600], got {self.early_fires_per_hour}")
        check(0.0 < self.target_recall <= 1.0, p + "target_recall", f"must be in (0, 1], got {self.target_recall}")
        check(self.target_fa_per_hour >= 0.0, p + "target_fa_per_hour", f"must be >= 0, got {self.target_fa_per_hour}")
        check(self.max_recordings >= 0, p + "max_recordings", f"must be >= 0, got {self.max_recordings}")
