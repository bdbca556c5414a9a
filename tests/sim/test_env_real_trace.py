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

pytestmark = pytest.mark.slow  # earshot trace against a live server first


def test_real_traces_replay(real_traces):
    ts = load_traces(real_traces, ["timer_beep", "doorbell", "phone_ring", "knock"])
    assert len(ts) == 1 and ts[0].n_hops == 24  # 6 s at 0.25 s
    assert len(ts[0].query_ids) == 2 and ts[0].cloud_ok.any()
    assert len(ts[0].event_label) == 2  # the two tones
    env = gym.make(ENV_ID, traces=str(real_traces), important_labels=("timer_beep", "doorbell", "phone_ring", "knock"))
    check_env(env.unwrapped)
    u = env.unwrapped
    for name in ("always_local", "always_cloud", "audio_trigger", "context_aware"):
        policy = make_policy(name)
        for rid in ts.recording_ids:
            obs, _ = env.reset(seed=0, options={"recording": rid})
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
            if name == "always_local":
                assert st["bytes_sent"] == 0
            # The hand-built trigger hears every tone: each event is notified whatever the policy.
            assert st["events_notified"] == 2
