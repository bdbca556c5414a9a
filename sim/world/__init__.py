"""The procedural egocentric world: scenes, timelines, video and audio rendering.

Public API (heavier modules are imported on first use, so ``import sim.world``
stays cheap)::

    from sim.world import WorldConfig, generate_recording, generate_dataset

    rec = generate_recording(WorldConfig(duration_s=20), seed=0, index=3)   # shared.recording.Recording
    rec, details = generate_recording(cfg, 0, 3, details=True)             # + masks, stems, plan
    manifest = generate_dataset(SynthConfig(out="data/world", n_recordings=8))
    render_contact_sheet(rec, "sheet.png")

Modules: ``world_config`` (schemas), ``scenarios`` (the four scenes as data),
``plan`` (the script as data), ``chains`` (causal chains, audio leads
vision), ``timeline`` (activities, ambient sounds, visibility; draws the
plan), ``motion`` (head trajectory), ``panorama`` (painting), ``video``
(camera, blur, hands, object masks), ``queries`` (questions with gold
answers), ``generator`` (one recording end to end), ``dataset`` (manifest,
splits, summary), ``render_sheet`` (contact sheet), ``verbs`` (``earshot
synth``, ``earshot sheet``); ``sounds`` and ``acoustics`` are the audio
library.
"""
from __future__ import annotations

from sim.world.world_config import SCENARIO_NAMES, SheetConfig, SnrRangesConfig, SplitsConfig, SynthConfig, WorldConfig

__all__ = [
    "SCENARIO_NAMES",
    "WorldConfig",
    "SnrRangesConfig",
    "SplitsConfig",
    "SynthConfig",
    "SheetConfig",
    "GENERATOR_NAME",
    "GENERATOR_VERSION",
    "generate_recording",
    "generate_dataset",
    "render_contact_sheet",
]

_LAZY = {
    "generate_recording": "sim.world.generator",
    "GENERATOR_NAME": "sim.world.generator",
    "GENERATOR_VERSION": "sim.world.generator",
    "generate_dataset": "sim.world.dataset",
    "render_contact_sheet": "sim.world.render_sheet",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sim.world' has no attribute {name!r}")
