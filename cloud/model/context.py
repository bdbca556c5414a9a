"""Context features for the reliability gate, estimated from the signals.

Nothing here reads annotations: the gate must work on a live stream, where
the only evidence of a noisy kitchen or a blurred, hand-covered frame is in
the samples and pixels themselves.

Audio (from the log-mel the model already gets):
    ``snr_db``   minimum-statistics SNR: the noise power is the 10th
                 percentile of the frame powers in the window, the signal
                 power is the mean power above it. A steady noise floor with
                 no events reads low; a beep over a quiet room reads high.
    ``noise_db`` that noise floor's level, 10 log10 of mel power.
Video (from the frames the model gets, after resizing):
    ``sharpness`` log10 variance of the Laplacian of the grey image (the
                  classic focus / motion-blur measure; low = blurred).
    ``skin``      share of pixels in the YCbCr skin range (Cb 77..127,
                  Cr 133..173; Chai & Ngan 1999): hands covering the view.
    ``contrast``  standard deviation of the grey image (dark or washed-out
                  frames carry little).

`context_features` returns them as one (B, 5) tensor in that order; the
gate normalises them with the fixed centres and scales in `CONTEXT_SCALE`.
"""
from __future__ import annotations

import torch

__all__ = ["CONTEXT_NAMES", "CONTEXT_CENTER", "CONTEXT_SCALE", "mel_power", "audio_context", "audio_context_from_power",
           "frame_stats", "visual_context", "visual_context_from_stats", "context_features"]

CONTEXT_NAMES = ("snr_db", "noise_db", "sharpness", "skin", "contrast")
# Centres from windows of the synthetic world at 32-48 px (SNR estimate
# 2..34 dB, sharpness -1.9..-1.35, skin 0..0.35, contrast 0.17..0.2). The
# scales are wider than that world's spread on purpose: a real camera varies
# far more, and a gate whose prior saturates on a slightly dull frame would
# shut the video out before training could say otherwise.
CONTEXT_CENTER = (15.0, 0.0, -1.6, 0.15, 0.19)
CONTEXT_SCALE = (10.0, 20.0, 0.5, 0.15, 0.1)

_NOISE_QUANTILE = 0.1
_SNR_CLAMP_DB = (-20.0, 50.0)
_POWER_EPS = 1e-10
_RGB_TO_GREY_CB_CR = torch.tensor(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]]
)


@torch.no_grad()
def mel_power(mel: torch.Tensor, log_offset: float = 1e-3) -> torch.Tensor:
    """(..., T, n_mels) natural-log mel magnitudes -> (..., T) power per frame."""
    magnitude = (mel.float().exp() - log_offset).clamp_min(0.0)
    return (magnitude * magnitude).sum(-1)


@torch.no_grad()
def audio_context_from_power(power: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(snr_db, noise_db) per window from per-frame powers (B, T) and validity (B, T).

    A window with no valid frame gets (-20 dB, -100 dB).
    """
    power = torch.where(valid, power, torch.full_like(power, float("nan")))
    noise = torch.nanquantile(power, _NOISE_QUANTILE, dim=1)
    mean = torch.nanmean(power, dim=1)
    snr = 10.0 * torch.log10((mean - noise).clamp_min(_POWER_EPS) / (noise + _POWER_EPS))
    snr = snr.clamp(*_SNR_CLAMP_DB)
    noise_db = 10.0 * torch.log10(noise + _POWER_EPS)
    empty = ~valid.any(1)
    snr = torch.where(empty, torch.full_like(snr, _SNR_CLAMP_DB[0]), snr)
    noise_db = torch.where(empty, torch.full_like(noise_db, -100.0), noise_db)
    return torch.stack([snr, noise_db], dim=-1)


@torch.no_grad()
def audio_context(mel: torch.Tensor, mel_valid: torch.Tensor, log_offset: float = 1e-3) -> torch.Tensor:
    """(snr_db, noise_db) per window.

    Args:
        mel: (B, T, n_mels) natural-log mel magnitudes, ``log(m + log_offset)``.
        mel_valid: (B, T) bool, False for frames outside the recording.

    Returns:
        (B, 2) float32. A window with no valid frame gets (-20 dB, -100 dB).
    """
    if bool(mel_valid.all()):
        return audio_context_from_power(mel_power(mel, log_offset), mel_valid)
    # Only the valid frames' powers are read: a request with 2 s in a 10 s window pays for 2 s.
    power = mel.new_zeros(mel_valid.shape, dtype=torch.float32)
    if bool(mel_valid.any()):
        power[mel_valid] = mel_power(mel[mel_valid], log_offset)
    return audio_context_from_power(power, mel_valid)


def _variance(x: torch.Tensor) -> torch.Tensor:
    # E[x^2] - E[x]^2 over dim 1: one pass, several times faster than Tensor.var on CPU;
    # the inputs are in [0, 1] (or a few units), far from cancellation trouble.
    mean = x.mean(1)
    return ((x * x).mean(1) - mean * mean).clamp_min(0.0)


@torch.no_grad()
def frame_stats(frames: torch.Tensor) -> torch.Tensor:
    """(..., H, W, 3) uint8 RGB -> (..., 3): sharpness, skin share, contrast per frame."""
    lead, (h, w) = frames.shape[:-3], frames.shape[-3:-1]
    rgb = frames.reshape(-1, h, w, 3).float()
    n = rgb.shape[0]
    grey = (rgb @ _RGB_TO_GREY_CB_CR[0] / 255.0)[:, None]  # (N, 1, H, W), BT.601 luma
    # Chroma on every other pixel: the skin share needs no more, and it is the costly part.
    chroma = rgb[:, ::2, ::2].reshape(n, -1, 3) @ _RGB_TO_GREY_CB_CR[1:].T + 128.0
    cb, cr = chroma[..., 0], chroma[..., 1]
    # 4-neighbour Laplacian by shifted slices (a 1-channel conv2d is slow on CPU).
    lap = (
        grey[:, :, :-2, 1:-1] + grey[:, :, 2:, 1:-1] + grey[:, :, 1:-1, :-2] + grey[:, :, 1:-1, 2:]
        - 4.0 * grey[:, :, 1:-1, 1:-1]
    )
    sharpness = torch.log10(_variance(lap.flatten(1)) + 1e-6)
    skin = ((cb >= 77) & (cb <= 127) & (cr >= 133) & (cr <= 173)).float().mean(1)
    contrast = _variance(grey.flatten(1)).sqrt()
    return torch.stack([sharpness, skin, contrast], -1).reshape(*lead, 3)


@torch.no_grad()
def visual_context_from_stats(stats: torch.Tensor, frame_valid: torch.Tensor) -> torch.Tensor:
    """(B, F, 3) per-frame stats -> (B, 3) averaged over valid frames (zeros if none)."""
    weight = frame_valid.float()[..., None]
    return (stats * weight).sum(1) / weight.sum(1).clamp_min(1.0)


@torch.no_grad()
def visual_context(frames: torch.Tensor, frame_valid: torch.Tensor) -> torch.Tensor:
    """(sharpness, skin, contrast) per window, averaged over valid frames.

    Args:
        frames: (B, F, H, W, 3) uint8 RGB.
        frame_valid: (B, F) bool.

    Returns:
        (B, 3) float32; zeros for a window with no valid frame.
    """
    if bool(frame_valid.all()):
        return visual_context_from_stats(frame_stats(frames), frame_valid)
    # Only the valid frames' stats are read: a request with 4 frames in 20 slots pays for 4.
    stats = frames.new_zeros((*frame_valid.shape, 3), dtype=torch.float32)
    if bool(frame_valid.any()):
        stats[frame_valid] = frame_stats(frames[frame_valid])
    return visual_context_from_stats(stats, frame_valid)


def context_features(
    mel: torch.Tensor, mel_valid: torch.Tensor, frames: torch.Tensor, frame_valid: torch.Tensor
) -> torch.Tensor:
    """(B, 5): ``CONTEXT_NAMES`` in order (raw units, not normalised)."""
    return torch.cat([audio_context(mel, mel_valid), visual_context(frames, frame_valid)], dim=-1)
