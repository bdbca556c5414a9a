"""Schema of ``earshot instruct`` (``configs/instruct.yaml``) and the builders of its parameters.

    earshot instruct dataset=data/world out=data/qa

Every value is checked before any work (``shared.config``); the verb is in
``cloud/data_engine/verbs.py``, the engine in ``cloud/data_engine/engine.py``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import MISSING

from shared.config import check, check_range

__all__ = ["InstructConfig", "make_params", "make_plan"]


@dataclass
class InstructConfig:
    """``earshot instruct``: annotations of a dataset -> instruction QA (configs/instruct.yaml)."""

    dataset: str = MISSING  # dataset folder (manifest.json + recordings/)
    out: str = MISSING  # QA folder to write (replaced if it is an earlier instruct output)
    seed: int = 0
    window_s: float = 10.0
    grid_s: float = 0.5
    windows_per_recording: int = 6
    bench_windows_per_recording: int = 16
    pairs_per_probe: int = 2
    bench_pairs_per_category: int = 100
    bench_per_category: int = 50
    min_overlap_s: float = 0.5
    negative_margin_s: float = 1.0
    tr_min_gap_s: float = 1.0
    response_wait_s: float = 6.0
    avdn_max_items: int = 6
    avsn_max_labels: int = 4
    noisy_below_db: float = 10.0
    progress: bool = True

    def __post_init__(self) -> None:
        check(Path(self.dataset, "manifest.json").is_file(), "dataset",
              f"no manifest.json in {self.dataset!r} (make a dataset with 'earshot synth')")
        check(bool(str(self.out).strip()), "out", "must name a folder")
        check_range("seed", self.seed, 0, 2**63, hi_open=True)
        check_range("window_s", self.window_s, 2.0, 10.0, unit="s", note="the model's clip")
        check_range("grid_s", self.grid_s, 0.1, self.window_s, unit="s", note="at most window_s")
        check_range("windows_per_recording", self.windows_per_recording, 1, 1000)
        check_range("bench_windows_per_recording", self.bench_windows_per_recording, 1, 1000)
        check_range("pairs_per_probe", self.pairs_per_probe, 1, 20)
        check_range("bench_pairs_per_category", self.bench_pairs_per_category, 1, 100_000)
        check_range("bench_per_category", self.bench_per_category, 1, 100_000)
        check_range("min_overlap_s", self.min_overlap_s, 0.0, self.window_s / 2, lo_open=True, unit="s",
                    note="at most window_s / 2")
        check_range("negative_margin_s", self.negative_margin_s, 0.0, 10.0, unit="s")
        check_range("tr_min_gap_s", self.tr_min_gap_s, 0.0, self.window_s, hi_open=True, unit="s",
                    note="below window_s")
        check_range("response_wait_s", self.response_wait_s, 0.0, self.window_s, unit="s", note="at most window_s")
        # A small decoder generates the answer: keep narrations within ~12 words.
        check_range("avdn_max_items", self.avdn_max_items, 1, 6)
        check_range("avsn_max_labels", self.avsn_max_labels, 1, 4)
        check_range("noisy_below_db", self.noisy_below_db, -30.0, 60.0, unit="dB")


def make_params(cfg: InstructConfig):
    """The narration QA parameters and the pair parameters of a config."""
    from cloud.data_engine.pairs import PairParams
    from cloud.data_engine.qa import QAParams

    qa = QAParams(window_s=cfg.window_s, min_overlap_s=cfg.min_overlap_s, avdn_max_items=cfg.avdn_max_items,
                  avsn_max_labels=cfg.avsn_max_labels, noisy_below_db=cfg.noisy_below_db)
    pairs = PairParams(window_s=cfg.window_s, grid_s=cfg.grid_s, min_overlap_s=cfg.min_overlap_s,
                       negative_margin_s=cfg.negative_margin_s, tr_min_gap_s=cfg.tr_min_gap_s,
                       response_wait_s=cfg.response_wait_s)
    return qa, pairs


def make_plan(cfg: InstructConfig):
    from cloud.data_engine.engine import RunPlan

    return RunPlan(
        seed=cfg.seed,
        windows_per_recording=cfg.windows_per_recording,
        bench_windows_per_recording=cfg.bench_windows_per_recording,
        pairs_per_probe=cfg.pairs_per_probe,
        bench_pairs_per_category=cfg.bench_pairs_per_category,
        bench_per_category=cfg.bench_per_category,
    )
