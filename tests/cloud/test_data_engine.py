"""The instruction data engine on hand-built annotations: graph, narrations, counterfactual pairs, splits.

The scenes mirror what sim/world scripts (kitchen timer -> open oven, doorbell
-> walk to door -> open door, kettle -> pour, phone -> pick up, "could you pass
the salt" -> reach), with off-screen sources, silent actions and object
states, so every rule is checked against annotations we wrote by hand.
"""
from __future__ import annotations

import json
import random

import pytest

from shared.annotations import Annotations

from cloud.data_engine.engine import RunPlan, build_instruct, narration_records, pair_records, sample_bench_pairs
from cloud.data_engine.graph import AUDIBLE_SNR_DB, build_graph
from cloud.data_engine.narration import narrate
from cloud.data_engine.pairs import PairParams, Probe, answer, make_options, probe_pairs, recording_probes
from cloud.data_engine.qa import QAParams, Window, answer_in, make_windows, window_questions
from cloud.data_engine.records import CATEGORIES, SPLIT_FILES, read_jsonl

from tests.helpers.qa_world import LAYOUT, SCENES, check_records, kitchen, kitchen_twice, street, write_dataset

P = QAParams()
PP = PairParams()
W0 = Window(0, 0.0, 10.0)  # the kitchen's first ten seconds: chop, off-screen timer -> open oven


def _ask(ann, form, *key, w0=0.0, view="av"):
    """The answer of one probe on the window starting at ``w0``."""
    g = build_graph(ann)
    cat = {"sound": "AVH", "action": "AVH", "state": "AVH", "source": "SSA", "sound_of": "SSA", "visible": "SSA",
           "cause": "TR", "response": "TR", "before": "TR"}[form]
    probe = next((p for p in recording_probes(g) if p.form == form and p.key == key), None)
    if probe is None:
        yes_no = form in ("sound", "action", "state", "visible", "before")
        probe = Probe(cat, form, key, "?", "yes_no" if yes_no else "label")
    return answer(probe, g.view(view), g, w0, PP)[0]


# --- context graph and narrations -----------------------------------------------------------


def test_graph_maps_each_sound_to_its_source_and_marks_offscreen():
    g = build_graph(kitchen())
    assert g.sound_sources() == {
        "e001": ("cutting_board", True),
        "e002": ("oven", False),
        "e005": ("housemate", False),
        "e006": ("housemate", True),
        "e009": ("housemate", False),
        "e011": ("kettle", True),
        "e013": ("cup", True),
    }
    fg = {n.id: n.foreground for n in g.of_kind("sound")}
    # causes, the wearer's own sounds and requests are foreground; the rest is background
    assert fg == {"e001": True, "e002": True, "e005": False, "e006": True, "e009": False, "e011": True, "e013": True}
    assert [(l.effect, l.cause, round(l.lag_s, 3)) for l in g.links] == [
        ("e003", "e002", 3.0), ("e004", "e003", 0.7), ("e007", "e006", 2.5), ("e012", "e011", 3.0)]
    summary = g.summary()
    beep = next(s for s in summary["sounds"] if s["label"] == "timer_beep")
    assert beep["source"] == "oven" and beep["on_screen"] is False and beep["ground"] == "foreground"
    dishes = next(s for s in summary["sounds"] if s["label"] == "dishes")
    assert dishes["location"] == "next room" and dishes["ground"] == "background"


def test_views_keep_what_each_narrator_can_know():
    g = build_graph(street())
    av, vis = g.view("av"), g.view("visual")
    # the screen of a phone in the pocket is neither heard nor seen: in no view
    assert not av.has("e006") and not vis.has("e006")
    # walking is seen through ego-motion even with the traffic light out of frame
    assert av.has("e000") and vis.has("e000") and "traffic_light" not in g.scene_objects
    assert {n.id for n in vis.of_kind("sound")} == {"e008"}  # only the passer-by is seen speaking
    assert {n.id for n in av.of_kind("sound")} == {"e001", "e002", "e004", "e008"}
    # the horn -> stop link needs the horn, which the vision-only narrator never sees
    assert [l.cause for l in av.links] == ["e002", "e004"] and vis.links == ()


def test_an_inaudible_sound_is_in_no_view_and_never_heard():
    g = build_graph(kitchen_twice())
    sizzle = g.node("e005")
    assert sizzle.snr_db < AUDIBLE_SNR_DB and not sizzle.audible
    assert not g.view("av").has("e005") and g.view("visual").has("e005")  # the pan is seen sizzling
    for w0 in (18.0, 19.0, 20.0):  # neither "yes" nor "no" where it plays
        assert _ask(kitchen_twice(), "sound", "sizzle", w0=w0) is None
    assert _ask(kitchen_twice(), "sound", "sizzle", w0=5.0) == "no"  # far from it: a sure "no"


def test_visual_narration_never_mentions_offscreen_sounds_and_av_does():
    for make in SCENES.values():
        g = build_graph(make())
        vis, av = "\n".join(narrate(g.view("visual"))), "\n".join(narrate(g.view("av")))
        for n in g.of_kind("sound"):
            line = f"{n.onset_s:6.1f}s"
            hits_vis = [l for l in vis.splitlines() if l.startswith(line) and n.label in l]
            hits_av = [l for l in av.splitlines() if l.startswith(line) and n.label in l]
            assert bool(hits_av) == n.audible, f"{n.label}: audible {n.audible}, in the AV narration: {hits_av}"
            if n.on_screen is True:
                assert hits_vis, f"on-screen {n.label} missing from the visual narration"
            else:
                assert not hits_vis, f"off-screen {n.label} leaked into the visual narration: {hits_vis}"
    av = narrate(build_graph(kitchen()).view("av"))
    assert "   3.0s  heard timer_beep from the oven (off-screen)" in av
    assert "   6.0s  you open_oven (oven), 3.0s after timer_beep" in av
    vis = narrate(build_graph(kitchen()).view("visual"))
    assert "   6.0s  you open_oven (oven)" in vis and not any("timer_beep" in l for l in vis)


# --- counterfactual probes against the annotations ------------------------------------------


def test_avh_yes_inside_no_only_when_far_none_in_between():
    k = kitchen()  # timer_beep 3.0-6.0
    assert _ask(k, "sound", "timer_beep", w0=0.0) == "yes"
    assert _ask(k, "sound", "timer_beep", w0=5.0) == "yes"  # 1.0 s of overlap
    assert _ask(k, "sound", "timer_beep", w0=5.8) is None  # grazes the window: not certain
    assert _ask(k, "sound", "timer_beep", w0=6.5) is None  # within the 1 s margin
    assert _ask(k, "sound", "timer_beep", w0=7.5) == "no"
    # vision-only narration: the off-screen beep was never heard, the on-screen chopping was
    assert _ask(k, "sound", "timer_beep", w0=0.0, view="visual") == "no"
    assert _ask(k, "sound", "chopping", w0=0.0, view="visual") == "yes"
    assert _ask(k, "action", "open_oven", w0=0.0) == "yes" and _ask(k, "action", "open_oven", w0=12.0) == "no"
    assert _ask(k, "state", "oven_door_open", w0=0.0) == "yes" and _ask(k, "state", "oven_door_open", w0=20.0) == "no"


def test_ssa_source_or_none_and_contrast_between_sources():
    k2 = kitchen_twice()
    assert _ask(k2, "source", "timer_beep", w0=0.0) == "oven"
    assert _ask(k2, "source", "timer_beep", w0=15.0) == "microwave"
    assert _ask(k2, "source", "timer_beep", w0=7.2) is None  # 7.2-17.2 grazes the microwave's beep (17-19)
    assert _ask(k2, "source", "doorbell", w0=0.0) == "door"
    assert _ask(k2, "source", "doorbell", w0=14.0) == "none"
    assert _ask(k2, "source", "timer_beep", w0=0.0, view="visual") == "none"  # off-screen: not in that narration
    assert _ask(k2, "sound_of", "microwave", w0=15.0) == "timer_beep"
    assert _ask(k2, "sound_of", "microwave", w0=0.0) == "none"
    assert _ask(k2, "visible", "timer_beep", w0=0.0) == "no" and _ask(k2, "visible", "timer_beep", w0=15.0) == "yes"
    assert _ask(k2, "visible", "doorbell", w0=14.0) is None  # no doorbell: nothing to ask


def test_tr_cause_heard_inside_the_window_response_or_none():
    k2 = kitchen_twice()
    assert _ask(k2, "cause", "open_oven", w0=0.0) == "timer_beep"
    assert _ask(k2, "cause", "open_oven", w0=2.0) is None  # the beep began before the window: not heard
    assert _ask(k2, "cause", "open_oven", w0=10.0) == "none"
    assert _ask(k2, "cause", "open_oven", w0=0.0, view="visual") is None  # vision cannot say why
    assert _ask(k2, "response", "timer_beep", w0=0.0) == "open_oven"
    assert _ask(k2, "response", "timer_beep", w0=15.0) == "open_microwave"
    # the doorbell at 9.0 nobody answered: "none" once 6 s have passed without a response
    assert _ask(k2, "response", "doorbell", w0=7.0) == "none"
    assert _ask(k2, "response", "doorbell", w0=4.0) is None  # 9.0 -> 14.0: a response could still come
    assert _ask(k2, "response", "doorbell", w0=20.0) == "none"  # no doorbell at all
    k = kitchen()
    assert _ask(k, "before", "timer_beep", "open_oven", w0=0.0) == "yes"
    assert _ask(k, "before", "open_oven", "timer_beep", w0=0.0) == "no"
    assert _ask(k, "before", "chopping", "timer_beep", w0=1.0) is None  # chopping began before the window


def test_pairs_differ_in_gold_and_match_the_probe_answers():
    g = build_graph(kitchen_twice())
    pairs = probe_pairs(g, PP, random.Random(0), per_probe=2)
    forms = {(p.probe.form, p.kind) for p in pairs}
    assert ("source", "contrast") in forms and ("cause", "presence") in forms and ("sound", "presence") in forms
    for pair in pairs:
        assert pair.answers[0] != pair.answers[1]
        for w0, gold in zip(pair.starts, pair.answers):
            assert 0.0 <= w0 <= g.duration_s - PP.window_s
            assert answer(pair.probe, g.view("av"), g, w0, PP)[0] == gold
        if pair.probe.answer_type == "yes_no":
            assert sorted(pair.answers) == ["no", "yes"]
    src = [p for p in pairs if p.probe.form == "source" and p.probe.key == ("timer_beep",)]
    assert src and all(p.kind == "contrast" and sorted(p.answers) == ["microwave", "oven"] for p in src)
    assert probe_pairs(g, PP, random.Random(0), 2)[0].starts == pairs[0].starts  # seeded


def test_pair_records_carry_pair_ids_options_and_visual_twins():
    g = build_graph(kitchen_twice())
    options = make_options([build_graph(m()) for m in SCENES.values()])
    assert options.sources_of["timer_beep"] == ("microwave", "oven")
    pairs = probe_pairs(g, PP, random.Random(0))
    av, vis, ids = pair_records(g, pairs, PP, P, options)
    assert len(av) == 2 * len(pairs) == 2 * len(ids) and len(set(ids)) == len(ids)
    by_pair = {}
    for r in av:
        by_pair.setdefault(r.meta["pair_id"], []).append(r)
        assert r.answer in r.meta["options"] and r.t_query_s == r.window_s[1]
        assert r.meta["pair_kind"] in ("contrast", "presence") and r.meta["pair_role"] in ("a", "b")
    for recs in by_pair.values():
        a, b = recs
        assert (a.question, a.category, a.evidence) == (b.question, b.category, b.evidence)
        assert a.answer != b.answer and {a.meta["pair_role"], b.meta["pair_role"]} == {"a", "b"}
    # AVH pairs are balanced exactly: one yes, one no
    avh = [r for r in av if r.category == "AVH"]
    assert sum(r.answer == "yes" for r in avh) == sum(r.answer == "no" for r in avh) > 0
    twins = {r.id.rsplit(".", 1)[0] for r in vis}
    assert twins <= {r.id.rsplit(".", 1)[0] for r in av}
    cause = [r for r in av if r.meta["probe"] == ["open_oven"] and r.answer == "timer_beep"]
    assert cause and cause[0].id.rsplit(".", 1)[0] not in twins  # vision cannot say what caused it (off-screen)


def test_avdn_and_avsn_answers_from_each_narration():
    g = build_graph(kitchen())
    qs = window_questions(g, W0, P)
    av, vis = g.view("av"), g.view("visual")
    dense, summ = qs
    assert answer_in(dense, av, W0, P) == "0s chop; 0s chopping; 3s timer_beep; 6s open_oven; 8s footsteps"
    assert answer_in(dense, vis, W0, P) == "0s chop; 0s chopping; 6s open_oven"
    assert answer_in(summ, av, W0, P) == "kitchen; heard: chopping, timer_beep, footsteps; did: chop, open_oven"
    assert answer_in(summ, vis, W0, P) == "kitchen; heard: chopping; did: chop, open_oven"
    short = QAParams(avdn_max_items=2, avsn_max_labels=1)
    assert answer_in(dense, av, W0, short) == "0s chop; 0s chopping"
    assert answer_in(summ, av, W0, short) == "kitchen; heard: chopping; did: chop"


def test_windows_anchor_cause_links_and_stay_in_the_recording():
    g = build_graph(kitchen())
    for seed in range(20):
        ws = make_windows(g, 6, 10.0, random.Random(seed))
        assert 3 <= len(ws) <= 6 and [w.index for w in ws] == list(range(len(ws)))
        assert all(0.0 <= w.start_s and w.end_s <= 30.0 + 1e-9 and abs(w.end_s - w.start_s - 10.0) < 1e-6 for w in ws)
        for cause, effect in (("e002", "e003"), ("e006", "e007"), ("e011", "e012")):
            c, e = g.node(cause), g.node(effect)
            assert any(w.start_s <= c.onset_s and e.onset_s + 1.0 <= w.end_s + 0.05 for w in ws), (seed, cause)
    assert make_windows(build_graph(Annotations("short", 4.0)), 6, 10.0, random.Random(0)) == [Window(0, 0.0, 4.0)]


def test_narration_records_from_both_views():
    g = build_graph(kitchen())
    av, vis = narration_records(g, make_windows(g, 4, 10.0, random.Random(0)), P, 0)
    assert {r.category for r in av} == {"AVDN", "AVSN"} and len(av) == len(vis)
    for r, v in zip(av, vis):
        assert r.id.rsplit(".", 1)[0] == v.id.rsplit(".", 1)[0] and v.meta["agrees_with_av"] == (v.answer == r.answer)
        assert r.meta["environment"] == "kitchen" and r.meta["noise"] == "noisy"


# --- the dataset: splits, bench, determinism --------------------------------------------------


def _build(tmp_path, name="qa", seed=0, pairs_per_category=4, per_category=3):
    ds = tmp_path / "world"
    if not ds.exists():
        write_dataset(ds)
    plan = RunPlan(seed=seed, windows_per_recording=4, bench_windows_per_recording=8,
                   bench_pairs_per_category=pairs_per_category, bench_per_category=per_category)
    info = build_instruct(ds, tmp_path / name, QAParams(), plan, PairParams(), config={"seed": seed})
    return tmp_path / name, info


def test_splits_by_recording_and_bench_has_exact_pair_counts(tmp_path):
    out, info = _build(tmp_path)
    split_of = {rid: split for rid, _, _, split in LAYOUT}
    recs = {k: read_jsonl(out / f) for k, f in SPLIT_FILES.items()}
    assert {split_of[r.recording_id] for r in recs["train_av"] + recs["train_visual"]} == {"train"}
    assert {split_of[r.recording_id] for r in recs["val_av"] + recs["val_visual"]} == {"val"}
    assert {split_of[r.recording_id] for r in recs["bench"]} == {"test"}
    assert all(r.narration == "av" for r in recs["bench"])
    bench = recs["bench"]
    for c in ("SSA", "TR", "AVH"):
        pairs = {r.meta["pair_id"] for r in bench if r.category == c}
        assert len(pairs) == 4 == info["bench"]["pairs"][c]
        assert sum(r.category == c for r in bench) == 8  # both windows of every pair
    assert {c: sum(r.category == c for r in bench) for c in ("AVDN", "AVSN")} == {"AVDN": 3, "AVSN": 3}
    assert info["bench"]["complete"] and info["bench"]["shortfall"] == {}
    for k, rs in recs.items():
        assert info["counts"][k]["categories"]["total"] == len(rs)
    assert set(info["answer_vocab"]) >= {"yes", "no", "none", "timer_beep", "open_oven", "0s", "heard", "kitchen"}
    narr = json.loads((out / "narrations" / "kitchen_0000.json").read_text())
    assert narr["split"] == "train" and narr["graph"]["sounds"][0]["source"] == "cutting_board"
    assert any("timer_beep" in l for l in narr["narration_av"]) and not any("timer_beep" in l for l in narr["narration_visual"])


def test_bench_reports_a_shortfall(tmp_path):
    out, info = _build(tmp_path, pairs_per_category=10_000)
    bench = read_jsonl(out / "bench.jsonl")
    assert not info["bench"]["complete"]
    for c in ("SSA", "TR", "AVH"):
        n = len({r.meta["pair_id"] for r in bench if r.category == c})
        assert n == info["bench"]["available"][c] and info["bench"]["shortfall"][c] == 10_000 - n


def test_bench_pair_sampling_spreads_over_forms():
    g = build_graph(kitchen_twice())
    av, _, _ = pair_records(g, probe_pairs(g, PP, random.Random(0)), PP, P, make_options([g]))
    chosen, available = sample_bench_pairs(av, 3, seed=0)
    for cat in ("SSA", "TR", "AVH"):
        forms = [r.meta["form"] for r in chosen if r.category == cat and r.meta["pair_role"] == "a"]
        assert len(forms) == min(3, available[cat]) and len(set(forms)) == min(len(forms), 3) or len(set(forms)) >= 2


def test_same_inputs_same_bytes_and_the_seed_matters(tmp_path):
    a, _ = _build(tmp_path, "a")
    b, _ = _build(tmp_path, "b")
    c, _ = _build(tmp_path, "c", seed=1)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 6 + len(LAYOUT)
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    assert (a / "train_av.jsonl").read_bytes() != (c / "train_av.jsonl").read_bytes()


def test_out_that_is_not_ours_is_refused(tmp_path):
    from shared.config import UserError

    (tmp_path / "qa").mkdir()
    (tmp_path / "qa" / "precious.txt").write_text("keep me")
    with pytest.raises(UserError, match="out: .* is not an earshot instruct output"):
        _build(tmp_path)
    assert (tmp_path / "qa" / "precious.txt").exists()
    _build(tmp_path, "qa2")
    _build(tmp_path, "qa2")  # an earlier output is replaced


def test_every_record_of_the_hand_built_dataset_is_true(tmp_path):
    out, _ = _build(tmp_path)
    anns = {rid: SCENES[scene](rid, dt) for rid, scene, dt, _ in LAYOUT}
    recs = [r for f in SPLIT_FILES.values() for r in read_jsonl(out / f)]
    done = check_records(anns, recs)
    assert {"SSA/source", "SSA/visible", "SSA/sound_of", "TR/cause", "TR/response", "AVH/sound",
            "AVH/action", "AVH/state", "AVDN/dense", "AVSN/summary"} <= set(done), done
