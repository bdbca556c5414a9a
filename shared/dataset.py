"""Datasets: a folder of recordings plus a manifest with splits by recording.

Layout (written by ``earshot synth``; any tool may write one)::

    <root>/
      manifest.json
      recordings/<recording_id>/{audio.wav, video.mp4, annotations.json}

``manifest.json`` holds ``schema_version``, free-form ``generator`` and
``config`` objects, and ``recordings``: a list of entries with at least
``id``, ``split`` (``train`` | ``val`` | ``test``), ``environment``,
``duration_s`` and ``snr_db``. Splits are by recording, never by clip, so no
part of a test recording is ever trained on.

Readers in every part (cloud, distill, edge, sim) go through this module, so
they agree on the layout without importing each other.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from shared.recording import Recording, RecordingError, load_annotations, load_recording

__all__ = ["MANIFEST_FILE", "RECORDINGS_DIR", "SPLITS", "DatasetEntry", "Dataset", "load_dataset"]

MANIFEST_FILE = "manifest.json"
RECORDINGS_DIR = "recordings"
SPLITS = ("train", "val", "test")
MANIFEST_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class DatasetEntry:
    """One recording of a dataset, as the manifest lists it."""

    id: str
    split: str
    environment: str
    duration_s: float
    snr_db: float | None
    path: Path
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass
class Dataset:
    """A dataset folder: its manifest entries, and loaders for each recording."""

    root: Path
    entries: list[DatasetEntry]
    generator: dict[str, Any]
    config: dict[str, Any]

    def split(self, name: str) -> list[DatasetEntry]:
        """Entries of one split (raises ValueError for an unknown split name)."""
        if name not in SPLITS:
            raise ValueError(f"split: unknown split {name!r}; splits are {SPLITS}")
        return [e for e in self.entries if e.split == name]

    def load(self, entry: DatasetEntry | str, *, video: bool = True) -> Recording:
        """Load one recording (by entry or id)."""
        if isinstance(entry, str):
            entry = self.entry(entry)
        return load_recording(entry.path, video=video)

    def entry(self, recording_id: str) -> DatasetEntry:
        for e in self.entries:
            if e.id == recording_id:
                return e
        raise KeyError(f"{self.root}: no recording {recording_id!r} in the manifest")

    def iter_recordings(self, split: str | None = None, *, video: bool = True) -> Iterator[Recording]:
        for e in self.entries if split is None else self.split(split):
            yield load_recording(e.path, video=video)

    def annotations(self, entry: DatasetEntry | str):
        """Only the annotations of a recording (fast: no signals decoded)."""
        if isinstance(entry, str):
            entry = self.entry(entry)
        return load_annotations(entry.path)

    @property
    def hours(self) -> float:
        return sum(e.duration_s for e in self.entries) / 3600.0


def load_dataset(root: str | Path, *, check_files: bool = True) -> Dataset:
    """Read ``<root>/manifest.json``.

    Args:
        check_files: also check that every listed recording folder exists.

    Raises:
        RecordingError: missing or invalid manifest (the message names the
            field, e.g. ``manifest.json: recordings[3].split: ...``), or a
            listed recording folder that does not exist.
    """
    root = Path(root)
    path = root / MANIFEST_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecordingError(f"{path}: no manifest (is {root} a dataset folder? make one with 'earshot synth')") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RecordingError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise RecordingError(f"{path}: expected an object at the top level")
    if data.get("schema_version") != MANIFEST_SCHEMA_VERSION:
        raise RecordingError(
            f"{path}: schema_version: unsupported {data.get('schema_version')!r} (expected {MANIFEST_SCHEMA_VERSION})"
        )
    recs = data.get("recordings")
    if not isinstance(recs, list):
        raise RecordingError(f"{path}: recordings: expected a list")
    entries, seen = [], set()
    known = {"id", "split", "environment", "duration_s", "snr_db", "path"}
    for i, r in enumerate(recs):
        where = f"{path}: recordings[{i}]"
        if not isinstance(r, dict):
            raise RecordingError(f"{where}: expected an object")
        rid = r.get("id")
        if not isinstance(rid, str) or not rid:
            raise RecordingError(f"{where}.id: expected a non-empty string")
        if rid in seen:
            raise RecordingError(f"{where}.id: duplicate id {rid!r}")
        seen.add(rid)
        if r.get("split") not in SPLITS:
            raise RecordingError(f"{where}.split: expected one of {SPLITS}, got {r.get('split')!r}")
        dur = r.get("duration_s")
        if isinstance(dur, bool) or not isinstance(dur, (int, float)) or dur <= 0:
            raise RecordingError(f"{where}.duration_s: expected a positive number, got {dur!r}")
        snr = r.get("snr_db")
        if snr is not None and (isinstance(snr, bool) or not isinstance(snr, (int, float))):
            raise RecordingError(f"{where}.snr_db: expected a number or null, got {snr!r}")
        folder = root / r.get("path", f"{RECORDINGS_DIR}/{rid}")
        if check_files and not folder.is_dir():
            raise RecordingError(f"{where}: recording folder {folder} does not exist")
        entries.append(
            DatasetEntry(
                id=rid,
                split=r["split"],
                environment=str(r.get("environment", "unknown")),
                duration_s=float(dur),
                snr_db=None if snr is None else float(snr),
                path=folder,
                extra={k: v for k, v in r.items() if k not in known},
            )
        )
    return Dataset(root, entries, dict(data.get("generator") or {}), dict(data.get("config") or {}))
