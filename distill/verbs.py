"""Distillation verbs: ``earshot distill`` and ``earshot export``.

    earshot distill teacher=runs/teacher/model                        # the trigger
    earshot distill distill/student=av teacher=runs/teacher/model     # the AV student
    earshot distill distill/preset=tiny teacher=/tmp/teacher/model out=/tmp/kd   # seconds, for tests
    earshot export checkpoint=runs/distill/trigger                    # .pte fp32 + int8 (+ .tflite), cards

The schemas below are the whole configuration surface; the YAML files
(``configs/distill.yaml``, ``configs/distill/``, ``configs/export.yaml``)
carry the defaults and the trade-off comments. Torch is imported only inside
the verbs, so listing verbs stays fast.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from distill.student_config import StudentConfig
from distill.trigger_config import TriggerEvalConfig
from shared.config import check, verb

__all__ = [
    "DistillDataConfig", "KDConfig", "DistillOptimConfig", "TrackingConfig", "DistillConfig", "ExportConfig",
    "distill_main", "export_main",
]

_CONFIDENCE_TARGETS = ("teacher", "labels")
_PRECISIONS = ("fp32", "int8")
_TFLITE = ("auto", "on", "off")


@dataclass
class DistillDataConfig:
    """Which windows the student learns from (``distill/data.py``)."""

    dataset: str | None = None  # recordings; default: the dataset the teacher was trained on
    stride_s: float = 0.25  # window ends on this grid
    visual_span_s: float = 0.5  # a visual action labels a window if on screen in the last this-many seconds
    max_recordings: int = 0  # per split; 0 = all
    pos_weight: float = 1.0  # weight of positive windows in the hard loss (> 1: fewer missed events)

    def __post_init__(self) -> None:
        p = "data."
        check(0.05 <= self.stride_s <= 10.0, p + "stride_s", f"must be in [0.05, 10] s, got {self.stride_s}")
        check(0.1 <= self.visual_span_s <= 10.0, p + "visual_span_s", f"must be in [0.1, 10] s, got {self.visual_span_s}")
        check(self.max_recordings >= 0, p + "max_recordings", f"must be >= 0, got {self.max_recordings}")
        check(0.1 <= self.pos_weight <= 100.0, p + "pos_weight", f"must be in [0.1, 100], got {self.pos_weight}")


@dataclass
class KDConfig:
    """The loss (``distill/losses.py``): (1 - kd_weight) hard + kd_weight KD + feature + confidence."""

    temperature: float = 2.0
    kd_weight: float = 0.5
    feature_weight: float = 0.0  # > 0 turns on feature distillation (cosine to the teacher's tag-head input)
    confidence_weight: float = 0.2  # av only: the confidence head's BCE
    confidence_target: str = "teacher"  # teacher: agree with the teacher on every tag; labels: be right on every tag

    def __post_init__(self) -> None:
        p = "kd."
        check(0.1 <= self.temperature <= 20.0, p + "temperature", f"must be in [0.1, 20], got {self.temperature}")
        check(0.0 <= self.kd_weight <= 1.0, p + "kd_weight", f"must be in [0, 1], got {self.kd_weight}")
        check(self.feature_weight >= 0.0, p + "feature_weight", f"must be >= 0, got {self.feature_weight}")
        check(self.confidence_weight >= 0.0, p + "confidence_weight", f"must be >= 0, got {self.confidence_weight}")
        check(
            self.confidence_target in _CONFIDENCE_TARGETS,
            p + "confidence_target",
            f"must be one of {_CONFIDENCE_TARGETS}, got {self.confidence_target!r}",
        )


@dataclass
class DistillOptimConfig:
    """AdamW with linear warm-up and cosine decay."""

    lr: float = 3e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        p = "optim."
        check(0.0 < self.lr <= 1.0, p + "lr", f"must be in (0, 1], got {self.lr}")
        check(0.0 <= self.weight_decay <= 1.0, p + "weight_decay", f"must be in [0, 1], got {self.weight_decay}")
        check(self.warmup_steps >= 0, p + "warmup_steps", f"must be >= 0, got {self.warmup_steps}")
        check(0.0 <= self.min_lr_ratio <= 1.0, p + "min_lr_ratio", f"must be in [0, 1], got {self.min_lr_ratio}")
        check(self.grad_clip >= 0.0, p + "grad_clip", f"must be >= 0 (0 = off), got {self.grad_clip}")


@dataclass
class TrackingConfig:
    """Where runs are tracked (MLflow)."""

    enabled: bool = True
    tracking_uri: str | None = None  # default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the cwd
    experiment: str = "earshot-distill"
    run_name: str | None = None
    artifact_location: str | None = None  # for a new experiment; default: MLflow's (./mlruns)


@dataclass
class DistillConfig:
    """``earshot distill``: distil the teacher's tag head into an on-device student."""

    teacher: str | None = "runs/teacher/model"  # a teacher model folder; None: labels only (kd_weight 0)
    out: str = "runs/distill/trigger"
    seed: int = 0
    max_steps: int = 1500
    batch_size: int = 64
    log_every: int = 50
    eval_every: int = 500
    checkpoint_every: int = 250
    keep_checkpoints: int = 2
    resume: bool = True
    threads: int = 0  # torch threads; 0 = all cores
    student: StudentConfig = field(default_factory=StudentConfig)
    data: DistillDataConfig = field(default_factory=DistillDataConfig)
    kd: KDConfig = field(default_factory=KDConfig)
    optim: DistillOptimConfig = field(default_factory=DistillOptimConfig)
    mlflow: TrackingConfig = field(default_factory=TrackingConfig)

    def __post_init__(self) -> None:
        if self.teacher is None:
            # Labels only: nothing to distil from, so every teacher-side term must be off.
            check(self.kd.kd_weight == 0.0, "kd.kd_weight", "must be 0 without a teacher (teacher=null)")
            check(self.kd.feature_weight == 0.0, "kd.feature_weight", "must be 0 without a teacher (teacher=null)")
            check(self.student.name == "trigger" or self.kd.confidence_target == "labels", "kd.confidence_target",
                  "must be 'labels' without a teacher (teacher=null)")
            check(bool(self.data.dataset), "data.dataset", "must name the recordings when there is no teacher")
        else:
            check(bool(str(self.teacher).strip()), "teacher", "must name a teacher model folder")
        check(bool(str(self.out).strip()), "out", "must name a folder")
        check(0 <= self.seed < 2**31, "seed", f"must be in [0, 2^31), got {self.seed}")
        check(1 <= self.max_steps <= 10_000_000, "max_steps", f"must be in [1, 1e7], got {self.max_steps}")
        check(1 <= self.batch_size <= 4096, "batch_size", f"must be in [1, 4096], got {self.batch_size}")
        for key in ("log_every", "eval_every", "checkpoint_every", "keep_checkpoints"):
            check(getattr(self, key) >= 1, key, f"must be >= 1, got {getattr(self, key)}")
        check(0 <= self.threads <= 256, "threads", f"must be in [0, 256], got {self.threads}")


@dataclass
class ExportConfig:
    """``earshot export``: a distilled student -> .pte programs (+ .tflite) and model cards."""

    checkpoint: str = "runs/distill/trigger"  # a distill out/ (reads out/student) or a student folder
    out: str | None = None  # default: <distill out>/export
    teacher: str | None = None  # default: the teacher the student was distilled from
    dataset: str | None = None  # default: the recordings the student was distilled on
    precisions: list[str] = field(default_factory=lambda: ["fp32", "int8"])
    tflite: str = "auto"  # auto: if litert-torch is installed; on: required; off: skip
    calibration_windows: int = 128  # int8 calibration: evenly spaced val windows (held-out recordings)
    max_eval_windows: int = 0  # per split (val thresholds, test metrics); 0 = all
    threads: int = 0  # 0 = all cores
    register: bool = True  # register each program as an MLflow model version
    trigger: TriggerEvalConfig = field(default_factory=TriggerEvalConfig)  # the trigger as a detector
    mlflow: TrackingConfig = field(default_factory=lambda: TrackingConfig(experiment="earshot-export"))

    def __post_init__(self) -> None:
        check(bool(str(self.checkpoint).strip()), "checkpoint", "must name a distill out or a student folder")
        bad = [p for p in self.precisions if p not in _PRECISIONS]
        check(bool(self.precisions) and not bad, "precisions", f"must be a non-empty subset of {_PRECISIONS}, got {self.precisions}")
        check(self.tflite in _TFLITE, "tflite", f"must be one of {_TFLITE}, got {self.tflite!r}")
        check(1 <= self.calibration_windows <= 100_000, "calibration_windows", f"must be in [1, 1e5], got {self.calibration_windows}")
        check(self.max_eval_windows >= 0, "max_eval_windows", f"must be >= 0, got {self.max_eval_windows}")
        check(0 <= self.threads <= 256, "threads", f"must be in [0, 256], got {self.threads}")


@verb("distill", DistillConfig)
def distill_main(cfg: DistillConfig) -> None:
    """Distil the teacher into an on-device student (trigger or AV)."""
    from distill.recipe import run

    run(cfg)


@verb("export", ExportConfig)
def export_main(cfg: ExportConfig) -> None:
    """Quantize and export a student to .pte (and .tflite) with model cards."""
    from distill.export import run

    run(cfg)
