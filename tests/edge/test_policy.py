"""The offloading policies: menu, decisions per step, parameters, observation vector."""
import math

import numpy as np
import pytest

from edge.policy import (ACTIONS, LOOK, OFF, OFFLOAD_AUDIO, OFFLOAD_FULL, OFFLOAD_LIGHT, POLICIES, QUERY_KINDS, Action,
                         Observation, make_policy, observation_size, observation_vector)

HOP = 0.25
LABELS = ("speech", "timer_beep", "doorbell")


def _obs(i, fired=(), **kw):
    scores = {lab: (0.9 if lab in fired else 0.1) for lab in LABELS}
    return Observation(t_s=(i + 1) * HOP, trigger_scores=scores, trigger_fired=tuple(fired), **kw)


def test_action_menu_is_fixed_and_valid():
    assert ACTIONS == (OFF, LOOK, OFFLOAD_LIGHT, OFFLOAD_FULL, OFFLOAD_AUDIO)
    assert [a.index for a in ACTIONS] == list(range(5))
    with pytest.raises(ValueError, match="camera"):
        Action(camera=False, student=True)
    with pytest.raises(ValueError, match="camera must be on"):
        Action(camera=False, student=False, offload="full")
    with pytest.raises(ValueError, match="offload"):
        Action(camera=True, student=True, offload="half")


def test_registry_has_the_eight_policies_and_checks_parameters():
    assert set(POLICIES) == {"never_on", "query_only", "always_local", "always_cloud", "periodic", "audio_trigger",
                             "confidence_threshold", "context_aware"}
    with pytest.raises(ValueError, match="unknown 'nope'"):
        make_policy("nope")
    with pytest.raises(ValueError, match=r"unknown parameters \['hold'\]"):
        make_policy("audio_trigger", hold=1.0)
    with pytest.raises(ValueError, match="threshold"):
        make_policy("confidence_threshold", threshold=1.5)
    assert make_policy("audio_trigger", hold_s=1.0).params() == {"hold_s": 1.0, "sustain_s": 0.0, "delay_s": 1.5}
    assert make_policy("confidence_threshold").params()["delay_s"] == 0.0
    for key in ("sustain_s", "delay_s"):
        for bad in (-1.0, math.inf, math.nan):
            with pytest.raises(ValueError, match=rf"audio_trigger.{key}: must be a finite number >= 0"):
                make_policy("audio_trigger", **{key: bad})
    with pytest.raises(ValueError, match=r"context_aware.hold_s: must be a finite number >= 0, got -1"):
        make_policy("context_aware", hold_s=-1.0)


def test_always_local_never_offloads_and_always_cloud_always_does():
    local, cloud = make_policy("always_local"), make_policy("always_cloud")
    for i in range(8):
        q = "what was that?" if i == 3 else None
        assert local.act(_obs(i, query=q, query_id="q" if q else None)) == LOOK
        assert cloud.act(_obs(i)) == OFFLOAD_FULL


def test_never_on_and_query_only_are_the_controls():
    never = make_policy("never_on")
    asked = {"query": "what was that sound?", "query_id": "q0"}
    assert all(never.act(_obs(i, fired=("doorbell",), **asked)) == OFF for i in range(4))
    for kind, action in (("full", OFFLOAD_FULL), ("light", OFFLOAD_LIGHT), ("audio", OFFLOAD_AUDIO)):
        only = make_policy("query_only", offload=kind)
        assert only.act(_obs(0, fired=("doorbell",))) == OFF  # a sound alone is not a question
        assert only.act(_obs(1, **asked)) == action
    with pytest.raises(ValueError, match="query_only.offload"):
        make_policy("query_only", offload="half")


def test_periodic_wakes_once_per_period():
    p = make_policy("periodic", period_s=1.0)
    acts = [p.act(_obs(i)) for i in range(12)]  # t = 0.25 .. 3.0
    wakes = [(i + 1) * HOP for i, a in enumerate(acts) if a == OFFLOAD_LIGHT]
    assert wakes == [0.25, 1.0, 2.0, 3.0]
    assert all(a in (OFF, OFFLOAD_LIGHT) for a in acts)


def test_audio_trigger_turns_camera_on_at_the_rising_edge_and_holds():
    p = make_policy("audio_trigger", hold_s=1.0, delay_s=0.0)
    fired = {4: ("timer_beep",), 5: ("timer_beep",), 6: ("timer_beep",), 12: ("doorbell",)}
    acts = [p.act(_obs(i, fired.get(i, ()))) for i in range(20)]
    assert acts[4] == OFFLOAD_FULL  # the rising edge: camera on at once, moment offloaded
    assert acts[5:8] == [LOOK] * 3  # held for hold_s = 4 hops after t=1.25 (until 2.25)
    assert acts[8] == OFF
    assert acts[12] == OFFLOAD_FULL
    assert acts[3] == OFF and acts[0] == OFF
    # a label joining an already-fired set is a new rising edge
    p.reset()
    assert p.act(_obs(0, ("speech",))) == OFFLOAD_FULL
    assert p.act(_obs(1, ("speech",))) == LOOK
    assert p.act(_obs(2, ("speech", "doorbell"))) == OFFLOAD_FULL


def test_sustain_keeps_the_camera_on_while_the_sound_is_held_up_to_its_cap():
    held = {i: ("timer_beep",) for i in range(4, 16)}  # held from t=1.25 to t=4.0 (3 s)
    def on_steps(**params):
        p = make_policy("audio_trigger", delay_s=0.0, **params)
        return [i for i in range(40) if p.act(_obs(i, held.get(i, ()))).camera]
    assert on_steps(hold_s=1.0) == list(range(4, 8))  # the rising edge only: on until 2.25
    # sustained: every held step within 10 s of the edge pushes the end to 1 s past it: on until 5.0
    assert on_steps(hold_s=1.0, sustain_s=10.0) == list(range(4, 19))
    # the cap: held steps more than 1.5 s after the edge (t > 2.75) no longer extend: on until 3.75
    assert on_steps(hold_s=1.0, sustain_s=1.5) == list(range(4, 14))
    # sustain 0 is the plain policy; a label dropping and rising again restarts its own cap
    p = make_policy("audio_trigger", hold_s=0.5, sustain_s=0.5, delay_s=0.0)
    steps = [("doorbell",)] * 8 + [()] + [("doorbell",)] * 8
    acts = [p.act(_obs(i, f)) for i, f in enumerate(steps)]
    assert [i for i, a in enumerate(acts) if a == OFFLOAD_FULL] == [0, 9]
    assert [i for i, a in enumerate(acts) if a.camera] == [0, 1, 2, 3, 9, 10, 11, 12]  # on until 1.25, 3.5


def test_delay_moves_the_hold_after_the_trigger_and_a_new_recording_resets_it():
    p = make_policy("audio_trigger", hold_s=1.0, delay_s=1.0)
    fired = {4: ("timer_beep",), 5: ("timer_beep",), 6: ("doorbell",)}
    acts = [p.act(_obs(i, fired.get(i, ()))) for i in range(20)]
    # edges at t=1.25 (timer) and 1.75 (doorbell): each step offloaded full with the camera on, then off for 1 s,
    # then on for 1 s: [2.25, 3.25) and [2.75, 3.75)
    assert [i for i, a in enumerate(acts) if a == OFFLOAD_FULL] == [4, 6]
    assert [i for i, a in enumerate(acts) if a.camera] == [4, 6, 8, 9, 10, 11, 12, 13]
    assert make_policy("audio_trigger").params()["delay_s"] == 1.5 and make_policy("audio_trigger").hold_s == 3.0
    # The simulator chains recordings, each on its own clock: a hold from the end of one must not cover the
    # start of the next (nor a periodic wake-up wait for the old clock).
    for policy in (make_policy("audio_trigger", hold_s=4.0, delay_s=0.0), make_policy("context_aware")):
        policy.act(Observation(t_s=29.75, trigger_scores={}, trigger_fired=("doorbell",), camera_on=True))
        assert not policy.act(Observation(t_s=0.25, trigger_scores={}, snr_db=30.0)).camera
    periodic = make_policy("periodic", period_s=2.0)
    periodic.act(_obs(118))  # t = 29.75: next wake-up at 30
    assert periodic.act(_obs(0)) == OFFLOAD_LIGHT


def test_an_early_edge_sends_the_audio_in_hand_without_waking_the_camera():
    p = make_policy("audio_trigger", hold_s=1.0, delay_s=0.0)
    early = {2: ("doorbell",), 9: ("speech",)}
    fired = {4: ("doorbell",), 5: ("doorbell",)}
    acts = [p.act(_obs(i, fired.get(i, ()), trigger_early=early.get(i, ()))) for i in range(12)]
    assert acts[2] == OFFLOAD_AUDIO  # the sound has probably started: the cloud hears it, the camera stays off
    assert acts[3] == OFF
    assert acts[4] == OFFLOAD_FULL   # the trigger is sure: camera on, moment offloaded, as without an early stage
    assert acts[5:8] == [LOOK] * 3
    assert acts[9] == OFFLOAD_AUDIO
    # inside a hold the camera is on: the early offload carries its newest frame (light) and keeps it on
    assert p.act(_obs(12, ("timer_beep",))) == OFFLOAD_FULL
    assert p.act(_obs(13, ("timer_beep",), trigger_early=("speech",))) == OFFLOAD_LIGHT
    # the policies that offload only unsure moments do not act on it
    for name in ("confidence_threshold", "context_aware"):
        q = make_policy(name)
        assert q.act(_obs(2, (), trigger_early=("doorbell",), snr_db=30.0)) == OFF


def test_confidence_threshold_offloads_only_unsure_moments():
    p = make_policy("confidence_threshold", threshold=0.6, hold_s=1.0)
    assert p.act(_obs(0, ("doorbell",))) == LOOK  # the student has not looked yet
    sure = dict(student_scores={"doorbell": 0.9}, student_confidence=0.9, student_age_s=0.25, camera_on=True)
    assert p.act(_obs(1, ("doorbell",), **sure)) == LOOK
    p.reset()
    p.act(_obs(0, ("doorbell",)))
    unsure = dict(student_scores={"doorbell": 0.5}, student_confidence=0.3, student_age_s=0.25, camera_on=True)
    assert p.act(_obs(1, ("doorbell",), **unsure)) == OFFLOAD_FULL
    # a query is answered locally when the student is sure, offloaded otherwise
    assert p.act(_obs(2, query="what was that?", query_id="q0", **sure)) == LOOK
    assert p.act(_obs(3, query="what was that?", query_id="q0", **unsure)) == OFFLOAD_FULL


def test_context_aware_respects_link_battery_and_noise():
    p = make_policy("context_aware", threshold=0.6)
    unsure = dict(student_confidence=0.3, student_scores={}, student_age_s=0.25, camera_on=True)
    q = dict(query="why did I stop?", query_id="q0")
    assert p.act(_obs(0, **q, **unsure)) == OFFLOAD_FULL
    assert p.act(_obs(1, **q, **unsure, link_up=False)) == LOOK  # cloud down: answer locally
    assert p.act(_obs(2, **q, **unsure, link_mbps=1.0)) == OFFLOAD_LIGHT  # slow uplink: one frame
    # low battery lowers the bar: 0.3 is sure enough at 10% battery (threshold 0.6 * 0.5)
    assert p.act(_obs(3, **q, **unsure, battery_frac=0.1)) == LOOK
    # noisy audio: the camera probes periodically even without a trigger
    p.reset()
    noisy = [p.act(_obs(i, snr_db=0.0)) for i in range(40)]
    quiet = [make_policy("context_aware").act(_obs(i, snr_db=30.0)) for i in range(40)]
    assert sum(a.camera for a in noisy) >= 3 and not any(a.camera for a in quiet)


def test_observation_vector_layout():
    t, s = ("speech", "doorbell"), ("speech", "doorbell", "walk")
    obs = Observation(t_s=1.0, trigger_scores={"speech": 0.2, "doorbell": 0.7}, trigger_fired=("doorbell",),
                      student_scores={"walk": 0.5}, student_confidence=0.8, student_age_s=0.5,
                      snr_db=80.0, battery_frac=0.5, since_offload_s=math.inf, pending=8, query="x", query_id="q")
    v = observation_vector(obs, t, s)
    assert v.dtype == np.float32 and v.shape == (observation_size(t, s),)
    np.testing.assert_allclose(v[:5], [0.2, 0.7, 0.0, 0.0, 0.5])
    extra = v[5:]
    assert extra[0] == 1.0 and extra[1] == pytest.approx(0.8) and extra[2] == 1.0
    assert extra[3] == 1.0 and extra[4] == 0.5 and extra[8] == 1.0 and extra[9] == 1.0
    assert extra[10] == 1.0 and extra[12] == 1.0
    assert extra[13] == 1.0 and extra[14] == 1.0  # day_left and uplink tokens default to "all of it"
    assert extra[15] == 1.0  # no trigger yet: since_trigger is inf, clipped to 1
    assert extra[16:].tolist() == [float(k == "other") for k in QUERY_KINDS]  # the query "x" is of kind "other"
    kinds = {"what was that sound?": "sound_id", "did someone knock?": "yes_no", "why did I open the oven?": "why",
             "why did I stop chopping?": "why_stop", "how many times did they knock?": "count",
             "which came first, the knock or the kettle?": "order", "what did they ask me for?": "object",
             "how is the weather?": "other"}
    for text, kind in kinds.items():
        hot = observation_vector(Observation(t_s=1.0, trigger_scores={}, query=text), t, s)[5 + 16:]
        assert hot.tolist() == [float(k == kind) for k in QUERY_KINDS], text
    v2 = observation_vector(Observation(t_s=1.0, trigger_scores={}, day_left_frac=0.25, uplink_tokens_frac=1.7,
                                        since_trigger_s=2.5), t, s)
    assert v2[5 + 13] == 0.25 and v2[5 + 14] == 1.0  # clipped to [0, 1]
    assert v2[5 + 15] == pytest.approx(0.25)  # 2.5 s since the trigger's last rising edge
    assert np.all(v >= -1) and np.all(v <= 1)
