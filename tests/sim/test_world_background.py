"""The world's background_only flag: a scene's noise at its level, with no sound event (the trigger's
false-alarm hours, configs/synth/preset/background.yaml)."""
from __future__ import annotations

import dataclasses

import numpy as np

from sim.world import WorldConfig, generate_recording


def test_background_is_the_recordings_own_noise_without_its_sounds():
    cfg = WorldConfig(duration_s=12.0, scenarios=["kitchen"], reverb=False)
    full, details = generate_recording(cfg, 5, 0, details=True)
    bg = generate_recording(dataclasses.replace(cfg, background_only=True), 5, 0)
    assert any(e.modality != "visual" for e in full.annotations.events)
    # exactly the noise under the scripted sounds, at the same level (the int16 gain included)
    assert np.array_equal(bg.audio, np.clip(np.round(details.noise), -32768, 32767).astype(np.int16))
    assert 0 < np.abs(bg.audio.astype(np.int64)).mean() < np.abs(full.audio.astype(np.int64)).mean()
    assert bg.annotations.events and all(e.modality == "visual" for e in bg.annotations.events)
    assert all(e.cause is None or e.cause in {x.id for x in bg.annotations.events} for e in bg.annotations.events)
    assert bg.annotations.queries == [] and bg.annotations.snr_db == full.annotations.snr_db
    assert np.array_equal(bg.frames, full.frames)
    assert bg.annotations.provenance["config"]["background_only"] is True
