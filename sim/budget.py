"""What the device may spend and what the agent is paid for: the budgets and reward weights of
``earshot/Offload-v0`` (``sim/env.py``; their config schemas are ``sim.config.BudgetConfig`` and
``sim.config.RewardConfig``)."""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Budget", "RewardWeights"]


@dataclass(frozen=True)
class Budget:
    """What the device may spend.

    Attributes:
        power_cap_mw: sustained-power limit; when the moving average of power
            (``EnergyMeter.avg_power_mw``, time constant ``thermal_window_s`` of the
            device) is over it at the start of a step, the step is throttled. ``0``:
            the device profile's ``sustained_power_mw``.
        energy_budget_j: energy the episode may spend; the episode ends (terminated)
            once it is spent. ``0``: no budget (the battery still ends it when empty).
        deadline_ms: latency deadline of an answer to a query.
        compute_gmacs_per_s: on-device compute rate; a student call that does not fit
            in a hop next to the trigger is skipped. ``0``: unlimited.
        max_in_flight: cloud requests in flight; an offload beyond it is refused.
        uplink_kbps: token-bucket rate of the uplink (kbit/s of request bytes); an
            offload larger than the tokens left is refused. ``0``: no bucket.
        uplink_burst_kb: the bucket's size (kB), full at the start of the day.
    """

    power_cap_mw: float = 0.0
    energy_budget_j: float = 0.0
    deadline_ms: float = 800.0
    compute_gmacs_per_s: float = 0.0
    max_in_flight: int = 4
    uplink_kbps: float = 0.0
    uplink_burst_kb: float = 1000.0


@dataclass(frozen=True)
class RewardWeights:
    """Reward = successes minus costs, per step (see :class:`OffloadEnv`)."""

    query_correct: float = 1.0  # per query answered correctly (the cloud in time, or the device)
    event_notified: float = 1.0  # per important event the trigger alone would miss, notified in time
    event_missed: float = 0.0  # per important event whose window closes undetected
    energy_per_j: float = 0.3  # per joule (steps and the idle gaps)
    deadline_miss: float = 0.5  # per offloaded query the cloud did not answer in time (it fell back)
    throttle: float = 0.1  # per throttled step
    battery_empty: float = 1.0  # per query of the day left unasked when the battery runs out
