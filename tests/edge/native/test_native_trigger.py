"""Native parity for what issue 17 added: the refractory hold from the card, periodic and
context_aware, and the program checked against its card's sha256 before it loads."""
from __future__ import annotations

import json
import shutil

import pytest

from tests.helpers.native import decisions as _decisions
from tests.helpers.native import python_events as _python_events
from tests.helpers.native import run_native


def _with_card(programs, tmp_path, **changes):
    """A copy of the trigger program whose card has ``changes``."""
    src = programs["trigger"]
    dst = tmp_path / src.name
    shutil.copy(src, dst)
    card = json.loads(src.with_suffix(".json").read_text())
    card.update(changes)
    dst.with_suffix(".json").write_text(json.dumps(card))
    return {**programs, "trigger": dst}


@pytest.mark.parametrize("policy,params", [("periodic", {"period_s": 1.5}), ("context_aware", {}),
                                           ("context_aware", {"noisy_snr_db": 60.0, "probe_period_s": 1.0})])
def test_native_policies_match_python(native_bin, native_world, programs, tmp_path, policy, params):
    rec = native_world[0]
    py = _python_events(rec, programs, tmp_path / "py.jsonl", policy, **params)
    args = ["--policy", policy] + [a for k, v in params.items() for a in ("--param", f"{k}={v}")]
    rc, nat, err = run_native(native_bin, rec, programs, tmp_path / "n.jsonl", *args)
    assert rc == 0, err
    assert _decisions(nat) == _decisions(py)
    assert [list(e) for e in nat] == [list(e) for e in py]
    if policy == "periodic":
        assert sum(e["kind"] == "offload" and e["offload"] == "light" for e in nat) >= 3
    if params.get("noisy_snr_db") == 60.0:  # every hop reads as noisy: the camera probes on its own
        assert any(e["kind"] == "camera" and e["on"] for e in nat)


def test_the_refractory_hold_comes_from_the_card_in_both_runtimes(native_bin, native_world, programs, tmp_path):
    rec = native_world[0]
    edges = lambda evs: [(e["label"], e["t_s"]) for e in evs if e["kind"] == "trigger"]  # noqa: E731
    plain = edges(_python_events(rec, programs, tmp_path / "plain.jsonl", "audio_trigger"))
    held_programs = _with_card(programs, tmp_path, refractory_s=5.0)
    py = _python_events(rec, held_programs, tmp_path / "py.jsonl", "audio_trigger")
    rc, nat, err = run_native(native_bin, rec, held_programs, tmp_path / "n.jsonl")
    assert rc == 0, err
    assert edges(nat) == edges(py)
    assert len(edges(py)) <= len(plain)
    for label in {lab for lab, _ in edges(py)}:  # a label never triggers again within 5 s of its last trigger
        times = [t for lab, t in edges(py) if lab == label]
        assert all(b - a > 5.0 for a, b in zip(times, times[1:]))


def test_a_program_that_does_not_match_its_card_is_refused(native_bin, native_world, programs, tmp_path):
    swapped = _with_card(programs, tmp_path, sha256="0" * 64)
    rc, _, err = run_native(native_bin, native_world[0], swapped, tmp_path / "n.jsonl")
    assert rc == 2 and "sha256" in err and "does not match the card" in err, err
    resized = _with_card(programs, tmp_path / "..", size_bytes=1)
    rc, _, err = run_native(native_bin, native_world[0], resized, tmp_path / "m.jsonl")
    assert rc == 2 and "size_bytes" in err, err



def test_a_label_set_to_one_never_triggers_even_at_a_saturated_score(native_bin, native_world, programs, tmp_path):
    """int8 programs' scores reach exactly 1.0; a threshold of 1 (a label turned off: the
    operating point's "off", a camera woken by some labels only) must still never fire, in
    Python and in the binary alike (shared/trigger.py). The hand-built trigger here saturates."""
    from tests.helpers.edge_world import make_saturating_trigger

    steep = {**programs, "trigger": make_saturating_trigger(tmp_path / "steep")}
    saturated, rec = [], None
    for k, rec in enumerate(native_world):  # a recording where a trigger's score is exactly 1.0
        plain = _python_events(rec, steep, tmp_path / f"plain{k}.jsonl", "audio_trigger")
        saturated = sorted({e["label"] for e in plain if e["kind"] == "trigger" and e["score"] >= 1.0})
        if saturated:
            break
    assert saturated, "no trigger score reached 1.0: the test would prove nothing"
    card = json.loads(steep["trigger"].with_suffix(".json").read_text())
    off = _with_card(steep, tmp_path, thresholds={lab: (1.0 if lab in saturated else th)
                                                   for lab, th in card["thresholds"].items()})
    py = _python_events(rec, off, tmp_path / "py.jsonl", "audio_trigger")
    rc, nat, err = run_native(native_bin, rec, off, tmp_path / "n.jsonl")
    assert rc == 0, err
    fired = lambda evs: [(e["label"], e["t_s"]) for e in evs if e["kind"] == "trigger"]  # noqa: E731
    assert fired(nat) == fired(py)
    assert not {lab for lab, _ in fired(py)} & set(saturated)


def _camera_on_s(events) -> float:
    """Seconds the camera was on, from the camera switch events and the end line."""
    end = next(e["t_s"] for e in reversed(events) if e["kind"] == "end")
    on_s, since = 0.0, None
    for e in events:
        if e["kind"] == "camera":
            if e["on"] and since is None:
                since = e["t_s"]
            elif not e["on"] and since is not None:
                on_s, since = on_s + e["t_s"] - since, None
    return on_s + (end - since if since is not None else 0.0)


def test_a_held_sound_keeps_the_camera_on_in_both_runtimes(native_bin, native_world, programs, tmp_path):
    """audio_trigger.sustain_s: a label still held (here by a 3 s refractory) extends the camera's hold."""
    rec = native_world[0]
    held = _with_card(programs, tmp_path, refractory_s=3.0)
    params = {"hold_s": 0.5, "sustain_s": 2.0, "delay_s": 0.0}
    py = _python_events(rec, held, tmp_path / "py.jsonl", "audio_trigger", **params)
    args = ["--policy", "audio_trigger"] + [a for k, v in params.items() for a in ("--param", f"{k}={v}")]
    rc, nat, err = run_native(native_bin, rec, held, tmp_path / "n.jsonl", *args)
    assert rc == 0, err
    assert _decisions(nat) == _decisions(py)
    assert nat[0]["policy_params"] == py[0]["policy_params"] == params
    plain = _python_events(rec, held, tmp_path / "plain.jsonl", "audio_trigger", hold_s=0.5, delay_s=0.0)
    edges = sum(e["kind"] == "trigger" for e in py)
    assert edges >= 2
    # each edge buys up to 2 s more of camera, never more than sustain_s + hold_s (+ a hop) per edge
    assert _camera_on_s(py) >= _camera_on_s(plain) + 1.5
    assert _camera_on_s(py) <= edges * (2.0 + 0.5 + 0.25) + 1e-6
    rc, _, err = run_native(native_bin, rec, held, tmp_path / "bad.jsonl", "--policy", "audio_trigger",
                            "--param", "sustain_s=-1")
    assert rc != 0 and "audio_trigger.sustain_s: must be a finite number >= 0" in err, err


def test_a_delayed_hold_matches_in_both_runtimes(native_bin, native_world, programs, tmp_path):
    """audio_trigger.delay_s: the trigger's own step, then the camera off for delay_s, then on for hold_s."""
    rec = native_world[0]
    params = {"hold_s": 1.0, "delay_s": 1.0}
    py = _python_events(rec, programs, tmp_path / "py.jsonl", "audio_trigger", **params)
    args = ["--policy", "audio_trigger"] + [a for k, v in params.items() for a in ("--param", f"{k}={v}")]
    rc, nat, err = run_native(native_bin, rec, programs, tmp_path / "n.jsonl", *args)
    assert rc == 0, err
    assert _decisions(nat) == _decisions(py)
    edges = [e["t_s"] for e in py if e["kind"] == "trigger"]
    switches = [(e["t_s"], e["on"]) for e in py if e["kind"] == "camera"]
    assert len(edges) >= 2
    # the camera goes off after the trigger's step and comes back on delay_s later
    first = edges[0]
    assert (first, True) in switches and any(on and abs(t - (first + 1.0)) < 1e-6 for t, on in switches), switches
