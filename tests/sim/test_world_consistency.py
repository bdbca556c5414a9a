"""Annotations against signals: what the annotations claim is in the audio and the frames.

- an annotated beep is in the band and the interval it claims (and not before);
- an annotated state change (door, oven, steam, lit phone) changes the pixels of
  that object, and only while the state lasts;
- a source annotated off-screen contributes no pixel while it sounds (the
  frames are identical with the object removed from the room), an on-screen
  one does;
- hand_occlusion is the share of pixels the hands cover;
- blur grows with head speed; the walking bob follows the footsteps;
- the recording SNR is the drawn one within 1 dB, and audio = foreground + noise.

Recordings are found by a deterministic search over indices (same seeds,
same recordings), with configs that make the needed events likely.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

from sim.world import WorldConfig, generate_recording
from sim.world.generator import plan_for
from sim.world.acoustics import measure_snr_db
from sim.world.world_config import SnrRangesConfig

FPS = 10.0
SR = 16000
QUIET = (28.0, 30.0)  # SNR range (dB) where signal checks are not about noise


@functools.lru_cache(maxsize=None)
def _gen(scenario: str, index: int, snr: tuple[float, float] | None = None, **kw):
    """Recording ``index`` of a one-scenario world (cached: tests share recordings)."""
    if snr is not None:
        kw["snr_db"] = SnrRangesConfig(**{scenario: list(snr)})
    cfg = WorldConfig(scenarios=[scenario], duration_s=kw.pop("duration_s", 20.0), **kw)
    return generate_recording(cfg, 5, index, details=True)


def find(scenario: str, pred, *, labels: tuple[str, ...] = (), tries: int = 60, **kw):
    """The first recording (index 0, 1, ...) whose annotations satisfy ``pred``.

    Scripts are screened first (cheap, see generator.plan_for) for ``labels``;
    only candidates are rendered.
    """
    probe = dict(kw)
    if "snr" in probe:
        probe.pop("snr")
    cfg = WorldConfig(scenarios=[scenario], duration_s=probe.pop("duration_s", 20.0), **probe)
    for i in range(tries):
        if labels and not {e.label for e in plan_for(cfg, 5, i).events} >= set(labels):
            continue
        rec, det = _gen(scenario, i, **kw)
        if pred(rec.annotations):
            return rec, det
    pytest.fail(f"no {scenario} recording in {tries} satisfies the predicate")


def has(*labels):
    return lambda ann: any(e.label in labels for e in ann.events)


def frames_of(e, n):
    k0, k1 = int(np.ceil(e.onset_s * FPS - 1e-9)), int(np.floor(e.offset_s * FPS + 1e-9))
    if k1 < k0:
        k0 = k1 = int(round(e.onset_s * FPS))
    return np.arange(max(k0, 0), min(k1, n - 1) + 1)


# --- audio ---------------------------------------------------------------------------------------


def _band_power_db(audio, lo_hz, hi_hz):
    """Per 10 ms frame, in-band power (dB) of an int16 signal, and frame centre times."""
    x = audio.astype(np.float64) / 32768
    n_fft, hop = 512, 160
    idx = np.arange(n_fft)[None, :] + hop * np.arange(1 + (len(x) - n_fft) // hop)[:, None]
    spec = np.abs(np.fft.rfft(x[idx] * np.hanning(n_fft), axis=1)) ** 2
    f = np.fft.rfftfreq(n_fft, 1 / SR)
    sel = (f >= lo_hz - 16) & (f <= hi_hz + 16)  # at least the nearest bin
    return 10 * np.log10(spec[:, sel].sum(1) + 1e-12), (np.arange(len(spec)) * hop + n_fft / 2) / SR


@pytest.mark.parametrize("label", ["timer_beep", "microwave_beep"])
def test_annotated_beep_is_in_its_band_and_interval(label):
    rec, _ = find("kitchen", has(label), labels=(label,), chains_per_min=12.0, snr=QUIET, allow_real_sounds=False,
                  repeat_chain_share=0.0, ignored_cause_share=0.0)  # chains back to back would share the band
    beeps = [e for e in rec.annotations.events if e.label == label]
    for e in beeps:
        lo, hi = e.attrs["band_hz"]
        p, t = _band_power_db(rec.audio, lo, hi)
        inside = p[(t >= e.onset_s) & (t <= e.offset_s)]
        before = p[(t >= e.onset_s - 0.8) & (t <= e.onset_s - 0.05)]
        assert len(inside) and len(before)
        # the beeps stand far above the same band just before (their peak: the duty cycle of a
        # beep pattern varies, a kettle's three short beeps in a 1.5 s event included)
        assert np.percentile(inside, 90) - np.max(before) > 15.0, e
        # the onset is sample-accurate: 20 ms after it the band is lit, 40 ms before it is dark
        k_on = np.argmin(np.abs(t - (e.onset_s + 0.02)))
        k_off = np.argmin(np.abs(t - (e.onset_s - 0.04)))
        assert p[k_on] - p[k_off] > 15.0
        # the pitch the annotation reports is where the energy is (the band is the beep's)
        assert lo <= e.attrs["sound"]["freq_hz"] <= hi


def test_snr_is_controlled_within_1db_and_audio_is_foreground_plus_noise():
    for scenario, snr in (("office", 30.0), ("kitchen", -5.0), ("street", 3.0), ("living_room", 12.0)):
        rec, det = _gen(scenario, 0, snr=(snr, snr), duration_s=15.0)
        measured = measure_snr_db(det.foreground, det.noise)
        assert abs(measured - snr) < 1.0 and abs(rec.annotations.snr_db - snr) < 1.0
        # the stored int16 audio is exactly the two stems summed (one gain, rounded)
        residual = rec.audio.astype(np.float64) - (det.foreground.astype(np.float64) + det.noise)
        assert np.max(np.abs(residual)) <= 1.0
        # and measuring on the stored int16 (noise = audio - foreground) still gives the same SNR
        assert abs(measure_snr_db(det.foreground, rec.audio - det.foreground) - snr) < 1.0


def test_snr_spans_quiet_office_to_loud_kitchen():
    office = [_gen("office", i, duration_s=10.0)[0].annotations.snr_db for i in range(3)]
    kitchen = [_gen("kitchen", i, duration_s=10.0)[0].annotations.snr_db for i in range(3)]
    assert min(office) >= 15.0 - 1 and max(kitchen) <= 10.0 + 1 and np.mean(office) - np.mean(kitchen) > 10


def test_farther_sources_are_quieter():
    rec, _ = find("kitchen", has("dishes", "footsteps", "speech"), ambient_per_min=30.0, snr=QUIET)
    ev = [e for e in rec.annotations.events if e.snr_db is not None and e.label != "speech"]
    near = [e.snr_db - 20 * np.log10(1 / e.attrs["distance_m"]) for e in ev]  # undo 1/r: back to ~1 m level
    far = [e for e in ev if e.attrs["distance_m"] >= 3]
    assert far, "expected sources in another room"
    for e in far:  # a source several metres away is below its level at 1 m by ~20 log10(d)
        assert e.snr_db < max(near) - 5


# --- video ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "scenario, state, obj",
    [
        ("living_room", "door_open", "door"),
        ("kitchen", "oven_door_open", "oven"),
        ("kitchen", "microwave_door_open", "microwave"),
        ("kitchen", "pan_steaming", "pan"),
        ("office", "phone_screen_lit", "phone"),
    ],
)
def test_state_change_changes_the_object_pixels_only_while_it_lasts(scenario, state, obj):
    rec, det = find(scenario, lambda a: any(e.label == state and e.source_visible for e in a.events),
                    labels=(state,), chains_per_min=12.0, ambient_per_min=12.0, duration_s=20.0)
    assert np.array_equal(det.render().frames, rec.frames)  # re-rendering is exact
    default = det.render(force_looks={obj: "default"})  # the object never changes
    n = len(rec.frames)
    changed = np.any(default.frames != rec.frames, axis=(1, 2, 3))
    ids = det.video.ids_by_name[obj]
    shown = det.video.object_in_frame[:, ids] | default.object_in_frame[:, ids]  # "absent" shows in one only
    during = np.zeros(n, bool)
    for e in rec.annotations.events:
        if e.label == state:
            during[frames_of(e, n)] = True
    # changed frames show the object in a changed state ...
    assert changed.any()
    assert np.all(shown[changed])
    # ... and the frames of the annotated state where the object is seen are changed
    # (phone: lit on the table before it is picked up, held in the hand after)
    seen_during = during & shown
    assert seen_during.sum() >= 2 and changed[seen_during].mean() > 0.6
    # outside every look of this object nothing changes (one frame of slack at the edges)
    looks = np.zeros(n, bool)
    for lk in det.plan.looks:
        if lk.obj == obj:
            looks[max(0, int(lk.t0_s * FPS) - 1):int(np.ceil(lk.t1_s * FPS)) + 1] = True
    assert not np.any(changed & ~looks & ~during)


def test_off_screen_sources_are_not_drawn_and_on_screen_ones_are():
    rec, det = find("kitchen", lambda a: sum(e.source_visible is False and e.source in a.objects for e in a.events) >= 1,
                    ambient_per_min=20.0, offscreen_share=0.7)
    n = len(rec.frames)
    checked_off = checked_on = 0
    by_source = {}
    for e in rec.annotations.events:
        if e.label in ("chop", "wash") or e.source not in rec.annotations.objects:
            continue
        by_source.setdefault(e.source, []).append(e)
    for source, evs in sorted(by_source.items())[:6]:
        without = det.render(hide=(source,)).frames
        for e in evs:
            k = frames_of(e, n)
            same = np.all(without[k] == rec.frames[k], axis=(1, 2, 3))
            if e.source_visible is False:
                assert same.all(), f"{e.label} from {source} is annotated off-screen but drawn at {k[~same] / FPS}"
                checked_off += 1
            else:
                assert not same.all(), f"{e.label} from {source} is annotated visible but never drawn"
                checked_on += 1
    assert checked_off >= 1 and checked_on >= 1


def test_hand_occlusion_is_the_hand_mask_fraction():
    rec, det = find("office", lambda a: max(a.frames.hand_occlusion) > 0.1)
    no_hands = det.render(hands=False).frames
    occl = det.video.hand_occlusion  # the annotation is this, rounded to 1e-4
    assert np.allclose(rec.annotations.frames.hand_occlusion, occl, atol=1e-4)
    diff = np.mean(np.any(no_hands != rec.frames, axis=3), axis=(1, 2))
    held = np.zeros(len(occl), bool)  # a held phone or cup covers pixels too, but it is not a hand
    for h in det.plan.hands:
        if h.item:
            held[int(h.t0_s * FPS):int(np.ceil(h.t1_s * FPS)) + 1] = True
    assert np.all(diff[~held] <= occl[~held] + 1e-9)  # nothing but hands differs
    assert np.all(occl[~held] - diff[~held] < 0.01)  # and hands differ almost everywhere they are
    assert np.all(diff[occl == 0] == diff[occl == 0] * held[occl == 0])
    assert occl.max() > 0.1 and (occl == 0).any()


def test_motion_blur_follows_head_speed():
    rec, det = _gen("kitchen", 1)
    info = rec.annotations.frames
    speed, blur = np.asarray(info.camera_motion_deg_s), np.asarray(info.blur_px)
    assert np.corrcoef(speed, blur)[0, 1] > 0.9 and blur.max() > 5
    sharp = det.render(exposure_s=0.0, hands=False).frames.astype(float)
    blurred = det.render(hands=False).frames.astype(float)
    grad = lambda f: np.abs(np.diff(f, axis=2)).mean(axis=(1, 2, 3))  # horizontal detail per frame
    fast, still = blur > 6, blur < 0.3
    assert np.mean(grad(blurred[fast]) / grad(sharp[fast])) < 0.8
    assert np.array_equal(blurred[still], sharp[still])


def test_walking_bob_follows_the_footsteps():
    rec, det = find("street", lambda a: any(e.label == "footsteps" and e.source == "wearer" for e in a.events),
                    labels=("footsteps",), silent_action_share=0.0, duration_s=20.0)
    traj = det.plan.trajectory
    t = np.arange(len(traj.pitch_deg)) / 100.0
    bob = traj.pitch_deg - np.convolve(traj.pitch_deg, np.ones(50) / 50, mode="same")
    strikes, mids = [], []
    for eid, (start, _x, info) in det.sounds.items():
        e = next(x for x in rec.annotations.events if x.id == eid)
        if e.label == "footsteps" and e.source == "wearer":
            s = np.array([start + a for a, _ in info.active])
            s = s[(s > e.onset_s + 0.5) & (s < e.offset_s - 0.5)]
            strikes += list(s)
            mids += list((s[:-1] + s[1:]) / 2)
    assert len(strikes) > 5
    at = lambda ts: np.interp(ts, t, bob)
    assert np.mean(at(strikes)) < np.mean(at(mids)) - 0.5  # head lowest at each foot strike
