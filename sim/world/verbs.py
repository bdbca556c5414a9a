"""``earshot synth`` and ``earshot sheet``: the synthetic world's two verbs.

    earshot synth out=data/world n_recordings=8 world.duration_s=30 seed=0 workers=2
    earshot synth synth/preset=tiny out=/tmp/world_tiny
    earshot sheet path=data/world/recordings/kitchen_s0_00000 out=sheet.png

Schemas: sim/world/world_config.py (SynthConfig, WorldConfig, SheetConfig).
"""
from __future__ import annotations

import time
from pathlib import Path

from shared.config import verb
from sim.world.world_config import SheetConfig, SynthConfig

__all__ = ["synth_main", "run_synth", "sheet_main"]


@verb("synth", SynthConfig)
def synth_main(cfg: SynthConfig) -> None:
    """Generate a synthetic egocentric dataset (recordings, splits, manifest)."""
    run_synth(cfg)


def run_synth(cfg: SynthConfig) -> dict:
    """The verb's body: generate the dataset with a progress bar, print its summary, return the manifest."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from sim.world.dataset import MANIFEST_FILE, generate_dataset, print_summary

    console = Console()
    w = cfg.world
    console.print(f"earshot synth: {cfg.n_recordings} x {w.duration_s:g} s, seed {cfg.seed}, "
                  f"{cfg.workers} worker(s) -> {cfg.out}")
    t0 = time.perf_counter()
    columns = (TextColumn("generating"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[last]}"),
               TimeElapsedColumn(), TimeRemainingColumn())
    # auto_refresh=False: no refresh thread, so worker processes can be forked safely;
    # the bar redraws when a recording is done
    with Progress(*columns, console=console, disable=not cfg.progress, auto_refresh=False) as bar:
        task = bar.add_task("synth", total=cfg.n_recordings, last="")
        bar.refresh()

        def done(entry: dict) -> None:
            bar.update(task, advance=1, last=entry["id"])
            bar.refresh()

        manifest = generate_dataset(cfg, on_done=done)
    elapsed = time.perf_counter() - t0
    print_summary(manifest["summary"], title=f"dataset {cfg.out}", console=console, elapsed_s=elapsed)
    console.print(f"wrote {Path(cfg.out) / MANIFEST_FILE}")
    return manifest


@verb("sheet", SheetConfig)
def sheet_main(cfg: SheetConfig) -> None:
    """Render a recording to a contact-sheet PNG (frames, spectrogram, events, causes)."""
    from shared.recording import load_recording
    from sim.world.render_sheet import render_contact_sheet

    folder = Path(cfg.path)
    out = Path(cfg.out) if cfg.out else folder / "contact_sheet.png"
    rec = load_recording(folder)
    render_contact_sheet(rec, out, n_frames=cfg.n_frames, spectrogram=cfg.spectrogram, dpi=cfg.dpi,
                         max_duration_s=cfg.max_duration_s)
    print(f"wrote {out}")
