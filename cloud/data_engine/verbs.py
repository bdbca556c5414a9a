"""``earshot instruct``: the instruction data engine as a verb.

    earshot instruct dataset=data/world out=data/qa
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from omegaconf import MISSING

from shared.config import check, verb

__all__ = ["InstructConfig", "instruct_main", "make_params", "make_plan", "print_summary"]


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
        check(0 <= self.seed < 2**63, "seed", f"must be a non-negative int, got {self.seed}")
        check(2.0 <= self.window_s <= 10.0, "window_s", f"must be in [2, 10] s (the model's clip), got {self.window_s}")
        check(0.1 <= self.grid_s <= self.window_s, "grid_s", f"must be in [0.1, window_s] s, got {self.grid_s}")
        for key in ("windows_per_recording", "bench_windows_per_recording"):
            v = getattr(self, key)
            check(1 <= v <= 1000, key, f"must be in [1, 1000], got {v}")
        check(1 <= self.pairs_per_probe <= 20, "pairs_per_probe", f"must be in [1, 20], got {self.pairs_per_probe}")
        for key in ("bench_pairs_per_category", "bench_per_category"):
            v = getattr(self, key)
            check(1 <= v <= 100_000, key, f"must be in [1, 100000], got {v}")
        check(0.0 < self.min_overlap_s <= self.window_s / 2, "min_overlap_s",
              f"must be in (0, window_s / 2], got {self.min_overlap_s}")
        check(0.0 <= self.negative_margin_s <= 10.0, "negative_margin_s",
              f"must be in [0, 10] s, got {self.negative_margin_s}")
        check(0.0 <= self.tr_min_gap_s < self.window_s, "tr_min_gap_s",
              f"must be in [0, window_s), got {self.tr_min_gap_s}")
        check(0.0 <= self.response_wait_s <= self.window_s, "response_wait_s",
              f"must be in [0, window_s] s, got {self.response_wait_s}")
        # A small decoder generates the answer: keep narrations within ~12 words.
        check(1 <= self.avdn_max_items <= 6, "avdn_max_items", f"must be in [1, 6], got {self.avdn_max_items}")
        check(1 <= self.avsn_max_labels <= 4, "avsn_max_labels", f"must be in [1, 4], got {self.avsn_max_labels}")
        check(-30.0 <= self.noisy_below_db <= 60.0, "noisy_below_db",
              f"must be in [-30, 60] dB, got {self.noisy_below_db}")


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


@verb("instruct", InstructConfig)
def instruct_main(cfg: InstructConfig) -> None:
    """Build instruction QA (SSA, AVDN, AVSN, TR, AVH) from a dataset's annotations."""
    from cloud.data_engine.engine import build_instruct

    # The output location is not content: leave it out so two runs compare byte for byte.
    config = {k: v for k, v in asdict(cfg).items() if k not in ("out", "progress")}
    qa, pairs = make_params(cfg)
    info = build_instruct(cfg.dataset, cfg.out, qa, make_plan(cfg), pairs, config=config, progress=cfg.progress)
    print(f"wrote {cfg.out}")
    print_summary(info)


def print_summary(info: dict[str, Any]) -> None:
    """Records per split x category, vocabulary size, audio share, bench shortfall."""
    from rich.console import Console
    from rich.table import Table

    from cloud.data_engine.records import CATEGORIES

    console = Console()
    table = Table(title="instruction QA: records per split x category")
    # needs audio: share of records whose evidence is audio or audiovisual; noisy/quiet splits them by SNR
    for col in ("split", *CATEGORIES, "total", "audio%", "noisy/quiet"):
        table.add_column(col, justify="left" if col == "split" else "right")
    for split, c in info["counts"].items():
        cats = c["categories"]
        noise = c["needs_audio_by_noise"]
        table.add_row(split, *[str(cats[k]) for k in CATEGORIES], str(cats["total"]),
                      f"{100 * c['needs_audio_share']:.0f}%", f"{noise['noisy']}/{noise['quiet']}")
    console.print(table)
    for split, d in info["visual_vs_av"].items():
        console.print(f"{split}_visual vs {split}_av: {d['same']} same answer, {d['changed']} changed, "
                      f"{d['dropped']} dropped (not in the vision-only narration)")
    console.print(f"answer vocabulary: {info['answer_vocab_size']} tokens")
    bench = info["bench"]
    pairs = ", ".join(f"{c} {n}" for c, n in bench["pairs"].items())
    console.print(f"bench: {bench['recordings']} held-out recordings; counterfactual pairs: {pairs}")
    if not bench["complete"]:
        short = ", ".join(f"{c} {bench['available'][c]}" for c in bench["shortfall"])
        console.print(f"[yellow]bench incomplete: wanted {bench['wanted']}; only {short} available "
                      f"(add test recordings)[/yellow]")
