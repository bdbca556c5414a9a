"""`earshot trace` against a live server, and deterministic replays of its file."""
from __future__ import annotations

import math

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from edge.policy import make_policy
from shared.config import CONFIG_DIR, to_schema
from tests.helpers.edge_world import SECONDS
from tests.helpers.server_harness import time_limit


def _trace_config(overrides):
    import edge.verbs  # noqa: F401  (registers trace_schema)
    from edge.edge_config import TraceConfig

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return to_schema(compose(config_name="trace", overrides=overrides), TraceConfig)


@time_limit(120)
def test_trace_file_and_deterministic_replay(edge_world, programs, server, tmp_path):
    from edge.trace import load_trace, replay_trace, run_trace

    cfg = _trace_config([f"recording={edge_world[0]}", f"trigger={programs['trigger']}",
                         f"student={programs['student']}", f"endpoint={server}", f"out={tmp_path}"])
    (path,) = run_trace(cfg)
    assert path == tmp_path / "edge_00.jsonl"
    header, hops = load_trace(path)
    assert header["recording_id"] == "edge_00" and header["hop_s"] == 0.25 and header["duration_s"] == SECONDS
    assert header["trigger"]["sha256"] and len(header["trigger"]["labels"]) == len(header["trigger"]["thresholds"])
    assert header["server"]["model_id"].startswith("avlm-")
    assert set(header["offloads"]) == {"light", "full", "audio"}
    assert [q["id"] for q in header["queries"]] == ["q000", "q001"] and len(header["events"]) == 3
    assert len(hops) == math.floor(SECONDS / 0.25)
    assert [h["t_s"] for h in hops] == [0.25 * (i + 1) for i in range(len(hops))]
    for h in hops:
        assert all(0.0 <= p <= 1.0 for p in h["trigger"] + h["student"]) and 0 <= h["student_confidence"] <= 1
        assert set(h["cloud"]) == {"light", "full", "audio"}
        for c in h["cloud"].values():
            assert c["ok"] and c["error"] is None and c["latency_ms"] > 0 and c["bytes_up"] > 0
            assert len(c["tags"]) == 5 and all(0.0 <= p <= 1.0 for p in c["tags"].values())
        assert h["cloud"]["full"]["bytes_up"] > h["cloud"]["audio"]["bytes_up"]  # frames cost bytes
    asked = {q for h in hops for q in h.get("local_answer", {})}
    assert asked == {"q000", "q001"}
    local = {q: a for h in hops for q, a in h.get("local_answer", {}).items()}
    assert local == {"q000": "timer_beep", "q001": "timer_beep"}  # the tones were heard
    # Replays are deterministic, and they see the cloud the trace recorded.
    runs = [replay_trace(path, make_policy("audio_trigger")) for _ in range(2)]
    assert runs[0] == runs[1]
    assert runs[0]["offloads"] and {a[1] for a in runs[0]["answers"].values()} == {"cloud"}
    offline = replay_trace(path, make_policy("audio_trigger"), cloud_ok=False)
    assert offline == replay_trace(path, make_policy("audio_trigger"), cloud_ok=False)
    assert {a[1] for a in offline["answers"].values()} == {"local"}
    assert all(a[2] for a in offline["answers"].values())
