"""Schema of ``earshot experiment`` (``configs/experiment.yaml``, ``configs/experiment/<name>.yaml``).

Every value, and every variant's train overrides, is checked before any data is
made or any step trained (``shared.config``); the driver is
``pipelines/experiments.py``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from cloud.experiment_analysis import KINDS, TARGET_KEYS
from shared.config import TrackingConfig, check, check_choice, check_range, check_threads

__all__ = ["DataSpec", "ExperimentSpec", "ExperimentConfig", "RESERVED_TRAIN_KEYS"]

# Train keys the experiment sets itself: a variant or the shared `train` list may not.
RESERVED_TRAIN_KEYS = ("out", "seed", "data.qa_dir", "data.dataset", "perception.init", "mlflow")


@dataclass
class DataSpec:
    """The world and QA an experiment needs; made when missing, checked when present."""

    world: str = "data/experiments/world"
    synth: list[str] = field(default_factory=list)  # 'earshot synth' overrides (out= is added)
    qa: str = "data/experiments/qa"
    instruct: list[str] = field(default_factory=list)  # 'earshot instruct' overrides (dataset=, out= added)

    def __post_init__(self) -> None:
        for key in ("synth", "instruct"):
            for o in getattr(self, key):
                name = o.split("=", 1)[0]
                check("=" in o and not name.startswith(("+", "~")) and "/" not in name,
                      f"experiment.data.{key}", f"{o!r}: give plain key=value overrides (they are checked "
                      "against the recorded config of an existing folder)")
                check(name not in ("out", "dataset", "progress"), f"experiment.data.{key}", f"{o!r}: set by the experiment")


@dataclass
class ExperimentSpec:
    """One experiment: two train variants, the data they need, the targets."""

    name: str = MISSING  # data | temporal | trust: decides the breakdowns and targets
    claim: str = ""
    reference: str = ""  # published numbers the claim comes from, if any
    variants: dict[str, list[str]] = field(default_factory=dict)  # name -> train overrides; baseline first
    targets: dict[str, float] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])  # every variant is trained once per seed
    corrupt_bench: bool = False  # trust: one modality corrupted per bench pair (cloud/corrupt.py)
    data: DataSpec = field(default_factory=DataSpec)

    def __post_init__(self) -> None:
        p = "experiment."
        check_choice(p + "name", self.name, KINDS)
        check(len(self.seeds) >= 1 and len(set(self.seeds)) == len(self.seeds), p + "seeds",
              f"must list distinct seeds, got {list(self.seeds)}")
        for s in self.seeds:
            check_range(p + "seeds", s, 0, 2**31, hi_open=True)
        check(len(self.variants) == 2, p + "variants", f"must name exactly two (baseline, treatment), got {list(self.variants)}")
        for v, overrides in self.variants.items():
            check(v.isidentifier(), p + "variants", f"{v!r}: variant names are folder names: letters, digits, _")
            _check_train_overrides(overrides, f"{p}variants.{v}")
        want = set(TARGET_KEYS[self.name])
        check(set(self.targets) == want, p + "targets", f"{self.name} needs exactly {sorted(want)}, got {sorted(self.targets)}")


def _check_train_overrides(overrides: list[str], key: str) -> None:
    for o in overrides:
        name = o.split("=", 1)[0].lstrip("+~")
        check("=" in o, key, f"{o!r} is not a key=value override")
        check(not any(name == r or name.startswith(r + ".") for r in RESERVED_TRAIN_KEYS), key,
              f"{o!r}: {name} is set by the experiment")


@dataclass
class ExperimentConfig:
    """``earshot experiment``: train two variants, score them, write the results table."""

    experiment: ExperimentSpec = MISSING  # the group configs/experiment/<name>.yaml
    out: str = "runs/experiments"
    results_doc: str | None = "docs/results.md"
    results_root: str | None = None  # where results_doc collects results.json from; None = out
    report_only: bool = False
    scale: str = "default"  # a label for the report
    train_overrides: list[str] = field(default_factory=list)  # earshot train overrides shared by every variant
    eval_batch_size: int = 32
    eval_max_records: int = 0
    threads: int = 1
    mlflow: TrackingConfig = field(default_factory=lambda: TrackingConfig(experiment="earshot-experiments"))

    def __post_init__(self) -> None:
        check(bool(str(self.out).strip()), "out", "must name a folder")
        _check_train_overrides(self.train_overrides, "train_overrides")
        check_range("eval_batch_size", self.eval_batch_size, 1, 4096)
        check_range("eval_max_records", self.eval_max_records, 0)
        check_threads(self.threads)
