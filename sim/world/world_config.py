"""Schemas of the synthetic egocentric world and of its two verbs.

Every knob of ``earshot synth`` and ``earshot sheet`` is a field here, with its
unit in the name where it has one. Each dataclass validates itself in
``__post_init__`` through :func:`shared.config.check`, so a wrong value fails
with ``config error: <key>: <problem>`` when the config is composed, before a
single recording is generated. The YAML files (``configs/synth.yaml``,
``configs/sheet.yaml``) carry the defaults and the trade-off comments.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

from omegaconf import MISSING

from shared.config import check

__all__ = [
    "SCENARIO_NAMES",
    "REQUIRED_FPS",
    "REQUIRED_SAMPLE_RATE_HZ",
    "SnrRangesConfig",
    "WorldConfig",
    "SplitsConfig",
    "SynthConfig",
    "SheetConfig",
]

#: The scenarios sim/world/scenarios.py knows (kept here so the schema can
#: reject a typo without importing the scene code).
SCENARIO_NAMES = ("kitchen", "office", "living_room", "street")

#: The recording contract (ARCHITECTURE.md section 3): 10 fps video, 16 kHz
#: audio. Other rates would need the per-frame ground truth and the audio
#: library to be resampled, so they are refused rather than half-supported.
REQUIRED_FPS = 10.0
REQUIRED_SAMPLE_RATE_HZ = 16_000


def _check_range(key: str, pair: list[float], lo: float, hi: float, *, allow_equal: bool = True) -> None:
    check(len(pair) == 2, key, f"expected [low, high], got {list(pair)}")
    a, b = float(pair[0]), float(pair[1])
    check(lo <= a <= hi and lo <= b <= hi, key, f"values must lie in [{lo}, {hi}], got {list(pair)}")
    ok = a <= b if allow_equal else a < b
    check(ok, key, f"range is inverted: low {a} > high {b}" if a > b else f"range is empty: [{a}, {b}]")


@dataclass
class SnrRangesConfig:
    """Per-scenario range of the recording SNR in dB, drawn uniformly.

    SNR = 10 log10(mean(foreground^2) / mean(noise^2)) over the whole
    recording, where the foreground is every scripted sound after distance
    attenuation and reverberation.
    """

    kitchen: list[float] = field(default_factory=lambda: [-5.0, 10.0])
    office: list[float] = field(default_factory=lambda: [15.0, 30.0])
    living_room: list[float] = field(default_factory=lambda: [5.0, 20.0])
    street: list[float] = field(default_factory=lambda: [-5.0, 10.0])

    def __post_init__(self) -> None:
        for f in fields(self):
            _check_range(f"world.snr_db.{f.name}", getattr(self, f.name), -30.0, 60.0)

    def range_for(self, scenario: str) -> tuple[float, float]:
        lo, hi = getattr(self, scenario)
        return float(lo), float(hi)


@dataclass
class WorldConfig:
    """What one synthetic recording looks and sounds like (see configs/synth.yaml)."""

    scenarios: list[str] = field(default_factory=lambda: list(SCENARIO_NAMES))
    duration_s: float = 30.0
    fps: float = REQUIRED_FPS
    frame_size_px: int = 128
    sample_rate_hz: int = REQUIRED_SAMPLE_RATE_HZ
    fov_deg: float = 70.0
    snr_db: SnrRangesConfig = field(default_factory=SnrRangesConfig)
    cause_lag_s: list[float] = field(default_factory=lambda: [1.0, 5.0])
    chains_per_min: float = 5.0
    ignored_cause_share: float = 0.2
    repeat_chain_share: float = 0.5
    ambient_per_min: float = 8.0
    offscreen_share: float = 0.4
    silent_action_share: float = 0.3
    queries_per_recording: int = 3
    reverb: bool = True
    offscreen_distance_m: list[float] = field(default_factory=lambda: [3.0, 10.0])
    allow_real_sounds: bool = True
    exposure_s: float = 0.03
    head_turn_speed_deg_s: list[float] = field(default_factory=lambda: [80.0, 240.0])
    walk_bob_deg: float = 1.5
    hands: bool = True
    background_only: bool = False

    def __post_init__(self) -> None:
        p = "world."
        check(len(self.scenarios) > 0, p + "scenarios", "needs at least one scenario")
        for i, name in enumerate(self.scenarios):
            check(name in SCENARIO_NAMES, f"{p}scenarios[{i}]", f"unknown scenario {name!r}; known: {', '.join(SCENARIO_NAMES)}")
        check(len(set(self.scenarios)) == len(self.scenarios), p + "scenarios", f"duplicates in {list(self.scenarios)}")
        check(5.0 <= self.duration_s <= 3600.0, p + "duration_s", f"must be in [5, 3600] s, got {self.duration_s}")
        check(self.fps == REQUIRED_FPS, p + "fps", f"the recording format is {REQUIRED_FPS:g} fps, got {self.fps}")
        check(
            self.sample_rate_hz == REQUIRED_SAMPLE_RATE_HZ,
            p + "sample_rate_hz",
            f"the recording format is {REQUIRED_SAMPLE_RATE_HZ} Hz, got {self.sample_rate_hz}",
        )
        check(
            128 <= self.frame_size_px <= 512 and self.frame_size_px % 2 == 0,
            p + "frame_size_px",
            f"must be even and in [128, 512], got {self.frame_size_px}",
        )
        check(40.0 <= self.fov_deg <= 110.0, p + "fov_deg", f"must be in [40, 110] degrees, got {self.fov_deg}")
        _check_range(p + "cause_lag_s", self.cause_lag_s, 0.2, 30.0)
        check(0.0 <= self.chains_per_min <= 20.0, p + "chains_per_min", f"must be in [0, 20], got {self.chains_per_min}")
        for key in ("ignored_cause_share", "repeat_chain_share"):
            v = getattr(self, key)
            check(0.0 <= v <= 1.0, p + key, f"must be in [0, 1], got {v}")
        check(0.0 <= self.ambient_per_min <= 60.0, p + "ambient_per_min", f"must be in [0, 60], got {self.ambient_per_min}")
        check(0.0 <= self.offscreen_share <= 1.0, p + "offscreen_share", f"must be in [0, 1], got {self.offscreen_share}")
        check(
            0.0 <= self.silent_action_share <= 1.0,
            p + "silent_action_share",
            f"must be in [0, 1], got {self.silent_action_share}",
        )
        check(
            0 <= self.queries_per_recording <= 20,
            p + "queries_per_recording",
            f"must be in [0, 20], got {self.queries_per_recording}",
        )
        _check_range(p + "offscreen_distance_m", self.offscreen_distance_m, 0.5, 100.0)
        check(0.0 <= self.exposure_s <= 0.1, p + "exposure_s", f"must be in [0, 0.1] s (frame period), got {self.exposure_s}")
        _check_range(p + "head_turn_speed_deg_s", self.head_turn_speed_deg_s, 10.0, 600.0)
        check(0.0 <= self.walk_bob_deg <= 5.0, p + "walk_bob_deg", f"must be in [0, 5] degrees, got {self.walk_bob_deg}")

    @property
    def n_frames(self) -> int:
        return int(round(self.duration_s * self.fps))

    @property
    def n_samples(self) -> int:
        return int(round(self.duration_s * self.sample_rate_hz))


@dataclass
class SplitsConfig:
    """Train/val/test fractions; recordings (not events) are split."""

    train: float = 0.8
    val: float = 0.1
    test: float = 0.1

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            check(0.0 <= v <= 1.0, f"splits.{f.name}", f"must be in [0, 1], got {v}")
        total = self.train + self.val + self.test
        check(abs(total - 1.0) < 1e-6, "splits", f"fractions must sum to 1, got {total:g}")


@dataclass
class SynthConfig:
    """``earshot synth``: write a dataset of synthetic recordings."""

    out: str = "data/world"
    n_recordings: int = 8
    seed: int = 0
    workers: int = 1
    splits: SplitsConfig = field(default_factory=SplitsConfig)
    progress: bool = True
    world: WorldConfig = field(default_factory=WorldConfig)

    def __post_init__(self) -> None:
        check(bool(str(self.out).strip()), "out", "must name a folder")
        check(1 <= self.n_recordings <= 1_000_000, "n_recordings", f"must be in [1, 1e6], got {self.n_recordings}")
        check(0 <= self.seed < 2**63, "seed", f"must be a non-negative int, got {self.seed}")
        check(1 <= self.workers <= 256, "workers", f"must be in [1, 256], got {self.workers}")


@dataclass
class SheetConfig:
    """``earshot sheet``: render one recording to a contact-sheet PNG."""

    path: str = MISSING
    out: str | None = None
    n_frames: int = 10
    spectrogram: str = "mel"
    max_duration_s: float = 60.0
    dpi: int = 110

    def __post_init__(self) -> None:
        from pathlib import Path

        check(Path(self.path).is_dir(), "path", f"not a recording folder: {self.path}")
        check(2 <= self.n_frames <= 40, "n_frames", f"must be in [2, 40], got {self.n_frames}")
        check(self.spectrogram in ("mel", "stft"), "spectrogram", f"must be mel or stft, got {self.spectrogram!r}")
        check(1.0 <= self.max_duration_s <= 3600.0, "max_duration_s", f"must be in [1, 3600], got {self.max_duration_s}")
        check(50 <= self.dpi <= 400, "dpi", f"must be in [50, 400], got {self.dpi}")
