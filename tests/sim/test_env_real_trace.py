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


@pytest.fixture(scope="module")
def early_setup(edge_world, programs, teacher, tmp_path_factory):
    """The trace of one recording with a trigger card that has an early stage (early 0.5, sure 0.9:
    tests/helpers/edge_world.py, `with_early_stage`), and those programs."""
    from tests.helpers.edge_world import trace_recording, with_early_stage

    work = tmp_path_factory.mktemp("early_traces")
    early = with_early_stage(programs, work / "programs")
    return trace_recording(edge_world[0], early, teacher, work), early


def test_the_simulator_replays_the_early_stage_as_the_runtime_runs_it(early_setup, edge_world, tmp_path):
    """Same recording, same programs, `audio_trigger`: the env's early edges and its offloads (hop, kind) are
    the edge runtime's; without the early stage in the trace the env sends two offloads fewer."""
    import json

    from tests.helpers.edge_world import make_runtime, read_jsonl

    traces, early = early_setup
    header = json.loads(next(traces.glob("*.jsonl")).read_text().splitlines()[0])
    assert header["trigger"]["early_thresholds"] == [0.5] * len(header["trigger"]["labels"])
    runtime, client = make_runtime(edge_world[0], early, tmp_path / "edge.jsonl")
    assert client is None
    runtime.run()
    runtime.log.close()
    events = read_jsonl(tmp_path / "edge.jsonl")
    edge_early = [(e["t_s"], e["label"]) for e in events if e["kind"] == "early"]
    edge_sent = [(e["t_s"], e["offload"]) for e in events if e["kind"] == "offload"]
    assert len(edge_early) == 2  # one per tone (tests/edge/test_runtime_local.py)

    def replay(folder):
        env = gym.make(ENV_ID, traces=str(folder), important_labels=IMPORTANT).unwrapped
        policy = make_policy("audio_trigger")
        env.reset(seed=0, options={"recording": env.traces[0].recording_id})
        policy.reset(seed=0)
        seen, sent, done = [], [], False
        while not done:
            o = env.observation()
            seen += [(round(o.t_s, 6), lab) for lab in o.trigger_early]
            action = policy.act(o)
            if action.offload != "none":
                sent.append((round(o.t_s, 6), action.offload))
            _, _, done, _, _ = env.step(action.index)
        return seen, sent

    seen, sent = replay(traces)
    assert seen == edge_early
    assert sent == edge_sent
    # the same trace without the early stage: no early edges, the two early offloads gone
    plain = tmp_path / "plain"
    plain.mkdir()
    for f in traces.glob("*.jsonl"):
        lines = f.read_text().splitlines()
        head = json.loads(lines[0])
        del head["trigger"]["early_thresholds"]
        (plain / f.name).write_text("\n".join([json.dumps(head), *lines[1:]]) + "\n")
    seen_plain, sent_plain = replay(plain)
    assert seen_plain == [] and len(sent_plain) == len(sent) - 2
