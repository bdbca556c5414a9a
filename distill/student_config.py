"""Student schemas: the front end and the architecture of each on-device program.

Kept free of torch so that the Hydra schemas (``distill/verbs.py``) can embed
them without importing the models, like ``cloud/model/config.py``. A student
checkpoint stores `StudentConfig.to_dict()` as JSON next to its weights, so
``earshot export`` rebuilds the exact model with no training config at hand.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from shared.config import ConfigError, check, check_choice, check_range

__all__ = ["AUDIO_POOLS", "STUDENT_NAMES", "FrontEndConfig", "StudentConfig"]

#: ``trigger``: the always-on audio event detector (PCM in, event probabilities out).
#: ``av``: one frame plus recent audio in, event and action probabilities and a
#: confidence out.
STUDENT_NAMES = ("trigger", "av")
#: How the audio body pools its CNN map into one embedding (``distill/students.py``, `AudioBody`):
#: ``mean`` over time and frequency; ``max_time``: mean over frequency, maximum over time.
AUDIO_POOLS = ("mean", "max_time")


@dataclass
class FrontEndConfig:
    """The log-mel front end inside a student's graph (``shared.features``).

    The fields are `shared.features.FeatureConfig`'s; ``trim_bins`` drops the
    DFT bins no mel band uses (``LogMel(trim_bins=True)``: same features, fewer
    MACs). The defaults are the trigger's budget front end, not YAMNet's: a
    16 ms window (n_fft 256, 62.5 Hz bins), a 20 ms hop and 32 bands cost
    ~3.2 MMAC per second of audio against YAMNet's ~22 MMAC.
    """

    sample_rate_hz: int = 16000
    window_ms: float = 16.0
    hop_ms: float = 20.0
    n_fft: int = 256
    n_mels: int = 32
    fmin_hz: float = 125.0
    fmax_hz: float = 7500.0
    log_offset: float = 0.001
    trim_bins: bool = True

    def __post_init__(self) -> None:
        # FeatureConfig owns the checks (and names the field); torch is only
        # imported when a config is validated, never when verbs are listed.
        from shared.features import FeatureConfig

        try:
            FeatureConfig(**self.feature_kwargs())
        except ValueError as exc:
            raise ConfigError(f"student.features.{exc}") from None

    def feature_kwargs(self) -> dict[str, Any]:
        """The `FeatureConfig` fields (everything but ``trim_bins``)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "trim_bins"}


@dataclass
class StudentConfig:
    """One student: which program, what it reads, how wide it is.

    Attributes:
        name: ``trigger`` or ``av`` (`STUDENT_NAMES`).
        audio_s: seconds of 16 kHz PCM the program reads (the window ends
            "now"); a multiple of 0.5 s so the teacher's 0.5 s audio tokens
            cover exactly the same audio.
        audio_channels: widths of the audio body (a depthwise-separable CNN
            over the log-mel); the first is the stride-2 stem, every later
            entry is one depthwise-separable block, stride 2 where the width
            grows.
        audio_pool: how the audio body pools its map (`AUDIO_POOLS`): ``mean``
            over time and frequency, or ``max_time`` (mean over frequency,
            maximum over time: a sound in the window's newest columns counts
            in full, so a trigger can fire on its first fraction of a second).
        frame_size_px: (av) the square RGB frame the visual body sees.
        camera_px: (av) the square camera frame the program reads (the
            recordings' stored size); the program area-resizes it to
            ``frame_size_px`` inside its graph (``shared/frames.py``), so no
            runtime resizes. A multiple of ``frame_size_px``.
        visual_channels: (av) widths of the frame CNN, built like the audio body.
        hidden: (av) width of the fused audio-visual layer.
        confidence_hidden: (av) width of the confidence head.
        features: the front end.
    """

    name: str = "trigger"
    audio_s: float = 1.0
    audio_channels: list[int] = field(default_factory=lambda: [32, 64, 128, 128])
    audio_pool: str = "mean"
    frame_size_px: int = 64
    camera_px: int = 128
    visual_channels: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    hidden: int = 128
    confidence_hidden: int = 32
    features: FrontEndConfig = field(default_factory=FrontEndConfig)

    def __post_init__(self) -> None:
        p = "student."
        check_choice(p + "name", self.name, STUDENT_NAMES)
        halves = self.audio_s / 0.5
        check(
            0.5 <= self.audio_s <= 10.0 and abs(halves - round(halves)) < 1e-9,
            p + "audio_s",
            f"must be a multiple of 0.5 s in [0.5, 10], got {self.audio_s}",
        )
        check_choice(p + "audio_pool", self.audio_pool, AUDIO_POOLS)
        for key in ("audio_channels", "visual_channels"):
            widths = list(getattr(self, key))
            check(
                1 <= len(widths) <= 8 and all(isinstance(w, int) and 4 <= w <= 512 for w in widths),
                p + key,
                f"must be 1..8 widths in [4, 512], got {widths}",
            )
        check(
            16 <= self.frame_size_px <= 256 and self.frame_size_px % 16 == 0,
            p + "frame_size_px",
            f"must be a multiple of 16 in [16, 256], got {self.frame_size_px}",
        )
        check(
            self.camera_px >= self.frame_size_px and self.camera_px % self.frame_size_px == 0 and self.camera_px <= 1024,
            p + "camera_px",
            f"must be a multiple of frame_size_px ({self.frame_size_px}) up to 1024, got {self.camera_px}",
        )
        check_range(p + "hidden", self.hidden, 8, 1024)
        check_range(p + "confidence_hidden", self.confidence_hidden, 4, 256)
        if isinstance(self.features, Mapping):  # from_dict of a checkpoint
            self.features = FrontEndConfig(**self.features)
        n_samples = int(round(self.audio_s * self.features.sample_rate_hz))
        window = int(round(self.features.sample_rate_hz * self.features.window_ms / 1000.0))
        check(n_samples >= window, p + "audio_s", "is shorter than one analysis window")

    @property
    def n_samples(self) -> int:
        """PCM samples per call."""
        return int(round(self.audio_s * self.features.sample_rate_hz))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "StudentConfig":
        """Inverse of `to_dict`; unknown keys are an error (a newer checkpoint)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        check(not unknown, "student", f"unknown keys {unknown} (checkpoint from a newer Earshot?)")
        return cls(**{k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in data.items()})
