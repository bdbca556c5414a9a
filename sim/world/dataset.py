"""A dataset of synthetic recordings: generation (optionally in parallel),
splits, the manifest and the summary table.

Layout written by :func:`generate_dataset` (read by ``shared.dataset.load_dataset``)::

    <out>/
      manifest.json              schema_version, generator, config, recordings, splits, summary
      recordings/<id>/           audio.wav, video.mp4, annotations.json (shared/recording.py)

Recording ``i`` is a pure function of ``(world config, seed, i)`` and the
split of recording ``i`` a pure function of ``(seed, n, fractions)``, so the
dataset is byte-identical whatever ``workers`` is. The manifest holds no
timestamps or paths outside ``<out>`` for the same reason.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np

from shared import dataset as shared_dataset
from shared.config import UserError
from shared.labels import names
from shared.recording import save_recording
from sim.world.generator import GENERATOR_NAME, GENERATOR_VERSION, generate_recording
from sim.world.world_config import SplitsConfig, SynthConfig

__all__ = [
    "MANIFEST_FILE",
    "MANIFEST_SCHEMA_VERSION",
    "RECORDINGS_DIR",
    "SNR_BIN_DB",
    "assign_splits",
    "generate_dataset",
    "summarize_entries",
    "print_summary",
]

# the layout readers expect (shared/dataset.py is the one reader every part uses)
MANIFEST_FILE = shared_dataset.MANIFEST_FILE
MANIFEST_SCHEMA_VERSION = shared_dataset.MANIFEST_SCHEMA_VERSION
RECORDINGS_DIR = shared_dataset.RECORDINGS_DIR
SNR_BIN_DB = 5.0  # width of the SNR histogram bins in the summary
_SPLIT_STREAM = 0x5B1175  # a fixed SeedSequence key: splits never share draws with recordings
_SOUND_LABELS = set(names("audio_event"))


def assign_splits(n: int, splits: SplitsConfig, seed: int) -> list[str]:
    """Split name of each recording index 0..n-1, deterministic in (n, fractions, seed).

    Counts follow the fractions by largest remainder (8 x 0.8/0.1/0.1 -> 6/1/1),
    and every split with a positive fraction gets at least one recording when
    ``n`` allows; which recordings go where is a seeded permutation.
    """
    fracs = {"train": splits.train, "val": splits.val, "test": splits.test}
    raw = {k: v * n for k, v in fracs.items()}
    counts = {k: int(np.floor(v)) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: (-(raw[k] - counts[k]), list(fracs).index(k)))[: n - sum(counts.values())]:
        counts[k] += 1
    # every split asked for gets a recording when there are enough (4 x 0.8/0.1/0.1 -> 2/1/1)
    wanted = [k for k, v in fracs.items() if v > 0]
    if n >= len(wanted):
        for k in wanted:
            if counts[k] == 0:
                donor = max(counts, key=lambda d: counts[d])
                counts[donor] -= 1
                counts[k] += 1
    order = np.random.default_rng(np.random.SeedSequence([seed, _SPLIT_STREAM])).permutation(n)
    out = [""] * n
    pos = 0
    for k in fracs:
        for i in order[pos:pos + counts[k]]:
            out[int(i)] = k
        pos += counts[k]
    return out


def _entry(rec, rel_path: str, split: str) -> dict:
    """The manifest row of one recording plus the counts the summary needs."""
    ann = rec.annotations
    sound = [e for e in ann.events if e.label in _SOUND_LABELS]
    return {
        "id": ann.recording_id,
        "path": rel_path,
        "environment": ann.environment,
        "duration_s": ann.duration_s,
        "snr_db": ann.snr_db,
        "split": split,
        "n_events": len(ann.events),
        "n_queries": len(ann.queries),
        "stats": {
            "labels": dict(sorted(Counter(e.label for e in ann.events).items())),
            "sound_events": len(sound),
            "offscreen_sound_events": sum(1 for e in sound if e.source_visible is False),
            "cause_links": len(ann.cause_links()),
            "origins": dict(sorted(Counter(e.attrs.get("origin", "procedural") for e in sound).items())),
            "query_kinds": dict(sorted(Counter(q.kind for q in ann.queries).items())),
        },
    }


def _make_one(args: tuple) -> dict:
    """Worker: generate and save recording ``index``; returns its manifest entry."""
    world, seed, index, out_dir, split = args
    rec = generate_recording(world, seed, index)
    rel = f"{RECORDINGS_DIR}/{rec.annotations.recording_id}"
    save_recording(rec, Path(out_dir) / rel)
    return _entry(rec, rel, split)


def _prepare_out(out: Path) -> None:
    """Refuse to write into a folder that holds something other than a dataset."""
    if out.exists() and any(out.iterdir()):
        if not (out / MANIFEST_FILE).is_file():
            raise UserError(f"out: {out} is not empty and holds no {MANIFEST_FILE}; choose an empty or new folder")
        shutil.rmtree(out / RECORDINGS_DIR, ignore_errors=True)  # a previous dataset: replace it
        (out / MANIFEST_FILE).unlink()
    (out / RECORDINGS_DIR).mkdir(parents=True, exist_ok=True)


def generate_dataset(cfg: SynthConfig, *, on_done: Callable[[dict], None] | None = None) -> dict:
    """Generate ``cfg.n_recordings`` recordings into ``cfg.out`` and write the manifest.

    Args:
        cfg: the validated ``earshot synth`` config.
        on_done: called with each manifest entry as its recording is saved
            (any order when ``workers > 1``), e.g. to advance a progress bar.

    Returns:
        The manifest (also written to ``<out>/manifest.json``).
    """
    out = Path(cfg.out)
    _prepare_out(out)
    splits = assign_splits(cfg.n_recordings, cfg.splits, cfg.seed)
    jobs = [(cfg.world, cfg.seed, i, str(out), splits[i]) for i in range(cfg.n_recordings)]
    entries: list[dict | None] = [None] * len(jobs)
    if cfg.workers == 1:
        for i, job in enumerate(jobs):
            entries[i] = _make_one(job)
            if on_done:
                on_done(entries[i])
    else:
        # The platform's default start method (fork on Linux: workers inherit the imports). Callers
        # should not run threads meanwhile (the synth verb's progress bar refreshes without one).
        with ProcessPoolExecutor(max_workers=cfg.workers) as pool:
            for i, entry in enumerate(pool.map(_make_one, jobs)):  # map keeps index order
                entries[i] = entry
                if on_done:
                    on_done(entry)
    manifest = {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "generator": {"name": GENERATOR_NAME, "version": GENERATOR_VERSION},
        # what the data depends on; out, workers and progress do not change a byte
        "config": {
            "seed": cfg.seed,
            "n_recordings": cfg.n_recordings,
            "splits": dataclasses.asdict(cfg.splits),
            "world": dataclasses.asdict(cfg.world),
        },
        "recordings": [{k: v for k, v in e.items() if k != "stats"} for e in entries],
        "splits": {k: [e["id"] for e in entries if e["split"] == k] for k in ("train", "val", "test")},
        "summary": summarize_entries(entries),
    }
    text = json.dumps(manifest, indent=1, ensure_ascii=False)
    (out / MANIFEST_FILE).write_text(text + "\n", encoding="utf-8")
    return manifest


def summarize_entries(entries: list[dict]) -> dict:
    """Aggregate manifest entries (with their ``stats``) into the dataset summary."""
    labels, origins, kinds = Counter(), Counter(), Counter()
    by_env_split: dict[str, Counter] = {}
    snrs = []
    n_sound = n_off = n_links = 0
    for e in entries:
        st = e["stats"]
        labels.update(st["labels"])
        origins.update(st["origins"])
        kinds.update(st["query_kinds"])
        n_sound += st["sound_events"]
        n_off += st["offscreen_sound_events"]
        n_links += st["cause_links"]
        by_env_split.setdefault(e["environment"], Counter())[e["split"]] += 1
        if e["snr_db"] is not None:
            snrs.append(e["snr_db"])
    hist = Counter(float(np.floor(s / SNR_BIN_DB) * SNR_BIN_DB) for s in snrs)
    return {
        "n_recordings": len(entries),
        "hours": round(sum(e["duration_s"] for e in entries) / 3600.0, 6),
        "recordings_by_environment_split": {k: dict(sorted(v.items())) for k, v in sorted(by_env_split.items())},
        "events_by_label": dict(sorted(labels.items())),
        "sound_events": n_sound,
        "offscreen_sound_share": round(n_off / n_sound, 4) if n_sound else None,
        "cause_links": n_links,
        "snr_db_histogram": {f"{lo:+.0f}..{lo + SNR_BIN_DB:+.0f}": c for lo, c in sorted(hist.items())},
        "sound_origins": dict(sorted(origins.items())),
        "query_kinds": dict(sorted(kinds.items())),
    }


def print_summary(summary: dict, *, title: str, console=None, elapsed_s: float | None = None) -> None:
    """Print the summary as rich tables (hours, splits, events, off-screen share, SNR, origins)."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    hours = summary["hours"]
    head = Table(title=title, show_header=False)
    rows = [
        ("recordings", str(summary["n_recordings"])),
        ("hours", f"{hours:.3f} h ({hours * 60:.1f} min)"),
        ("sound events", str(summary["sound_events"])),
        ("off-screen share", "n/a" if summary["offscreen_sound_share"] is None
         else f"{100 * summary['offscreen_sound_share']:.1f}% of sound events (source_visible false)"),
        ("cause links", str(summary["cause_links"])),
        ("queries", ", ".join(f"{k} {v}" for k, v in summary["query_kinds"].items()) or "none"),
    ]
    if elapsed_s:
        rows.append(("generation", f"{elapsed_s:.1f} s wall incl. writing, {hours * 3600 / elapsed_s:.1f}x real time"))
    for k, v in rows:
        head.add_row(k, v)
    console.print(head)

    splits = Table(title="recordings per environment and split", min_width=40)
    for col in ("environment", "train", "val", "test"):
        splits.add_column(col, justify="left" if col == "environment" else "right")
    for env, c in summary["recordings_by_environment_split"].items():
        splits.add_row(env, *(str(c.get(k, 0)) for k in ("train", "val", "test")))
    console.print(splits)

    events = Table(title="events per class", min_width=40)
    for col in ("label", "group", "count"):
        events.add_column(col, justify="right" if col == "count" else "left")
    from shared.labels import group_of

    for label, count in sorted(summary["events_by_label"].items(), key=lambda kv: (group_of(kv[0]), -kv[1], kv[0])):
        events.add_row(label, group_of(label), str(count))
    console.print(events)

    snr = Table(title="recording SNR (dB)", min_width=36)
    snr.add_column("bin")
    snr.add_column("n", justify="right")
    snr.add_column("")
    top = max(summary["snr_db_histogram"].values(), default=1)
    for b, c in summary["snr_db_histogram"].items():
        snr.add_row(b, str(c), "█" * max(1, round(30 * c / top)))
    console.print(snr)

    org = Table(title="real vs procedural", min_width=36)
    org.add_column("origin")
    org.add_column("events", justify="right")
    for k, v in summary["sound_origins"].items():
        org.add_row(k, str(v))
    console.print(org)
