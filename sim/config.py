"""Schemas of ``earshot sim train`` and ``earshot sim eval`` (``configs/sim_*.yaml``).

Plain builder functions turn them into objects (:func:`make_env_kwargs`); the
environment itself takes plain arguments. The device and network profiles are
Hydra groups (``device=glasses_2025 network=bluetooth``) whose YAML is the
profile itself (``configs/device/``, ``configs/network/``); the composed
profile is written next to the run's outputs and loaded from there, so an
override such as ``network.rtt_ms.value=120`` is validated by
``shared.profiles`` like any profile file.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.config import TrackingConfig, check, check_choice, check_range, check_threads

__all__ = [
    "EnvConfig", "BudgetConfig", "RewardConfig", "PPOConfig", "PolicySpec", "BudgetGrid",
    "SimTrainConfig", "SimEvalConfig", "make_env_kwargs", "write_profiles",
]

_IMPORTANT = ["alarm", "timer_beep", "doorbell", "car_horn", "phone_ring", "knock", "kettle_whistle", "microwave_beep"]


@dataclass
class EnvConfig:
    """What the environment replays and how it models the world around the traces."""

    traces: str = "traces"  # folder of <recording_id>.jsonl from 'earshot trace'
    split: str = "all"  # train | val | test (the dataset manifest's, recorded in each trace) | all
    recordings: list[str] = field(default_factory=list)  # empty: every trace of the split
    notify_s: float = 3.0
    important_labels: list[str] = field(default_factory=lambda: list(_IMPORTANT))
    cloud_tag_threshold: float = 0.5
    cloud_utilization: float = 0.3
    rate_corr: float = 0.9
    outage_every_s: float = 0.0
    outage_mean_s: float = 2.0
    bandwidth_trace: str | None = None
    battery_start_frac: list[float] = field(default_factory=lambda: [1.0, 1.0])
    day_h: float = 12.0
    active_share: float = 0.1

    def __post_init__(self) -> None:
        p = "env."
        check(bool(str(self.traces).strip()), p + "traces", "must name a folder of traces ('earshot trace')")
        check_choice(p + "split", self.split, ("train", "val", "test", "all"))
        check_range(p + "day_h", self.day_h, 0.01, 48.0, unit="h")
        check_range(p + "active_share", self.active_share, 0.0, 1.0, lo_open=True)
        check_range(p + "notify_s", self.notify_s, 0.0, 60.0, lo_open=True, unit="s")
        from shared.labels import names

        audio = set(names("audio_event"))
        bad = [l for l in self.important_labels if l not in audio]
        check(not bad, p + "important_labels", f"unknown audio_event labels {bad}")
        check_range(p + "cloud_tag_threshold", self.cloud_tag_threshold, 0.0, 1.0)
        check_range(p + "cloud_utilization", self.cloud_utilization, 0.0, 0.95)
        check_range(p + "rate_corr", self.rate_corr, 0.0, 1.0, hi_open=True)
        check_range(p + "outage_every_s", self.outage_every_s, 0.0, note="0 = no outages")
        check_range(p + "outage_mean_s", self.outage_mean_s, 0.0, lo_open=True)
        b = self.battery_start_frac
        check(len(b) == 2 and 0.0 < b[0] <= b[1] <= 1.0, p + "battery_start_frac", f"must be [low, high] with 0 < low <= high <= 1, got {b}")


@dataclass
class BudgetConfig:
    """Budgets (``sim.budget.Budget``): 0 means 'the device's limit' or 'none'."""

    power_cap_mw: float = 0.0
    energy_budget_j: float = 0.0
    deadline_ms: float = 800.0
    compute_gmacs_per_s: float = 0.0
    max_in_flight: int = 4
    uplink_kbps: float = 0.0
    uplink_burst_kb: float = 1000.0

    def __post_init__(self) -> None:
        p = "budget."
        check_range(p + "power_cap_mw", self.power_cap_mw, 0.0, note="0 = the device's sustained limit")
        check_range(p + "energy_budget_j", self.energy_budget_j, 0.0, note="0 = none")
        check_range(p + "deadline_ms", self.deadline_ms, 0.0, lo_open=True)
        check_range(p + "compute_gmacs_per_s", self.compute_gmacs_per_s, 0.0, note="0 = unlimited")
        check_range(p + "max_in_flight", self.max_in_flight, 1)
        check_range(p + "uplink_kbps", self.uplink_kbps, 0.0, note="0 = no token bucket")
        check_range(p + "uplink_burst_kb", self.uplink_burst_kb, 0.0, lo_open=True)


@dataclass
class RewardConfig:
    """Reward weights (``sim.budget.RewardWeights``)."""

    query_correct: float = 1.0
    event_notified: float = 1.0
    event_missed: float = 0.0
    energy_per_j: float = 0.3
    deadline_miss: float = 0.5
    throttle: float = 0.1
    battery_empty: float = 1.0

    def __post_init__(self) -> None:
        for k in ("query_correct", "event_notified", "event_missed", "energy_per_j", "deadline_miss", "throttle",
                  "battery_empty"):
            check_range(f"reward.{k}", getattr(self, k), 0.0, note="it is a weight")


@dataclass
class PPOConfig:
    """Stable-Baselines3 PPO hyper-parameters."""

    total_timesteps: int = 200_000
    n_envs: int = 8
    n_steps: int = 256
    batch_size: int = 256
    n_epochs: int = 10
    learning_rate: float = 3e-4
    gamma: float = 0.98
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.01
    net_arch: list[int] = field(default_factory=lambda: [64, 64])

    def __post_init__(self) -> None:
        p = "ppo."
        check_range(p + "total_timesteps", self.total_timesteps, 1)
        check_range(p + "n_envs", self.n_envs, 1)
        check_range(p + "n_steps", self.n_steps, 2)
        check_range(p + "batch_size", self.batch_size, 2)
        check_range(p + "n_epochs", self.n_epochs, 1)
        check_range(p + "learning_rate", self.learning_rate, 0.0, 1.0, lo_open=True, hi_open=True)
        check_range(p + "gamma", self.gamma, 0.0, 1.0, lo_open=True)
        check_range(p + "gae_lambda", self.gae_lambda, 0.0, 1.0, lo_open=True)
        check_range(p + "clip_range", self.clip_range, 0.0, lo_open=True)
        check_range(p + "ent_coef", self.ent_coef, 0.0)
        check(len(self.net_arch) >= 1 and all(n >= 1 for n in self.net_arch), p + "net_arch", f"hidden sizes must be >= 1, got {self.net_arch}")


@dataclass
class PolicySpec:
    """One policy to evaluate: an ``edge.policy`` name, ``random``, ``oracle`` or ``learned``."""

    name: str = "always_local"
    label: str | None = None  # the table's name for it (default: name); specs sharing a label are pooled
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class BudgetGrid:
    """Budget values swept inside one evaluation run (each empty list: the base budget's value)."""

    power_cap_mw: list[float] = field(default_factory=list)
    deadline_ms: list[float] = field(default_factory=list)
    energy_budget_j: list[float] = field(default_factory=list)


@dataclass
class SimTrainConfig:
    """``earshot sim train``: PPO on ``earshot/Offload-v0``, exported to ``.pte``."""

    out: str = "runs/sim_train"
    seed: int = 0
    threads: int = 1
    device: Any = None  # the device profile (Hydra group configs/device/)
    network: Any = None  # the network profile (Hydra group configs/network/)
    env: EnvConfig = field(default_factory=EnvConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    eval_episodes: int = 8
    mlflow: TrackingConfig = field(default_factory=lambda: TrackingConfig(experiment="earshot-sim"))

    def __post_init__(self) -> None:
        check(bool(str(self.out).strip()), "out", "must name an output folder")
        check_threads(self.threads)
        check_range("eval_episodes", self.eval_episodes, 1)


_KNOWN_POLICIES = ("never_on", "query_only", "always_local", "always_cloud", "periodic", "audio_trigger",
                   "confidence_threshold", "context_aware", "random", "oracle", "learned")


@dataclass
class SimEvalConfig:
    """``earshot sim eval``: policies x budgets x recordings -> table, CSV/JSON and a Pareto plot."""

    out: str = "runs/sim_eval"
    seed: int = 0
    days: int = 3  # evaluation days per policy and budget, seeds seed..seed+days-1 (the same days for all)
    device: Any = None
    network: Any = None
    env: EnvConfig = field(default_factory=EnvConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    grid: BudgetGrid = field(default_factory=BudgetGrid)
    reward: RewardConfig = field(default_factory=RewardConfig)
    policies: list[PolicySpec] = field(default_factory=list)
    plot: bool = True

    def __post_init__(self) -> None:
        check(bool(str(self.out).strip()), "out", "must name an output folder")
        check_range("days", self.days, 1)
        check(len(self.policies) >= 1, "policies", "name at least one policy")
        for k, p in enumerate(self.policies):
            check_choice(f"policies[{k}].name", p.name, _KNOWN_POLICIES)
            if p.name == "learned":
                program = (p.params or {}).get("program")
                check(program is not None and Path(str(program)).is_file(), f"policies[{k}].params.program",
                      f"a learned policy needs the .pte from 'earshot sim train' (no such file: {program})")
        for k in ("power_cap_mw", "deadline_ms", "energy_budget_j"):
            check(all(v >= 0 for v in getattr(self.grid, k)), f"grid.{k}", "values must be >= 0")


def write_profiles(device: Any, network: Any, out: Path) -> tuple[str, str]:
    """Write the composed profile nodes to ``out/{device,network}.yaml``; return what to load.

    A missing node (schema default ``None``) means the default profile by name.
    """
    import yaml

    def one(node: Any, kind: str, default: str) -> str:
        if node is None:
            return default
        if isinstance(node, str):
            return node
        path = out / f"{kind}.yaml"
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(dict(node), sort_keys=False))
        return str(path)

    return one(device, "device", "glasses_2025"), one(network, "network", "wifi")


def make_env_kwargs(env: EnvConfig, budget: BudgetConfig, reward: RewardConfig, device: str, network: str) -> dict[str, Any]:
    """Keyword arguments of ``gymnasium.make("earshot/Offload-v0", ...)`` from the config sections."""
    from dataclasses import asdict

    from sim.budget import Budget, RewardWeights

    return dict(
        traces=env.traces, recordings=list(env.recordings) or None, split=env.split, device=device, network=network,
        budget=Budget(**asdict(budget)), reward=RewardWeights(**asdict(reward)), notify_s=env.notify_s,
        important_labels=tuple(env.important_labels), cloud_tag_threshold=env.cloud_tag_threshold,
        cloud_utilization=env.cloud_utilization, rate_corr=env.rate_corr, outage_every_s=env.outage_every_s,
        outage_mean_s=env.outage_mean_s, bandwidth_trace=env.bandwidth_trace,
        battery_start_frac=tuple(env.battery_start_frac), day_h=env.day_h, active_share=env.active_share,
    )
