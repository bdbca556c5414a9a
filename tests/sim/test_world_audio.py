"""The synthetic world's audio library: sound sources and acoustics.

Numbers are checked, not just shapes: every label's energy sits in the band it
declares and inside the spans it reports, beeps have the pitch they report,
SNR control holds to 0.1 dB (1 dB after int16), reverb decays at the RT60 asked
for, distance follows 1/r. Real-sound paths run against a fake freedesktop
directory built here (so they are tested on every machine), plus the Debian
files and espeak-ng where installed; the procedural fallbacks are always tested.
"""
from __future__ import annotations

import shutil
import time
import wave

import numpy as np
import pytest

from shared.labels import names
from sim.world import acoustics as ac
from sim.world import sounds as snd

SR = 16000
TONAL = {"timer_beep", "microwave_beep", "alarm", "doorbell", "kettle_whistle", "phone_ring",
         "phone_notification", "car_horn"}


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _band_fraction(x: np.ndarray, band: tuple[float, float], sr: int = SR) -> float:
    power = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    f = np.fft.rfftfreq(len(x), 1 / sr)
    return float(power[(f >= band[0]) & (f <= band[1])].sum() / power.sum())


def _span_mask(n: int, spans, sr: int = SR) -> np.ndarray:
    m = np.zeros(n, bool)
    for s, e in spans:
        m[int(np.floor(s * sr)):int(np.ceil(e * sr))] = True
    return m


def _centroid_hz(x: np.ndarray, sr: int = SR) -> float:
    power = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    return float((power * np.fft.rfftfreq(len(x), 1 / sr)).sum() / power.sum())


def _peak_hz(x: np.ndarray, sr: int = SR) -> float:
    spec = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(len(x)), 8 * len(x)))
    return float(np.fft.rfftfreq(8 * len(x), 1 / sr)[spec.argmax()])


def _check_sound(x: np.ndarray, info: snd.SoundInfo, duration_s: float, *, min_band: float,
                 max_outside_db: float) -> None:
    """Shape, level, band and span claims of one rendered sound."""
    assert x.dtype == np.float32 and x.shape == (round(duration_s * SR),)
    assert 0.5 - 1e-6 <= np.abs(x).max() <= 0.9 + 1e-6
    assert _band_fraction(x, info.band_hz) >= min_band, (info.band_hz, info.params)
    assert info.active and all(0 <= s < e <= duration_s + 1e-9 for s, e in info.active)
    assert all(e0 <= s1 for (_, e0), (s1, _) in zip(info.active, info.active[1:])), "spans overlap"
    inside = _span_mask(len(x), info.active)
    e_in, e_out = np.sum(x[inside].astype(float) ** 2), np.sum(x[~inside].astype(float) ** 2)
    assert e_in / (e_in + e_out) >= 0.999
    if (~inside).any() and e_out > 0:
        rms_in, rms_out = np.sqrt(e_in / inside.sum()), np.sqrt(e_out / (~inside).sum())
        assert 20 * np.log10(rms_out / rms_in) <= max_outside_db
    # Spans are tight: none holds 0.2 s of silence (10 ms frames 50 dB below the loudest).
    env = np.sqrt(np.mean(np.pad(x.astype(float), (0, -len(x) % 160)).reshape(-1, 160) ** 2, axis=1))
    silent = env < env.max() * 10 ** (-50 / 20)
    for s, e in info.active:
        run = longest = 0
        for quiet in silent[int(np.ceil(s * 100)):int(e * 100)]:
            run = run + 1 if quiet else 0
            longest = max(longest, run)
        assert longest * 0.01 < 0.2, (s, e)
    assert x[0] == 0 and x[-1] == 0  # faded ends: a cut sound must not click in the mix


# ------------------------------------------------------------------------------ sounds


def test_sound_labels_are_the_taxonomy():
    assert list(snd.SOUND_LABELS) == names("audio_event")


@pytest.mark.parametrize("label", snd.SOUND_LABELS)
def test_same_seed_same_bytes_other_seed_differs(label):
    a, ia = snd.synth_sound(label, 2.0, _rng(7))
    b, ib = snd.synth_sound(label, 2.0, _rng(7))
    c, _ = snd.synth_sound(label, 2.0, _rng(8))
    assert a.tobytes() == b.tobytes() and ia == ib
    assert a.tobytes() != c.tobytes()


@pytest.mark.parametrize("label", snd.SOUND_LABELS)
def test_procedural_energy_in_declared_band_and_spans(label):
    for seed in range(3):
        x, info = snd.synth_sound(label, 3.0, _rng(seed), allow_real=False)
        assert info.origin == "procedural"
        _check_sound(x, info, 3.0, min_band=0.8 if label in TONAL else 0.5, max_outside_db=-40.0)


@pytest.mark.parametrize("label", ["timer_beep", "microwave_beep", "alarm"])
def test_beep_pitch_matches_drawn_pitch(label):
    pitches = set()
    for seed in range(5):
        x, info = snd.synth_sound(label, 2.0, _rng(seed), allow_real=False)
        f = info.params["freq_hz"]
        pitches.add(round(f))
        assert abs(_peak_hz(x) - f) <= 0.02 * f
        assert 800 <= f <= 4000
        assert info.params["count"] >= 1 and info.params["on_s"] > 0
    assert len(pitches) == 5  # pitch is drawn, not fixed


def test_beep_spans_are_the_beeps():
    x, info = snd.synth_sound("microwave_beep", 4.0, _rng(3), allow_real=False)
    p = info.params
    assert len(info.active) == p["count"]  # one span per beep, one group
    for i, (s, e) in enumerate(info.active):
        assert s == pytest.approx(i * (p["on_s"] + p["off_s"]), abs=1e-6)
        assert e - s == pytest.approx(p["on_s"], abs=1e-6)


def test_parameter_override_and_unknown_parameter():
    x, info = snd.synth_sound("timer_beep", 1.5, _rng(0), allow_real=False, freq_hz=3000.0)
    assert info.params["freq_hz"] == 3000.0 and abs(_peak_hz(x) - 3000.0) < 60
    with pytest.raises(ValueError, match="fre_hz"):
        snd.synth_sound("timer_beep", 1.0, _rng(0), allow_real=False, fre_hz=3000.0)


def test_unknown_label_and_bad_duration_are_value_errors():
    with pytest.raises(ValueError, match="'blender'"):
        snd.synth_sound("blender", 1.0, _rng(0))
    with pytest.raises(ValueError, match="duration"):
        snd.synth_sound("knock", 0.0, _rng(0))


def test_one_shot_sources_start_at_zero_and_stop():
    for label in ("doorbell", "knock", "door_sound", "phone_notification", "car_horn"):
        x, info = snd.synth_sound(label, 6.0, _rng(1), allow_real=False)
        assert info.active[0][0] == 0.0
        assert info.active[-1][1] < 5.0 and np.all(x[int(5.0 * SR):] == 0)


def test_merge_spans():
    assert snd.merge_spans([(0.5, 0.6), (0.0, 0.1), (0.12, 0.2)], 0.05) == [(0.0, 0.2), (0.5, 0.6)]


# --------------------------------------------------------------- real and fallback paths


@pytest.fixture
def no_real_sources(tmp_path, monkeypatch):
    empty = tmp_path / "no-sounds"
    empty.mkdir()
    monkeypatch.setattr(snd, "FREEDESKTOP_DIR", empty)
    monkeypatch.setattr(snd, "ESPEAK_BIN", "espeak-ng-not-installed-here")


def test_fallback_without_real_sounds_is_procedural(no_real_sources):
    status = snd.real_sound_status()
    assert status["freedesktop"]["files"] == [] and status["freedesktop"]["labels"] == {}
    assert status["espeak_ng"]["path"] is None and status["espeak_ng"]["version"] is None
    for label in snd.SOUND_LABELS:
        x, info = snd.synth_sound(label, 2.0, _rng(0), real_prob=1.0)
        assert info.origin == "procedural", label
        _check_sound(x, info, 2.0, min_band=0.5, max_outside_db=-40.0)


def test_fallback_speech_is_babble(no_real_sources):
    x, info = snd.speak("can you pass me the salt", _rng(4))
    again, _ = snd.speak("can you pass me the salt", _rng(4))
    assert info.origin == "procedural" and x.tobytes() == again.tobytes()
    assert 0.8 < len(x) / SR < 4.0  # about as long as the sentence takes to say
    assert _band_fraction(x, info.band_hz) > 0.9
    assert 100 <= info.params["f0_hz"] <= 220 and info.params["text"] == "can you pass me the salt"
    # Syllables: while it speaks, the 10 ms envelope peaks ~4 times a second (not a drone).
    from scipy.signal import find_peaks

    y, yinfo = snd.synth_sound("speech", 10.0, _rng(5), allow_real=False)
    env = np.sqrt(np.mean(y.reshape(-1, 160).astype(float) ** 2, axis=1))
    peaks, _ = find_peaks(env, prominence=0.25 * env.max())
    speaking_s = sum(e - s for s, e in yinfo.active)
    assert 2.5 <= len(peaks) / speaking_s <= 7.0


def _write_wav(path, x: np.ndarray, sr: int, channels: int = 2) -> None:
    """A WAV body under an .oga name: FFmpeg probes content, so PyAV decodes it the same way."""
    pcm = (np.repeat(x[:, None], channels, axis=1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())


@pytest.fixture
def fake_freedesktop(tmp_path, monkeypatch):
    """Stand-ins for every mapped file: tone patterns at 48 kHz, stereo."""
    sr = 48000
    t = np.arange(int(1.2 * sr)) / sr
    beeps = ((t % 0.4) < 0.2) * np.sin(2 * np.pi * 8191.0 * t)  # like alarm-clock-elapsed: above 8 kHz
    ding = np.sin(2 * np.pi * 825.0 * t[: sr // 4]) * np.exp(-t[: sr // 4] / 0.05)
    for spec in {s.file for specs in snd.REAL_SOURCES.values() for s in specs}:
        x = beeps if spec == "alarm-clock-elapsed.oga" else ding
        _write_wav(tmp_path / spec, 0.5 * x, sr)
    monkeypatch.setattr(snd, "FREEDESKTOP_DIR", tmp_path)
    return tmp_path


def test_real_path_decodes_resamples_and_transposes(fake_freedesktop):
    status = snd.real_sound_status()
    assert set(status["freedesktop"]["labels"]) == set(snd.REAL_SOURCES)
    x, info = snd.synth_sound("alarm", 3.0, _rng(0), real_prob=1.0)
    assert info.origin == "freedesktop:alarm-clock-elapsed.oga"
    # 8191 Hz is above the 8 kHz Nyquist: played an octave down, and slower.
    assert info.params["transpose_octaves"] == 1
    assert abs(_peak_hz(x) - 8191.0 / 2) < 0.01 * 4096
    assert info.active[0][1] - info.active[0][0] == pytest.approx(0.4, abs=0.03)
    _check_sound(x, info, 3.0, min_band=0.85, max_outside_db=-30.0)
    y, info22 = snd.synth_sound("alarm", 1.0, _rng(0), sample_rate_hz=22050, real_prob=1.0)
    assert info22.params["transpose_octaves"] == 0 and abs(_peak_hz(y, 22050) - 8191.0) < 40
    for label in snd.REAL_SOURCES:
        x, info = snd.synth_sound(label, 2.0, _rng(1), real_prob=1.0)
        assert info.origin.startswith("freedesktop:"), label
        _check_sound(x, info, 2.0, min_band=0.85, max_outside_db=-30.0)


def test_real_and_procedural_both_drawn_at_default_prob(fake_freedesktop):
    origins = [snd.synth_sound("phone_ring", 1.0, _rng(s))[1].origin for s in range(24)]
    n_real = sum(o.startswith("freedesktop:") for o in origins)
    assert 4 <= n_real <= 20
    never = {snd.synth_sound("phone_ring", 1.0, _rng(s), allow_real=False)[1].origin for s in range(5)}
    assert never == {"procedural"}


@pytest.mark.skipif(not snd.FREEDESKTOP_DIR.is_dir(), reason="sound-theme-freedesktop not installed")
def test_debian_freedesktop_sounds():
    for label in snd.REAL_SOURCES:
        for seed in range(3):
            x, info = snd.synth_sound(label, 3.0, _rng(seed), real_prob=1.0)
            assert info.origin.startswith("freedesktop:"), label
            _check_sound(x, info, 3.0, min_band=0.85, max_outside_db=-30.0)


@pytest.mark.skipif(shutil.which(snd.ESPEAK_BIN) is None, reason="espeak-ng not installed")
def test_espeak_speech_is_real_and_deterministic():
    x, info = snd.speak("the timer is done", _rng(2))
    snd._espeak_cache.clear()  # a second synthesis, not a cache hit
    again, _ = snd.speak("the timer is done", _rng(2))
    assert info.origin == "espeak-ng" and x.tobytes() == again.tobytes()
    assert {"voice", "speed_wpm", "pitch"} <= set(info.params)
    assert _band_fraction(x, info.band_hz) > 0.8
    y, sinfo = snd.synth_sound("speech", 4.0, _rng(3), real_prob=1.0)
    assert sinfo.origin == "espeak-ng" and len(sinfo.params["utterances"]) >= 1
    _check_sound(y, sinfo, 4.0, min_band=0.8, max_outside_db=-30.0)
    assert snd.real_sound_status()["espeak_ng"]["version"]


# --------------------------------------------------------------------------- acoustics


def test_background_noise_is_unit_rms_and_environment_specific():
    centroids = {env: [] for env in ac.ENVIRONMENTS}
    for seed in range(4):
        for env in ac.ENVIRONMENTS:
            x = ac.background_noise(env, 4.0, _rng(seed))
            assert x.dtype == np.float32 and x.shape == (4 * SR,)
            assert np.sqrt(np.mean(x.astype(float) ** 2)) == pytest.approx(1.0, abs=1e-3)
            centroids[env].append(_centroid_hz(x))
    # Street rumble is lowest, office HVAC next; kitchen clatter and TV babble are brighter.
    assert max(centroids["street"]) < min(centroids["office"])
    assert max(centroids["office"]) < min(centroids["kitchen"])
    assert max(centroids["office"]) < min(centroids["living_room"])
    a, b = ac.background_noise("kitchen", 1.0, _rng(5)), ac.background_noise("kitchen", 1.0, _rng(5))
    assert a.tobytes() == b.tobytes()


def test_kitchen_noise_has_mains_hum():
    x = ac.background_noise("kitchen", 4.0, _rng(0)).astype(float)
    power = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / SR)
    hum = max(power[np.abs(f - m) < 0.5].max() for m in (50.0, 60.0))
    floor = np.median(power[(f > 40) & (f < 70)])
    assert hum > 20 * floor  # noise alone: the largest of 4 bins is ~3x the median


def test_unknown_environment_is_value_error():
    with pytest.raises(ValueError, match="'beach'"):
        ac.background_noise("beach", 1.0, _rng(0))
    assert set(ac.ROOM_RT60_S) == set(names("environment"))


def _schroeder_rt60_s(h: np.ndarray) -> float:
    """T20 (-5 to -25 dB on the backward-integrated energy), extrapolated to 60 dB."""
    e = np.cumsum(h[::-1] ** 2)[::-1]
    db = 10 * np.log10(e / e[0])
    return (np.argmax(db < -25) - np.argmax(db < -5)) / SR * 3


@pytest.mark.parametrize("rt60_s", [0.1, 0.4, 0.8])
def test_impulse_response_decays_at_rt60_with_asked_drr(rt60_s):
    from scipy import signal

    h = ac.room_impulse_response(rt60_s, _rng(0), direct_to_reverb_db=-10.0)
    low = signal.sosfiltfilt(signal.butter(4, 1500, fs=SR, output="sos"), h)  # the band that sets RT60
    assert _schroeder_rt60_s(low[1:]) == pytest.approx(rt60_s, rel=0.15)
    h = ac.room_impulse_response(rt60_s, _rng(0), direct_to_reverb_db=4.0)
    assert 10 * np.log10(h[0] ** 2 / np.sum(h[1:] ** 2)) == pytest.approx(4.0, abs=0.01)


def test_reverb_keeps_length_and_lengthens_decay():
    dry = np.zeros(2 * SR, np.float32)
    dry[: SR // 10] = _rng(0).standard_normal(SR // 10)
    tails = []
    for rt60 in (0.1, 0.3, 0.6, 1.0):
        wet = ac.reverberate(dry, _rng(1), rt60_s=rt60, direct_to_reverb_db=0.0)
        assert wet.shape == dry.shape and wet.dtype == np.float32
        tails.append(np.sum(wet[SR // 10 + SR // 20:].astype(float) ** 2))
    assert all(a < b for a, b in zip(tails, tails[1:])) and tails[-1] > 10 * tails[0]
    assert ac.reverberate(dry, _rng(1), rt60_s=0.0).tobytes() == dry.tobytes()


def test_attenuate_follows_inverse_distance():
    t = np.arange(SR) / SR
    low = np.sin(2 * np.pi * 100 * t).astype(np.float32)
    high = np.sin(2 * np.pi * 4000 * t).astype(np.float32)
    rms = lambda v: float(np.sqrt(np.mean(v[SR // 10:].astype(float) ** 2)))  # noqa: E731
    for d in (0.5, 1.0, 2.0, 4.0, 8.0, 16.0):
        assert rms(ac.attenuate(low, d)) / rms(low) == pytest.approx(1 / d, rel=0.01)
    assert rms(ac.attenuate(high, 4.0)) / rms(high) == pytest.approx(0.25, rel=0.01)  # near: no low-pass
    assert rms(ac.attenuate(high, 20.0)) / rms(high) < 0.8 / 20  # far: highs fade faster than 1/r
    assert rms(ac.attenuate(high, 2.0, occluded=True)) < 0.5 * rms(ac.attenuate(high, 2.0))
    assert rms(ac.attenuate(low, 2.0, ref_m=2.0)) == pytest.approx(rms(low), rel=1e-4)


def _scene_foreground(duration_s: float = 6.0) -> np.ndarray:
    n = int(duration_s * SR)
    fg = np.zeros(n)
    for i, (label, dist) in enumerate([("timer_beep", 3.0), ("speech", 1.0), ("chopping", 0.6)]):
        x, _ = snd.synth_sound(label, 2.0, _rng(i), allow_real=False)
        x = ac.reverberate(ac.attenuate(x, dist), _rng(10 + i), rt60_s=0.5)
        fg[i * 2 * SR: i * 2 * SR + len(x)] += x
    return fg


@pytest.mark.parametrize("snr_db", [30.0, 20.0, 10.0, 5.0, 0.0, -5.0])
def test_mix_at_snr_controls_snr_before_and_after_int16(snr_db):
    fg = _scene_foreground()
    noise = ac.background_noise("kitchen", 6.0, _rng(99))
    mix, achieved = ac.mix_at_snr(fg, noise, snr_db)
    assert achieved == pytest.approx(snr_db, abs=0.1)
    scaled_noise = mix.astype(float) - fg.astype(np.float32)
    assert ac.measure_snr_db(fg, scaled_noise) == pytest.approx(achieved, abs=0.01)  # computed, not assumed
    pcm, gain = ac.to_int16(mix)
    assert pcm.dtype == np.int16 and 0 < gain <= 1
    assert np.abs(pcm).max() <= round(0.9 * 32767)
    fg_q = fg * gain * 32767
    assert ac.measure_snr_db(fg_q, pcm.astype(float) - fg_q) == pytest.approx(snr_db, abs=1.0)


def test_mix_at_snr_active_mask_and_errors():
    fg = np.zeros(SR)
    fg[: SR // 4] = 0.5
    noise = _rng(0).standard_normal(SR)
    mask = fg != 0
    mix, achieved = ac.mix_at_snr(fg, noise, 10.0, fg_mask=mask)
    assert achieved == pytest.approx(10.0, abs=0.05)
    assert ac.measure_snr_db(fg, mix - fg.astype(np.float32)) == pytest.approx(10.0 - 6.02, abs=0.1)
    with pytest.raises(ValueError):
        ac.mix_at_snr(fg, noise[:-1], 0.0)
    with pytest.raises(ValueError):
        ac.mix_at_snr(np.zeros(SR), noise, 0.0)


def test_to_int16_single_gain_never_boosts():
    quiet = 0.1 * np.sin(np.linspace(0, 100, SR))
    pcm, gain = ac.to_int16(quiet)
    assert gain == 1.0 and np.abs(pcm).max() == round(0.1 * 32767)
    loud = 30.0 * quiet
    pcm, gain = ac.to_int16(loud, peak=0.5)
    assert gain == pytest.approx(0.5 / 3.0) and np.abs(pcm).max() == round(0.5 * 32767)


def test_a_minute_of_scene_audio_renders_fast():
    """Guard against per-sample Python loops: the budget is well under 1 s per minute."""
    start = time.perf_counter()
    n = 60 * SR
    fg = np.zeros(n)
    labels = ["timer_beep", "speech", "chopping", "sizzle", "doorbell", "footsteps", "running_water",
              "dishes"]
    for i, label in enumerate(labels):
        x, _ = snd.synth_sound(label, 5.0, _rng(i), allow_real=False)
        x = ac.reverberate(ac.attenuate(x, 1.0 + i), _rng(i), rt60_s=ac.ROOM_RT60_S["kitchen"])
        fg[i * 7 * SR: i * 7 * SR + len(x)] += x
    mix, _ = ac.mix_at_snr(fg, ac.background_noise("kitchen", 60.0, _rng(0)), 10.0)
    ac.to_int16(mix)
    assert time.perf_counter() - start < 3.0
