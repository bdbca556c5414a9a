"""`earshot trace` against a live server: the v2 file (shared/trace.py), its capture variants,
the sequential service-time measurement, and the simulator replaying it."""
from __future__ import annotations

import json
import math

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from shared.config import CONFIG_DIR, to_schema
from shared.trace import CAPTURE_VARIANTS, TRACE_VERSION, TraceError, read_trace, write_trace
from tests.helpers.edge_world import SECONDS
from tests.helpers.server_harness import time_limit


def _trace_config(overrides):
    import edge.verbs  # noqa: F401  (registers trace_schema)
    from edge.edge_config import TraceConfig

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return to_schema(compose(config_name="trace", overrides=overrides), TraceConfig)


@pytest.mark.slow  # two traces against a live server
@time_limit(240)
def test_trace_file_variants_and_service_times(edge_world, programs, server, tmp_path):
    from edge.trace import SERVICE_SAMPLES, run_trace

    cfg = _trace_config([f"recording={edge_world[0]}", f"trigger={programs['trigger']}",
                         f"student={programs['student']}", f"endpoint={server}", f"out={tmp_path}"])
    (path,) = run_trace(cfg)
    assert path == tmp_path / "edge_00.jsonl"
    header, hops = read_trace(path)
    assert header["trace_version"] == TRACE_VERSION and header["recording_id"] == "edge_00"
    assert header["hop_s"] == 0.25 and header["duration_s"] == SECONDS and header["split"] is None
    assert header["trigger"]["sha256"] and len(header["trigger"]["labels"]) == len(header["trigger"]["thresholds"])
    assert header["server"]["model_id"].startswith("avlm-")
    assert set(header["variants"]) == set(CAPTURE_VARIANTS)
    # Service times: measured one request at a time, per offload kind.
    for kind in ("light", "full", "audio"):
        ms = header["service_ms"][kind]
        assert len(ms) == min(SERVICE_SAMPLES, len(hops)) and all(0 < x < 5000 for x in ms)
    assert len(hops) == math.floor(SECONDS / 0.25)
    assert [h["t_s"] for h in hops] == [0.25 * (i + 1) for i in range(len(hops))]
    for i, h in enumerate(hops):
        assert all(0.0 <= p <= 1.0 for p in h["trigger"] + h["student"]) and 0 <= h["student_confidence"] <= 1
        assert h["frames"] in (2, 3)  # 10 fps over a 0.25 s hop
        c = h["cloud"]
        assert set(c) == set(CAPTURE_VARIANTS)
        for entry in c.values():
            assert entry["ok"] and entry["error"] is None and entry["bytes_up"] > 0
            assert len(entry["tags"]) == 5 and all(0.0 <= p <= 1.0 for p in entry["tags"].values())
        # Capture: no frames without the camera, this hop's frames only when it just turned on, the
        # window's when it has been on; every frame in its window and never from the future.
        t = h["t_s"]
        assert c["audio"]["frame_t_s"] == [] and len(c["light"]["frame_t_s"]) == 1
        assert all(t - 0.25 < f <= t + 1e-9 for f in c["full_now"]["frame_t_s"] + c["light"]["frame_t_s"])
        assert all(t - 5.0 < f <= t + 1e-9 for f in c["full_warm"]["frame_t_s"])
        if t >= 2.0:
            assert len(c["full_warm"]["frame_t_s"]) == 4 and min(c["full_warm"]["frame_t_s"]) < t - 1.0
            assert c["full_warm"]["bytes_up"] > c["full_now"]["bytes_up"] > c["audio"]["bytes_up"] - 100_000
    asked = [h["query_id"] for h in hops if h["query_id"]]
    assert asked == ["q000", "q001"]
    # Window masks on the query hops: mask 0 is full_now, the full mask full_warm; a partial mask
    # carries frames of its covered segments' hops (and the question's hop) only, up to 4.
    from shared.trace import N_MASKS, window_segments

    for h in hops:
        assert (h.get("cloud_masks") is not None) == (h["query_id"] is not None)
        if h["query_id"] is None:
            continue
        masks, i = h["cloud_masks"], h["i"]
        assert len(masks) == N_MASKS and masks[0] == h["cloud"]["full_now"] and masks[-1] == h["cloud"]["full_warm"]
        segs = window_segments(i, 20)
        for m in range(1, N_MASKS - 1):
            assert masks[m]["ok"] and masks[m]["answer"] is not None
            allowed = {i} | {k for b, (lo, hi) in enumerate(segs) if m >> b & 1 for k in range(lo, hi)}
            held = [math.ceil(f / 0.25 - 1e-9) - 1 for f in masks[m]["frame_t_s"]]
            assert 1 <= len(held) <= 4 and set(held) <= allowed, (m, held, allowed)
            if i >= 19 and m & 1:  # the oldest segment covered: its frames go, spread over the window
                assert min(held) < segs[1][0]
    local = {q: a for h in hops for q, a in (h.get("local_answer") or {}).items()}
    assert local == {"q000": "timer_beep", "q001": "timer_beep"}  # the tones were heard
    assert header["cloud_hops"] == {"mode": "all"}
    # cloud_hops=needed: the cloud only where a query or an important event's window is; the same requests.
    cfg = _trace_config([f"recording={edge_world[0]}", f"trigger={programs['trigger']}",
                         f"student={programs['student']}", f"endpoint={server}", f"out={tmp_path / 'needed'}",
                         "cloud_hops=needed", "important_labels=[doorbell]", "event_window_s=1.0"])
    (path,) = run_trace(cfg)
    h2, hops2 = read_trace(path)
    assert h2["cloud_hops"] == {"mode": "needed", "labels": ["doorbell"], "window_s": 1.0}
    onset = next(e["onset_s"] for e in header["events"] if e["label"] == "doorbell")
    for a, b in zip(hops, hops2):
        t = a["t_s"]
        wanted = b["query_id"] is not None or (t > onset and t - 0.25 < onset + 1.0)
        for v in CAPTURE_VARIANTS:
            assert b["cloud"][v]["ok"] == wanted and (wanted or b["cloud"][v]["error"] == "not_traced")
            assert b["cloud"][v]["bytes_up"] == a["cloud"][v]["bytes_up"]
    assert 4 <= sum(b["cloud"]["audio"]["ok"] for b in hops2) < len(hops2) // 2


@time_limit(180)
def test_trace_reader_refuses_what_the_format_forbids(tmp_path):
    from tests.helpers.trace_double import make_trace

    good = make_trace(tmp_path / "ok", "kitchen_t0")
    header, hops = read_trace(good)
    cases = {
        "trace_version": lambda h, l: h.update(trace_version=1),
        "header misses": lambda h, l: h.pop("variants"),
        "expected 1": lambda h, l: l[1].update(i=7),
        "cloud must hold": lambda h, l: l[0]["cloud"].pop("full_warm"),
        "trigger scores": lambda h, l: l[0].update(trigger=[0.1]),
        "query_id": lambda h, l: l[0].update(query_id="nope"),
        "service_ms": lambda h, l: h.update(service_ms={"light": [-1.0]}),
        "needs cloud_masks": lambda h, l: next(x for x in l if x["query_id"]).pop("cloud_masks"),
        "cloud_masks must be": lambda h, l: next(x for x in l if x["query_id"]).update(cloud_masks=[{}]),
        r"cloud_masks\[3\] misses": lambda h, l: next(x for x in l if x["query_id"])["cloud_masks"][3].pop("answer"),
        # an early stage above the trigger's own thresholds (0.5), or of the wrong length
        "trigger.early_thresholds": lambda h, l: h["trigger"].update(early_thresholds=[0.6] * len(h["trigger"]["labels"])),
        r"trigger\.early_thresholds must": lambda h, l: h["trigger"].update(early_thresholds=[0.2]),
    }
    for match, spoil in cases.items():
        h, l = json.loads(json.dumps(header)), json.loads(json.dumps(hops))
        spoil(h, l)
        p = tmp_path / f"bad_{len(match)}.jsonl"
        p.write_text("\n".join(json.dumps(x) for x in [h, *l]) + "\n")
        with pytest.raises(TraceError, match=match):
            read_trace(p)
        with pytest.raises(TraceError, match=match):
            write_trace(tmp_path / "w" / "x.jsonl", h, l)
    (tmp_path / "junk.jsonl").write_text("{not json\n{}\n")
    with pytest.raises(TraceError, match="junk.jsonl:1: not JSON"):
        read_trace(tmp_path / "junk.jsonl")
    with pytest.raises(TraceError, match="header and at least one hop"):
        (tmp_path / "one.jsonl").write_text(json.dumps(header) + "\n")
        read_trace(tmp_path / "one.jsonl")
