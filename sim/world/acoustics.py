"""Room and scene acoustics for the synthetic world: noise, reverberation, distance, SNR.

The world renders each sound source dry (:mod:`sim.world.sounds`), then:

1. :func:`attenuate` it for its distance from the wearer (1/r, plus a gentle
   low-pass for far or occluded sources);
2. :func:`reverberate` it with a synthetic room impulse response of the scene's
   RT60 (:data:`ROOM_RT60_S`);
3. sums the sources into a foreground, and :func:`mix_at_snr` adds
   :func:`background_noise` of the scene's environment at a chosen SNR;
4. :func:`to_int16` scales the whole mixture by one gain and quantises it.

All signals are float mono at ``sample_rate_hz`` (16 kHz by default). Functions
that draw take a ``numpy.random.Generator`` and draw only from it.

SNR definition (what annotations record as ``snr_db``)::

    snr_db = 10 * log10( sum(fg**2) / sum(noise**2) )

over every sample of the recording (silent stretches of the foreground
included), where ``fg`` is the summed foreground (after distance and reverb)
and ``noise`` the scaled background, both at the same sample rate and length.
A single gain applied to the mixture (as :func:`to_int16` does) leaves it
unchanged. ``fg_mask`` variants restrict the foreground power to the samples
where sources sound (an "active" SNR), for sparse foregrounds.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
from scipy import signal

from shared.labels import names

__all__ = [
    "ENVIRONMENTS",
    "ROOM_RT60_S",
    "ROOM_DIRECT_TO_REVERB_DB",
    "background_noise",
    "room_impulse_response",
    "reverberate",
    "attenuate",
    "mix_at_snr",
    "measure_snr_db",
    "to_int16",
]

ENVIRONMENTS: tuple[str, ...] = tuple(names("environment"))

#: Typical reverberation time per scene (s): furnished domestic rooms and
#: offices measure 0.3-0.6 s; outdoors there is almost no reverberant field.
ROOM_RT60_S: dict[str, float] = {"kitchen": 0.5, "office": 0.4, "living_room": 0.5, "street": 0.1}

#: Direct-to-reverberant ratio (dB) for a source 1-2 m away: a default for
#: :func:`reverberate`; lower it for far or off-screen sources (another room
#: is mostly reverberant), raise it outdoors.
ROOM_DIRECT_TO_REVERB_DB: dict[str, float] = {
    "kitchen": 4.0, "office": 6.0, "living_room": 4.0, "street": 15.0,
}

_DEFAULT_RATE_HZ = 16000
_DEFAULT_DRR_DB = 6.0
_MAINS_HZ = (50.0, 60.0)  # fridge compressors and transformers hum at mains frequency
_MIN_DISTANCE_M = 0.1  # 1/r is a far-field law; closer than this the gain is held
_AIR_LOWPASS_START_M = 5.0  # beyond this, high frequencies fade (air, furniture, doorways)
_AIR_LOWPASS_AT_START_HZ = 8000.0  # first-order cutoff at the start distance, falling as 1/r
_OCCLUSION_CUTOFF_HZ = 1000.0  # a wall's mass law: transmission falls ~6 dB/octave
_EARLY_REFLECTIONS_S = (0.002, 0.03)  # first wall/ceiling/table bounces in a room
_TAIL_CROSSOVER_HZ = 2000.0  # above it the tail decays twice as fast (air, soft furnishings)
_INT16_FULL_SCALE = 32767
_ENVELOPE_STEP_S = 0.01  # slow envelopes (car passes, gusts) are computed at 100 Hz


# ------------------------------------------------------------------ noise building blocks
# float32 throughout: a minute of noise is ~1M samples per component, and halving
# the bytes halves the time of the FFTs and element-wise passes that dominate.


def _unit(x: np.ndarray) -> np.ndarray:
    """float32 copy with zero mean and unit RMS (statistics accumulated in float64)."""
    x = np.asarray(x, dtype=np.float32)
    x = x - np.float32(x.mean(dtype=np.float64))
    rms = float(np.sqrt(_power(x)))
    return x / np.float32(rms) if rms > 0 else x


def _power(x: np.ndarray) -> float:
    """Mean square: squares in the input's float precision (ints go to float64, never
    overflow), the sum in float64."""
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    return float(np.mean(np.square(x), dtype=np.float64)) if x.size else 0.0


def _colored(n: int, rng: np.random.Generator, exponent: float, rate_hz: int,
             lo_hz: float = 20.0, hi_hz: float | None = None) -> np.ndarray:
    """Unit-RMS noise with power ~ 1/f**exponent between ``lo_hz`` and ``hi_hz``."""
    m = n // 2 + 1
    spec = rng.standard_normal(2 * m, dtype=np.float32).view(np.complex64)  # complex Gaussian bins
    f = np.fft.rfftfreq(n, 1.0 / rate_hz).astype(np.float32)
    shape = np.maximum(f, lo_hz) ** np.float32(-exponent / 2)
    shape[f < lo_hz / 2] = 0.0  # no DC or sub-audio drift
    if hi_hz is not None:
        shape /= np.sqrt(1 + (f / np.float32(hi_hz)) ** 4)  # second-order roll-off
    spec *= shape
    return _unit(np.fft.irfft(spec, n))


def _envelope(n: int, rate_hz: int, values_at: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """A slow envelope: ``values_at(t_s)`` evaluated at 100 Hz, linearly interpolated to ``n``."""
    t_env = np.arange(0, n / rate_hz + _ENVELOPE_STEP_S, _ENVELOPE_STEP_S)
    return np.interp(np.arange(n, dtype=np.float32) / rate_hz, t_env, values_at(t_env)).astype(np.float32)


def _slow(n: int, rate_hz: int, rng: np.random.Generator, cutoff_hz: float) -> np.ndarray:
    """Unit-variance noise varying no faster than ``cutoff_hz`` (interpolated random knots)."""
    step_s = 1 / (2 * cutoff_hz)
    knots = rng.standard_normal(int(n / rate_hz / step_s) + 2)
    return _envelope(n, rate_hz, lambda t: np.interp(t, np.arange(len(knots)) * step_s, knots))


def _hum(n: int, rate_hz: int, rng: np.random.Generator) -> np.ndarray:
    """Mains hum: fundamental plus decaying harmonics, with a slow level wobble.

    The waveform repeats every ``rate / gcd(rate, f0)`` samples (800 at 16 kHz),
    so one period is built and tiled.
    """
    f0 = _MAINS_HZ[int(rng.integers(2))]
    period = rate_hz // math.gcd(rate_hz, int(f0))
    t = np.arange(period) / rate_hz
    one = sum(rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi))
              for k in range(1, 7))
    return _unit(np.resize(one.astype(np.float32), n) * (1 + 0.1 * _slow(n, rate_hz, rng, 0.5)))


def _bursts(n: int, rate_hz: int, rng: np.random.Generator, per_s: float, decay_s: tuple[float, float],
            band_hz: tuple[float, float]) -> np.ndarray:
    """Sparse decaying noise bursts (clatter, clicks) at Poisson times, band-passed.

    Each burst is filtered before it is placed: an IIR run over a mostly-zero
    signal slows ~40x on subnormal floats in its decaying state.
    """
    k = rng.poisson(per_s * n / rate_hz)
    length = int(5 * decay_s[1] * rate_hz)
    if k == 0 or length == 0:
        return np.zeros(n, np.float32)
    t = np.arange(length) / rate_hz
    grains = rng.standard_normal((k, length)) * np.exp(-t / rng.uniform(*decay_s, (k, 1)))
    grains *= rng.lognormal(0, 0.3, (k, 1))
    hi = min(band_hz[1], 0.45 * rate_hz)
    sos = signal.butter(2, [band_hz[0], hi], "bandpass", fs=rate_hz, output="sos")
    grains = signal.sosfilt(sos, grains, axis=1)
    idx = rng.integers(0, n, k)[:, None] + np.arange(length)
    ok = idx < n
    return np.bincount(idx[ok], weights=grains[ok], minlength=n)[:n].astype(np.float32)


# ---------------------------------------------------------------- environment recipes
# Each returns an un-normalised mixture; components are unit RMS times drawn weights.


def _kitchen(n, sr, rng):
    # Extractor hood: a broadband whoosh, flatter than pink (brighter than office HVAC).
    fan = _colored(n, rng, rng.uniform(0.4, 0.8), sr, lo_hz=80.0, hi_hz=rng.uniform(2500, 4500))
    blade_hz = float(rng.integers(80, 200))  # blade-pass tone: whole Hz, so one period tiles
    period = sr // math.gcd(sr, int(blade_hz))
    blade = np.resize(np.sin(2 * np.pi * blade_hz * np.arange(period) / sr).astype(np.float32), n)
    clatter = _bursts(n, sr, rng, rng.uniform(0.15, 0.5), (0.02, 0.08), (1000.0, 7000.0))
    return (fan + rng.uniform(0.1, 0.3) * _unit(blade) + rng.uniform(0.2, 0.5) * _hum(n, sr, rng)
            + rng.uniform(0.15, 0.35) * _unit(clatter))


def _office(n, sr, rng):
    # Ventilation: soft, dark pink-to-brown noise; most of its energy below 500 Hz.
    hvac = _colored(n, rng, rng.uniform(1.2, 1.8), sr, lo_hz=40.0, hi_hz=rng.uniform(1000, 2000))
    # Distant typing: click bursts gated into typing spells of a few seconds.
    clicks = _bursts(n, sr, rng, rng.uniform(3.0, 6.0), (0.001, 0.004), (800.0, 4000.0))
    spells = (_slow(n, sr, rng, 0.1) > 0.8).astype(np.float32)
    return hvac + rng.uniform(0.05, 0.2) * _unit(clicks * spells)


def _living_room(n, sr, rng):
    # TV babble: speech-shaped noise with syllabic (~4 Hz) modulation and pauses.
    speechy = _colored(n, rng, 1.0, sr, lo_hz=200.0, hi_hz=3500.0)
    syllables = np.clip(_slow(n, sr, rng, rng.uniform(3.0, 5.0)), 0, None)
    phrases = (_slow(n, sr, rng, 0.3) > -0.5).astype(np.float32)
    tv = _unit(speechy * syllables * phrases)
    room = _colored(n, rng, 1.0, sr, lo_hz=30.0)
    return tv + rng.uniform(0.2, 0.4) * _hum(n, sr, rng) + rng.uniform(0.2, 0.4) * room


def _street(n, sr, rng):
    # Traffic: low-passed brown rumble swelling as cars pass (a bump every few s).
    rumble = _colored(n, rng, 2.0, sr, lo_hz=25.0, hi_hz=rng.uniform(150, 400))
    dur_s = n / sr
    passes = rng.uniform(-2, dur_s + 2, rng.poisson(dur_s / rng.uniform(2, 8)) + 1)
    width = rng.uniform(1.0, 3.0, len(passes))
    cars = _envelope(n, sr, lambda t: 0.3 + np.exp(-0.5 * ((t[:, None] - passes) / width) ** 2).sum(axis=1))
    hiss = _colored(n, rng, 0.5, sr, lo_hz=500.0, hi_hz=3000.0)  # tyres
    gusts = np.clip(_slow(n, sr, rng, rng.uniform(0.1, 0.5)), 0, None) ** 2
    wind = _colored(n, rng, 2.0, sr, lo_hz=20.0, hi_hz=200.0) * gusts
    return (rumble + rng.uniform(0.05, 0.15) * hiss) * cars + rng.uniform(0.2, 0.6) * _unit(wind)


_RECIPES = {"kitchen": _kitchen, "office": _office, "living_room": _living_room, "street": _street}


def background_noise(environment: str, duration_s: float, rng: np.random.Generator, *,
                     sample_rate_hz: int = _DEFAULT_RATE_HZ) -> np.ndarray:
    """Environment noise, float32 ``(round(duration_s * rate),)``, unit RMS.

    Character: kitchen = extractor fan, fridge hum and harmonics, clatter bursts;
    office = soft HVAC pink/brown noise, occasional distant typing; living_room =
    TV-like babble, hum, room tone; street = traffic rumble swelling with passing
    cars, tyre hiss, wind gusts.

    Raises:
        ValueError: unknown environment (the message lists the known ones) or
            non-positive duration.
    """
    if environment not in _RECIPES:
        raise ValueError(f"unknown environment {environment!r}; known: {', '.join(ENVIRONMENTS)}")
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise ValueError(f"duration_s must be a positive number of seconds, got {duration_s!r}")
    n = max(2, int(round(duration_s * sample_rate_hz)))
    return _unit(_RECIPES[environment](n, sample_rate_hz, rng)).astype(np.float32)


# ------------------------------------------------------------------------ reverberation


def room_impulse_response(rt60_s: float, rng: np.random.Generator, *, sample_rate_hz: int = _DEFAULT_RATE_HZ,
                          direct_to_reverb_db: float = _DEFAULT_DRR_DB) -> np.ndarray:
    """A synthetic room impulse response, float64 ``(~rt60_s * rate,)``.

    Direct path (1.0 at sample 0), 4-10 early reflections in 2-30 ms, then an
    exponentially decaying noise tail reaching -60 dB at ``rt60_s`` (above 2 kHz
    it decays twice as fast, as furnishings and air absorb highs). Everything
    after the direct path is scaled so that
    ``10 log10(direct energy / reverberant energy) == direct_to_reverb_db``.

    Raises:
        ValueError: ``rt60_s`` not positive.
    """
    if not rt60_s > 0:
        raise ValueError(f"rt60_s must be > 0, got {rt60_s!r}")
    sr = sample_rate_hz
    # Short decays (outdoors, small rooms) get their first bounces sooner too.
    first_s, last_s = _EARLY_REFLECTIONS_S
    early_s = (first_s, max(2 * first_s, min(last_s, 0.2 * rt60_s)))
    n = max(int(rt60_s * sr), int(early_s[1] * sr) + 2)
    t = np.arange(n) / sr
    decay = 3 * math.log(10) / rt60_s  # amplitude envelope exp(-decay t): -60 dB at rt60
    noise = rng.standard_normal(n)
    sos_lo = signal.butter(2, _TAIL_CROSSOVER_HZ, "lowpass", fs=sr, output="sos")
    low = signal.sosfilt(sos_lo, noise)
    tail = low * np.exp(-decay * t) + (noise - low) * np.exp(-2 * decay * t)
    tail *= np.clip(t / early_s[1], 0, 1)  # the diffuse field builds up after the early bounces
    early = np.zeros(n)
    k = int(rng.integers(4, 11))
    delays = np.round(rng.uniform(*early_s, k) * sr).astype(int)
    gains = rng.choice([-1.0, 1.0], k) * rng.uniform(0.3, 1.0, k) * np.exp(-decay * delays / sr)
    np.add.at(early, delays, gains)
    # Early reflections carry about a third of the reverberant energy in a furnished room.
    unit = lambda v: v / np.sqrt(np.sum(v**2))  # noqa: E731
    rev = np.sqrt(1 / 3) * unit(early) + np.sqrt(2 / 3) * unit(tail)  # rev[0] == 0: both start later
    rev = unit(rev) * 10 ** (-direct_to_reverb_db / 20)  # (they overlap, so renormalise) -> the asked DRR
    rev[0] = 1.0
    return rev


def reverberate(x: np.ndarray, rng: np.random.Generator, *, rt60_s: float,
                sample_rate_hz: int = _DEFAULT_RATE_HZ,
                direct_to_reverb_db: float = _DEFAULT_DRR_DB) -> np.ndarray:
    """Convolve ``x`` with :func:`room_impulse_response`; float32, same length as ``x``.

    The direct path keeps unit gain (so a level set by :func:`attenuate` stays
    the direct-sound level) and the reverberant energy is added on top; the tail
    past the end of ``x`` is cut, so pad ``x`` if a sound's decay must be kept.
    ``rt60_s == 0`` returns ``x`` unchanged (anechoic).

    Raises:
        ValueError: negative ``rt60_s`` or ``x`` not one-dimensional.
    """
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"reverberate expects a mono 1-D signal, got shape {x.shape}")
    if rt60_s < 0:
        raise ValueError(f"rt60_s must be >= 0, got {rt60_s!r}")
    if rt60_s == 0 or len(x) == 0:
        return x.astype(np.float32)
    h = room_impulse_response(rt60_s, rng, sample_rate_hz=sample_rate_hz,
                              direct_to_reverb_db=direct_to_reverb_db)
    # Overlap-add FFT convolution (blocks near the RIR length), in float32: the
    # FFT error (~1e-7 of full scale) is far below int16 resolution.
    return signal.oaconvolve(x.astype(np.float32), h.astype(np.float32))[: len(x)]


# ------------------------------------------------------------------ distance and mixing


def attenuate(x: np.ndarray, distance_m: float, *, ref_m: float = 1.0,
              sample_rate_hz: int = _DEFAULT_RATE_HZ, occluded: bool = False) -> np.ndarray:
    """Scale a source rendered at ``ref_m`` to ``distance_m``: float32, same shape.

    Gain ``ref_m / max(distance_m, 0.1)`` (inverse-distance law for pressure:
    -6 dB per doubling). Beyond 5 m a first-order low-pass (cutoff 8 kHz at 5 m,
    falling as 1/r) dulls far sources; ``occluded=True`` (a source in another
    room) adds a first-order low-pass at 1 kHz, the 6 dB/octave slope of a wall's
    mass law. Both low-passes have unit gain at DC, so low frequencies follow
    1/r exactly.

    Raises:
        ValueError: ``distance_m`` or ``ref_m`` not positive.
    """
    if not (distance_m > 0 and ref_m > 0):
        raise ValueError(f"distance_m and ref_m must be > 0, got {distance_m!r}, {ref_m!r}")
    y = np.asarray(x, dtype=np.float64) * (ref_m / max(distance_m, _MIN_DISTANCE_M))
    cutoffs = []
    if distance_m > _AIR_LOWPASS_START_M:
        cutoffs.append(_AIR_LOWPASS_AT_START_HZ * _AIR_LOWPASS_START_M / distance_m)
    if occluded:
        cutoffs.append(_OCCLUSION_CUTOFF_HZ)
    for fc in cutoffs:
        if fc < 0.5 * sample_rate_hz:
            a = math.exp(-2 * math.pi * fc / sample_rate_hz)
            y = signal.lfilter([1 - a], [1.0, -a], y)
    return y.astype(np.float32)


def measure_snr_db(clean_fg: np.ndarray, noise: np.ndarray, *, fg_mask: np.ndarray | None = None) -> float:
    """``10 log10(mean(fg**2) / mean(noise**2))``, means over all samples.

    With ``fg_mask`` (bool, same length) the foreground mean runs over the masked
    samples only (active SNR); the noise mean always runs over all samples.
    Returns ``inf`` for silent noise and ``-inf`` for a silent foreground.
    """
    fg, nz = np.asarray(clean_fg), np.asarray(noise)
    if fg_mask is not None:
        fg = fg[np.asarray(fg_mask, dtype=bool)]
    p_fg, p_noise = _power(fg), _power(nz)
    if p_noise == 0:
        return math.inf
    if p_fg == 0:
        return -math.inf
    return float(10 * math.log10(p_fg / p_noise))


def mix_at_snr(foreground: np.ndarray, noise: np.ndarray, snr_db: float, *,
               fg_mask: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Add ``noise`` scaled so the mixture has ``snr_db`` (module docstring definition).

    Args:
        foreground: float ``(n,)``, the summed sources.
        noise: float ``(n,)``, e.g. :func:`background_noise` (any level).
        snr_db: target ``10 log10(mean(fg**2) / mean((gain * noise)**2))``.
        fg_mask: optional bool ``(n,)``: measure foreground power only there.

    Returns:
        ``(mixture, achieved_snr_db)``: float32 ``(n,)`` and the SNR measured on
        the float32 foreground and scaled noise actually summed.

    Raises:
        ValueError: lengths differ, or foreground or noise is silent.
    """
    fg = np.asarray(foreground, dtype=np.float64)
    nz = np.asarray(noise, dtype=np.float64)
    if fg.shape != nz.shape or fg.ndim != 1:
        raise ValueError(f"foreground and noise must be 1-D of equal length, got {fg.shape} and {nz.shape}")
    current = measure_snr_db(fg, nz, fg_mask=fg_mask)
    if not math.isfinite(current):
        raise ValueError("SNR is undefined: the foreground or the noise is silent")
    scaled = (nz * 10 ** ((current - snr_db) / 20)).astype(np.float32)
    fg32 = fg.astype(np.float32)
    return fg32 + scaled, measure_snr_db(fg32, scaled, fg_mask=fg_mask)


def to_int16(x: np.ndarray, *, peak: float = 0.9) -> tuple[np.ndarray, float]:
    """Quantise a float mixture (full scale 1.0) to int16 with ONE gain.

    The gain is ``min(1, peak / max|x|)``: loud mixtures come down so their
    peak sits at ``peak`` of full scale, quiet ones are left as they are
    (never boosted). One gain for the whole mixture keeps its SNR.

    Returns:
        ``(pcm, gain)``: int16 ``(n,)`` = ``round(x * gain * 32767)``, and the gain.

    Raises:
        ValueError: ``peak`` not in (0, 1].
    """
    if not 0 < peak <= 1:
        raise ValueError(f"peak must be in (0, 1], got {peak!r}")
    y = np.asarray(x, dtype=np.float64)
    top = float(np.max(np.abs(y))) if y.size else 0.0
    gain = min(1.0, peak / top) if top > 0 else 1.0
    pcm = np.clip(np.round(y * (gain * _INT16_FULL_SCALE)), -_INT16_FULL_SCALE - 1, _INT16_FULL_SCALE)
    return pcm.astype(np.int16), gain
