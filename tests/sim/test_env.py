"""earshot/Offload-v0: the Gymnasium contract, strictness, determinism, energy, capture, days, budgets."""
import dataclasses
import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sim  # noqa: F401  (registers the id)
from edge.policy import ACTIONS, LOOK, OFF, OFFLOAD_AUDIO, OFFLOAD_FULL, OFFLOAD_LIGHT, make_policy, observation_vector
from shared.profiles import load_network_profile
from sim.env import ENV_ID, Budget, OffloadEnv
from sim.network import request_latency_ms
from sim.traces import VARIANTS, load_traces

from tests.helpers.trace_double import BYTES_DOWN, BYTES_UP, DEFAULT_QUERIES, make_trace, make_trace_dir  # noqa: E402

ONE = {"recording": "kitchen_t0"}  # a one-recording episode: no day around it


@pytest.fixture(scope="module")
def traces(tmp_path_factory):
    return make_trace_dir(tmp_path_factory.mktemp("traces"), n=3)


def rollout(env, seed, policy=None, action=None, options=None):
    """(observations, rewards, per-step energy, battery before/after) of one episode."""
    u = env.unwrapped
    obs, _ = env.reset(seed=seed, options=options)
    rng = np.random.default_rng(seed)
    if policy is not None:
        policy.reset(seed=seed)
    seen, rewards, energy = [obs], [], []
    start = u.battery_start_mj
    done = False
    while not done:
        if policy is not None:
            a = policy.act(u.observation()).index
        elif action is not None:
            a = action
        else:
            a = int(rng.integers(len(ACTIONS)))
        obs, r, term, trunc, _ = env.step(a)
        seen.append(obs)
        rewards.append(r)
        energy.append(u.last_step_mj)
        done = term or trunc
    return np.stack(seen), np.asarray(rewards), np.asarray(energy), start, u.battery_mj


def test_registered_with_a_string_entry_point():
    spec = gym.spec(ENV_ID)
    assert isinstance(spec.entry_point, str) and spec.entry_point == "sim.env:OffloadEnv"


def test_gymnasium_and_sb3_check_env_pass(traces):
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make(ENV_ID, traces=str(traces), day_h=0.5, render_mode="rgb_array")
    check_env(env.unwrapped)
    sb3_check_env(gym.make(ENV_ID, traces=str(traces), day_h=0.5).unwrapped, warn=True)
    assert env.action_space.n == len(ACTIONS) == 5
    # trigger scores, student scores, 16 extra features, a one-hot of the 10 wearer-query kinds (contract v2)
    assert env.observation_space.dtype == np.float32 and env.observation_space.shape == (18 + 33 + 16 + 10,)


def test_docstring_has_the_gymnasium_sections():
    doc = OffloadEnv.__doc__
    for section in ("## Description", "## Action Space", "## Observation Space", "## Rewards", "## Starting State",
                    "## Episode End", "## Arguments", "## Version History"):
        assert section in doc, section


def test_invalid_actions_and_stepping_a_finished_episode_raise(traces):
    env = gym.make(ENV_ID, traces=str(traces)).unwrapped
    env.reset(seed=0, options=ONE)
    for bad in (-1, 5, 2.7, 2.0, True, "1", None, np.array([1]), np.float32(1.0)):
        with pytest.raises(ValueError, match="Discrete"):
            env.step(bad)
    env.step(np.int64(1))  # numpy integers and 0-d integer arrays are fine (SB3 and vector envs send them)
    env.step(np.array(0))
    done = False
    while not done:
        _, _, done, _, _ = env.step(OFF.index)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(OFF.index)
    env.reset(seed=1, options=ONE)
    env.step(OFF.index)  # a reset makes it steppable again


def test_same_seed_same_day_other_seed_other_day(traces):
    kw = dict(traces=str(traces), battery_start_frac=(0.3, 1.0), day_h=0.25)
    env = gym.make(ENV_ID, **kw)
    a, b = rollout(env, seed=7), rollout(env, seed=7)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and np.array_equal(a[2], b[2])
    c = rollout(gym.make(ENV_ID, **kw), seed=7)  # a fresh env: the seed, not the history, decides
    assert np.array_equal(a[1], c[1])
    d = rollout(env, seed=8)
    assert not (len(a[1]) == len(d[1]) and np.array_equal(a[0], d[0]))


def test_observation_vector_matches_the_edge_function(traces):
    env = gym.make(ENV_ID, traces=str(traces), day_h=0.1, budget=Budget(uplink_kbps=500.0)).unwrapped
    obs, _ = env.reset(seed=3)
    rng = np.random.default_rng(0)
    done = False
    while not done:
        assert np.allclose(obs, observation_vector(env.observation(), env.trigger_labels, env.student_labels), atol=1e-6)
        obs, _, done, _, _ = env.step(int(rng.integers(5)))


def test_energy_is_conserved_over_a_day_with_gaps(traces):
    env = gym.make(ENV_ID, traces=str(traces), battery_start_frac=(0.5, 0.9), day_h=0.5)
    for seed in range(3):
        _, _, energy, before, after = rollout(env, seed=seed)
        st = env.unwrapped.episode_stats()
        assert energy.min() > 0 and st["idle_s"] > 0 and st["idle_energy_mj"] > 0
        assert math.isclose(energy.sum() + st["idle_energy_mj"], before - after, rel_tol=1e-9)
        assert math.isclose(st["energy_mj"], before - after, rel_tol=1e-9)
        assert math.isclose(st["idle_s"] + st["duration_s"], st["day_s"], rel_tol=1e-9)


def test_never_offloading_sends_zero_bytes(traces):
    env = gym.make(ENV_ID, traces=str(traces), day_h=0.2)
    for policy in (make_policy("always_local"), make_policy("never_on"), None):
        rollout(env, seed=1, policy=policy, action=None if policy else OFF.index)
        st = env.unwrapped.episode_stats()
        assert st["bytes_sent"] == 0 and st["offloads"] == 0 and st["cloud_answers"] == 0 and st["frames_sent"] == 0


def test_capture_decides_answers(traces):
    # q0: the trigger heard the timer; q1: the doorbell only the student or the cloud knows;
    # q2: only the cloud with 5 s of frames (full_warm) knows what was asked for.
    env = gym.make(ENV_ID, traces=str(traces)).unwrapped

    def outcome(**kw):
        rollout(env, seed=0, options=ONE, **kw)
        return {r["query_id"]: (r["correct"], r["source"], r["variant"]) for r in env.episode_stats()["query_log"]}

    never = outcome(policy=make_policy("never_on"))
    assert {q: c for q, (c, _, _) in never.items()} == {"q0": True, "q1": False, "q2": False}
    look = outcome(action=LOOK.index)  # the student on every hop saw the doorbell
    assert {q: c for q, (c, _, _) in look.items()} == {"q0": True, "q1": True, "q2": False}
    warm = outcome(action=OFFLOAD_FULL.index)  # the camera on all along: the frames of the last 5 s go out
    assert warm["q2"] == (True, "cloud", "full_warm")
    asked = outcome(policy=make_policy("query_only", offload="full"))  # camera on at the question only
    # the cloud says "unknown" for q2 with this hop's frames only: the device's answer is shown (also wrong)
    assert asked["q2"] == (False, "local", "full_now") and asked["q1"][0]  # the cloud heard the doorbell
    audio = outcome(policy=make_policy("query_only", offload="audio"))
    assert audio["q2"] == (False, "local", "audio")
    light = outcome(policy=make_policy("query_only", offload="light"))
    assert light["q2"][2] == "light"


def test_a_cloud_unknown_shows_the_devices_answer(tmp_path):
    # q0: the trigger heard the timer, so the device knows; the cloud never does. When it says
    # "unknown" the runtime shows the device's answer (right); when it says something wrong, that
    # is what the wearer sees (wrong).
    def answered(wrong):
        folder = tmp_path / wrong
        make_trace(folder, "kitchen_t0", queries=[dict(DEFAULT_QUERIES[0], cloud=[], wrong=wrong)])
        env = gym.make(ENV_ID, traces=str(folder)).unwrapped
        rollout(env, seed=0, options=ONE, policy=make_policy("query_only", offload="audio"))
        (row,) = env.episode_stats()["query_log"]
        return row["correct"], row["source"], env.episode_stats()["cloud_unknown"]

    assert answered("unknown") == (True, "local", 1)
    assert answered("doorbell") == (False, "cloud", 0)


def test_frames_held_from_earlier_in_the_window_reach_the_cloud(tmp_path):
    # The camera on for a stretch of the window and off again still holds those frames: a full
    # offload at the question carries them (window masks, shared/trace.py). q2 is answered only
    # with the oldest segment's frames (mask 1) or the whole window.
    from shared.trace import window_segments

    queries = [dict(DEFAULT_QUERIES[2], masks=[1, 15], wrong="pepper")]  # a wrong answer, not "unknown"
    make_trace(tmp_path, "kitchen_t0", queries=queries)
    env = gym.make(ENV_ID, traces=str(tmp_path)).unwrapped
    tr = env.traces[0]
    hq = int(tr.query_hop[0])
    segs = window_segments(hq, tr.window_hops)

    def outcome(on_hops):
        env.reset(seed=0, options=ONE)
        done, i = False, 0
        while not done:
            a = OFFLOAD_FULL if i == hq else (LOOK if i in on_hops else OFF)
            done = env.step(a.index)[2]
            i += 1
        (row,) = env.episode_stats()["query_log"]
        return row["correct"], row["source"], row["variant"], env.episode_stats()["frames_sent"]

    oldest = outcome(set(range(*segs[0])))
    assert oldest[:3] == (True, "cloud", "full_held") and 1 < oldest[3] <= 4
    assert outcome(set(range(*segs[1])))[:2] == (False, "cloud")  # other frames: the answer needs the oldest
    assert outcome(set(range(segs[0][0], segs[0][1] - 1)))[:2] == (False, "cloud")  # a hop short: not covered
    assert outcome(set())[:3] == (False, "cloud", "full_now")
    assert outcome(set(range(segs[0][0], hq)))[:3] == (True, "cloud", "full_warm")  # on all along


def test_every_frame_sent_was_captured(traces):
    # Replay the camera history the env records for its render and check each offload's frames (their
    # times, from the trace file itself) against it: no frame leaves the glasses that the camera did not take.
    from shared.trace import read_trace

    env = gym.make(ENV_ID, traces=str(traces), render_mode="rgb_array").unwrapped
    hops = {t.recording_id: read_trace(t.path)[1] for t in env.traces}
    checked = 0
    for seed in range(3):
        for policy in (None, make_policy("always_cloud"), make_policy("query_only"), make_policy("context_aware"),
                       make_policy("audio_trigger")):
            env.reset(seed=seed, options=ONE)
            if policy is not None:
                policy.reset(seed=seed)
            done = False
            while not done:
                a = policy.act(env.observation()).index if policy is not None else int(np.random.default_rng(seed).integers(5))
                _, _, done, _, _ = env.step(a)
            camera = [h[0] for h in env._hist]
            for i, (_, _, v, _, _, _, mask) in enumerate(env._hist):
                if v < 0:
                    continue
                hop = hops["kitchen_t0"][i]
                sent = hop["cloud_masks"][mask] if mask >= 0 else hop["cloud"][VARIANTS[v]]
                for ft in sent["frame_t_s"]:
                    h = max(0, math.ceil(ft / 0.25 - 1e-9) - 1)
                    assert camera[h], (seed, policy, i, VARIANTS[v], ft)
                    checked += 1
            st = env.episode_stats()
            assert st["frames_captured"] == sum(hops["kitchen_t0"][i]["frames"] for i, c in enumerate(camera) if c)
    assert checked > 100
    env.reset(seed=0, options=ONE)
    while not env.step(OFFLOAD_AUDIO.index)[2]:
        pass
    st = env.episode_stats()
    assert st["frames_captured"] == st["frames_sent"] == 0 and st["bytes_sent"] > 0


def test_device_answers_use_only_the_hops_the_student_ran(traces):
    ts = load_traces(traces, ["timer_beep", "doorbell"])
    tr = ts[0]
    everything = [True] * tr.n_hops
    nothing = [False] * tr.n_hops
    # With the student on every hop the simulator rebuilds the tracer's own answer.
    for q in range(len(tr.query_ids)):
        assert tr.local_answer(q, range(tr.n_hops)) == tr.local_answer_all[q]
    q1 = tr.query_ids.index("q1")
    assert tr.local_correct(q1, everything) and not tr.local_correct(q1, nothing)
    # The narrowed cache key agrees with the unnarrowed answer on random histories.
    rng = np.random.default_rng(0)
    from shared.queries import answer_matches

    for _ in range(40):
        ran = (rng.random(tr.n_hops) < 0.3).tolist()
        for q in range(len(tr.query_ids)):
            full = answer_matches(tr.local_answer(q, [h for h in range(tr.n_hops) if ran[h]]), tr.query_gold[q])
            assert tr.local_correct(q, ran) == full


def test_always_cloud_over_1_mbit_bluetooth_misses_the_deadline(tmp_path):
    make_trace(tmp_path, "kitchen_bt", server_ms=150.0)
    bt = load_network_profile("bluetooth")
    assert bt.uplink_mbps == 1.0
    # The arithmetic: 4 frames + 5 s of PCM = 184 kB at 1 Mbit/s is 1.47 s of upload alone.
    best_case = request_latency_ms(150.0 * 0.9, BYTES_UP["full_warm"], BYTES_DOWN, 1.0, 1.0, 0.5 * bt.rtt_ms)
    assert best_case > 1472 > 800
    steady = dataclasses.replace(bt, uplink_cv=0.0)
    env = gym.make(ENV_ID, traces=str(tmp_path), network=steady, budget=Budget(deadline_ms=800.0, max_in_flight=1000))
    rollout(env, seed=0, policy=make_policy("always_cloud", offload="full"), options={"recording": "kitchen_bt"})
    st = env.unwrapped.episode_stats()
    assert st["queries"] == len(DEFAULT_QUERIES)
    assert st["deadline_misses"] == st["queries"] and st["cloud_answers"] == 0
    assert min(st["latencies_ms"]) >= 800.0  # the fallback answered at the deadline
    # ... and Wi-Fi (80 Mbit/s: 18 ms of upload) makes every deadline but the rare heavy-tailed RTT.
    wifi = gym.make(ENV_ID, traces=str(tmp_path), network="wifi", budget=Budget(deadline_ms=800.0))
    rollout(wifi, seed=0, policy=make_policy("always_cloud", offload="full"), options={"recording": "kitchen_bt"})
    assert wifi.unwrapped.episode_stats()["cloud_answers"] == len(DEFAULT_QUERIES)


def test_power_cap_throttles(traces):
    env = gym.make(ENV_ID, traces=str(traces), budget=Budget(power_cap_mw=200.0))
    rollout(env, seed=0, action=OFFLOAD_FULL.index, options=ONE)
    st = env.unwrapped.episode_stats()
    assert st["throttled_steps"] > 0
    free = gym.make(ENV_ID, traces=str(traces), budget=Budget(power_cap_mw=5000.0))
    rollout(free, seed=0, action=OFFLOAD_FULL.index, options=ONE)
    assert free.unwrapped.episode_stats()["throttled_steps"] == 0
    assert free.unwrapped.episode_stats()["energy_mj"] > st["energy_mj"]


def test_energy_budget_ends_the_episode(traces):
    env = gym.make(ENV_ID, traces=str(traces), budget=Budget(energy_budget_j=0.5))
    rollout(env, seed=0, action=LOOK.index, options=ONE)
    st = env.unwrapped.episode_stats()
    assert st["ended_by"] == "energy_budget" and 500.0 <= st["energy_mj"] < 700.0


def test_a_low_battery_runs_out_within_the_day_and_the_rest_is_lost(traces):
    kw = dict(traces=str(traces), day_h=8.0, active_share=0.25, battery_start_frac=(0.45, 0.45))
    env = gym.make(ENV_ID, **kw)
    obs, rewards, _, _, _ = rollout(env, seed=0, policy=make_policy("always_cloud"))
    st = env.unwrapped.episode_stats()
    assert st["ended_by"] == "battery" and st["unasked"] > 0
    assert st["queries"] == sum(1 for r in st["query_log"])  # every planned query is logged, asked or not
    planned = sum(len(load_traces(traces, []).subset([r])[0].query_ids) for r in st["plan"])
    assert st["queries"] == planned
    day_left = obs[:-1, 18 + 33 + 13]  # the observation's day_left_frac falls over the day
    assert day_left[0] > 0.9 and day_left[-1] < day_left[0]
    frugal = gym.make(ENV_ID, **kw)
    rollout(frugal, seed=0, policy=make_policy("query_only"))
    assert frugal.unwrapped.episode_stats()["ended_by"] == "day"  # the same day, the same battery: it lasts


def test_uplink_token_bucket_refuses_offloads(traces):
    tight = gym.make(ENV_ID, traces=str(traces), budget=Budget(uplink_kbps=100.0, uplink_burst_kb=400.0))
    rollout(tight, seed=0, action=OFFLOAD_FULL.index, options=ONE)
    st = tight.unwrapped.episode_stats()
    assert st["refused_tokens"] > 0 and st["bytes_sent"] <= 400_000 + 100_000 / 8 * 10.0
    free = gym.make(ENV_ID, traces=str(traces))
    rollout(free, seed=0, action=OFFLOAD_FULL.index, options=ONE)
    assert free.unwrapped.episode_stats()["refused_tokens"] == 0


def test_render_draws_the_timeline(traces):
    env = gym.make(ENV_ID, traces=str(traces), render_mode="rgb_array").unwrapped
    env.reset(seed=0, options=ONE)
    for a in [LOOK.index] * 10 + [OFF.index] * 10 + [OFFLOAD_LIGHT.index] * 3:
        env.step(a)
    img = env.render()
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    from sim.render import COLOURS, LANES, _HOP_PX, _LANE_PX

    row = LANES.index("camera") * _LANE_PX + _LANE_PX // 2
    camera = [tuple(img[row, i * _HOP_PX]) == COLOURS["camera"] for i in range(25)]
    assert camera == [True] * 10 + [False] * 10 + [True] * 3 + [False] * 2
    assert gym.make(ENV_ID, traces=str(traces)).unwrapped.render() is None
    with pytest.raises(ValueError, match="render_mode"):
        OffloadEnv(str(traces), render_mode="human")


def test_rtt_is_heavy_tailed_and_service_comes_from_the_measurement(traces):
    from sim.network import rtt_draws

    net = load_network_profile("lte")
    rtt = rtt_draws(np.random.default_rng(0), net, 200_000)
    p50, p99, p9999 = np.percentile(rtt, [50, 99, 99.99])
    assert 0.8 * net.rtt_ms < p50 < 1.1 * net.rtt_ms and p99 > 3 * p50 and p9999 > 20 * p50
    env = gym.make(ENV_ID, traces=str(traces)).unwrapped
    env.reset(seed=0, options=ONE)
    s = env.segment
    ms = np.asarray(s.rest_ms[VARIANTS.index("audio")])  # RTT + 150 ms x [0.9, 1.1] x (1 + queue) + download
    assert ms.min() > 0.9 * 150.0


def test_traces_load_into_arrays(traces):
    ts = load_traces(traces, ["timer_beep", "doorbell"])
    t = ts[0]
    assert len(ts) == 3 and t.trigger.shape == (40, 18) and t.student.shape == (40, 33)
    assert t.cloud_ok.shape == (len(VARIANTS), 40) and list(t.query_ids) == ["q0", "q1", "q2"]
    assert t.cloud_correct[VARIANTS.index("full_warm")].all()
    assert t.cloud_correct[VARIANTS.index("full_now")].tolist() == [True, True, False]
    assert (t.frames_sent[VARIANTS.index("audio")] == 0).all() and (t.frames_sent[VARIANTS.index("full_warm")] == 4).all()
    assert set(t.service_ms) == {"light", "full", "audio"} and len(t.service_ms["full"]) == 24


def test_a_trace_that_skipped_the_cloud_must_cover_the_important_labels(tmp_path):
    import json

    from sim.traces import TraceError

    path = make_trace(tmp_path, "kitchen_t0")
    lines = path.read_text().splitlines()
    header = json.loads(lines[0])
    header["cloud_hops"] = {"mode": "needed", "labels": ["doorbell"], "window_s": 5.0}
    path.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    OffloadEnv(str(tmp_path), important_labels=("doorbell",))  # covered
    with pytest.raises(TraceError, match="timer_beep"):
        OffloadEnv(str(tmp_path), important_labels=("doorbell", "timer_beep"))
    with pytest.raises(TraceError, match="notify_s"):
        OffloadEnv(str(tmp_path), important_labels=("doorbell",), notify_s=8.0)


def test_since_trigger_counts_from_the_last_rising_edge(traces):
    tr = load_traces(traces, ["timer_beep", "doorbell"])[0]
    edges = [i for i, d in enumerate(tr.trigger_detections) if d]
    assert edges, "the trace double's trigger fires"
    assert np.all(np.isinf(tr.since_trigger[: edges[0]]))
    assert np.all(tr.since_trigger[edges] == 0.0)
    after = edges[-1] + 3
    if after < tr.n_hops:
        assert tr.since_trigger[after] == pytest.approx(3 * tr.hop_s)


def test_visual_questions_are_answered_only_from_hops_the_student_ran(tmp_path):
    """'what am I doing?' and 'what did I just do?' need the student on the right hops; the narrowed
    cache agrees with the unnarrowed answer on random histories."""
    from shared.queries import ACTION_TEXT, ACTIVITY_TEXT, answer_matches
    from tests.helpers.trace_double import DEFAULT_EVENTS, make_trace

    events = DEFAULT_EVENTS + [
        {"id": "v0", "label": "chop", "onset_s": 1.0, "offset_s": 6.0, "modality": "visual", "source_visible": True},
        {"id": "v1", "label": "pick_up_phone", "onset_s": 7.2, "offset_s": 8.2, "modality": "visual",
         "source_visible": True}]
    queries = [{"id": "q0", "t_s": 4.0, "text": ACTIVITY_TEXT, "answer": "chop", "kind": "activity"},
               {"id": "q1", "t_s": 9.1, "text": ACTION_TEXT, "answer": "pick_up_phone", "kind": "action"}]
    tr = load_traces(make_trace(tmp_path, events=events, queries=queries), ["timer_beep"])[0]
    n = tr.n_hops
    for q in range(2):
        assert tr.local_correct(q, [True] * n) and not tr.local_correct(q, [False] * n)
    # only the hops of the last second see the activity; the phone must be seen within 5 s
    q0, q1 = tr.query_ids.index("q0"), tr.query_ids.index("q1")
    h0 = int(tr.query_hop[q0])
    assert tr.local_correct(q0, [h == h0 for h in range(n)])
    assert not tr.local_correct(q0, [h == h0 - 8 for h in range(n)])  # 2 s earlier: not "now"
    assert tr.local_correct(q1, [7.2 < tr.t_s[h] <= 8.5 for h in range(n)])
    rng = np.random.default_rng(1)
    for _ in range(40):
        ran = (rng.random(n) < 0.3).tolist()
        for q in range(2):
            full = answer_matches(tr.local_answer(q, [h for h in range(n) if ran[h]]), tr.query_gold[q])
            assert tr.local_correct(q, ran) == full
