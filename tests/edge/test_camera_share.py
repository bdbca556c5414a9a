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
    for tr in traces:  # the cloud answers q2 (right) from those frames, where it said "unknown" before
        tr.mask_correct[2, 1], tr.mask_unknown[2, 1] = True, False
    assert capture_query_success(held, traces)["ratio"]["value"] == 1.0
    assert capture_query_success(short, traces)["ratio"]["value"] == pytest.approx(2 / 3)  # mask 8, still wrong
    for tr in traces:
        tr.cloud_correct[:, 2], tr.cloud_unknown[:, 2] = True, False
        tr.mask_correct[2, :], tr.mask_unknown[2, :] = True, False
    blind = capture_query_success(late, traces)
    assert blind["met"] and not blind["camera_matters"] and blind["never_on_ratio"]["value"] == 1.0
    # the camera state read back from an event log, step by step
    events = [{"kind": "camera", "t_s": 0.5, "on": True}, {"kind": "camera", "t_s": 1.0, "on": False},
              {"kind": "end", "t_s": 2.0, "steps": 8}]
    assert camera_steps(events, 0.25).tolist() == [False, True, True, False, False, False, False, False]


def test_query_success_scores_what_the_wearer_is_shown_the_devices_answer_where_the_cloud_said_unknown(tmp_path):
    """The server answers the wearer from its window only (docs/protocol.md 6.2): where it says
    ``unknown`` the glasses show their own answer, from their memory with the student run on the hops
    the camera was on. The bench scores that answer, as the runtimes and the simulator show it."""
    import numpy as np

    from shared.trace import camera_mask
    from sim.config import EnvConfig
    from sim.traces import VARIANTS, load_trace
    from tests.helpers.trace_double import make_trace_dir

    capture_query_success = _BENCH.capture_query_success
    folder = make_trace_dir(tmp_path / "traces", n=3)
    traces = [load_trace(f, tuple(EnvConfig().important_labels)) for f in sorted(folder.glob("*.jsonl"))]
    n = len(traces[0].t_s)
    q2 = int(traces[0].query_hop[2])
    cam = {tr.recording_id: np.arange(n) >= q2 - 4 for tr in traces}  # on for the last 1 s of q2's window
    asked: list[tuple[str, int, tuple[int, ...]]] = []

    def device(tr, right_when_student_ran: bool):
        def local_correct(q, ran):  # a test double of the device's memory: right iff the student ran
            ran = np.asarray(ran, bool)
            asked.append((tr.recording_id, q, tuple(np.flatnonzero(ran).tolist())))
            return bool(ran.any()) == right_when_student_ran
        return local_correct

    warm, audio = VARIANTS.index("full_warm"), VARIANTS.index("audio")
    for tr in traces:  # first the cloud answers every question (right or wrong), as the old server did
        tr.local_correct = device(tr, True)
        tr.mask_unknown[:], tr.cloud_unknown[:] = False, False
    before = capture_query_success(cam, traces)
    assert not asked and before["device_answers"] == {"trigger": 0.0, "always_on": 0.0, "never_on": 0.0}
    # the cloud says "unknown" to q2 under every capture (and is otherwise wrong there): the device answers
    for tr in traces:
        m = camera_mask(cam[tr.recording_id] | (np.arange(n) == q2), q2, tr.window_hops)
        tr.mask_correct[2, :] = False
        tr.cloud_correct[:, 2] = False
        tr.mask_unknown[2, m] = True
        tr.cloud_unknown[[warm, audio], 2] = True
    after = capture_query_success(cam, traces)
    assert after["device_answers"] == pytest.approx({"trigger": 1 / 3, "always_on": 1 / 3, "never_on": 1 / 3})
    # right where the student ran: under the trigger's camera (its hops, the question's included) and an
    # always-on camera; not under a camera never on (the student never ran)
    assert after["by_kind"]["object"] == {"n": 3, "trigger": 1.0, "always_on": 1.0, "never_on": 0.0}
    assert after["ratio"]["value"] == 1.0 and after["never_on_ratio"]["value"] == pytest.approx(2 / 3)
    ran = {(rid, hops) for rid, q, hops in asked if q == 2}
    assert {len(h) for _, h in ran} == {0, n - (q2 - 4), n}  # never on, the trigger's camera, always on
    # a device that is wrong where the student ran: the trigger's figure follows it, not the cloud's
    for tr in traces:
        tr.local_correct = device(tr, False)
    wrong = capture_query_success(cam, traces)
    assert wrong["by_kind"]["object"] == {"n": 3, "trigger": 0.0, "always_on": 0.0, "never_on": 1.0}


def test_bad_policy_values_fail_before_any_run_with_the_policys_message(tmp_path):
    base = ["--export", str(tmp_path / "none"), "--dataset", str(tmp_path / "none")]
    for flag, msg in (("--sustain-s", "audio_trigger.sustain_s: must be a finite number >= 0, got -1.0"),
                      ("--delay-s", "audio_trigger.delay_s: must be a finite number >= 0, got -1.0"),
                      ("--hold-s", "audio_trigger.hold_s: must be a finite number >= 0, got -1.0")):
        with pytest.raises(SystemExit, match=msg):
            _BENCH.main([*base, flag, "-1"])
