"""Schema of ``earshot bench`` (``configs/bench.yaml``); the runner is ``pipelines/bench.py``."""
from __future__ import annotations

from dataclasses import dataclass, field

from shared.config import check

__all__ = ["PART_NAMES", "BenchConfig"]

#: The parts ``earshot bench`` measures, in run order (``pipelines.bench.PARTS`` says how).
PART_NAMES = ("world", "server", "latency", "reliability", "edge_models", "students", "edge_runtime", "native", "trigger", "sim",
              "lm")


@dataclass
class BenchConfig:
    """``earshot bench``: every part's benchmark in one run (configs/bench.yaml)."""

    run: str = "runs/demo"  # a scripts/demo output folder
    out: str = "runs/bench"  # <part>.json, <part>.log, bench.json, bench.md
    parts: list[str] = field(default_factory=lambda: list(PART_NAMES))
    quick: bool = False  # shorter measurements (a smoke run); the figures are noisier

    def __post_init__(self) -> None:
        unknown = sorted(set(self.parts) - set(PART_NAMES))
        check(not unknown, "parts", f"unknown parts {unknown}; known: {list(PART_NAMES)}")
        check(bool(self.parts), "parts", "name at least one part")
