"""The teacher's log-mel on the server's hot path, computed with an FFT.

Training computes log-mel with ``cloud.data.recording_log_mel``, which runs
``shared.features.LogMel``: the STFT as a ``conv1d`` whose kernels are the
windowed DFT basis, because that is what ``torch.export`` and XNNPACK can run
on the glasses. On the server that costs ~80 MFLOP per 2 s of audio, the
largest single share of a request's batch time (bench_server.py, "where batch
time goes"). `FftLogMel` computes the same features (same window, zero
padding to ``n_fft``, magnitude, mel matrix, log offset, and the same
frame grid: frame ``j`` ends at sample ``hop * (j + 1)``) with
``torch.fft.rfft``, about three times faster on one core; it agrees with
``recording_log_mel`` to ~2e-6 (``tests/cloud/test_server_backend.py``).
Batching the FFT across requests does not pay (the batch falls out of cache),
so it runs per request.
"""
from __future__ import annotations

import numpy as np
import torch

from shared.features import FeatureConfig, mel_matrix, periodic_hann

__all__ = ["FftLogMel"]

_MAGNITUDE_EPS = 1e-20  # as shared.features.LogMel: sqrt(re^2 + im^2 + eps), finite gradients there


class FftLogMel:
    """``recording_log_mel`` semantics: int16 samples (n,) -> (n // hop, n_mels) float32."""

    def __init__(self, cfg: FeatureConfig) -> None:
        self.cfg = cfg
        self.window = torch.from_numpy(periodic_hann(cfg.window_samples)).float()
        self.mel = torch.from_numpy(mel_matrix(cfg)).float()  # (n_bins, n_mels)
        # Zeros in front so that frame j ends at sample hop * (j + 1), as in training.
        self.front_pad = cfg.window_samples - cfg.hop_samples

    @torch.inference_mode()
    def __call__(self, samples: np.ndarray) -> np.ndarray:
        cfg = self.cfg
        x = torch.from_numpy(np.asarray(samples, dtype=np.float32) / 32768.0)
        x = torch.cat([torch.zeros(self.front_pad), x])
        if len(x) < cfg.window_samples:
            return np.zeros((0, cfg.n_mels), np.float32)
        frames = x.unfold(0, cfg.window_samples, cfg.hop_samples) * self.window
        spectrum = torch.fft.rfft(frames, n=cfg.n_fft)
        magnitude = torch.sqrt(spectrum.real.square() + spectrum.imag.square() + _MAGNITUDE_EPS)
        return torch.log(magnitude @ self.mel + cfg.log_offset).numpy()
