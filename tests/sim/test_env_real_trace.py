"""The simulator on traces from the real `earshot trace` (edge runtime + live server)."""
import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sim  # noqa: F401
from edge.policy import make_policy, observation_vector
from sim.env import ENV_ID
from sim.traces import load_traces

IMPORTANT = ("timer_beep", "doorbell", "phone_ring", "knock")
pytestmark = pytest.mark.slow  # earshot trace against a live server first


def test_real_traces_replay(real_traces):
    ts = load_traces(real_traces, IMPORTANT)
    tr = ts[0]
    assert len(ts) == 1 and tr.n_hops == 24  # 6 s at 0.25 s
    assert len(tr.query_ids) == 2 and tr.cloud_ok.all() and all(len(v) for v in tr.service_ms.values())
    assert len(tr.event_label) == 2  # the two tones
    # The device's answers rebuilt from detections agree with the tracer's, student on every hop.
    assert [tr.local_answer(q, range(tr.n_hops)) for q in range(2)] == tr.local_answer_all
    env = gym.make(ENV_ID, traces=str(real_traces), important_labels=IMPORTANT, render_mode="rgb_array")
    check_env(env.unwrapped)
    u = env.unwrapped
    for name in ("never_on", "query_only", "always_local", "always_cloud", "audio_trigger", "context_aware"):
        policy = make_policy(name)
        obs, _ = env.reset(seed=0, options={"recording": tr.recording_id})
        policy.reset(seed=0)
        start, total, done = u.battery_mj, 0.0, False
        while not done:
            o = u.observation()
            assert np.allclose(obs, observation_vector(o, u.trigger_labels, u.student_labels), atol=1e-6)
            obs, _, done, _, _ = env.step(policy.act(o).index)
            total += u.last_step_mj
        st = u.episode_stats()
        assert math.isclose(total, start - u.battery_mj, rel_tol=1e-9)
        assert st["queries"] == 2 and st["events"] == 2
        if name in ("always_local", "never_on"):
            assert st["bytes_sent"] == 0
        # The hand-built trigger hears every tone: both events are free, notified whatever the policy.
        assert st["events_free"] == st["events_notified"] == 2
    assert u.render().shape[2] == 3
