"""A cheap signal-to-noise estimate from the microphone alone (no model).

Split the recent audio into short frames (20 ms), take each frame's mean
energy, and compare a high percentile (frames with the foreground sound) with a
low one (the noise floor between sounds)::

    snr_db = 10 log10( max(E_p90 - E_p10, eps) / max(E_p10, eps) )

clamped to [SNR_MIN_DB, SNR_MAX_DB]. It costs one pass over a few seconds of
PCM (~10^4 multiply-adds for 2 s at 16 kHz) and needs no calibration. It is
an estimate, not a measurement: steady loud noise with no gaps reads as low
SNR (right), a single sound in silence reads as high SNR (right), and a
continuous foreground sound over quiet noise reads lower than it is (the low
percentile then catches the sound itself). The policy uses it to decide how
far to trust audio; the annotations' ``snr_db`` is the ground truth to
compare against.
"""
from __future__ import annotations

import numpy as np

__all__ = ["FRAME_S", "SNR_MIN_DB", "SNR_MAX_DB", "estimate_snr_db"]

#: Energy frame length (s).
FRAME_S = 0.02
#: Clamp range of the estimate (dB): below and above, the policy's choices no longer change.
SNR_MIN_DB = -10.0
SNR_MAX_DB = 50.0
#: Energy floor (full scale 1.0): digital silence must not give -inf.
_EPS = 1e-10


def estimate_snr_db(pcm: np.ndarray, rate_hz: int, *, low_pct: float = 10.0, high_pct: float = 90.0) -> float:
    """SNR estimate (dB) of int16 mono ``pcm``; see the module docstring.

    Returns SNR_MIN_DB for windows shorter than two frames.
    """
    n = int(FRAME_S * rate_hz)
    k = len(pcm) // n if n else 0
    if k < 2:
        return SNR_MIN_DB
    x = pcm[: k * n].astype(np.float32).reshape(k, n) / 32768.0
    energy = np.einsum("ij,ij->i", x, x) / n
    lo, hi = np.percentile(energy, [low_pct, high_pct])
    snr = 10.0 * np.log10(max(hi - lo, _EPS) / max(lo, _EPS))
    return float(np.clip(snr, SNR_MIN_DB, SNR_MAX_DB))
