"""The runtime without a server: the trigger drives the camera, energy and the log add up,
and decisions are deterministic in an as-fast-as-possible replay."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.helpers.edge_world import SCENES, TONES_HZ, make_runtime, read_jsonl

HOP = 0.25


def _camera_by_step(events, times):
    """Camera state at each step time, rebuilt from camera events (off at the start)."""
    changes = {e["t_s"]: e["on"] for e in events if e["kind"] == "camera"}
    state, out = False, {}
    for t in times:
        state = changes.get(t, state)
        out[t] = state
    return out


def _run(rec, programs, tmp_path, name, **kw):
    runtime, client = make_runtime(rec, programs, tmp_path / f"{name}.jsonl", **kw)
    assert client is None
    summary = runtime.run()
    runtime.log.close()
    return summary, read_jsonl(tmp_path / f"{name}.jsonl"), runtime.step_times()


def _trigger_misses(events, times, onsets):
    """Problems with 'the camera is on within one hop of each annotated, detected trigger event'."""
    problems = []
    rising = [(e["t_s"], e["label"]) for e in events if e["kind"] == "trigger"]
    camera = _camera_by_step(events, times)
    camera_on_events = [e["t_s"] for e in events if e["kind"] == "camera" and e["on"]]
    for label, onset in onsets:
        # The trigger knows these labels: its rising edge must come within two hops of the onset
        # (the hop holding the onset may carry < 0.1 s of the tone).
        hits = [t for t, lab in rising if lab == label and onset < t <= onset + 2 * HOP + 1e-9]
        if not hits:
            problems.append(f"{label}@{onset}: no trigger rising edge within 2 hops (edges: {rising})")
            continue
        t = hits[0]
        nxt = round(t + HOP, 9)
        if not (camera[t] or camera.get(nxt, False)):
            problems.append(f"{label}@{onset}: camera off at {t} and {nxt}")
        was_on = camera.get(round(t - HOP, 9), False)
        if not was_on and not any(t - 1e-9 <= c <= nxt + 1e-9 for c in camera_on_events):
            problems.append(f"{label}@{onset}: no camera-on event at {t} or {nxt}")
    return problems


@pytest.mark.parametrize("index", [0, 1])
def test_audio_trigger_turns_the_camera_on_within_one_hop(edge_world, programs, tmp_path, index):
    summary, events, times = _run(edge_world[index], programs, tmp_path, "trig", endpoint=None)
    onsets = [(sound, onset) for sound, onset in SCENES[index] if sound in TONES_HZ]
    assert _trigger_misses(events, times, onsets) == []
    # No false alarms: every rising edge belongs to an annotated tone.
    for e in (e for e in events if e["kind"] == "trigger"):
        assert any(e["label"] == s and o < e["t_s"] <= o + 1.0 + 2 * HOP for s, o in SCENES[index]), e
    # The camera is off most of the time (that is the point of the trigger) ...
    assert 0 < summary.camera_steps < summary.steps
    # ... and frames exist only while it was on: 10 fps x 0.25 s = 2.5 frames per camera step.
    assert summary.frames_captured <= math.ceil(2.5 * summary.camera_steps) + 1


def test_the_trigger_check_fails_for_a_policy_that_ignores_the_trigger(edge_world, programs, tmp_path):
    # The same check on a camera that only wakes every 10 s must report misses.
    _, events, times = _run(edge_world[0], programs, tmp_path, "periodic", endpoint=None, policy="periodic",
                            period_s=10.0)
    assert _trigger_misses(events, times, list(SCENES[0]))


def test_offline_run_answers_locally_with_fallbacks_and_consistent_accounting(edge_world, programs, tmp_path):
    summary, events, times = _run(edge_world[0], programs, tmp_path, "offline", endpoint=None)
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("start") == kinds.count("end") == 1
    assert [e["seq"] for e in events] == list(range(len(events)))
    # common keys first, in the documented order
    assert all(list(e)[:5] == ["v", "seq", "t_s", "kind", "energy_mj"] for e in events)
    energy = [e["energy_mj"] for e in events]
    assert energy == sorted(energy) and energy[-1] > 0
    offloads = [e for e in events if e["kind"] == "offload"]
    fallbacks = [e for e in events if e["kind"] == "fallback"]
    assert offloads and [f["request_id"] for f in fallbacks] == [o["request_id"] for o in offloads]
    assert {f["reason"] for f in fallbacks} == {"link_down"}
    answers = {e["query_id"]: e for e in events if e["kind"] == "answer"}
    assert set(answers) == {"q000", "q001"} and all(a["source"] == "local" for a in answers.values())
    # The tones were heard, so the device's own memory answers both questions right.
    assert all(a["correct"] for a in answers.values()), answers
    end = events[-1]
    assert end["steps"] == len(times) == int(6.0 / HOP) and end["queries"] == 2 and end["answers_correct"] == 2
    assert end["offloads"] == len(offloads) and end["bytes_sent"] == 0
    assert end["frames_captured"] == summary.frames_captured
    # Energy: at least the always-on floor (baseline + audio DSP) and the camera's share.
    from shared.profiles import load_device_profile

    dev = load_device_profile("glasses_2025")
    floor = (dev.baseline_mw + dev.audio_dsp_mw) * 6.0 + dev.camera_mw * HOP * summary.camera_steps
    assert floor <= end["energy_mj"] < floor * 1.5


def test_decisions_are_deterministic_without_wall_time(edge_world, programs, tmp_path):
    def decisions(name):
        _, events, _ = _run(edge_world[1], programs, tmp_path, name, endpoint=None, policy="confidence_threshold")
        keep = {"trigger", "camera", "offload"}
        return [{k: v for k, v in e.items() if k != "seq"} for e in events if e["kind"] in keep]

    first = decisions("a")
    assert first and first == decisions("b")


def test_an_early_stage_sends_the_audio_before_the_trigger_is_sure(edge_world, programs, tmp_path):
    from tests.helpers.edge_world import with_early_stage

    early = with_early_stage(programs, tmp_path / "early")  # early 0.5, sure 0.9
    summary, events, _ = _run(edge_world[0], early, tmp_path, "early", endpoint=None)
    edges = [(e["kind"], e["t_s"], e["label"]) for e in events if e["kind"] in ("early", "trigger")]
    # each tone (timer 1.3 s, doorbell 3.6 s) is heard early on its first hop, and the trigger is sure a hop later
    assert edges == [("early", 1.5, "timer_beep"), ("trigger", 1.75, "timer_beep"),
                     ("early", 3.75, "doorbell"), ("trigger", 4.0, "doorbell")]
    sent = {e["t_s"]: (e["offload"], e["frames"]) for e in events if e["kind"] == "offload"}
    assert sent[1.5] == ("audio", 0)  # camera off: the audio in hand, nothing else
    assert sent[1.75][0] == "full" and sent[4.0][0] == "full"
    assert sent[3.75][0] == "light"  # the timer's hold has the camera on: its newest frame goes too
    camera = _camera_by_step(events, sorted({e["t_s"] for e in events if "t_s" in e}))
    assert not camera[1.5] and camera[1.75]
    # without the early stage the same trigger thresholds send two offloads fewer
    from shared.model_card import card_path_for, copy_with_card, load_model_card

    card = load_model_card(card_path_for(early["trigger"]))
    card.early_thresholds = None
    plain = {**early, "trigger": copy_with_card(early["trigger"], tmp_path / "plain", card)}
    summary_plain, events_plain, _ = _run(edge_world[0], plain, tmp_path, "plain", endpoint=None)
    assert not any(e["kind"] == "early" for e in events_plain)
    assert summary.offloads == summary_plain.offloads + 2
