"""One modality corrupted, the other left alone: what the reliability gate is for.

The trust experiment asks questions that either modality can answer (a sound
and the action that makes it, ``pairs.TWINS``) on windows where one modality
has been destroyed, and compares the context-aware gate with context-blind
fusion. The corruptions act on what the teacher reads (log-mel and frames at
the model's size), deterministically per (recording, kind, seed), over the
whole recording, so cached features stay exact:

===============  ==================================================================
``audio_noise``  pink-ish stationary noise added in the mel power domain, 8-14 dB
                 above the recording's mean power: the recording's SNR drops by
                 ~10-20 dB, what was 5 dB reads below 0
``video_blur``   every frame averaged down to 4x4 and back up: no edges left
``video_hands``  a skin-coloured blob over 55-75% of every frame (hands held up)
===============  ==================================================================

The gate sees only the signals (``cloud/model/context.py``): the SNR estimate
falls under ``audio_noise``, sharpness under ``video_blur``, the skin share
rises under ``video_hands``. Torch-free.
"""
from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

import numpy as np

__all__ = ["CORRUPTIONS", "AUDIO_CORRUPTIONS", "VIDEO_CORRUPTIONS", "corrupt", "corruption_seed", "noise_level_db"]

AUDIO_CORRUPTIONS = ("audio_noise",)
VIDEO_CORRUPTIONS = ("video_blur", "video_hands")
CORRUPTIONS = (*AUDIO_CORRUPTIONS, *VIDEO_CORRUPTIONS)
_NOISE_DB = (8.0, 14.0)  # added noise power over the recording's mean mel power
_SKIN_RGB = np.array([205.0, 150.0, 125.0])  # Cb ~ 110, Cr ~ 150: inside the gate's skin range


def corruption_seed(recording_id: str, kind: str, seed: int = 0) -> int:
    return int.from_bytes(hashlib.sha256(f"{recording_id}|{kind}|{seed}".encode()).digest()[:8], "big")


def noise_level_db(recording_id: str, seed: int = 0) -> float:
    """The added noise level of ``audio_noise`` for a recording (dB over its mean power)."""
    rng = np.random.default_rng(corruption_seed(recording_id, "audio_noise", seed))
    return float(rng.uniform(*_NOISE_DB))


def _audio_noise(mel: np.ndarray, rng: np.random.Generator, level_db: float, log_offset: float) -> np.ndarray:
    mag = np.maximum(np.exp(mel.astype(np.float64)) - log_offset, 0.0)
    power = (mag * mag).sum(1).mean()
    n_mels = mel.shape[1]
    tilt = 1.0 / np.sqrt(1.0 + np.arange(n_mels))  # more energy in the low bands, as room noise has
    # a stationary noise floor with frame-to-frame fluctuation (chi-square with 4 dof per bin)
    fluct = rng.chisquare(4, size=mel.shape) / 4.0
    noise_mag = tilt[None, :] * np.sqrt(fluct)
    noise_power = (noise_mag * noise_mag).sum(1).mean()
    noise_mag *= np.sqrt(power * 10 ** (level_db / 10) / max(noise_power, 1e-20))
    return np.log(mag + noise_mag + log_offset).astype(np.float32)


def _video_blur(frames: np.ndarray) -> np.ndarray:
    n, h, w, c = frames.shape
    bh, bw = max(1, h // 4), max(1, w // 4)
    small = frames[:, : bh * 4, : bw * 4].reshape(n, 4, bh, 4, bw, c).astype(np.float32).mean((2, 4))
    return np.repeat(np.repeat(small, bh, 1), bw, 2).round().astype(np.uint8)


def _video_hands(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n, h, w, _ = frames.shape
    out = frames.astype(np.float32).copy()
    yy, xx = np.mgrid[0:h, 0:w]
    cover = rng.uniform(0.55, 0.75)
    for k in range(n):
        cy, cx = h * rng.uniform(0.55, 0.8), w * rng.uniform(0.3, 0.7)
        ry, rx = h * np.sqrt(cover) * 0.62, w * np.sqrt(cover) * 0.62
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
        shade = rng.uniform(0.85, 1.05)
        out[k][inside] = np.clip(_SKIN_RGB * shade + rng.normal(0, 4, 3), 0, 255)
    return out.astype(np.uint8)


def corrupt(rec: Any, recording_id: str, kind: str, log_offset: float, seed: int = 0) -> Any:
    """A copy of ``rec`` (``cloud.data.CachedRecording``) with one modality corrupted.

    Raises:
        ValueError: unknown ``kind`` (the message lists them).
    """
    if kind not in CORRUPTIONS:
        raise ValueError(f"corruption: unknown kind {kind!r}; known: {', '.join(CORRUPTIONS)}")
    rng = np.random.default_rng(corruption_seed(recording_id, kind, seed))
    if kind == "audio_noise":
        return replace(rec, mel=_audio_noise(rec.mel, rng, noise_level_db(recording_id, seed), log_offset))
    if kind == "video_blur":
        return replace(rec, frames=_video_blur(rec.frames))
    return replace(rec, frames=_video_hands(rec.frames, rng))
