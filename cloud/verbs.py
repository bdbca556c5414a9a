"""Teacher verbs: ``earshot train`` and ``earshot eval``.

    earshot train data.qa_dir=data/qa out=runs/teacher
    earshot train train/preset=tiny data.qa_dir=data/qa_tiny out=/tmp/teacher_tiny
    torchrun --nproc_per_node=2 --no-python earshot train data.qa_dir=data/qa out=runs/teacher
    earshot eval checkpoint=runs/teacher/model qa_dir=data/qa split=bench

The schemas below are the whole configuration surface; the YAML files
(``configs/train.yaml``, ``configs/eval.yaml``) carry the defaults and the
trade-off comments. Torch is imported only inside the verbs, so listing
verbs stays fast.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from cloud.model.config import ModelConfig
from shared.config import check, verb

__all__ = ["DataConfig", "OptimConfig", "MlflowConfig", "TrainConfig", "EvalConfig", "train_main", "eval_main"]

_NARRATIONS = ("av", "visual")
_EVAL_SPLITS = ("train_av", "train_visual", "val_av", "val_visual", "bench")


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

    def __post_init__(self) -> None:
        p = "data."
        check(bool(str(self.qa_dir).strip()), p + "qa_dir", "must name the QA folder of 'earshot instruct'")
        check(self.narration in _NARRATIONS, p + "narration", f"must be one of {_NARRATIONS}, got {self.narration!r}")
        check(self.val_split in _EVAL_SPLITS, p + "val_split", f"must be one of {_EVAL_SPLITS}, got {self.val_split!r}")
        check(0.25 <= self.audio_history_s <= 30.0, p + "audio_history_s", f"must be in [0.25, 30] s, got {self.audio_history_s}")
        check(0.1 <= self.frame_hz <= 10.0, p + "frame_hz", f"must be in [0.1, 10] (the recordings run at 10 fps), got {self.frame_hz}")
        check(1.0 <= self.max_window_s <= 30.0, p + "max_window_s", f"must be in [1, 30] s, got {self.max_window_s}")
        check(self.max_train_records >= 0, p + "max_train_records", f"must be >= 0, got {self.max_train_records}")
        check(self.max_val_records >= 0, p + "max_val_records", f"must be >= 0, got {self.max_val_records}")


@dataclass
class OptimConfig:
    """AdamW with linear warm-up and cosine decay."""

    lr: float = 2e-3
    weight_decay: float = 0.05
    beta1: float = 0.9
    beta2: float = 0.98
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        p = "optim."
        check(0.0 < self.lr <= 1.0, p + "lr", f"must be in (0, 1], got {self.lr}")
        check(0.0 <= self.weight_decay <= 1.0, p + "weight_decay", f"must be in [0, 1], got {self.weight_decay}")
        check(0.0 <= self.beta1 < 1.0, p + "beta1", f"must be in [0, 1), got {self.beta1}")
        check(0.0 <= self.beta2 < 1.0, p + "beta2", f"must be in [0, 1), got {self.beta2}")
        check(self.warmup_steps >= 0, p + "warmup_steps", f"must be >= 0, got {self.warmup_steps}")
        check(0.0 <= self.min_lr_ratio <= 1.0, p + "min_lr_ratio", f"must be in [0, 1], got {self.min_lr_ratio}")
        check(self.grad_clip >= 0.0, p + "grad_clip", f"must be >= 0 (0 = off), got {self.grad_clip}")


@dataclass
class MlflowConfig:
    """Where runs are tracked."""

    enabled: bool = True
    tracking_uri: str | None = None  # default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the cwd
    experiment: str = "earshot-teacher"
    run_name: str | None = None


@dataclass
class TrainConfig:
    """``earshot train``: train the audio-visual teacher on instruction QA."""

    out: str = "runs/teacher"
    seed: int = 0
    max_steps: int = 1200
    batch_size: int = 32  # global: split evenly over torchrun processes
    tag_weight: float = 0.5
    log_every: int = 25
    eval_every: int = 400
    checkpoint_every: int = 200
    keep_checkpoints: int = 2
    resume: bool = True
    threads: int = 1  # torch threads per process; 0 = cores / processes
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)

    def __post_init__(self) -> None:
        check(bool(str(self.out).strip()), "out", "must name a folder")
        check(0 <= self.seed < 2**31, "seed", f"must be in [0, 2^31), got {self.seed}")
        check(1 <= self.max_steps <= 10_000_000, "max_steps", f"must be in [1, 1e7], got {self.max_steps}")
        check(1 <= self.batch_size <= 4096, "batch_size", f"must be in [1, 4096], got {self.batch_size}")
        check(self.tag_weight >= 0.0, "tag_weight", f"must be >= 0, got {self.tag_weight}")
        for key in ("log_every", "eval_every", "checkpoint_every", "keep_checkpoints"):
            check(getattr(self, key) >= 1, key, f"must be >= 1, got {getattr(self, key)}")
        check(0 <= self.threads <= 256, "threads", f"must be in [0, 256], got {self.threads}")
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
    mlflow: MlflowConfig = field(default_factory=lambda: MlflowConfig(experiment="earshot-eval"))

    def __post_init__(self) -> None:
        check(self.split in _EVAL_SPLITS, "split", f"must be one of {_EVAL_SPLITS}, got {self.split!r}")
        check(1 <= self.batch_size <= 4096, "batch_size", f"must be in [1, 4096], got {self.batch_size}")
        check(self.max_records >= 0, "max_records", f"must be >= 0, got {self.max_records}")
        check(0 <= self.threads <= 256, "threads", f"must be in [0, 256], got {self.threads}")


@verb("train", TrainConfig)
def train_main(cfg: TrainConfig) -> None:
    """Train the audio-visual teacher (single process or torchrun DDP)."""
    from cloud.train import run

    run(cfg)


@verb("eval", EvalConfig)
def eval_main(cfg: EvalConfig) -> None:
    """Score a teacher checkpoint per category; print a table, log to MLflow."""
    from cloud.eval import run

    run(cfg)
