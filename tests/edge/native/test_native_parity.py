"""Parity: the native binary and the Python runtime on the same recording and programs.

Both run with realtime off, no endpoint (every offload falls back with
link_down, every query is answered on the device) and the same policy, so
every decision depends only on the recording and the programs. Compared per
step: trigger rising edges (label, time), camera switches, student runs,
offloads (kind, frames, query), fallbacks and answers exactly; scores,
confidences and energy within a tolerance (the two runtimes run the same
.pte through different ExecuTorch front ends); JPEG sizes within a band (the
Python runtime encodes with FFmpeg's mjpeg, the binary with libjpeg).
"""
from __future__ import annotations

import math

import pytest

from tests.helpers.edge_world import read_jsonl
from tests.helpers.native import decisions as _decisions
from tests.helpers.native import python_events as _python_events
from tests.helpers.native import run_native

SCORE_TOL = 1e-4
ENERGY_REL_TOL = 0.02  # differs only through the JPEG bytes sent (radio energy)


@pytest.mark.parametrize("policy,params", [("audio_trigger", {}), ("confidence_threshold", {"threshold": 0.6})])
@pytest.mark.parametrize("index", [0, 1])
def test_native_matches_python_runtime(native_bin, native_world, programs, tmp_path, policy, params, index):
    rec = native_world[index]
    py = _python_events(rec, programs, tmp_path / "py.jsonl", policy, **params)
    args = ["--policy", policy] + [a for k, v in params.items() for a in ("--param", f"{k}={v}")]
    rc, nat, err = run_native(native_bin, rec, programs, tmp_path / "native.jsonl", *args)
    assert rc == 0, err
    assert _decisions(nat) == _decisions(py)
    # Same keys in the same order on every line: the schema of contract section 3.
    assert [list(e) for e in nat] == [list(e) for e in py]
    assert sum(e["kind"] == "trigger" for e in nat) >= 2, "the tones must fire the trigger"
    for n, p in zip(nat, py):
        if n["kind"] == "trigger":
            assert n["score"] == pytest.approx(p["score"], abs=SCORE_TOL)
        if n["kind"] == "local_inference":
            assert n["confidence"] == pytest.approx(p["confidence"], abs=SCORE_TOL)
            for (_, a), (_, b) in zip(n["top"], p["top"]):
                assert a == pytest.approx(b, abs=SCORE_TOL)
        if n["kind"] == "offload":
            assert 0.5 * p["bytes"] <= n["bytes"] <= 2.0 * p["bytes"]
        assert math.isclose(n["energy_mj"], p["energy_mj"], rel_tol=ENERGY_REL_TOL)


@pytest.mark.parametrize("index", [0, 1])
def test_native_matches_python_with_an_early_stage(native_bin, native_world, programs, tmp_path, index):
    from tests.helpers.edge_world import with_early_stage

    early = with_early_stage(programs, tmp_path / "early")
    py = _python_events(native_world[index], early, tmp_path / "py.jsonl", "audio_trigger")
    rc, nat, err = run_native(native_bin, native_world[index], early, tmp_path / "native.jsonl")
    assert rc == 0, err
    assert _decisions(nat) == _decisions(py)
    assert [list(e) for e in nat] == [list(e) for e in py]
    assert sum(e["kind"] == "early" for e in nat) == 2, "each tone is heard early"
    assert "audio" in {e["offload"] for e in nat if e["kind"] == "offload"}


def test_native_trigger_edges_follow_the_annotated_onsets(native_bin, native_world, programs, tmp_path):
    rc, events, err = run_native(native_bin, native_world[0], programs, tmp_path / "n.jsonl")
    assert rc == 0, err
    fired = [(e["label"], e["t_s"]) for e in events if e["kind"] == "trigger"]
    labels = [lab for lab, _ in fired]
    assert labels[:2] == ["timer_beep", "doorbell"], fired
    assert 1.3 < fired[0][1] <= 1.3 + 0.25 + 1e-9 and 3.6 < fired[1][1] <= 3.6 + 0.25 + 1e-9


def test_stdin_pcm_gives_the_same_trigger_edges(native_bin, native_world, programs, tmp_path):
    import subprocess

    from shared.recording import read_wav

    rec = native_world[1]
    pcm, rate = read_wav(rec / "audio.wav")
    log = tmp_path / "stdin.jsonl"
    proc = subprocess.run([str(native_bin), "--stdin-pcm", "--trigger", str(programs["trigger"]), "--log", str(log),
                           "--threads", "1"], input=pcm.astype("<i2").tobytes(), capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    _, rec_events, _ = run_native(native_bin, rec, programs, tmp_path / "rec.jsonl", "--no-video", student=False)
    edges = lambda evs: [(e["label"], e["t_s"]) for e in evs if e["kind"] == "trigger"]  # noqa: E731
    stdin_events = read_jsonl(log)
    assert edges(stdin_events) and edges(stdin_events) == edges(rec_events)


def _with_queries(rec, out, queries):
    """A copy of recording ``rec`` in ``out`` asking ``queries`` [(t_s, text, gold, kind)] besides its own."""
    import json
    import shutil

    shutil.copytree(rec, out)
    ann = json.loads((out / "annotations.json").read_text())
    ann["queries"] += [{"id": f"v{i}", "t_s": t, "text": text, "answer": gold, "kind": kind, "event_ids": []}
                       for i, (t, text, gold, kind) in enumerate(queries)]
    ann["queries"].sort(key=lambda q: q["t_s"])
    (out / "annotations.json").write_text(json.dumps(ann))
    return out


@pytest.mark.parametrize("policy", ["audio_trigger", "periodic"])
def test_both_runtimes_remember_what_the_student_saw(native_bin, native_world, programs, tmp_path, policy):
    # Recording 0: the frame centre is red (the hand-built student's open_oven) from 2.5 s to 3.5 s,
    # while either policy has the camera on. Both runtimes add every label the student's card
    # decides, visual ones too, so "what did I just do?" is answered from the student's sight.
    rec = _with_queries(native_world[0], tmp_path / "rec", [
        (3.0, "what am I doing?", "chop", "activity"), (3.8, "what did I just do?", "open_oven", "action"),
        (5.9, "what did I just do?", "open_oven", "action")])
    py = _python_events(rec, programs, tmp_path / "py.jsonl", policy)
    rc, nat, err = run_native(native_bin, rec, programs, tmp_path / "native.jsonl", "--policy", policy)
    assert rc == 0, err
    assert _decisions(nat) == _decisions(py)
    answers = {e["query_id"]: e["answer"] for e in nat if e["kind"] == "answer"}
    # idle (the student's label for a grey centre) is neither an action nor an activity: v0 is unknown
    assert answers == {"q000": "timer_beep", "q001": "timer_beep", "v0": "unknown", "v1": "open_oven",
                       "v2": "open_oven"}, answers
