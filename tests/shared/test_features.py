"""Tests for shared/features.py: the log-mel front end.

Tolerances (max abs error on natural-log mel, float32 model vs float64 ref):
- LogMel vs torch.stft (float64): 1e-3 for signals peaking at <= 0.5, 2e-3 for
  full-scale tones. Measured: ~3e-6 on noise, ~7e-4 on 0.5 tones, ~1.4e-3 on
  full-scale tones (float32 torch.stft is 2e-3 to 7e-3 on the same tones).
- log_mel_numpy vs torch.stft (both float64, numpy output cast to float32): 1e-5.
- .pte through the ExecuTorch runtime vs eager LogMel: 1e-4 (measured ~5e-7).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from shared.features import (
    FeatureConfig,
    LogMel,
    PcmLogMel,
    log_mel_numpy,
    make_log_mel,
    mel_center_frequencies_hz,
    mel_matrix,
    pcm16_to_float,
)

CFG = FeatureConfig()
SR = CFG.sample_rate_hz
ATOL_HALF_SCALE = 1e-3  # LogMel vs float64 STFT, peak <= 0.5
ATOL_FULL_SCALE = 2e-3  # LogMel vs float64 STFT, full-scale tones
ATOL_NUMPY = 1e-5  # log_mel_numpy vs float64 STFT
ATOL_RUNTIME = 1e-4  # ExecuTorch runtime vs eager


def _time(n: int) -> np.ndarray:
    return np.arange(n) / SR


def _tone(freq_hz: float, amplitude: float, n: int = SR) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * freq_hz * _time(n))


def _signals() -> dict[str, tuple[np.ndarray, float]]:
    """name -> (1 s float64 waveform, tolerance for LogMel vs reference)."""
    rng = np.random.default_rng(0)
    t = _time(SR)
    return {
        "silence": (np.zeros(SR), ATOL_HALF_SCALE),
        "noise_full": (rng.uniform(-1, 1, SR), ATOL_HALF_SCALE),
        "noise_quiet": (1e-3 * rng.standard_normal(SR), ATOL_HALF_SCALE),
        "tone_60hz": (_tone(60.0, 0.5), ATOL_HALF_SCALE),
        "tone_1khz": (_tone(1000.0, 0.5), ATOL_HALF_SCALE),
        "tone_7900hz": (_tone(7900.0, 0.5), ATOL_HALF_SCALE),
        "tone_1khz_full": (_tone(1000.0, 1.0), ATOL_FULL_SCALE),
        "chirp_full": (np.sin(2 * np.pi * (50 * t + 3900 * t**2)), ATOL_FULL_SCALE),
    }


SIGNALS = _signals()


def _reference_log_mel(waveform: np.ndarray, cfg: FeatureConfig = CFG) -> np.ndarray:
    """float64 torch.stft reference, framed like tf.signal.stft.

    torch.stft centres a short window inside n_fft and reads n_fft samples per
    frame; TF (and YAMNet) reads window samples, windows them and zero-pads on
    the right. Padding the window and the signal on the right by
    n_fft - window reproduces TF's frames exactly, including their count.
    """
    pad = cfg.n_fft - cfg.window_samples
    x = F.pad(torch.from_numpy(np.atleast_2d(waveform)).to(torch.float64), (0, pad))
    hann = torch.hann_window(cfg.window_samples, periodic=True, dtype=torch.float64)
    window = F.pad(hann, (0, pad))
    spec = torch.stft(
        x, cfg.n_fft, hop_length=cfg.hop_samples, win_length=cfg.n_fft,
        window=window, center=False, return_complex=True,
    ).abs()  # (B, n_bins, T)
    mel = spec.transpose(1, 2) @ torch.from_numpy(mel_matrix(cfg))
    return torch.log(mel + cfg.log_offset).numpy()


# ---------------------------------------------------------------- config


def test_config_defaults_are_yamnet() -> None:
    assert (CFG.window_samples, CFG.hop_samples, CFG.n_bins) == (400, 160, 257)
    assert CFG.num_frames(400) == 1
    assert CFG.num_frames(SR) == 98  # YAMNet: 1 + (16000 - 400) // 160
    assert CFG.num_frames(559) == 1 and CFG.num_frames(560) == 2
    with pytest.raises(ValueError, match="^n_samples"):
        CFG.num_frames(399)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"sample_rate_hz": 0}, "sample_rate_hz"),
        ({"sample_rate_hz": 16000.0}, "sample_rate_hz"),
        ({"n_fft": 256}, "window_ms"),  # 400-sample window > n_fft
        ({"window_ms": 0.01}, "window_ms"),
        ({"hop_ms": 0.0}, "hop_ms"),
        ({"n_mels": 0}, "n_mels"),
        ({"fmax_hz": 8000.5}, "fmax_hz"),
        ({"fmin_hz": -1.0}, "fmin_hz"),
        ({"fmin_hz": 7500.0}, "fmin_hz"),
        ({"log_offset": 0.0}, "log_offset"),
        ({"window_ms": float("nan")}, "window_ms"),
    ],
)
def test_config_validation_names_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}:"):
        FeatureConfig(**kwargs)


def test_config_dict_round_trip_for_model_cards() -> None:
    cfg = FeatureConfig(n_mels=40, fmax_hz=7000.0)
    card = json.loads(json.dumps(cfg.to_dict()))
    assert card["window_samples"] == 400 and card["n_bins"] == 257
    assert FeatureConfig.from_dict(card) == cfg
    card["hop_samples"] = 161  # hand-edited card that no longer matches hop_ms
    with pytest.raises(ValueError, match="^hop_samples"):
        FeatureConfig.from_dict(card)


# ---------------------------------------------------------------- mel matrix


def test_mel_matrix_shape_and_support() -> None:
    mel = mel_matrix(CFG)
    bin_hz = np.linspace(0.0, CFG.nyquist_hz, CFG.n_bins)
    assert mel.shape == (257, 64)
    assert (mel >= 0).all() and mel.max() <= 1.0
    assert (mel[0] == 0).all()  # DC excluded, as tf.signal
    outside = (bin_hz <= CFG.fmin_hz) | (bin_hz >= CFG.fmax_hz)
    assert (mel[outside] == 0).all()
    # Adjacent triangles share edges, so inside [fmin, fmax] they sum to 1
    # (in mel space); this fails if edges or slopes are off.
    centers = mel_center_frequencies_hz(CFG)
    inside = (bin_hz > centers[0]) & (bin_hz < centers[-1])
    np.testing.assert_allclose(mel[inside].sum(axis=1), 1.0, atol=1e-12)


def test_mel_filters_peak_at_their_center() -> None:
    mel = mel_matrix(CFG)
    bin_hz = np.linspace(0.0, CFG.nyquist_hz, CFG.n_bins)
    centers = mel_center_frequencies_hz(CFG)
    assert np.all(np.diff(centers) > 0)
    peak_hz = bin_hz[mel.argmax(axis=0)]
    # The peak is the bin nearest the centre: at most half a bin spacing away.
    half_bin_hz = CFG.nyquist_hz / (CFG.n_bins - 1) / 2
    assert np.abs(peak_hz - centers).max() <= half_bin_hz + 1e-9
    # Every band has a clear peak (the narrowest low bands are ~2 bins wide,
    # so their best bin can sit up to ~1/3 of the way down a slope).
    assert mel.max(axis=0).min() > 0.6


def test_sine_lands_in_the_band_with_the_nearest_center() -> None:
    centers = mel_center_frequencies_hz(CFG)
    n = 4000  # 0.25 s, 23 frames
    # A tone at each centre frequency, plus one a quarter of the way to the
    # next centre (still nearest the same band).
    freqs = np.concatenate([centers, centers[:-1] + 0.25 * np.diff(centers)])
    expected = np.concatenate([np.arange(64), np.arange(63)])
    x = torch.from_numpy(np.stack([_tone(f, 0.5, n) for f in freqs]).astype(np.float32))
    with torch.no_grad():
        band = LogMel(CFG)(x).mean(dim=1).argmax(dim=-1).numpy()
    assert (band == expected).all(), np.flatnonzero(band != expected)


# ---------------------------------------------------------------- numerics


@pytest.mark.parametrize("name", list(SIGNALS))
def test_log_mel_matches_torch_stft_reference(name: str) -> None:
    waveform, atol = SIGNALS[name]
    x = torch.from_numpy(waveform.astype(np.float32))[None]
    with torch.no_grad():
        got = LogMel(CFG)(x)
    ref = _reference_log_mel(waveform.astype(np.float32))
    assert got.dtype == torch.float32 and got.shape == (1, 98, 64)
    err = np.abs(got.numpy().astype(np.float64) - ref).max()
    assert err < atol, f"{name}: max abs log-mel error {err:.2e} >= {atol:.0e}"


@pytest.mark.parametrize("name", list(SIGNALS))
def test_numpy_reference_matches_torch_stft_and_log_mel(name: str) -> None:
    waveform, atol = SIGNALS[name]
    x32 = waveform.astype(np.float32)
    got = log_mel_numpy(x32, CFG)
    assert got.dtype == np.float32 and got.shape == (98, 64)
    np.testing.assert_allclose(got, _reference_log_mel(x32)[0], rtol=0, atol=ATOL_NUMPY)
    with torch.no_grad():
        model = LogMel(CFG)(torch.from_numpy(x32)[None])[0].numpy()
    np.testing.assert_allclose(model, got, rtol=0, atol=atol)


def test_non_default_config_matches_reference() -> None:
    # 8 kHz, 32 ms window == n_fft (no zero padding), odd hop: catches any
    # place that hard-codes the defaults.
    cfg = FeatureConfig(sample_rate_hz=8000, window_ms=32.0, hop_ms=12.5, n_fft=256,
                        n_mels=32, fmin_hz=60.0, fmax_hz=4000.0)
    x = np.random.default_rng(1).uniform(-0.5, 0.5, (3, 4000)).astype(np.float32)
    with torch.no_grad():
        got = LogMel(cfg)(torch.from_numpy(x)).numpy()
    assert got.shape == (3, cfg.num_frames(4000), 32)
    np.testing.assert_allclose(got, _reference_log_mel(x, cfg), rtol=0, atol=ATOL_HALF_SCALE)
    np.testing.assert_allclose(log_mel_numpy(x, cfg), got, rtol=0, atol=ATOL_HALF_SCALE)


def test_silence_is_log_offset() -> None:
    with torch.no_grad():
        out = LogMel(CFG)(torch.zeros(1, SR))
    assert torch.isfinite(out).all()
    np.testing.assert_allclose(out.numpy(), np.log(CFG.log_offset), rtol=0, atol=1e-6)


def test_pcm_helpers_and_input_checks() -> None:
    pcm = np.array([-32768, 0, 16384, 32767], dtype=np.int16)
    np.testing.assert_array_equal(pcm16_to_float(pcm), [-1.0, 0.0, 0.5, 32767 / 32768])
    assert pcm16_to_float(pcm).dtype == np.float32
    with pytest.raises(TypeError, match="^pcm"):
        pcm16_to_float(pcm.astype(np.int32))
    with pytest.raises(TypeError, match="^waveform"):
        log_mel_numpy(pcm)
    with pytest.raises(ValueError, match="^waveform"):
        LogMel(CFG)(torch.zeros(SR))
    with pytest.raises(ValueError, match="^waveform"):
        LogMel(CFG)(torch.zeros(1, 399))
    with pytest.raises(TypeError, match="^pcm"):
        PcmLogMel(CFG)(torch.zeros(1, SR))
    pcm_batch = np.random.default_rng(2).integers(-32768, 32768, (2, SR)).astype(np.int16)
    with torch.no_grad():
        a = PcmLogMel(CFG)(torch.from_numpy(pcm_batch))
        b = LogMel(CFG)(torch.from_numpy(pcm16_to_float(pcm_batch)))
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_make_log_mel_from_card() -> None:
    card = FeatureConfig(n_mels=40).to_dict()
    assert isinstance(make_log_mel(card, pcm16=True), PcmLogMel)
    assert make_log_mel(card).cfg.n_mels == 40


def test_front_end_has_no_trainable_parameters() -> None:
    module = LogMel(CFG)
    assert list(module.parameters()) == []
    assert set(module.state_dict()) == {"dft_kernel", "mel_weight"}


# ---------------------------------------------------------------- export


def _export_and_run(
    module: torch.nn.Module, x: torch.Tensor, path: Path
) -> tuple[object, torch.Tensor]:
    """torch.export -> XNNPACK lowering -> .pte on disk -> ExecuTorch runtime."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from executorch.runtime import Runtime

    exported = torch.export.export(module.eval(), (x,))
    edge = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
    program = edge.to_executorch()
    path.write_bytes(program.buffer)
    method = Runtime.get().load_program(path).load_method("forward")
    (out,) = method.execute([x])
    return program.executorch_program.execution_plan[0], out


@pytest.mark.slow
def test_log_mel_exports_to_xnnpack_and_runs_in_executorch(tmp_path: Path) -> None:
    x = torch.from_numpy(np.random.default_rng(3).uniform(-1, 1, (2, SR)).astype(np.float32))
    plan, out = _export_and_run(LogMel(CFG), x, tmp_path / "log_mel_xnnpack_fp32.pte")
    assert [d.id for d in plan.delegates] == ["XnnpackBackend"]
    # Operators left outside the delegate run on portable kernels; there are none.
    assert [op.name for op in plan.operators] == []
    assert b"XnnpackBackend" in (tmp_path / "log_mel_xnnpack_fp32.pte").read_bytes()
    with torch.no_grad():
        eager = LogMel(CFG)(x)
    assert out.shape == (2, 98, 64) and out.dtype == torch.float32
    torch.testing.assert_close(out, eager, rtol=0, atol=ATOL_RUNTIME)
    reference = log_mel_numpy(x.numpy(), CFG)
    np.testing.assert_allclose(out.numpy(), reference, rtol=0, atol=ATOL_HALF_SCALE)


@pytest.mark.slow
def test_pcm_log_mel_exports_and_runs_in_executorch(tmp_path: Path) -> None:
    samples = np.random.default_rng(4).integers(-32768, 32768, (1, SR))
    pcm = torch.from_numpy(samples.astype(np.int16))
    plan, out = _export_and_run(PcmLogMel(CFG), pcm, tmp_path / "pcm_log_mel_xnnpack_fp32.pte")
    assert [d.id for d in plan.delegates] == ["XnnpackBackend"]
    # XNNPACK does not take dtype casts: only the int16 -> float32 copy stays portable.
    assert [op.name for op in plan.operators] == ["dim_order_ops::_to_dim_order_copy"]
    with torch.no_grad():
        eager = PcmLogMel(CFG)(pcm)
    torch.testing.assert_close(out, eager, rtol=0, atol=ATOL_RUNTIME)


def test_trim_bins_keeps_the_features_and_drops_only_unused_bins() -> None:
    # Dropping the bins no mel band weights (LogMel(trim_bins=True), used by
    # the distilled trigger to fit its MAC budget) must not change the features.
    from shared.features import used_bin_range

    small = FeatureConfig(window_ms=16.0, hop_ms=20.0, n_fft=256, n_mels=32)
    for cfg, expected in ((CFG, (5, 240)), (small, (3, 120))):
        lo, hi = used_bin_range(cfg)
        assert (lo, hi) == expected
        weights = mel_matrix(cfg)
        assert not weights[:lo].any() and not weights[hi:].any() and weights[lo:hi].max(1).min() > 0
        full, trimmed = LogMel(cfg), LogMel(cfg, trim_bins=True)
        assert trimmed.dft_kernel.shape == (2 * (hi - lo), 1, cfg.window_samples)
        assert trimmed.mel_weight.shape == (cfg.n_mels, hi - lo)
        for name in ("noise_full", "tone_1khz", "chirp_full"):
            x = torch.from_numpy(SIGNALS[name][0][None].astype(np.float32))
            with torch.no_grad():
                torch.testing.assert_close(trimmed(x), full(x), rtol=0, atol=1e-5)
    pcm = torch.zeros(1, SR, dtype=torch.int16)
    assert make_log_mel(small, pcm16=True, trim_bins=True).log_mel.n_used_bins == 117
    assert LogMel(CFG).dft_kernel.shape[0] == 2 * CFG.n_bins  # the default is unchanged
    assert make_log_mel(small, pcm16=True, trim_bins=True)(pcm).shape == (1, 50, 32)
