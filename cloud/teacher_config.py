"""Schemas of ``earshot train`` and ``earshot eval`` (``configs/train.yaml``, ``configs/eval.yaml``).

The YAML files carry the defaults and the trade-off comments; these dataclasses
are the whole configuration surface and check every value before any work
(``shared.config``). Kept free of torch so that listing verbs stays fast; the
verbs themselves are in ``cloud/verbs.py``, the recipe in ``cloud/train.py``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from cloud.model.config import ModelConfig
from shared.config import (OptimConfig, TrackingConfig, check, check_choice, check_range, check_recipe_loop,
                           check_threads)

__all__ = ["NARRATIONS", "EVAL_SPLITS", "POS_WEIGHTS", "DataConfig", "PerceptionConfig", "TrainConfig", "EvalConfig"]

NARRATIONS = ("av", "visual")
EVAL_SPLITS = ("train_av", "train_visual", "val_av", "val_visual", "bench")


@dataclass
class DataConfig:
    """Which QA records the teacher learns from and what it is shown of each window."""

    qa_dir: str = "data/qa"  # output of 'earshot instruct'
    dataset: str | None = None  # recordings; default: the dataset info.json names
    narration: str = "av"  # train on train_av.jsonl (audio-visual) or train_visual.jsonl
    val_split: str = "val_av"
    audio_history_s: float = 10.0  # audio ending at the window end
    frame_hz: float = 2.0  # frames sampled from the window
    max_window_s: float = 10.0  # frame slots = max_window_s * frame_hz
    max_train_records: int = 0  # 0 = all
    max_val_records: int = 300  # evenly spaced subset for the periodic and final val
    corrupt_share: float = 0.0  # training records whose audio or video is corrupted (cloud/corrupt.py; trust)

    def __post_init__(self) -> None:
        p = "data."
        check(bool(str(self.qa_dir).strip()), p + "qa_dir", "must name the QA folder of 'earshot instruct'")
        check_choice(p + "narration", self.narration, NARRATIONS)
        check_choice(p + "val_split", self.val_split, EVAL_SPLITS)
        check_range(p + "audio_history_s", self.audio_history_s, 0.25, 30.0, unit="s")
        check_range(p + "frame_hz", self.frame_hz, 0.1, 10.0, note="the recordings run at 10 fps")
        check_range(p + "max_window_s", self.max_window_s, 1.0, 30.0, unit="s")
        check_range(p + "max_train_records", self.max_train_records, 0)
        check_range(p + "max_val_records", self.max_val_records, 0)
        check_range(p + "corrupt_share", self.corrupt_share, 0.0, 1.0)


#: ``perception.pos_weight`` choices.
POS_WEIGHTS = ("none", "sqrt")


@dataclass
class PerceptionConfig:
    """Per-token perception: pre-training of the encoders, then cached features."""

    steps: int = 3000  # windows of train recordings, per-token loss only; 0 = no pre-training
    batch_size: int = 32
    lr: float = 2e-3
    weight: float = 1.0  # per-token loss next to the per-record answer loss in the QA phase
    cache: bool = True  # QA phase: encoders frozen, their per-token outputs cached per recording
    init: str | None = None  # a finished run's out/ (or its perception/ folder) to take phase 1 from
    # Per-label weight of the positive entries in the per-token BCE: ``none`` (1), or ``sqrt``:
    # sqrt(negatives / positives) of that label over the training recordings' token grid, capped
    # at ``pos_weight_max`` (rare sounds such as the beeps count more than speech).
    pos_weight: str = "none"
    pos_weight_max: float = 10.0

    def __post_init__(self) -> None:
        p = "perception."
        check_range(p + "steps", self.steps, 0, 10_000_000)
        check_choice(p + "pos_weight", self.pos_weight, POS_WEIGHTS)
        check_range(p + "pos_weight_max", self.pos_weight_max, 1.0, 1000.0)
        check_range(p + "batch_size", self.batch_size, 1, 4096)
        check_range(p + "lr", self.lr, 0.0, 1.0, lo_open=True)
        check_range(p + "weight", self.weight, 0.0)


@dataclass
class TrainConfig:
    """``earshot train``: train the audio-visual teacher on instruction QA."""

    out: str = "runs/teacher"
    phase: str = "all"  # all: perception then QA; perception: phase 1 only (runs that share it: perception.init)
    seed: int = 0
    max_steps: int = 1200
    batch_size: int = 32  # global: split evenly over torchrun processes
    log_every: int = 25
    eval_every: int = 400
    checkpoint_every: int = 200
    keep_checkpoints: int = 2
    resume: bool = True
    threads: int = 1  # torch threads per process; 0 = cores / processes
    data: DataConfig = field(default_factory=DataConfig)
    perception: PerceptionConfig = field(default_factory=PerceptionConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    mlflow: TrackingConfig = field(default_factory=lambda: TrackingConfig(experiment="earshot-teacher"))

    def __post_init__(self) -> None:
        check_recipe_loop(self)
        check_choice("phase", self.phase, ("all", "perception"))
        frames = self.data.audio_history_s * 100 / self.model.mel_frames_per_token
        check(
            abs(frames - round(frames)) < 1e-6,
            "data.audio_history_s",
            f"{self.data.audio_history_s} s is not a whole number of audio tokens of {self.model.audio_token_s} s",
        )


@dataclass
class EvalConfig:
    """``earshot eval``: score a teacher on a QA split, per category."""

    checkpoint: str = "runs/teacher/model"  # a model folder, or a training out/ (uses out/model)
    qa_dir: str = "data/qa"
    dataset: str | None = None  # default: the dataset info.json names
    split: str = "bench"
    batch_size: int = 32
    max_records: int = 0  # 0 = all
    predictions: str | None = None  # JSONL of predictions; default <checkpoint>/eval_<split>.jsonl
    threads: int = 1  # 0 = all cores (see configs/train.yaml on why 1)
    controls: bool = True  # blind, scene, shuffled and constant beside the model
    seed: int = 0  # the shuffled clips and the bootstrap resamples
    mlflow: TrackingConfig = field(default_factory=lambda: TrackingConfig(experiment="earshot-eval"))

    def __post_init__(self) -> None:
        check_range("seed", self.seed, 0, 2**63, hi_open=True)
        check_choice("split", self.split, EVAL_SPLITS)
        check_range("batch_size", self.batch_size, 1, 4096)
        check_range("max_records", self.max_records, 0)
        check_threads(self.threads)
