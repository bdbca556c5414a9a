"""Procedural sound sources for the synthetic world, and the signal helpers they share.

One generator per audio-event label (beep patterns, chimes, knocks, whistles,
noise textures, transients), built from the labels' physics with vectorised
numpy. Each takes ``(n_samples, rate_hz, draws)`` and returns ``(signal, band_hz,
active spans)``; every random choice goes through :class:`_Draws`, so one seed
gives one sound. :mod:`sim.world.sounds` picks between these and the real
recordings (freedesktop sounds, espeak-ng speech) and finishes each sound.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
from scipy import signal

_MIN_RATE_HZ = 8000
_RAMP_S = 0.005  # on/off ramps: shorter ones click, and a click spreads energy out of band
_ALIAS_FRACTION = 0.45  # partials kept only below 0.45 * rate (no aliasing, room for filters)
_SILENT_FLOOR_DB = -40.0  # envelope level below which a real sound counts as not sounding

# --------------------------------------------------------------------------- helpers


class _Draws:
    """Draws named parameters from the rng, lets the caller override any of them.

    The draw is made even when overridden, so fixing one parameter leaves every
    other draw (and so the rest of the sound) unchanged.
    """

    def __init__(self, rng: np.random.Generator, overrides: dict[str, Any]):
        self.rng = rng
        self.overrides = dict(overrides)
        self.used: set[str] = set()
        self.params: dict[str, Any] = {}

    def _take(self, key: str, drawn: Any) -> Any:
        value = self.overrides.get(key, drawn)
        self.used.add(key)
        self.params[key] = value.item() if isinstance(value, np.generic) else value
        return self.params[key]

    def uniform(self, key: str, lo: float, hi: float) -> float:
        return float(self._take(key, float(self.rng.uniform(lo, hi))))

    def integers(self, key: str, lo: int, hi_inclusive: int) -> int:
        return int(self._take(key, int(self.rng.integers(lo, hi_inclusive + 1))))

    def choice(self, key: str, options: list | tuple) -> Any:
        return self._take(key, options[int(self.rng.integers(len(options)))])

    def check_all_used(self, label: str) -> None:
        unknown = sorted(set(self.overrides) - self.used)
        if unknown:
            raise ValueError(f"{label}: unknown parameter(s) {unknown}; drawn: {sorted(self.used)}")


def _check_rate(rate_hz: int) -> None:
    if int(rate_hz) != rate_hz or rate_hz < _MIN_RATE_HZ:
        raise ValueError(f"sample_rate_hz must be an integer >= {_MIN_RATE_HZ}, got {rate_hz!r}")


def _num_samples(duration_s: float, rate_hz: int) -> int:
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise ValueError(f"duration_s must be a positive number of seconds, got {duration_s!r}")
    _check_rate(rate_hz)
    return max(1, int(round(duration_s * rate_hz)))


def _fmax(rate_hz: int) -> float:
    return _ALIAS_FRACTION * rate_hz


def _gate(n: int, rate_hz: int, spans: list[tuple[float, float]]) -> np.ndarray:
    """0/1 envelope that is 1 inside ``spans`` (s), with raised-cosine ramps inside each span."""
    g = np.zeros(n)
    ramp_n = max(1, int(_RAMP_S * rate_hz))
    for start_s, end_s in spans:
        i0, i1 = int(round(start_s * rate_hz)), min(n, int(round(end_s * rate_hz)))
        if i1 <= i0:
            continue
        k = np.arange(i1 - i0)
        r = min(ramp_n, (i1 - i0) // 2 or 1)
        up = 0.5 - 0.5 * np.cos(np.pi * np.minimum(k, r) / r)
        down = 0.5 - 0.5 * np.cos(np.pi * np.minimum(i1 - i0 - 1 - k, r) / r)
        g[i0:i1] = np.minimum(up, down)
    return g


def _in_spans(n: int, rate_hz: int, spans: list[tuple[float, float]],
              wave: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``wave(t_s)`` times the ramped :func:`_gate`, evaluated only inside ``spans``.

    Tonal patterns are mostly silence; computing only the sounding samples keeps
    a minute of beeps or horn harmonics cheap.
    """
    g = _gate(n, rate_hz, spans)
    idx = np.flatnonzero(g)
    out = np.zeros(n)
    out[idx] = g[idx] * wave(idx / rate_hz)
    return out


def _fade_tail(grains: np.ndarray, rate_hz: int) -> np.ndarray:
    """Fade the last ramp of each grain to exactly 0, so a grain ends silent."""
    r = min(grains.shape[-1], max(1, int(_RAMP_S * rate_hz)))
    grains[..., -r:] *= np.linspace(1.0, 0.0, r)
    return grains


def _scatter(n: int, onsets: np.ndarray, grains: np.ndarray) -> np.ndarray:
    """Overlap-add grains ``(k, L)`` at integer sample ``onsets`` ``(k,)`` into ``n`` samples."""
    idx = np.asarray(onsets, dtype=np.int64)[:, None] + np.arange(grains.shape[1])[None, :]
    ok = (idx >= 0) & (idx < n)
    return np.bincount(idx[ok], weights=grains[ok], minlength=n)[:n]


def _damped(freq_hz, tau_s, length: int, rate_hz: int, phase=0.0) -> np.ndarray:
    """Damped sinusoids ``(k, length)`` for arrays (or scalars) of frequency, decay and phase."""
    f = np.atleast_1d(np.asarray(freq_hz, dtype=float))[:, None]
    tau = np.atleast_1d(np.asarray(tau_s, dtype=float))[:, None]
    ph = np.atleast_1d(np.asarray(phase, dtype=float))[:, None]
    t = np.arange(length)[None, :] / rate_hz
    return np.sin(2 * np.pi * f * t + ph) * np.exp(-t / tau)


def _band_noise(n: int, lo_hz: float, hi_hz: float, rate_hz: int, rng: np.random.Generator,
                order: int = 4) -> np.ndarray:
    """Gaussian noise band-passed to ``[lo_hz, hi_hz]`` (low- or high-pass when one edge is open)."""
    white = rng.standard_normal(n)
    hi_hz = min(hi_hz, _fmax(rate_hz))
    if lo_hz <= 0:
        sos = signal.butter(order, hi_hz, "lowpass", fs=rate_hz, output="sos")
    elif hi_hz >= _fmax(rate_hz) - 1:
        sos = signal.butter(order, lo_hz, "highpass", fs=rate_hz, output="sos")
    else:
        sos = signal.butter(order, [lo_hz, hi_hz], "bandpass", fs=rate_hz, output="sos")
    return signal.sosfilt(sos, white)


def _smooth_noise(n: int, rate_hz: int, rng: np.random.Generator, cutoff_hz: float) -> np.ndarray:
    """Unit-variance noise varying no faster than ``cutoff_hz`` (linear interpolation of knots)."""
    step = max(1, int(rate_hz / (2 * cutoff_hz)))
    knots = rng.standard_normal(n // step + 2)
    return np.interp(np.arange(n), np.arange(len(knots)) * step, knots)


def _clip_spans(spans, duration_s: float) -> list[tuple[float, float]]:
    out = [(max(0.0, s), min(duration_s, e)) for s, e in spans if s < duration_s]
    return [(float(s), float(e)) for s, e in out if e > s]


def merge_spans(spans: list[tuple[float, float]], max_gap_s: float = 0.0) -> list[tuple[float, float]]:
    """Sort spans and merge those separated by at most ``max_gap_s`` seconds.

    Useful to turn per-transient spans (each key click) into event-level ones
    (a typing burst) for annotation.
    """
    out: list[list[float]] = []
    for s, e in sorted(spans):
        if out and s - out[-1][1] <= max_gap_s:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(float(s), float(e)) for s, e in out]


def _active_from_envelope(x: np.ndarray, rate_hz: int, *, frame_s: float = 0.01,
                          min_gap_s: float = 0.03) -> list[tuple[float, float]]:
    """Spans where the 10 ms RMS envelope is within 40 dB of its maximum."""
    hop = max(1, int(frame_s * rate_hz))
    m = -(-len(x) // hop)
    frames = np.zeros(m * hop)
    frames[: len(x)] = x
    env = np.sqrt(np.mean(frames.reshape(m, hop) ** 2, axis=1))
    on = env > env.max() * 10 ** (_SILENT_FLOOR_DB / 20)
    edges = np.diff(on.astype(np.int8), prepend=0, append=0)
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    spans = [(s * hop / rate_hz, min(e * hop, len(x)) / rate_hz) for s, e in zip(starts, ends)]
    return merge_spans(spans, min_gap_s)


def _energy_band(x: np.ndarray, rate_hz: int, fraction: float = 0.9) -> tuple[float, float]:
    """The band between the (1-fraction)/2 and (1+fraction)/2 quantiles of the power spectrum."""
    power = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1.0 / rate_hz)
    cum = np.cumsum(power) / max(power.sum(), 1e-30)
    lo = freqs[min(len(freqs) - 1, np.searchsorted(cum, (1 - fraction) / 2))]
    hi = freqs[min(len(freqs) - 1, np.searchsorted(cum, (1 + fraction) / 2))]
    return float(lo), float(max(hi, lo + 1.0))


# ------------------------------------------------------------------ procedural sources
# Each returns (signal of n samples, band_hz, active spans); draws go through `d`.

_Gen = Callable[[int, int, _Draws], tuple[np.ndarray, tuple[float, float], list]]

# Beep styles: (pitch range Hz, beeps per group, on s, off s, pause between groups s, repeats, odd harmonics)
_BEEP_STYLES = {
    "timer_beep": ((2000.0, 4000.0), (2, 4), (0.06, 0.15), (0.06, 0.15), (0.4, 1.0), True, False),
    "microwave_beep": ((1000.0, 2500.0), (3, 5), (0.2, 0.5), (0.15, 0.4), (0.0, 0.0), False, False),
    "alarm": ((800.0, 3500.0), (1, 4), (0.1, 0.4), (0.05, 0.2), (0.2, 0.8), True, True),
}


def _beeps(label: str) -> _Gen:
    (f_lo, f_hi), (c_lo, c_hi), on_r, off_r, pause_r, repeats, square = _BEEP_STYLES[label]

    def gen(n: int, sr: int, d: _Draws):
        f = d.uniform("freq_hz", f_lo, min(f_hi, _fmax(sr)))
        count = d.integers("count", c_lo, c_hi)
        on_s, off_s = d.uniform("on_s", *on_r), d.uniform("off_s", *off_r)
        pause_s = d.uniform("pause_s", *pause_r)
        group_s = count * on_s + (count - 1) * off_s
        n_groups = int(n / sr // (group_s + pause_s)) + 1 if repeats else 1
        starts = [g * (group_s + pause_s) + b * (on_s + off_s) for g in range(n_groups) for b in range(count)]
        spans = _clip_spans([(s, s + on_s) for s in starts], n / sr)
        # Odd harmonics make an alarm square-ish (buzzier); kept below the alias limit.
        ks = [k for k in (1, 3, 5) if k * f < _fmax(sr)] if square else [1]
        x = _in_spans(n, sr, spans, lambda t: sum(np.sin(2 * np.pi * k * f * t) / k for k in ks))
        return x, (0.95 * f, 1.05 * f), spans

    return gen


def _doorbell(n, sr, d):
    f1 = d.uniform("ding_hz", 550.0, 1000.0)
    f2 = f1 * d.choice("interval_ratio", [0.794, 0.841, 0.75])  # major 3rd, minor 3rd, 4th down
    tau = d.uniform("decay_s", 0.3, 0.7)
    gap = d.uniform("dong_after_s", 0.35, 0.7)
    length = int(4.6 * tau * sr)  # 4.6 tau = -40 dB
    ratios, amps = np.array([1.0, 2.76, 5.40]), np.array([1.0, 0.25, 0.08])  # struck-bar partials
    notes = []
    for f in (f1, f2):
        keep = ratios * f < _fmax(sr)
        partials = _damped(ratios[keep] * f, tau / ratios[keep] ** 0.5, length, sr)  # highs die sooner
        notes.append(_fade_tail((amps[keep, None] * partials).sum(0)[None], sr))
    x = _scatter(n, np.array([0, int(gap * sr)]), np.concatenate(notes))
    return x, (0.9 * f2, 1.1 * f1), _clip_spans([(0.0, gap + length / sr)], n / sr)


def _knock(n, sr, d):
    count = d.integers("count", 2, 4)
    f0 = d.uniform("panel_hz", 70.0, 180.0)
    tau = d.uniform("decay_s", 0.012, 0.03)
    interval = d.uniform("interval_s", 0.12, 0.25)
    times = np.concatenate([[0.0], np.cumsum(interval * d.rng.uniform(0.85, 1.15, count - 1))])
    length = int(5 * tau * sr)
    body = _damped([f0, 2.3 * f0], [tau, 0.6 * tau], length, sr)
    knuckle = signal.lfilter([1.0], [1.0, -0.7], d.rng.standard_normal(length))
    knuckle *= np.exp(-np.arange(length) / (0.002 * sr))
    grain = body[0] + 0.5 * body[1] + 0.05 * knuckle
    amps = d.rng.uniform(0.7, 1.0, count)
    x = _scatter(n, np.round(times * sr), _fade_tail(amps[:, None] * grain[None], sr))
    spans = [(s, s + length / sr) for s in times]
    return x, (40.0, 800.0), _clip_spans(spans, n / sr)


def _kettle(n, sr, d):
    f0 = d.uniform("start_hz", 1500.0, min(2600.0, _fmax(sr) / 1.6))
    f1 = f0 * d.uniform("rise_ratio", 1.15, 1.5)
    rise_s = d.uniform("rise_fraction", 0.3, 0.7) * n / sr
    build_s = d.uniform("build_s", 0.3, 1.5)
    t = np.arange(n) / sr
    u = np.clip(t / rise_s, 0, 1)
    vibrato = 1 + 0.004 * np.sin(2 * np.pi * d.uniform("vibrato_hz", 4, 7) * t)
    freq = (f0 + (f1 - f0) * u * u * (3 - 2 * u)) * vibrato  # smoothstep rise, then steady
    tone = np.sin(2 * np.pi * np.cumsum(freq) / sr)
    breath = _band_noise(n, 0.85 * f0, 1.15 * f1, sr, d.rng)
    breath *= d.uniform("breath_level", 0.1, 0.25) * np.sqrt(2) / (breath.std() + 1e-12)
    amp = 0.15 + 0.85 * np.clip(t / build_s, 0, 1)  # whistle builds up as the steam flow grows
    return amp * (tone + breath), (0.85 * f0, 1.15 * f1), [(0.0, n / sr)]


def _phone_ring(n, sr, d):
    f1 = d.uniform("low_hz", 600.0, 1500.0)
    f2 = f1 * d.uniform("ratio", 1.12, 1.35)
    trill = d.choice("trill_hz", [0.0, 16.0, 20.0, 25.0])
    bursts = d.integers("bursts_per_ring", 1, 2)
    on_s = d.uniform("on_s", 0.8, 2.0) if bursts == 1 else d.uniform("on_s", 0.3, 0.5)
    inner = d.uniform("inner_gap_s", 0.15, 0.3)
    off_s = d.uniform("off_s", 1.0, 3.0)
    period = bursts * on_s + (bursts - 1) * inner + off_s
    spans = [(r * period + b * (on_s + inner), r * period + b * (on_s + inner) + on_s)
             for r in range(int(n / sr // period) + 1) for b in range(bursts)]
    spans = _clip_spans(spans, n / sr)

    def wave(t):
        # Old-style ringers alternate the two tones (trill); a soft switch keeps sidebands narrow.
        w = 0.5 + 0.5 * np.tanh(3 * np.sin(2 * np.pi * trill * t)) if trill else 0.5
        return w * np.sin(2 * np.pi * f1 * t) + (1 - w) * np.sin(2 * np.pi * f2 * t)

    return _in_spans(n, sr, spans, wave), (0.9 * f1, 1.1 * f2), spans


def _phone_notification(n, sr, d):
    notes = d.integers("notes", 2, 3)
    f0 = d.uniform("first_hz", 700.0, 1800.0)
    step = d.choice("interval_semitones", [3, 4, 5, 7, 12])
    note_s = d.uniform("note_s", 0.07, 0.15)
    freqs = f0 * 2 ** (step * np.arange(notes) / 12)
    freqs = freqs[freqs < _fmax(sr) / 2]  # room for the octave partial
    tau = note_s * np.ones(len(freqs))
    tau[-1] *= 2.5  # the last note rings on
    length = int(4.6 * tau[-1] * sr)
    grains = _damped(freqs, tau, length, sr) + 0.2 * _damped(2 * freqs, tau / 2, length, sr)
    onsets = np.round(np.arange(len(freqs)) * note_s * sr)
    x = _scatter(n, onsets, _fade_tail(grains, sr))
    end_s = onsets[-1] / sr + length / sr
    return x, (0.9 * freqs.min(), 1.1 * freqs.max()), _clip_spans([(0.0, end_s)], n / sr)


def _sizzle(n, sr, d):
    hp = d.uniform("highpass_hz", 1800.0, 3500.0)
    rate = d.uniform("pops_per_s", 8.0, 30.0)
    bed = d.rng.standard_normal(n) * (1 + 0.3 * _smooth_noise(n, sr, d.rng, 4.0)).clip(0.2)
    k = d.rng.poisson(rate * n / sr)
    length = int(0.004 * sr)
    pops = d.rng.standard_normal((k, length)) * np.exp(-np.arange(length) / (0.001 * sr))
    pops *= d.rng.lognormal(1.2, 0.5, (k, 1))  # a few pops stand well out of the bed
    x = bed + _scatter(n, d.rng.integers(0, n, k), pops)
    x = signal.sosfilt(signal.butter(4, hp, "highpass", fs=sr, output="sos"), x)
    return x, (0.8 * hp, sr / 2), [(0.0, n / sr)]


def _chopping(n, sr, d):
    rate = d.uniform("chops_per_s", 2.0, 4.0)
    board = d.uniform("board_hz", 150.0, 300.0)
    times = np.arange(0.0, n / sr, 1 / rate)
    times = np.maximum(0, times + d.rng.uniform(-0.08, 0.08, len(times)) / rate)
    times[0] = 0.0
    length = int(0.06 * sr)
    thud = _damped(board, 0.015, length, sr)[0]
    hits = _band_noise(3 * length, 800.0, 5000.0, sr, d.rng).reshape(3, length)  # three blade strikes
    hits *= np.exp(-np.arange(length) / (0.008 * sr))
    hits /= np.abs(hits).max(axis=1, keepdims=True)
    grains = thud[None] + 0.8 * hits[d.rng.integers(0, 3, len(times))]
    grains *= d.rng.uniform(0.7, 1.0, (len(times), 1))
    x = _scatter(n, np.round(times * sr), _fade_tail(grains, sr))
    return x, (100.0, 6000.0), _clip_spans([(t, t + length / sr) for t in times], n / sr)


def _running_water(n, sr, d):
    lo = d.uniform("low_hz", 300.0, 800.0)
    hi = d.uniform("high_hz", 2500.0, min(5000.0, _fmax(sr)))
    depth = d.uniform("flutter_depth", 0.3, 0.6)
    flutter = _smooth_noise(n, sr, d.rng, d.uniform("flutter_hz", 5.0, 20.0))
    x = _band_noise(n, lo, hi, sr, d.rng) * np.clip(1 + depth * flutter, 0.1, None)
    return x, (lo, hi), [(0.0, n / sr)]


def _footsteps(n, sr, d):
    pace = d.uniform("steps_per_s", 1.6, 2.1)
    f_heel = d.uniform("heel_hz", 60.0, 120.0)
    tau = d.uniform("decay_s", 0.02, 0.04)
    times = np.arange(0.0, n / sr, 1 / pace)
    times = np.maximum(0, times + d.rng.uniform(-0.05, 0.05, len(times)) / pace)
    times[0] = 0.0
    length = int((0.06 + 5 * tau) * sr)
    toe_at = int(0.06 * sr)
    heel = _damped(f_heel, tau, length, sr)[0]
    toe = np.zeros(length)
    toe[toe_at:] = 0.6 * _damped(1.3 * f_heel, tau, length - toe_at, sr)[0]
    grains = (heel + toe)[None] * d.rng.uniform(0.6, 1.0, (len(times), 1))
    x = _scatter(n, np.round(times * sr), _fade_tail(grains, sr))
    return x, (30.0, 600.0), _clip_spans([(t, t + length / sr) for t in times], n / sr)


def _keyboard_typing(n, sr, d):
    keys_per_s = d.uniform("keys_per_s", 4.0, 9.0)
    word_pause = d.uniform("word_pause_s", 0.15, 0.5)
    k_max = int(n / sr * keys_per_s) + 2
    gaps = d.rng.gamma(4.0, 1 / (4.0 * keys_per_s), k_max)  # irregular but never machine-regular
    gaps += np.where(d.rng.random(k_max) < 0.18, word_pause, 0.0)  # ~5 letters per word
    times = np.concatenate([[0.0], np.cumsum(gaps)])
    times = times[times < n / sr]
    length = int(0.012 * sr)
    variants = _band_noise(4 * length, 1500.0, 6500.0, sr, d.rng).reshape(4, length)
    variants *= np.exp(-np.arange(length) / (0.002 * sr))
    variants /= np.abs(variants).max(axis=1, keepdims=True)
    grains = variants[d.rng.integers(0, 4, len(times))] * d.rng.uniform(0.5, 1.0, (len(times), 1))
    x = _scatter(n, np.round(times * sr), _fade_tail(grains, sr))
    return x, (1000.0, 7000.0), _clip_spans([(t, t + length / sr) for t in times], n / sr)


def _dishes(n, sr, d):
    # A few objects (plates, bowls, cutlery), each with its own modes, hit at random
    # times: per-object grains are computed once and overlap-added.
    objects = d.integers("objects", 2, 5)
    rate = d.uniform("clangs_per_s", 0.8, 2.5)
    f0s = np.exp(d.rng.uniform(np.log(400.0), np.log(1600.0), objects))
    taus = d.rng.uniform(0.08, 0.35, objects)
    k = 1 + d.rng.poisson(rate * n / sr)
    times = np.sort(np.concatenate([[d.rng.uniform(0, min(0.1, n / sr))], d.rng.uniform(0, n / sr, k - 1)]))
    which = d.rng.integers(0, objects, k)
    amps = d.rng.uniform(0.5, 1.0, k)
    ratios = np.array([1.0, 2.32, 4.25, 6.63, 9.38])  # inharmonic plate/bowl modes
    x, spans = np.zeros(n), []
    for o in range(objects):
        keep = ratios * f0s[o] < _fmax(sr)
        partial_amps = np.array([1.0, 0.7, 0.5, 0.35, 0.25])[keep] * d.rng.uniform(0.7, 1.3, keep.sum())
        length = int(4.6 * taus[o] * sr)
        modes = _damped(ratios[keep] * f0s[o], taus[o] / ratios[keep] ** 0.5, length, sr,
                        d.rng.uniform(0, 2 * np.pi, keep.sum()))
        grain = _fade_tail((partial_amps[:, None] * modes).sum(0)[None], sr)[0]
        hits = which == o
        x += _scatter(n, np.round(times[hits] * sr), amps[hits, None] * grain[None])
        spans += [(t, t + length / sr) for t in times[hits]]
    d.params.update(clangs=int(k), object_hz=[float(f) for f in f0s])
    return x, (0.9 * float(f0s.min()), sr / 2), _clip_spans(merge_spans(spans), n / sr)


def _door_sound(n, sr, d):
    creak_s = d.uniform("creak_s", 0.3, 1.0)
    thud_at = creak_s + d.uniform("thud_after_s", 0.1, 0.5)
    f_res = d.uniform("creak_resonance_hz", 600.0, 1800.0)
    rate = d.uniform("stick_slip_hz", 40.0, 120.0)
    f_thud = d.uniform("thud_hz", 50.0, 110.0)
    m = int(creak_s * sr)
    t = np.arange(m) / sr
    inst = rate * (1 + 0.5 * np.sin(np.pi * t / creak_s * d.rng.uniform(1, 3) + d.rng.uniform(0, 2 * np.pi)))
    phase = np.cumsum(inst) / sr
    pulses = np.diff(np.floor(phase), prepend=0.0) * d.rng.uniform(0.5, 1.0, m)
    r = np.exp(-np.pi * f_res / 8 / sr)  # Q ~ 8 wood resonance excited by each slip
    creak = signal.lfilter([1.0], [1.0, -2 * r * np.cos(2 * np.pi * f_res / sr), r * r], pulses)
    creak *= _gate(m, sr, [(0.0, creak_s)]) / (np.abs(creak).max() + 1e-12)
    length = int(0.35 * sr)
    thud = _damped(f_thud, 0.07, length, sr)[0] + 0.3 * _damped(2.7 * f_thud, 0.03, length, sr)[0]
    x = _scatter(n, np.array([0]), creak[None])
    x += _scatter(n, np.array([round(thud_at * sr)]), _fade_tail(thud[None], sr))
    return x, (40.0, 4500.0), _clip_spans([(0.0, creak_s), (thud_at, thud_at + length / sr)], n / sr)


def _car_horn(n, sr, d):
    f1 = d.uniform("low_hz", 330.0, 450.0)
    f2 = f1 * d.uniform("ratio", 1.2, 1.3)  # two horns about a major third apart
    honks = d.integers("honks", 1, 2)
    honk_s = d.uniform("honk_s", 0.25, 1.2)
    gap = d.uniform("gap_s", 0.1, 0.3)
    spans = _clip_spans([(h * (honk_s + gap), h * (honk_s + gap) + honk_s) for h in range(honks)], n / sr)

    def wave(t):  # band-limited squares: odd harmonics 1/k below the alias limit
        return sum(np.sin(2 * np.pi * k * f * t) / k
                   for f in (f1, f2) for k in range(1, int(_fmax(sr) / f) + 1, 2))

    return _in_spans(n, sr, spans, wave), (0.9 * f1, 3.3 * f2), spans


def _pouring(n, sr, d):
    f_start = d.uniform("start_hz", 250.0, 500.0)
    f_end = min(f_start * d.uniform("rise_ratio", 2.5, 5.0), 3000.0)
    rate = d.uniform("bubbles_per_s", 40.0, 90.0)
    k = d.rng.poisson(rate * n / sr) + 1
    times = d.rng.uniform(0, n / sr, k)
    # The air column above the liquid shortens, so its resonance rises ~1/(remaining length).
    a = 1 - f_start / f_end
    centre = f_start / (1 - a * times / (n / sr))
    f = np.clip(centre * d.rng.uniform(0.85, 1.2, k), 0.85 * f_start, 1.2 * f_end)
    # Bubbles come from a bank of chirping damped sines (frequency x decay) so that
    # thousands of them cost a gather, not thousands of sine evaluations.
    bank_hz = np.geomspace(0.85 * f_start, 1.2 * f_end, 48)
    bank_tau_s = np.array([0.004, 0.007, 0.012])
    length = int(0.05 * sr)
    tt = np.arange(length) / sr
    # A bubble's pitch rises as it forms: a short upward chirp.
    chirp = np.sin(2 * np.pi * bank_hz[:, None, None] * tt * (1 + 1.5 * tt))
    bank = chirp * np.exp(-tt / bank_tau_s[:, None])
    bank = _fade_tail(bank.reshape(-1, length), sr)
    f_idx = np.abs(np.log(f)[:, None] - np.log(bank_hz)[None, :]).argmin(axis=1)
    grains = bank[f_idx * 3 + d.rng.integers(0, 3, k)] * d.rng.lognormal(0, 0.4, (k, 1))
    bubbles = _scatter(n, np.round(times * sr), grains)
    stream = _band_noise(n, 0.8 * f_start, 1.25 * f_end, sr, d.rng)
    x = bubbles / (bubbles.std() + 1e-12) + 0.3 * stream / (stream.std() + 1e-12)
    return x, (0.8 * f_start, 1.25 * f_end), [(0.0, n / sr)]
