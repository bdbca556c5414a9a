"""The camera-on share under audio_trigger, read from earshot edge's event log (scripts/bench_trigger.py)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests.helpers.edge_world import make_runtime, read_jsonl

_SPEC = importlib.util.spec_from_file_location(
    "bench_trigger", Path(__file__).resolve().parents[2] / "scripts" / "bench_trigger.py")
_BENCH = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_BENCH)
camera_on_share, oracle_share, run_camera = _BENCH.camera_on_share, _BENCH.oracle_share, _BENCH.run_camera


def test_the_share_read_from_the_log_is_the_runtimes_camera_steps(edge_world, programs, tmp_path):
    for i, rec in enumerate(edge_world):
        runtime, _ = make_runtime(rec, programs, tmp_path / f"{i}.jsonl", policy="audio_trigger", hold_s=1.0)
        s = runtime.run()
        runtime.log.close()
        share, steps = camera_on_share(read_jsonl(tmp_path / f"{i}.jsonl"), runtime.hop_s)
        assert steps == s.steps and share == pytest.approx(s.camera_steps / s.steps)
        assert 0 < share < 1  # the tones turn the camera on, and it goes off again


def test_share_and_oracle_by_hand():
    hop = 0.25
    events = [{"kind": "start", "t_s": 0.0}, {"kind": "camera", "t_s": 1.0, "on": True},
              {"kind": "camera", "t_s": 2.0, "on": False}, {"kind": "camera", "t_s": 9.5, "on": True},
              {"kind": "end", "t_s": 10.0, "steps": 40}]
    share, steps = camera_on_share(events, hop)
    assert steps == 40 and share == pytest.approx((4 + 3) / 40)  # steps 3..6, then 37..39

    class _E:
        def __init__(self, label, on, off):
            self.label, self.onset_s, self.offset_s = label, on, off

    class _A:
        duration_s = 10.0
        events = [_E("doorbell", 2.0, 3.0), _E("open_door", 0.0, 10.0)]

    # doorbell from 2.0 to 3.0 + 1.0 hold: steps ending at 2.0 .. 3.75 (8 of 40); the action is not a sound
    assert oracle_share(_A(), 1.0, hop, {"doorbell"}) == pytest.approx(8 / 40)


def test_run_camera_writes_one_row_per_held_out_recording(edge_world, programs, tmp_path):
    manifest = {"schema_version": 1, "generator": {"name": "test"}, "config": {}, "recordings": [
        {"id": p.name, "split": "test", "environment": "kitchen", "duration_s": 6.0, "snr_db": 20.0,
         "path": str(p.resolve())} for p in edge_world]}
    root = tmp_path / "ds"
    root.mkdir()
    (root / "manifest.json").write_text(json.dumps(manifest))
    out = run_camera(programs["trigger"], root, 0, tmp_path / "logs", hold_s=2.0)
    assert [r["recording_id"] for r in out["recordings"]] == [p.name for p in edge_world]
    assert all(r["trigger_sha256"] and r["policy_params"] == {"hold_s": 2.0, "sustain_s": 0.0, "delay_s": 0.0}
               for r in out["recordings"])
    assert 0 < out["camera_on_share"]["value"] < 1 and out["always_on_share"] == 1.0
    assert (tmp_path / "logs" / f"{edge_world[0].name}.jsonl").is_file()
    # several worlds pool their recordings (here a second world holding the first recording only); the same
    # recording in two of them is refused before any run
    other = tmp_path / "ds2"
    other.mkdir()
    (other / "manifest.json").write_text(json.dumps({**manifest, "recordings": manifest["recordings"][:1]}))
    with pytest.raises(SystemExit, match=rf"recordings \['{edge_world[0].name}'\] appear in more than one dataset"):
        run_camera(programs["trigger"], [root, other], 0, tmp_path / "logs2", hold_s=2.0)
    (root / "manifest.json").write_text(json.dumps({**manifest, "recordings": manifest["recordings"][1:]}))
    pooled = run_camera(programs["trigger"], [root, other], 0, tmp_path / "logs3", hold_s=2.0)
    assert sorted(r["recording_id"] for r in pooled["recordings"]) == sorted(p.name for p in edge_world)
    assert pooled["camera_on_share"]["n"] == len(edge_world) and pooled["dataset"] == f"{root}, {other}"


def test_query_success_under_the_triggers_capture_beside_always_on_and_never_on(tmp_path):
    """Capture-aware traces (tests/helpers/trace_double.py): q0 and q1 the cloud answers under any
    capture; q2 only with 5 s of frames (full_warm). A camera kept on before q2 keeps it; a
    camera that only comes on at the question (full_now) loses it, as does one never on."""
    import numpy as np

    from sim.config import EnvConfig
    from sim.traces import load_trace
    from tests.helpers.trace_double import make_trace_dir

    capture_query_success, camera_steps = _BENCH.capture_query_success, _BENCH.camera_steps
    folder = make_trace_dir(tmp_path / "traces", n=3)
    traces = [load_trace(f, tuple(EnvConfig().important_labels)) for f in sorted(folder.glob("*.jsonl"))]
    n = len(traces[0].t_s)
    q2 = int(traces[0].query_hop[2])
    warm = {tr.recording_id: np.ones(n, bool) for tr in traces}
    late = {tr.recording_id: np.zeros(n, bool) for tr in traces}
    short = {tr.recording_id: np.r_[np.zeros(q2 - 4, bool), np.ones(n - q2 + 4, bool)] for tr in traces}
    on = capture_query_success(warm, traces)
    assert on["queries"] == 9 and on["recordings"] == 3
    assert on["trigger"]["value"] == on["always_on"]["value"] == 1.0 and on["ratio"]["value"] == 1.0 and on["met"]
    assert on["never_on"]["value"] == pytest.approx(2 / 3) and on["camera_matters"]
    off = capture_query_success(late, traces)
    assert off["ratio"]["value"] == pytest.approx(2 / 3) and not off["met"]
    # per kind: the loss is the object question (q2), the sound questions are right under any capture
    assert off["by_kind"]["object"] == {"n": 3, "trigger": 0.0, "always_on": 1.0, "never_on": 0.0}
    assert off["by_kind"]["sound_id"] == {"n": 6, "trigger": 1.0, "always_on": 1.0, "never_on": 1.0}
    assert capture_query_success(short, traces)["ratio"]["value"] == pytest.approx(2 / 3)  # 1 s is not the window
    assert capture_query_success({}, traces) is None
    # when no question needs frames, never-on equals always-on: the target then says nothing
    # frames the camera took earlier in the window and still holds count (window masks): q2 right
    # under the oldest segment's frames only (mask 1) is kept by a camera on over that segment alone
    from shared.trace import window_segments

    seg0 = window_segments(q2, traces[0].window_hops)[0]
    held = {tr.recording_id: np.isin(np.arange(n), np.arange(*seg0)) for tr in traces}
    assert capture_query_success(held, traces)["ratio"]["value"] == pytest.approx(2 / 3)
    for tr in traces:
        tr.mask_correct[2, 1] = True
    assert capture_query_success(held, traces)["ratio"]["value"] == 1.0
    assert capture_query_success(short, traces)["ratio"]["value"] == pytest.approx(2 / 3)  # mask 8, still wrong
    for tr in traces:
        tr.cloud_correct[:, 2] = True
        tr.mask_correct[2, :] = True
    blind = capture_query_success(late, traces)
    assert blind["met"] and not blind["camera_matters"] and blind["never_on_ratio"]["value"] == 1.0
    # the camera state read back from an event log, step by step
    events = [{"kind": "camera", "t_s": 0.5, "on": True}, {"kind": "camera", "t_s": 1.0, "on": False},
              {"kind": "end", "t_s": 2.0, "steps": 8}]
    assert camera_steps(events, 0.25).tolist() == [False, True, True, False, False, False, False, False]


def test_bad_policy_values_fail_before_any_run_with_the_policys_message(tmp_path):
    base = ["--export", str(tmp_path / "none"), "--dataset", str(tmp_path / "none")]
    for flag, msg in (("--sustain-s", "audio_trigger.sustain_s: must be a finite number >= 0, got -1.0"),
                      ("--delay-s", "audio_trigger.delay_s: must be a finite number >= 0, got -1.0"),
                      ("--hold-s", "audio_trigger.hold_s: must be a finite number >= 0, got -1.0")):
        with pytest.raises(SystemExit, match=msg):
            _BENCH.main([*base, flag, "-1"])
