"""Shared audio front end: YAMNet-style log-mel features.

One definition of the features that every part of Earshot uses: the cloud
teacher, the distilled students, the exported `.pte` programs and the edge
runtimes. Three implementations of the same maths live here:

- `LogMel`, an `nn.Module` built only from ops that `torch.export` captures
  and the ExecuTorch XNNPACK partitioner lowers (conv, slice, square, add,
  sqrt, linear, log), so the features can be computed *inside* an exported
  program and every runtime gets identical numbers.
- `PcmLogMel`, the same with int16 PCM input (the wire and recording format).
- `log_mel_numpy`, a torch-free reference with `np.fft.rfft` for code that must
  not import torch (the Python edge runtime, tests).

What is matched (YAMNet's `features.py` with `tflite_compatible=False`):

- frames of `window_samples` (25 ms = 400 samples) every `hop_samples`
  (10 ms = 160 samples), no padding: `1 + (n - window) // hop` frames;
- periodic Hann window of `window_samples` (`tf.signal.hann_window`,
  periodic=True), applied to the frame, then zero-padded on the right to
  `n_fft` (as `tf.signal.stft` does), magnitude of the one-sided DFT;
- HTK mel matrix exactly as `tf.signal.linear_to_mel_weight_matrix`:
  mel = 1127 ln(1 + f / 700), triangles linear in *mel* (not Hz), bins at
  `linspace(0, nyquist, n_bins)`, DC row forced to zero, no area normalisation;
- `log(mel + log_offset)` with natural log.

Deliberately not matched: YAMNet's patching into 0.96 s examples (that belongs
to the model that consumes the features) and TF's float32 mel-matrix rounding
(we build it in float64; differences are ~1e-7).

This module imports nothing from the rest of the project (see ARCHITECTURE.md,
section 2).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# Added under the sqrt so its gradient stays finite at exact silence. It must
# be negligible next to `log_offset` (1e-3) after the mel sum (a band sums at
# most ~9 bins at the defaults): sqrt(1e-20) * 9 ~ 1e-9. 1e-20 is still a
# normal float32 (min normal ~1.2e-38), so no backend flushes it to zero.
_MAGNITUDE_EPS = 1e-20

# HTK mel scale constants, as in tf.signal (mel_ops._MEL_BREAK_FREQUENCY_HERTZ,
# _MEL_HIGH_FREQUENCY_Q).
_MEL_BREAK_HZ = 700.0
_MEL_HIGH_FREQUENCY_Q = 1127.0

# int16 full scale: x / 32768 maps [-32768, 32767] into [-1, 1).
_PCM16_SCALE = 32768.0


@dataclass(frozen=True)
class FeatureConfig:
    """Log-mel front-end parameters; defaults are YAMNet's.

    Attributes:
        sample_rate_hz: input sample rate in Hz.
        window_ms: analysis window length in milliseconds (rounded to samples).
        hop_ms: frame step in milliseconds (rounded to samples).
        n_fft: DFT length in samples; the windowed frame is zero-padded to it.
        n_mels: number of mel bands.
        fmin_hz: lower edge of the lowest mel band in Hz.
        fmax_hz: upper edge of the highest mel band in Hz (<= Nyquist).
        log_offset: added to the mel energy before the natural log.

    Raises:
        ValueError: from `__post_init__` when a field is out of range; the
            message starts with the field name.
    """

    sample_rate_hz: int = 16000
    window_ms: float = 25.0
    hop_ms: float = 10.0
    n_fft: int = 512
    n_mels: int = 64
    fmin_hz: float = 125.0
    fmax_hz: float = 7500.0
    log_offset: float = 0.001

    def __post_init__(self) -> None:
        _require_int("sample_rate_hz", self.sample_rate_hz, minimum=1)
        _require_int("n_fft", self.n_fft, minimum=1)
        _require_int("n_mels", self.n_mels, minimum=1)
        for name in ("window_ms", "hop_ms", "fmin_hz", "fmax_hz", "log_offset"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name}: must be a finite number, got {value!r}")
        if self.window_samples < 1:
            raise ValueError(
                f"window_ms: {self.window_ms} ms is shorter than one sample "
                f"at {self.sample_rate_hz} Hz"
            )
        if self.hop_samples < 1:
            raise ValueError(
                f"hop_ms: {self.hop_ms} ms is shorter than one sample "
                f"at {self.sample_rate_hz} Hz"
            )
        if self.window_samples > self.n_fft:
            raise ValueError(
                f"window_ms: window of {self.window_samples} samples is longer "
                f"than n_fft={self.n_fft}"
            )
        if self.fmin_hz < 0.0:
            raise ValueError(f"fmin_hz: must be >= 0, got {self.fmin_hz}")
        if self.fmax_hz > self.nyquist_hz:
            raise ValueError(
                f"fmax_hz: {self.fmax_hz} Hz is above Nyquist "
                f"({self.nyquist_hz} Hz at {self.sample_rate_hz} Hz)"
            )
        if self.fmin_hz >= self.fmax_hz:
            raise ValueError(
                f"fmin_hz: {self.fmin_hz} Hz must be below fmax_hz={self.fmax_hz} Hz"
            )
        if self.log_offset <= 0.0:
            # log(0) on silence would give -inf and poison any model input.
            raise ValueError(f"log_offset: must be > 0, got {self.log_offset}")

    @property
    def window_samples(self) -> int:
        """Analysis window length in samples (400 by default)."""
        return int(round(self.sample_rate_hz * self.window_ms / 1000.0))

    @property
    def hop_samples(self) -> int:
        """Frame step in samples (160 by default)."""
        return int(round(self.sample_rate_hz * self.hop_ms / 1000.0))

    @property
    def n_bins(self) -> int:
        """Number of one-sided DFT bins, n_fft // 2 + 1 (257 by default)."""
        return self.n_fft // 2 + 1

    @property
    def nyquist_hz(self) -> float:
        return self.sample_rate_hz / 2.0

    def num_frames(self, n_samples: int) -> int:
        """Frames produced from `n_samples` samples: 1 + (n - window) // hop.

        No padding, like YAMNet: trailing samples that do not fill a frame are
        dropped.

        Raises:
            ValueError: if `n_samples` is shorter than one window.
        """
        if n_samples < self.window_samples:
            raise ValueError(
                f"n_samples: {n_samples} samples is shorter than one window "
                f"({self.window_samples} samples = {self.window_ms} ms)"
            )
        return 1 + (n_samples - self.window_samples) // self.hop_samples

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON description for model cards.

        Holds every field plus the derived sizes and a description of the
        conventions, so a runtime in another language can rebuild the front
        end from the card alone. `from_dict` reads it back.
        """
        out: dict[str, Any] = dataclasses.asdict(self)
        out.update(
            window_samples=self.window_samples,
            hop_samples=self.hop_samples,
            n_bins=self.n_bins,
            window="hann_periodic",
            spectrum="magnitude",
            mel_scale="htk_tf",  # tf.signal.linear_to_mel_weight_matrix
            log="natural",
            padding="none",
        )
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FeatureConfig":
        """Inverse of `to_dict`; derived keys are checked, not trusted.

        Raises:
            ValueError: if a derived key disagrees with the fields (the card
                was edited by hand or written by an incompatible version).
        """
        names = {f.name for f in dataclasses.fields(cls)}
        cfg = cls(**{k: v for k, v in data.items() if k in names})
        expected = cfg.to_dict()
        for key, value in data.items():
            if key not in names and key in expected and expected[key] != value:
                raise ValueError(
                    f"{key}: card says {value!r} but the fields give {expected[key]!r}"
                )
        return cfg


def _require_int(name: str, value: Any, minimum: int) -> None:
    # bool is an int subclass; True as a sample rate is always a bug.
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}: must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")


def hz_to_mel(freq_hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale as in tf.signal: 1127 * ln(1 + f / 700)."""
    return _MEL_HIGH_FREQUENCY_Q * np.log1p(np.asarray(freq_hz, np.float64) / _MEL_BREAK_HZ)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of `hz_to_mel`."""
    return _MEL_BREAK_HZ * np.expm1(np.asarray(mel, np.float64) / _MEL_HIGH_FREQUENCY_Q)


def mel_center_frequencies_hz(cfg: FeatureConfig) -> np.ndarray:
    """Centre (peak) frequency of each mel band in Hz, shape (n_mels,)."""
    edges = np.linspace(hz_to_mel(cfg.fmin_hz), hz_to_mel(cfg.fmax_hz), cfg.n_mels + 2)
    return mel_to_hz(edges[1:-1])


def mel_matrix(cfg: FeatureConfig) -> np.ndarray:
    """HTK mel weights, float64 of shape (n_bins, n_mels).

    Matches `tf.signal.linear_to_mel_weight_matrix(n_mels, n_bins, sample_rate,
    fmin, fmax)`: bin k sits at k * nyquist / (n_bins - 1) Hz; band m is a
    triangle in mel space from edge m to edge m + 2 of n_mels + 2 equally
    spaced mel edges, peaking at 1.0; the DC row is zero (TF drops the DC bin
    before computing the weights and pads it back with zeros). Bands are not
    area-normalised. `magnitude @ mel_matrix(cfg)` gives mel energies.
    """
    bin_hz = np.linspace(0.0, cfg.nyquist_hz, cfg.n_bins)
    bin_mel = hz_to_mel(bin_hz[1:])[:, None]  # without DC, as TF
    edges = np.linspace(hz_to_mel(cfg.fmin_hz), hz_to_mel(cfg.fmax_hz), cfg.n_mels + 2)
    lower, center, upper = edges[None, :-2], edges[None, 1:-1], edges[None, 2:]
    rising = (bin_mel - lower) / (center - lower)
    falling = (upper - bin_mel) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return np.concatenate([np.zeros((1, cfg.n_mels)), weights], axis=0)


def periodic_hann(n: int) -> np.ndarray:
    """Periodic Hann window of n samples (tf.signal.hann_window(periodic=True))."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def dft_basis(cfg: FeatureConfig) -> np.ndarray:
    """Windowed one-sided DFT basis, float64 of shape (2 * n_bins, window_samples).

    Rows [0, n_bins) are w[t] cos(2 pi k t / n_fft) (real part), rows
    [n_bins, 2 n_bins) are -w[t] sin(2 pi k t / n_fft) (imaginary part), so
    `basis @ frame` is the rfft of the windowed frame zero-padded to n_fft.
    The zero padding is why the kernel is only `window_samples` long.
    """
    t = np.arange(cfg.window_samples)
    k = np.arange(cfg.n_bins)
    # Reduce k * t modulo n_fft in integers before scaling: keeps the phase
    # argument below 2 pi so cos/sin stay accurate for the large k * t.
    phase = 2.0 * np.pi * ((k[:, None] * t[None, :]) % cfg.n_fft) / cfg.n_fft
    window = periodic_hann(cfg.window_samples)[None, :]
    return np.concatenate([window * np.cos(phase), -window * np.sin(phase)], axis=0)


def used_bin_range(cfg: FeatureConfig) -> tuple[int, int]:
    """``[lo, hi)``: the DFT bins that some mel band weights above zero.

    Bins outside (DC, below ``fmin_hz``, above ``fmax_hz``) get zero weight
    in every band, so dropping them from the DFT leaves the log-mel
    unchanged while saving their share of the DFT's MACs (`LogMel`'s
    ``trim_bins``). The bands are contiguous triangles, so the used bins
    are one contiguous range.
    """
    used = np.nonzero(mel_matrix(cfg).max(axis=1) > 0.0)[0]
    return int(used[0]), int(used[-1]) + 1


def pcm16_to_float(pcm: np.ndarray) -> np.ndarray:
    """int16 PCM -> float32 in [-1, 1) by dividing by 32768. Any shape.

    Raises:
        TypeError: if `pcm` is not int16 (silently rescaling e.g. int32 or
            float input would give features off by a constant factor).
    """
    pcm = np.asarray(pcm)
    if pcm.dtype != np.int16:
        raise TypeError(f"pcm: expected int16, got {pcm.dtype}")
    return pcm.astype(np.float32) / np.float32(_PCM16_SCALE)


def log_mel_numpy(waveform: np.ndarray, cfg: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """Torch-free reference: log-mel of a float waveform with np.fft.rfft.

    Args:
        waveform: float array of shape (N,) or (B, N), samples in [-1, 1].
        cfg: front-end parameters.

    Returns:
        float32 array of shape (T, n_mels) or (B, T, n_mels), T = cfg.num_frames(N).
        Computed in float64, then cast.

    Raises:
        ValueError: if the input is not 1-D/2-D or shorter than one window.
        TypeError: if the input is an integer array (convert with `pcm16_to_float`).
    """
    x = np.asarray(waveform)
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"waveform: expected a float array, got {x.dtype}; use pcm16_to_float")
    if x.ndim not in (1, 2):
        raise ValueError(f"waveform: expected shape (N,) or (B, N), got {x.shape}")
    n_frames = cfg.num_frames(x.shape[-1])
    frames = np.lib.stride_tricks.sliding_window_view(
        x.astype(np.float64), cfg.window_samples, axis=-1
    )[..., : (n_frames - 1) * cfg.hop_samples + 1 : cfg.hop_samples, :]
    windowed = frames * periodic_hann(cfg.window_samples)
    magnitude = np.abs(np.fft.rfft(windowed, n=cfg.n_fft, axis=-1))
    return np.log(magnitude @ mel_matrix(cfg) + cfg.log_offset).astype(np.float32)


class LogMel(nn.Module):
    """Log-mel spectrogram as export-friendly ops.

    The STFT is a strided `conv1d` whose fixed kernels are the windowed DFT
    basis (`dft_basis`): no `torch.stft`/FFT, which neither `torch.export` to
    Edge dialect nor XNNPACK supports. Graph: conv1d -> permute -> slice re/im
    -> square, add, sqrt -> linear (mel matrix) -> add offset -> log. With the
    XNNPACK partitioner every op is delegated (tested in
    tests/shared/test_features.py).

    Cost at the defaults: 2 * 257 * 400 MACs per frame for the DFT plus
    257 * 64 for the mel, ~22 MMAC per second of audio. A 512-point FFT would be ~20x
    cheaper, but a dense conv is what every backend runs fast and the same.

    Input: float32 (B, N), samples in [-1, 1], N >= window_samples.
    Output: float32 (B, T, n_mels), T = cfg.num_frames(N), natural-log units.

    Accuracy: float32 throughout. Against a float64 STFT the log-mel error is
    ~1e-6 on noise and grows with the peak level of narrow-band signals, up to
    ~1.4e-3 for full-scale tones: far from the tone, bands whose true energy
    is below `log_offset` see float32 rounding of the loud bins divided by
    `log_offset`. float32 `torch.stft` is ~3x worse on the same signals.

    Export: static shapes lower to one XNNPACK delegate. A variable length
    exports with `N = hop * Dim("k", min=1) + window` (a plain Dim fails
    export's T != 1 guard), but the symbolic sizes then split the graph into
    two delegates with a few portable ops between them.

    ``trim_bins=True`` keeps only the bins some mel band uses
    (`used_bin_range`): the same features (the dropped bins have zero mel
    weight; measured difference ~1e-6) for fewer MACs, e.g. 235 of 257 bins at
    the defaults and 117 of 129 at n_fft=256. The default (False) keeps every
    bin, so existing checkpoints' buffer shapes are unchanged.

    Raises (at call time; at export time for static shapes):
        ValueError: if the input is not 2-D or shorter than one window.
    """

    def __init__(self, cfg: FeatureConfig = FeatureConfig(), trim_bins: bool = False) -> None:
        super().__init__()
        self.cfg = cfg
        self.trim_bins = trim_bins
        lo, hi = used_bin_range(cfg) if trim_bins else (0, cfg.n_bins)
        self.n_used_bins = hi - lo
        # Buffers, not parameters: the front end is fixed and must not drift
        # if a student is trained end to end on waveforms. They are saved in
        # state_dict so a checkpoint records the exact basis it was trained with.
        full = dft_basis(cfg)
        basis = np.concatenate([full[lo:hi], full[cfg.n_bins + lo : cfg.n_bins + hi]], axis=0)
        basis = torch.from_numpy(basis).to(torch.float32)
        self.register_buffer("dft_kernel", basis.unsqueeze(1))  # (2 * used bins, 1, window)
        # (n_mels, used bins): the weight layout of F.linear, which XNNPACK runs
        # as a fully-connected op.
        mel = torch.from_numpy(mel_matrix(cfg)[lo:hi].T.copy()).to(torch.float32)
        self.register_buffer("mel_weight", mel)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        if waveform.dim() != 2:
            raise ValueError(f"waveform: expected shape (B, N), got {tuple(waveform.shape)}")
        if waveform.shape[-1] < self.cfg.window_samples:
            raise ValueError(
                f"waveform: {waveform.shape[-1]} samples is shorter than one window "
                f"({self.cfg.window_samples} samples)"
            )
        n_bins = self.n_used_bins
        # view, not unsqueeze: XNNPACK delegates view_copy but leaves a lone
        # unsqueeze_copy on the graph input to the portable kernels.
        batch, n_samples = waveform.shape
        # (B, 1, N) -> (B, 2 * n_bins, T): one output channel per basis row.
        spectrum = F.conv1d(
            waveform.reshape(batch, 1, n_samples), self.dft_kernel, stride=self.cfg.hop_samples
        )
        spectrum = spectrum.permute(0, 2, 1)  # (B, T, 2 * used bins), time-major like the output
        real, imag = spectrum[..., :n_bins], spectrum[..., n_bins:]
        magnitude = torch.sqrt(real * real + imag * imag + _MAGNITUDE_EPS)
        mel = F.linear(magnitude, self.mel_weight)  # (B, T, n_mels)
        return torch.log(mel + self.cfg.log_offset)


class PcmLogMel(nn.Module):
    """`LogMel` on int16 PCM, for programs fed straight from the microphone.

    The int16 -> float32 cast is not delegated by XNNPACK (its partitioner
    rejects dtype-converting copies) and runs on the portable
    `_to_dim_order_copy` kernel; everything after it is delegated. Tested
    through the ExecuTorch runtime.

    Input: int16 (B, N). Output: float32 (B, T, n_mels), as `LogMel`.

    Raises:
        TypeError: if the input is not int16.
        ValueError: as `LogMel`.
    """

    def __init__(self, cfg: FeatureConfig = FeatureConfig(), trim_bins: bool = False) -> None:
        super().__init__()
        self.log_mel = LogMel(cfg, trim_bins=trim_bins)

    @property
    def cfg(self) -> FeatureConfig:
        return self.log_mel.cfg

    def forward(self, pcm: torch.Tensor) -> torch.Tensor:
        if pcm.dtype != torch.int16:
            raise TypeError(f"pcm: expected int16, got {pcm.dtype}")
        return self.log_mel(pcm.to(torch.float32) * (1.0 / _PCM16_SCALE))


def make_log_mel(
    cfg: FeatureConfig | Mapping[str, Any] | None = None, pcm16: bool = False, trim_bins: bool = False
) -> nn.Module:
    """Build the front end from a config or a model card's `to_dict()` output."""
    if cfg is None:
        cfg = FeatureConfig()
    elif not isinstance(cfg, FeatureConfig):
        cfg = FeatureConfig.from_dict(cfg)
    return PcmLogMel(cfg, trim_bins=trim_bins) if pcm16 else LogMel(cfg, trim_bins=trim_bins)
