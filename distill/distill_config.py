"""Schemas of ``earshot distill`` and ``earshot export`` (``configs/distill.yaml``,
``configs/distill/``, ``configs/export.yaml``).

The YAML files carry the defaults and the trade-off comments; these dataclasses
are the whole configuration surface and check every value before any work
(``shared.config``). Kept free of torch so that listing verbs stays fast; the
verbs are in ``distill/verbs.py``, the recipe in ``distill/recipe.py``, the
export in ``distill/export.py``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from distill.student_config import StudentConfig
from distill.trigger_config import TriggerEvalConfig
from shared.config import (OptimConfig, TrackingConfig, check, check_choice, check_range, check_recipe_loop,
                           check_threads)

__all__ = ["DistillDataConfig", "KDConfig", "DistillConfig", "ProbesConfig", "ExportConfig"]

_CONFIDENCE_TARGETS = ("teacher", "labels")
_PRECISIONS = ("fp32", "int8")
_TFLITE = ("auto", "on", "off")
_PROBES = ("auto", "on", "off")


@dataclass
class DistillDataConfig:
    """Which windows the student learns from (``distill/data.py``)."""

    dataset: str | None = None  # recordings; default: the dataset the teacher was trained on
    stride_s: float = 0.25  # window ends on this grid
    max_recordings: int = 0  # per split; 0 = all
    pos_weight: float = 1.0  # weight of positive windows in the hard loss (> 1: fewer missed events)
    # Onset emphasis: a sound label whose (audible) sound started within the window's last onset_s seconds
    # weighs 1 + onset_weight in the hard loss: the windows that hold only a sound's first fraction of a
    # second are where a trigger that fires late is wrong. 0: off.
    onset_weight: float = 0.0
    onset_s: float = 0.5

    def __post_init__(self) -> None:
        p = "data."
        check_range(p + "stride_s", self.stride_s, 0.05, 10.0, unit="s")
        check_range(p + "max_recordings", self.max_recordings, 0)
        check_range(p + "pos_weight", self.pos_weight, 0.1, 100.0)
        check_range(p + "onset_weight", self.onset_weight, 0.0, 100.0)
        check_range(p + "onset_s", self.onset_s, 0.05, 10.0, unit="s")


@dataclass
class KDConfig:
    """The loss (``distill/losses.py``): (1 - kd_weight) hard + kd_weight KD + feature + confidence."""

    temperature: float = 2.0
    kd_weight: float = 0.5
    feature_weight: float = 0.0  # > 0 turns on feature distillation (cosine to the teacher's per-token features)
    confidence_weight: float = 0.2  # av only: the confidence head's BCE
    confidence_target: str = "teacher"  # teacher: agree with the teacher on every tag; labels: be right on every tag

    def __post_init__(self) -> None:
        p = "kd."
        check_range(p + "temperature", self.temperature, 0.1, 20.0)
        check_range(p + "kd_weight", self.kd_weight, 0.0, 1.0)
        check_range(p + "feature_weight", self.feature_weight, 0.0)
        check_range(p + "confidence_weight", self.confidence_weight, 0.0)
        check_choice(p + "confidence_target", self.confidence_target, _CONFIDENCE_TARGETS)


def _distill_optim() -> OptimConfig:
    # Small BatchNorm CNNs: AdamW's own betas, a higher lr, little decay (configs/distill.yaml).
    return OptimConfig(lr=3e-3, weight_decay=1e-4, beta1=0.9, beta2=0.999, warmup_steps=50, min_lr_ratio=0.05)


@dataclass
class DistillConfig:
    """``earshot distill``: distil the per-token teacher into an on-device student."""

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
    optim: OptimConfig = field(default_factory=_distill_optim)
    mlflow: TrackingConfig = field(default_factory=lambda: TrackingConfig(experiment="earshot-distill"))

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
        check_recipe_loop(self)


@dataclass
class ProbesConfig:
    """The students on the counterfactual bench's event probes (``distill/probes.py``)."""

    mode: str = "auto"  # auto: when the teacher and a bench.jsonl are at hand; on: required; off: skip
    qa_dir: str | None = None  # the QA folder whose bench.jsonl to answer; default: the one the teacher trained on
    max_pairs: int = 0  # event-probe pairs, evenly spaced over the bench; 0 = all
    hop_s: float = 0.25  # the runtime's hop: one program call per hop over the bench's recordings
    batch_size: int = 32  # the teacher's answers
    target_retention: float = 0.9  # student pair accuracy / teacher pair accuracy, per modality
    seed: int = 0  # shuffled-clip donors and bootstrap resamples

    def __post_init__(self) -> None:
        p = "probes."
        check_choice(p + "mode", self.mode, _PROBES)
        check_range(p + "max_pairs", self.max_pairs, 0)
        check_range(p + "hop_s", self.hop_s, 0.05, 2.0, unit="s")
        check_range(p + "batch_size", self.batch_size, 1, 4096)
        check_range(p + "target_retention", self.target_retention, 0.0, 10.0)


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
    probes: ProbesConfig = field(default_factory=ProbesConfig)  # pair accuracy and retention on the bench
    mlflow: TrackingConfig = field(default_factory=lambda: TrackingConfig(experiment="earshot-export"))

    def __post_init__(self) -> None:
        check(bool(str(self.checkpoint).strip()), "checkpoint", "must name a distill out or a student folder")
        bad = [p for p in self.precisions if p not in _PRECISIONS]
        check(bool(self.precisions) and not bad, "precisions", f"must be a non-empty subset of {_PRECISIONS}, got {self.precisions}")
        check_choice("tflite", self.tflite, _TFLITE)
        check_range("calibration_windows", self.calibration_windows, 1, 100_000)
        check_range("max_eval_windows", self.max_eval_windows, 0)
        check_threads(self.threads)
