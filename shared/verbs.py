"""Foundation verbs: ``earshot import`` and ``earshot inspect``.

    earshot import video=clip.mp4 csv=EPIC_Sounds_train.csv out=data/real/P01_01
    earshot inspect path=data/real/P01_01
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from omegaconf import MISSING

from shared.config import ConfigError, check, check_range, verb
from shared.labels import names

__all__ = ["ImportConfig", "InspectConfig", "import_main", "inspect_main", "summarize"]


@dataclass
class ImportConfig:
    """``earshot import``: a media file (+ EPIC-SOUNDS CSV) -> recording folder."""

    video: str = MISSING  # any media file with an audio and a video track
    out: str = MISSING  # recording folder to write (replaced if it exists)
    csv: str | None = None  # EPIC-SOUNDS-style annotations, optional
    video_id: str | None = None  # CSV rows to keep; default: the video's file stem
    environment: str = "unknown"  # one of labels.ENVIRONMENTS, or unknown
    fps: float = 10.0
    size: int = 128
    sample_rate_hz: int = 16_000

    def __post_init__(self) -> None:
        check(Path(self.video).is_file(), "video", f"no such file: {self.video}")
        check(self.csv is None or Path(self.csv).is_file(), "csv", f"no such file: {self.csv}")
        envs = names("environment") + ["unknown"]
        check(self.environment in envs, "environment", f"{self.environment!r} is not one of {envs}")
        check_range("fps", self.fps, 0, 60, lo_open=True)
        check(16 <= self.size <= 1024 and self.size % 2 == 0, "size", f"must be even, 16..1024, got {self.size}")
        check(8000 <= self.sample_rate_hz <= 48000, "sample_rate_hz", f"must be 8000..48000, got {self.sample_rate_hz}")


@verb("import", ImportConfig)
def import_main(cfg: ImportConfig) -> None:
    """Import a video with sound (and an EPIC-SOUNDS CSV) as a recording."""
    from shared.importers import import_mp4

    rec = import_mp4(
        cfg.video,
        cfg.out,
        epic_csv=cfg.csv,
        video_id=cfg.video_id,
        environment=cfg.environment,
        fps=cfg.fps,
        size=cfg.size,
        sample_rate_hz=cfg.sample_rate_hz,
    )
    print(f"wrote {cfg.out}")
    summarize(rec, cfg.out)


@dataclass
class InspectConfig:
    """``earshot inspect``: validate a recording folder and summarise it."""

    path: str = MISSING  # a recording folder
    video: bool = True  # decode the video too (slower, checks it fully)

    def __post_init__(self) -> None:
        if not Path(self.path).is_dir():
            raise ConfigError(f"path: not a directory: {self.path}")


@verb("inspect", InspectConfig)
def inspect_main(cfg: InspectConfig) -> None:
    """Validate a recording folder and print what it holds."""
    from shared.recording import load_recording

    summarize(load_recording(cfg.path, video=cfg.video), cfg.path)


def summarize(rec, where: str | Path) -> None:
    """Print a recording's summary and its events per label as rich tables."""
    from rich.console import Console
    from rich.table import Table

    ann = rec.annotations
    console = Console()
    head = Table(title=f"recording {ann.recording_id}  ({where})", show_header=False)
    n, h, w = (rec.frames.shape[:3] if rec.frames.size else (0, 0, 0))
    snr = "unknown" if ann.snr_db is None else f"{ann.snr_db:.1f} dB"
    for key, value in [
        ("duration", f"{rec.duration_s:.2f} s"),
        ("audio", f"{rec.sample_rate_hz} Hz mono int16, {len(rec.audio)} samples"),
        ("video", f"{n} frames, {w}x{h}, {rec.fps:.2f} fps" if n else "not decoded"),
        ("environment", ann.environment),
        ("snr", snr),
        ("events", str(len(ann.events))),
        ("cause links", str(len(ann.cause_links()))),
        ("queries", str(len(ann.queries))),
        ("source", str(ann.provenance.get("kind", "unknown"))),
    ]:
        head.add_row(key, value)
    console.print(head)
    if ann.events:
        table = Table(title="events per label")
        for col in ("label", "modality", "count", "off-screen", "total s"):
            table.add_column(col, justify="right" if col in ("count", "off-screen", "total s") else "left")
        counts = Counter((e.label, e.modality) for e in ann.events)
        for (label, modality), count in sorted(counts.items()):
            evs = [e for e in ann.events if e.label == label and e.modality == modality]
            off = sum(1 for e in evs if e.source_visible is False)
            total = sum(e.offset_s - e.onset_s for e in evs)
            table.add_row(label, modality, str(count), str(off), f"{total:.1f}")
        console.print(table)
    links = ann.cause_links()
    if links:
        table = Table(title="cause links (effect <- cause)")
        for col in ("effect", "cause", "lag s"):
            table.add_column(col)
        for effect, cause, lag in links:
            table.add_row(f"{effect.label} @{effect.onset_s:.1f}s", f"{cause.label} @{cause.onset_s:.1f}s", f"{lag:.2f}")
        console.print(table)
