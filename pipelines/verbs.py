"""Orchestration verbs: ``earshot experiment`` and ``earshot bench``.

    earshot experiment experiment=trust
    earshot bench run=runs/demo quick=true

The schemas live in ``pipelines/experiment_config.py`` and ``pipelines/bench_config.py``;
the YAML files (``configs/experiment.yaml``, ``configs/experiment/``,
``configs/bench.yaml``) carry the defaults and the trade-off comments.
"""
from __future__ import annotations

from pipelines.bench_config import BenchConfig
from pipelines.experiment_config import ExperimentConfig
from shared.config import verb

__all__ = ["experiment_main", "bench_main"]


@verb("experiment", ExperimentConfig)
def experiment_main(cfg: ExperimentConfig) -> None:
    """Train an experiment's two variants, score them, write docs/results.md."""
    from pipelines.experiments import command_line, run

    run(cfg, command_line())


@verb("bench", BenchConfig)
def bench_main(cfg: BenchConfig) -> None:
    """Run every part's benchmark; write bench.json and bench.md."""
    from pipelines.bench import run

    run(cfg)
