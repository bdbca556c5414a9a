"""Sound sources for the synthetic world: one call renders one annotated sound.

Every source is a float32 mono array at ``sample_rate_hz`` (16 kHz by default)
plus a :class:`SoundInfo` that says where the sound came from, which band holds
most of its energy and *when* it is actually sounding, so the world generator
can annotate onsets and offsets to the sample.

Two kinds of source:

- **Procedural** (always available, :mod:`sim.world.procedural`): beep patterns, chimes, knocks, whistles,
  noise textures, transients and a speech-like babble, all built from the
  labels' physics with vectorised numpy (no per-sample Python loops: 60 s of
  any label renders in well under 0.2 s).
- **Real**, where the machine has them: Debian's ``sound-theme-freedesktop``
  recordings (decoded with PyAV, resampled, looped) and ``espeak-ng`` speech.
  :func:`real_sound_status` says what was found; ``SoundInfo.origin`` says what
  each sound used, so annotations can record it.

Determinism: every random choice is drawn from the ``numpy.random.Generator``
passed in; nothing reads the global RNG or the clock. Same seed, same machine
(same real files and espeak-ng version) -> byte-identical arrays.

Where the real sources live is read from two module attributes, set from the
environment at import and patchable in tests: ``FREEDESKTOP_DIR``
(``$EARSHOT_FREEDESKTOP_DIR``) and ``ESPEAK_BIN`` (``$EARSHOT_ESPEAK_BIN``).
"""
from __future__ import annotations

import math
import os
import shutil
import subprocess
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import signal

from shared.labels import names
from sim.world.procedural import (  # noqa: F401  (merge_spans is public here too)
    _active_from_envelope,
    _beeps,
    _car_horn,
    _check_rate,
    _chopping,
    _clip_spans,
    _dishes,
    _door_sound,
    _doorbell,
    _Draws,
    _energy_band,
    _fmax,
    _footsteps,
    _gate,
    _Gen,
    _kettle,
    _keyboard_typing,
    _knock,
    _num_samples,
    _phone_notification,
    _phone_ring,
    _pouring,
    _RAMP_S,
    _running_water,
    _sizzle,
    _smooth_noise,
    merge_spans,
)

__all__ = [
    "SOUND_LABELS",
    "REAL_SOURCES",
    "SoundInfo",
    "synth_sound",
    "speak",
    "real_sound_status",
    "merge_spans",
    "FREEDESKTOP_DIR",
    "ESPEAK_BIN",
]

#: Every audio-event label of the taxonomy; all of them can be synthesised.
SOUND_LABELS: tuple[str, ...] = tuple(names("audio_event"))

FREEDESKTOP_DIR = Path(
    os.environ.get("EARSHOT_FREEDESKTOP_DIR", "/usr/share/sounds/freedesktop/stereo")
)
ESPEAK_BIN = os.environ.get("EARSHOT_ESPEAK_BIN", "espeak-ng")

_DEFAULT_RATE_HZ = 16000
_DEFAULT_REAL_PROB = 0.5
_PEAK_RANGE = (0.5, 0.9)  # output peak, drawn: level variety without ever clipping
_ESPEAK_TIMEOUT_S = 10.0
_CACHE_ENTRIES = 256  # espeak outputs kept in memory (each a few hundred kB at most)


@dataclass
class SoundInfo:
    """What a rendered sound is.

    Attributes:
        origin: ``"procedural"``, ``"freedesktop:<file name>"``, ``"espeak-ng"`` (or
            ``"mixed"`` for multi-utterance speech whose espeak call failed part-way).
        band_hz: ``(low, high)`` band holding most of the energy, in Hz.
        params: everything that was drawn (pitch, pattern, voice...) plus
            ``peak`` (the output peak, full scale = 1).
        active: ``(start_s, end_s)`` spans, seconds from the sound's first
            sample, where it is actually sounding; outside them it is silent
            (procedural) or every 10 ms frame is at least 40 dB below the
            loudest one (real recordings, espeak-ng).
    """

    origin: str
    band_hz: tuple[float, float]
    params: dict[str, Any] = field(default_factory=dict)
    active: list[tuple[float, float]] = field(default_factory=list)



# ---------------------------------------------------------------------------- speech

_PHRASES = (
    "the timer is done", "can you pass me the salt", "where did I put my keys",
    "what time is it", "I will be right there", "turn the oven off please",
    "is the water boiling yet", "someone is at the door", "remind me to call mum later",
    "how long do the onions need", "let me check my messages", "that smells good",
    "what was I doing", "put the kettle on", "I think the pasta is ready",
    "can you read that to me",
)
_ACCENTS = ("en", "en-us", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-us-nyc")
# "en-gb" ignores variants in espeak-ng 1.51, hence "en" for the British default.
_VARIANTS = ("m1", "m3", "m5", "f1", "f2", "f3", "f4", "f5", "klatt", "john", "linda", "steph", "rob")
_SPEECH_BAND_HZ = (80.0, 4000.0)

_espeak_cache: OrderedDict[tuple, np.ndarray | None] = OrderedDict()


def _espeak(text: str, voice: str, speed_wpm: int, pitch: int, rate_hz: int) -> np.ndarray | None:
    """espeak-ng speech resampled to ``rate_hz`` (float, leading/trailing silence trimmed), or None."""
    path = shutil.which(ESPEAK_BIN)
    if path is None:
        return None
    key = (path, text, voice, speed_wpm, pitch, rate_hz)
    if key in _espeak_cache:
        _espeak_cache.move_to_end(key)
        return _espeak_cache[key]
    try:  # text on stdin: nothing in it can be taken for an option
        out = subprocess.run([path, "--stdout", "--stdin", "-b", "1", "-v", voice, "-s", str(speed_wpm),
                              "-p", str(pitch)], input=text.encode("utf-8"), capture_output=True,
                             timeout=_ESPEAK_TIMEOUT_S, check=True).stdout
        pcm, native_hz = _parse_wav(out)
    except (OSError, subprocess.SubprocessError, ValueError):
        pcm, native_hz = None, 0
    x = None
    if pcm is not None and np.abs(pcm).max() > 0:
        loud = np.flatnonzero(np.abs(pcm) > np.abs(pcm).max() * 10 ** (-50 / 20))
        pad = int(0.01 * native_hz)
        pcm = pcm[max(0, loud[0] - pad): loud[-1] + pad]
        g = math.gcd(rate_hz, native_hz)
        x = signal.resample_poly(pcm, rate_hz // g, native_hz // g)
    _espeak_cache[key] = x
    if len(_espeak_cache) > _CACHE_ENTRIES:
        _espeak_cache.popitem(last=False)
    return x


def _parse_wav(data: bytes) -> tuple[np.ndarray, int]:
    """Mono int16 WAV bytes -> (float samples in [-1, 1), rate). espeak-ng streams with a
    placeholder data size, so the data chunk is taken to the end of the bytes."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a WAV stream")
    pos, rate, channels, bits = 12, 0, 0, 0
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        if cid == b"fmt ":
            channels = int.from_bytes(data[pos + 10:pos + 12], "little")
            rate = int.from_bytes(data[pos + 12:pos + 16], "little")
            bits = int.from_bytes(data[pos + 22:pos + 24], "little")
        elif cid == b"data":
            if bits != 16 or rate <= 0 or channels < 1:
                raise ValueError(f"unsupported WAV: {bits} bit, {channels} channels, {rate} Hz")
            body = data[pos + 8:]
            body = body[: len(body) // (2 * channels) * 2 * channels]
            pcm = np.frombuffer(body, "<i2").reshape(-1, channels).mean(axis=1) / 32768.0
            return pcm, rate
        pos += 8 + size + (size & 1)
    raise ValueError("WAV stream without a data chunk")


def _babble(n: int, sr: int, d: _Draws):
    """Speech-like babble: glottal pulses through moving formants, syllables at ~4 Hz."""
    f0 = d.uniform("f0_hz", 100.0, 220.0)
    syll_hz = d.uniform("syllable_rate_hz", 3.5, 5.0)
    k = int(n / sr * syll_hz * 1.2) + 2
    dur = d.rng.uniform(0.7, 1.3, k) / syll_hz
    word_end = d.rng.random(k) < 0.4
    phrase_end = d.rng.random(k) < 0.12
    gap = np.where(word_end, d.rng.uniform(0.04, 0.12, k), 0.0)
    gap = np.where(phrase_end, d.rng.uniform(0.25, 0.7, k), gap)
    onset = np.concatenate([[0.0], np.cumsum(dur + gap)[:-1]])
    keep = onset < n / sr
    onset, dur, gap = onset[keep], dur[keep], gap[keep]
    t = np.arange(n) / sr
    sid = np.clip(np.searchsorted(onset, t, "right") - 1, 0, len(onset) - 1)
    ph = (t - onset[sid]) / dur[sid]
    env = np.where(ph <= 1.0, np.sin(np.pi * np.clip(ph, 0, 1)) ** 0.6, 0.0)
    # Source: pulses at every whole period of a slowly wandering pitch, plus breath.
    f0_t = f0 * (1 + 0.08 * _smooth_noise(n, sr, d.rng, 3.0)) * (1 - 0.1 * (t / max(t[-1], 1e-9)))
    pulses = np.diff(np.floor(np.cumsum(f0_t) / sr), prepend=0.0)
    src = pulses + 0.02 * d.rng.standard_normal(n)
    # Formants per syllable (vowel targets), interpolated between syllable centres.
    formants = np.stack([d.rng.uniform(300, 800, len(onset)), d.rng.uniform(900, 2300, len(onset)),
                         d.rng.uniform(2300, 3200, len(onset))])
    nper, hop = 512, 128
    freqs, times, z = signal.stft(src, fs=sr, nperseg=nper, noverlap=nper - hop, boundary="even")
    centres = onset + dur / 2
    gain = np.zeros((len(freqs), len(times)))
    for fk, bw, amp in zip(formants, (90.0, 120.0, 180.0), (1.0, 0.6, 0.3)):
        fc = np.interp(times, centres, fk)
        gain += amp / (1 + ((freqs[:, None] - fc[None, :]) / (bw / 2)) ** 2)
    gain /= 1 + freqs[:, None] / 400.0  # glottal roll-off minus lip radiation: about -6 dB/oct
    _, y = signal.istft(z * gain, fs=sr, nperseg=nper, noverlap=nper - hop, boundary=True)
    y = np.pad(y, (0, max(0, n - len(y))))[:n]
    spans = merge_spans([(s, s + du) for s, du in zip(onset, dur)], 1e-6)
    return y * env, _SPEECH_BAND_HZ, _clip_spans(spans, n / sr)


def _voice_draws(d: _Draws) -> tuple[str, int, int]:
    voice = d.choice("accent", _ACCENTS) + "+" + d.choice("variant", _VARIANTS)
    d.params["voice"] = voice
    return voice, d.integers("speed_wpm", 130, 200), d.integers("pitch", 25, 75)


def _speak(text: str, sr: int, d: _Draws, allow_real: bool):
    voice, speed, pitch = _voice_draws(d)
    d.params["text"] = text
    x = _espeak(text, voice, speed, pitch, sr) if allow_real else None
    if x is not None:
        return x, "espeak-ng", _SPEECH_BAND_HZ, _active_from_envelope(x, sr, min_gap_s=0.1)
    # Babble as long as espeak would speak the text at the drawn speed.
    n = int((len(text.split()) * 60.0 / speed + 0.2) * sr)
    y, band, spans = _babble(n, sr, d)
    return y, "procedural", band, spans


def speak(text: str, rng: np.random.Generator, *, sample_rate_hz: int = _DEFAULT_RATE_HZ,
          allow_real: bool = True) -> tuple[np.ndarray, SoundInfo]:
    """Speak ``text``: espeak-ng where installed (voice, speed and pitch drawn), else babble.

    Returns:
        ``(x, info)``: float32 ``(n,)`` at ``sample_rate_hz``, its natural length
        (espeak's leading/trailing silence trimmed), peak in [0.5, 0.9];
        ``info.origin`` is ``"espeak-ng"`` or ``"procedural"``; ``info.params``
        holds ``text``, ``voice``, ``speed_wpm``, ``pitch`` (drawn either way).

    Raises:
        ValueError: empty text or a sample rate below 8 kHz.
    """
    if not text.strip():
        raise ValueError("speak() needs non-empty text")
    _check_rate(sample_rate_hz)
    d = _Draws(rng, {})
    x, origin, band, spans = _speak(text, sample_rate_hz, d, allow_real)
    return _finish(x, sample_rate_hz, d, origin, band, spans)


def _speech(n: int, sr: int, d: _Draws, allow_real: bool, text: str | None):
    """Utterances with pauses until ``n`` samples are filled (the first one trimmed if too long).

    The speaker's draws go to ``params``; each utterance's start, origin and
    text to ``params["utterances"]``.
    """
    # One speaker per event: voice, speed, pitch (and the babble's f0 and syllable
    # rate) are drawn once and fixed for every utterance; only the phrases change.
    speaker = _Draws(d.rng, d.overrides)
    _voice_draws(speaker)
    speaker.uniform("f0_hz", 100.0, 220.0)
    speaker.uniform("syllable_rate_hz", 3.5, 5.0)
    speaker.params.pop("voice")
    x, spans, utterances = np.zeros(n), [], []
    pos = 0
    while pos < n:
        phrase = text if text is not None else _PHRASES[int(d.rng.integers(len(_PHRASES)))]
        u = _Draws(d.rng, {**d.overrides, **speaker.params})
        y, origin, _, sp = _speak(phrase, sr, u, allow_real)
        if pos > 0 and pos + len(y) > n:
            break
        m = min(len(y), n - pos)
        x[pos:pos + m] = y[:m] * _gate(m, sr, [(0.0, m / sr)]) if m < len(y) else y
        spans += [(pos / sr + s, pos / sr + e) for s, e in sp]
        d.used |= u.used
        utterances.append({"start_s": pos / sr, "origin": origin, "text": phrase})
        pos += len(y) + int(d.rng.uniform(0.3, 1.2) * sr)
    origins = {u["origin"] for u in utterances}
    origin = origins.pop() if len(origins) == 1 else "mixed"
    if origin == "espeak-ng":  # babble-only draws would mislead
        speaker.params.pop("f0_hz")
        speaker.params.pop("syllable_rate_hz")
    d.params.update(speaker.params, utterances=utterances)
    d.params["voice"] = d.params["accent"] + "+" + d.params["variant"]
    return x, origin, _SPEECH_BAND_HZ, _clip_spans(spans, n / sr)


_PROCEDURAL: dict[str, _Gen] = {
    "timer_beep": _beeps("timer_beep"), "microwave_beep": _beeps("microwave_beep"),
    "alarm": _beeps("alarm"), "doorbell": _doorbell, "knock": _knock,
    "kettle_whistle": _kettle, "phone_ring": _phone_ring, "phone_notification": _phone_notification,
    "sizzle": _sizzle, "chopping": _chopping, "running_water": _running_water,
    "footsteps": _footsteps, "keyboard_typing": _keyboard_typing, "dishes": _dishes,
    "door_sound": _door_sound, "car_horn": _car_horn, "pouring": _pouring,
}

# ------------------------------------------------------------------------- real sounds


@dataclass(frozen=True)
class _RealSpec:
    file: str
    gap_s: tuple[float, float] = (0.0, 0.0)  # silence between repeats
    max_plays: int | None = None  # None: repeat to fill the duration


#: Label -> freedesktop files that can stand for it (the rng picks one).
REAL_SOURCES: dict[str, tuple[_RealSpec, ...]] = {
    "alarm": (_RealSpec("alarm-clock-elapsed.oga", (0.0, 0.6)),),
    "timer_beep": (_RealSpec("alarm-clock-elapsed.oga", (0.3, 1.0)),),
    "doorbell": (_RealSpec("bell.oga", (0.25, 0.6), max_plays=2),),
    "phone_ring": (_RealSpec("phone-incoming-call.oga", (0.8, 2.0)),),
    "phone_notification": (_RealSpec("message-new-instant.oga", max_plays=1),
                           _RealSpec("message.oga", max_plays=1),
                           _RealSpec("complete.oga", max_plays=1)),
}

_decoded: dict[tuple[str, int], tuple[np.ndarray, int] | None] = {}


def _load_real(path: Path, rate_hz: int) -> tuple[np.ndarray, int] | None:
    """Decode ``path`` to mono float at ``rate_hz``, peak 1: ``(x, transpose_octaves)``, or None.

    A recording whose energy lies mostly above the alias limit (alarm-clock-elapsed
    beeps at 8.2 kHz, above a 16 kHz Nyquist) is transposed down by whole octaves
    rather than filtered to silence; the octaves are reported in the params.
    """
    key = (str(path), rate_hz)
    if key in _decoded:
        return _decoded[key]
    result = None
    try:
        import av  # PyAV: only needed where real sounds exist

        with av.open(str(path)) as container:
            stream = container.streams.audio[0]
            native_hz = stream.rate
            mono = av.AudioResampler(format="fltp", layout="mono")
            chunks = [f.to_ndarray()[0] for frame in container.decode(stream) for f in mono.resample(frame)]
            chunks += [f.to_ndarray()[0] for f in mono.resample(None)]
        pcm = np.concatenate(chunks).astype(np.float64)
        power = np.abs(np.fft.rfft(pcm)) ** 2
        freqs = np.fft.rfftfreq(len(pcm), 1.0 / native_hz)
        octaves = 0
        while octaves < 3 and power[freqs < _fmax(rate_hz) * 2 ** octaves].sum() < 0.5 * power.sum():
            octaves += 1
        src_hz = native_hz / 2 ** octaves  # played slower: pitch and tempo drop together
        if src_hz == int(src_hz):
            g = math.gcd(rate_hz, int(src_hz))
            x = signal.resample_poly(pcm, rate_hz // g, int(src_hz) // g)
        else:
            x = signal.resample(pcm, int(round(len(pcm) * rate_hz / src_hz)))
        if np.abs(x).max() > 0:
            result = (x / np.abs(x).max(), octaves)
    except Exception:  # a corrupt or undecodable file: fall back to procedural, never crash
        result = None
    _decoded[key] = result
    return result


def _real(label: str, n: int, sr: int, d: _Draws):
    specs = [s for s in REAL_SOURCES.get(label, ()) if (FREEDESKTOP_DIR / s.file).is_file()]
    if not specs:
        return None
    spec = specs[int(d.rng.integers(len(specs)))]
    loaded = _load_real(FREEDESKTOP_DIR / spec.file, sr)
    if loaded is None:
        return None
    clip, octaves = loaded
    gap = int(d.rng.uniform(*spec.gap_s) * sr)
    plays = spec.max_plays if spec.max_plays is not None else n // (len(clip) + gap) + 1
    plays = int(d.rng.integers(1, plays + 1)) if spec.max_plays and spec.max_plays > 1 else plays
    x = np.zeros(n)
    for p in range(plays):
        start = p * (len(clip) + gap)
        if start >= n:
            break
        m = min(len(clip), n - start)
        x[start:start + m] = clip[:m] * (_gate(m, sr, [(0, m / sr)]) if m < len(clip) else 1.0)
    d.params.update(file=spec.file, transpose_octaves=octaves, gap_s=gap / sr, plays=plays)
    return x, f"freedesktop:{spec.file}", _energy_band(x, sr), _active_from_envelope(x, sr)


def _finish(x, sr: int, d: _Draws, origin, band, spans) -> tuple[np.ndarray, SoundInfo]:
    """Fade the buffer's ends (a cut ring or noise must not click), scale to the drawn peak."""
    r = min(len(x) // 2, int(_RAMP_S * sr))
    if r > 0:
        x = x.copy()
        x[:r] *= np.linspace(0.0, 1.0, r)
        x[-r:] *= np.linspace(1.0, 0.0, r)
    peak = d.uniform("peak", *_PEAK_RANGE)
    top = np.abs(x).max()
    y = (x * (peak / top) if top > 0 else x).astype(np.float32)
    band = (float(band[0]), float(band[1]))
    return y, SoundInfo(origin, band, d.params, merge_spans(spans))  # sorted, never overlapping


def synth_sound(label: str, duration_s: float, rng: np.random.Generator, *,
                sample_rate_hz: int = _DEFAULT_RATE_HZ, allow_real: bool = True,
                **params: Any) -> tuple[np.ndarray, SoundInfo]:
    """Render ``duration_s`` seconds of the audio event ``label``.

    Continuous and repeating sources (beeps, rings, sizzle, water, typing...)
    fill the duration; one-shot sources (doorbell, knock, door, notification,
    microwave beeps, car horn) start at 0 and are followed by silence.

    Args:
        label: one of :data:`SOUND_LABELS`.
        duration_s: length of the returned array, seconds (> 0).
        rng: the only source of randomness.
        sample_rate_hz: output rate (>= 8000).
        allow_real: when False never use real recordings or espeak-ng (and
            draw no coin for it).
        **params: ``real_prob`` (chance of a real source where one exists,
            default 0.5), ``text`` (speech: say this instead of stock phrases),
            or any drawn parameter name shown in ``info.params`` to fix it.

    Returns:
        ``(x, info)``: float32 ``(round(duration_s * rate),)``, peak in [0.5, 0.9].

    Raises:
        ValueError: unknown label, non-positive duration, unknown parameter.
    """
    if label not in SOUND_LABELS:
        raise ValueError(f"unknown sound label {label!r}; known: {', '.join(SOUND_LABELS)}")
    n = _num_samples(duration_s, sample_rate_hz)
    real_prob = float(params.pop("real_prob", _DEFAULT_REAL_PROB))
    text = params.pop("text", None)
    d = _Draws(rng, params)
    use_real = allow_real and bool(rng.random() < real_prob)
    if label == "speech":
        out = _speech(n, sample_rate_hz, d, use_real, text)
    else:
        out = _real(label, n, sample_rate_hz, d) if use_real else None
        if out is None:
            x, band, spans = _PROCEDURAL[label](n, sample_rate_hz, d)
            out = (x, "procedural", band, spans)
    d.check_all_used(label)
    x, origin, band, spans = out
    return _finish(x, sample_rate_hz, d, origin, band, spans)


def real_sound_status() -> dict[str, Any]:
    """Which real sources this machine has, for annotation provenance.

    Returns a JSON-ready dict: ``freedesktop`` (``dir``, ``exists``, ``files``
    found, ``labels``: label -> mapped files present) and ``espeak_ng``
    (``binary``, ``path`` or None, ``version`` or None).
    """
    exists = FREEDESKTOP_DIR.is_dir()
    files = sorted(p.name for p in FREEDESKTOP_DIR.glob("*.oga")) if exists else []
    labels = {lab: [s.file for s in specs if s.file in files] for lab, specs in REAL_SOURCES.items()}
    path = shutil.which(ESPEAK_BIN)
    version = None
    if path is not None:
        try:
            out = subprocess.run([path, "--version"], capture_output=True, text=True,
                                 timeout=_ESPEAK_TIMEOUT_S).stdout
            # "eSpeak NG text-to-speech: 1.51  Data at: ..." -> "1.51"
            version = out.split("text-to-speech:")[-1].split()[0] if "text-to-speech:" in out else out.strip()
            version = version or None
        except (OSError, subprocess.SubprocessError):
            version = None
    return {
        "freedesktop": {"dir": str(FREEDESKTOP_DIR), "exists": exists, "files": files,
                        "labels": {k: v for k, v in labels.items() if v}},
        "espeak_ng": {"binary": ESPEAK_BIN, "path": path, "version": version},
    }
