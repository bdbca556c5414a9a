"""scripts/bench_onset_floor.py: the label-free energy-onset detector it estimates the latency floor with."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

_SPEC = importlib.util.spec_from_file_location(
    "bench_onset_floor", Path(__file__).resolve().parents[2] / "scripts" / "bench_onset_floor.py")
_MOD = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_MOD)


def _noise_mel(seconds: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(-4.0, 0.2, (int(seconds * 50), 32))


def test_a_rise_in_two_bands_fires_within_one_hop_and_steady_noise_does_not():
    mel = _noise_mel(6.0)
    mel[150:, 5:7] += 3.0  # a sound in two bands from 3.0 s on
    times, scores = _MOD.onset_scores(mel, hop_s=0.1, recent_s=0.1, top_bands=2)
    fired = _MOD.fires(times, scores, threshold=2.0)
    assert len(fired) == 1 and 3.0 < fired[0] <= 3.1 + 1e-9  # once: after a second the rise is the floor
    quiet = _MOD.onset_scores(_noise_mel(6.0, seed=1), 0.1, 0.1, 2)
    assert _MOD.fires(*quiet, threshold=2.0) == []
    # averaged over all 32 bands the same rise is diluted under the threshold
    assert _MOD.fires(*_MOD.onset_scores(mel, 0.1, 0.1, 32), threshold=2.0) == []


def test_the_refractory_hold_keeps_one_fire_per_second():
    times = np.arange(0.1, 3.01, 0.1)
    assert _MOD.fires(times, np.full(len(times), 5.0), threshold=1.0) == [0.1, 1.1, 2.1]
