"""The instruction data engine on hand-built annotations: graph, narrations, QA per category, splits.

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

from cloud.data_engine.engine import RunPlan, build_instruct, recording_records, sample_bench
from cloud.data_engine.graph import build_graph
from cloud.data_engine.narration import narrate
from cloud.data_engine.qa import QAParams, Window, answer_in, make_pools, make_windows, window_questions
from cloud.data_engine.records import CATEGORIES, SPLIT_FILES, read_jsonl


from tests.helpers.qa_world import LAYOUT, SCENES, check_records, kitchen, living_room, office, street, write_dataset

P = QAParams()
W0 = Window(0, 0.0, 10.0)  # the kitchen's first ten seconds: chop, off-screen timer -> open oven


def _questions(ann, w=W0, p=P, seed=0):
    g = build_graph(ann)
    pools = make_pools([g, build_graph(office()), build_graph(street())], [g, build_graph(office()), build_graph(street())])
    return g, window_questions(g, w, p, random.Random(seed), pools)


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


def test_visual_narration_never_mentions_offscreen_sounds_and_av_does():
    for make in SCENES.values():
        g = build_graph(make())
        vis, av = "\n".join(narrate(g.view("visual"))), "\n".join(narrate(g.view("av")))
        for n in g.of_kind("sound"):
            line = f"{n.onset_s:6.1f}s"
            hits_vis = [l for l in vis.splitlines() if l.startswith(line) and n.label in l]
            hits_av = [l for l in av.splitlines() if l.startswith(line) and n.label in l]
            assert hits_av, f"{n.label} missing from the AV narration"
            if n.on_screen is True:
                assert hits_vis, f"on-screen {n.label} missing from the visual narration"
            else:
                assert not hits_vis, f"off-screen {n.label} leaked into the visual narration: {hits_vis}"
    av = narrate(build_graph(kitchen()).view("av"))
    assert "   3.0s  heard timer_beep from the oven (off-screen)" in av
    assert "   6.0s  you open_oven (oven), 3.0s after timer_beep" in av
    vis = narrate(build_graph(kitchen()).view("visual"))
    assert "   6.0s  you open_oven (oven)" in vis and not any("timer_beep" in l for l in vis)


# --- each category against the annotations ------------------------------------------------------


def _by(qs, cat, form=None):
    return [q for q in qs if q.category == cat and (form is None or q.form == form)]


def test_avdn_and_avsn_answers_from_each_narration():
    g, qs = _questions(kitchen())
    av, vis = g.view("av"), g.view("visual")
    dense, summ = _by(qs, "AVDN")[0], _by(qs, "AVSN")[0]
    assert answer_in(dense, av, W0, P) == "0s chop; 0s chopping; 3s timer_beep; 6s open_oven; 8s footsteps"
    assert answer_in(dense, vis, W0, P) == "0s chop; 0s chopping; 6s open_oven"
    assert answer_in(summ, av, W0, P) == "kitchen; heard: chopping, timer_beep, footsteps; did: chop, open_oven"
    assert answer_in(summ, vis, W0, P) == "kitchen; heard: chopping; did: chop, open_oven"
    short = QAParams(avdn_max_items=2, avsn_max_labels=1)
    assert answer_in(dense, av, W0, short) == "0s chop; 0s chopping"
    assert answer_in(summ, av, W0, short) == "kitchen; heard: chopping; did: chop"


def test_ssa_answer_is_the_annotated_source_and_offscreen_drops_from_visual():
    ann = kitchen()
    g = build_graph(ann)
    av, vis = g.view("av"), g.view("visual")
    seen = {}
    for seed in range(40):  # the form drawn per sound varies with the seed
        for q in _by(_questions(ann, seed=seed)[1], "SSA"):
            ev = ann.event(q.refs[0])
            gold = answer_in(q, av, W0, P)
            expected = {"source": ev.source, "sound_of": ev.label, "visible": "yes" if ev.source_visible else "no"}
            assert gold == expected[q.form], (q, gold)
            seen[(ev.label, q.form)] = answer_in(q, vis, W0, P)
    # the off-screen beep: "oven" in AV, and no question at all from the vision-only narration
    assert seen[("timer_beep", "source")] is None and seen[("timer_beep", "visible")] is None
    assert seen[("chopping", "source")] == "cutting_board" and seen[("chopping", "visible")] == "yes"
    # footsteps (off-screen, 8-10 s) are asked about too
    assert ("footsteps", "source") in seen


def test_tr_cause_is_the_annotated_cause_with_its_lag():
    ann = kitchen()
    g = build_graph(ann)
    av, vis = g.view("av"), g.view("visual")
    causes = [q for s in range(20) for q in _by(_questions(ann, seed=s)[1], "TR", "cause")
              if q.refs == ("e003", "e002")]
    assert causes, "no cause question in the window that holds timer_beep -> open_oven"
    cause = causes[0]
    assert cause.text == "what caused open_oven?"
    assert answer_in(cause, av, W0, P) == "timer_beep" == ann.event(ann.event("e003").cause).label
    assert cause.meta["lag_s"] == 3.0 and cause.meta["offscreen"] is True
    assert answer_in(cause, vis, W0, P) is None  # the vision-only narration has no beep to blame


def test_tr_ordering_and_visual_only_questions():
    g = build_graph(living_room())
    w = Window(0, 1.0, 11.0)  # doorbell 2.0 -> walk 5.0 -> open 7.5 -> door_open 8.1
    pools = make_pools([g], [g])
    forms = {}
    for seed in range(60):
        for q in window_questions(g, w, QAParams(tr_per_window=6), random.Random(seed), pools):
            if q.category == "TR":
                forms.setdefault(q.form, []).append(q)
    assert set(forms) == {"cause", "response", "first", "before", "order"}
    av, vis = g.view("av"), g.view("visual")
    for q in forms["order"]:
        onsets = [av.node(r).onset_s for r in q.refs]
        assert answer_in(q, av, w, P) == ", ".join(av.node(r).label for r in sorted(q.refs, key=lambda r: av.node(r).onset_s))
        assert min(abs(a - b) for i, a in enumerate(onsets) for b in onsets[i + 1:]) >= 1.0
    for q in forms["cause"]:
        eff = av.node(q.refs[0])
        assert answer_in(q, av, w, P) == av.node(eff.cause).label
        assert w.start_s <= av.node(eff.cause).onset_s < eff.onset_s < w.end_s
    # walk_to_door -> open_door is seen: the same answer from both narrations
    both = [q for q in forms["cause"] if q.refs == ("e004", "e002")]
    assert both and answer_in(both[0], vis, w, P) == answer_in(both[0], av, w, P) == "walk_to_door"


def test_avh_positives_present_negatives_really_absent():
    ann = kitchen()
    g = build_graph(ann)
    every = [g, build_graph(office()), build_graph(street()), build_graph(living_room())]
    pools = make_pools(every, every)
    assert "car" in pools.objects and "tv" in pools.objects
    assert "driver" not in pools.objects and "someone" not in pools.objects  # heard, never seen
    n_neg = n_pos = 0
    for seed in range(30):
        for w in make_windows(g, 6, 10.0, random.Random(seed)):
            for q in window_questions(g, w, QAParams(avh_positives_per_window=3, negatives_ratio=2.0),
                                      random.Random(seed), pools):
                if q.category != "AVH":
                    continue
                kind, label = q.probe
                lo, hi = w.start_s - P.negative_margin_s, w.end_s + P.negative_margin_s
                if q.meta["polarity"] == "negative":
                    n_neg += 1
                    assert answer_in(q, g.view("av"), w, P) == "no"
                    if kind == "object":
                        assert label not in ann.objects and label not in {e.source for e in ann.events}
                    else:
                        assert not [e for e in ann.events if e.label == label and e.onset_s <= hi and e.offset_s >= lo]
                else:
                    n_pos += 1
                    assert answer_in(q, g.view("av"), w, P) == "yes"
                    if kind != "object":
                        assert [e for e in ann.events if e.label == label and e.onset_s < w.end_s and e.offset_s > w.start_s]
    assert n_neg >= 2 * n_pos > 0


def test_avh_sound_probe_offscreen_is_no_in_the_visual_narration():
    g, qs = _questions(kitchen(), p=QAParams(avh_positives_per_window=8))
    probes = {q.probe: q for q in _by(qs, "AVH") if q.meta["polarity"] == "positive"}
    beep, chopping = probes[("sound", "timer_beep")], probes[("sound", "chopping")]
    assert answer_in(beep, g.view("av"), W0, P) == "yes" and answer_in(beep, g.view("visual"), W0, P) == "no"
    assert answer_in(chopping, g.view("visual"), W0, P) == "yes"
    assert beep.meta["offscreen"] is True and chopping.meta["offscreen"] is False
    oven = probes[("object", "oven")]  # seen while opening it
    assert answer_in(oven, g.view("visual"), W0, P) == "yes"


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


# --- records of a recording, the two training sets ---------------------------------------------


def _records(ann, seed=0):
    g = build_graph(ann)
    every = [build_graph(m()) for m in SCENES.values()]
    pools = make_pools(every, every)
    return g, recording_records(g, make_windows(g, 6, 10.0, random.Random(seed)), P, pools, seed)


@pytest.mark.parametrize("scene", sorted(SCENES))
def test_visual_set_is_the_av_questions_answered_from_vision(scene):
    ann = SCENES[scene]()
    g, (av, vis) = _records(ann)
    twins = {r.id.rsplit(".", 1)[0]: r for r in vis}
    assert len({r.id for r in av} | {r.id for r in vis}) == len(av) + len(vis)
    for r in av:
        v = twins.get(r.id.rsplit(".", 1)[0])
        if r.evidence == "visual":  # visual-only questions: identical in both sets
            assert v is not None and (v.question, v.answer, v.window_s) == (r.question, r.answer, r.window_s), r
        if r.category == "SSA":
            offscreen = ann.event(r.meta["event_ids"][0]).source_visible is not True
            assert (v is None) == offscreen  # an off-screen sound cannot be asked about from vision
        if v is not None:
            assert v.meta["agrees_with_av"] == (v.answer == r.answer) and v.narration == "visual"
    # every answer in the visual set is true of what is visible
    for v in vis:
        if v.category == "AVH" and v.meta["probe_kind"] == "sound" and v.answer == "yes":
            ids = v.meta["event_ids"]
            assert any(ann.event(i).source_visible for i in ids)


def test_records_meta_and_evidence():
    ann = kitchen()
    g, (av, vis) = _records(ann)
    assert {r.category for r in av} == set(CATEGORIES)
    for r in av:
        assert r.meta["environment"] == "kitchen" and r.meta["snr_db"] == 2.0 and r.meta["noise"] == "noisy"
        assert r.t_query_s == r.window_s[1] and r.window_s[1] - r.window_s[0] == pytest.approx(10.0)
        assert len(r.answer.split()) <= 12, r.answer
        if r.category == "TR" and r.meta["form"] in ("cause", "response"):
            a, b = (ann.event(i) for i in r.meta["event_ids"])
            eff, cau = (a, b) if r.meta["form"] == "cause" else (b, a)
            assert eff.cause == cau.id and r.meta["lag_s"] == pytest.approx(eff.onset_s - cau.onset_s)
            assert r.window_s[0] <= cau.onset_s and eff.onset_s < r.window_s[1]
        if r.category == "SSA":
            ev = ann.event(r.meta["event_ids"][0])
            assert r.evidence == ("audiovisual" if ev.source_visible else "audio")
        if r.category == "AVH":
            assert r.evidence == ("audio" if r.meta["probe_kind"] == "sound" else "visual")
    # the off-screen timer -> open oven link is asked about (cause or response) with its 3 s lag
    beep = [r for r in av if r.category == "TR" and set(r.meta["event_ids"]) == {"e002", "e003"}]
    assert beep and all(r.meta["offscreen"] and r.meta["lag_s"] == 3.0 for r in beep)


# --- the dataset: splits, bench, determinism --------------------------------------------------


def _build(tmp_path, name="qa", seed=0, per_category=5, **kw):
    ds = tmp_path / "world"
    if not ds.exists():
        write_dataset(ds)
    plan = RunPlan(seed=seed, windows_per_recording=4, bench_windows_per_recording=8, bench_per_category=per_category)
    info = build_instruct(ds, tmp_path / name, QAParams(**kw), plan, config={"seed": seed})
    return tmp_path / name, info


def test_splits_by_recording_and_bench_has_exact_counts(tmp_path):
    out, info = _build(tmp_path)
    split_of = {rid: split for rid, _, _, split in LAYOUT}
    recs = {k: read_jsonl(out / f) for k, f in SPLIT_FILES.items()}
    assert {split_of[r.recording_id] for r in recs["train_av"] + recs["train_visual"]} == {"train"}
    assert {split_of[r.recording_id] for r in recs["val_av"] + recs["val_visual"]} == {"val"}
    assert {split_of[r.recording_id] for r in recs["bench"]} == {"test"}
    assert all(r.narration == "av" for r in recs["bench"])
    assert {c: sum(r.category == c for r in recs["bench"]) for c in CATEGORIES} == {c: 5 for c in CATEGORIES}
    assert info["bench"]["complete"] and info["bench"]["shortfall"] == {}
    for k, rs in recs.items():
        assert info["counts"][k]["categories"]["total"] == len(rs)
        assert info["counts"][k]["categories"]["AVH"] == sum(r.category == "AVH" for r in rs)
    assert set(info["answer_vocab"]) >= {"yes", "no", "timer_beep", "open_oven", "0s", "heard", "did", "kitchen"}
    assert info["answer_vocab_size"] == len(info["answer_vocab"])
    assert sorted(p.name for p in (out / "narrations").iterdir()) == sorted(f"{rid}.json" for rid, *_ in LAYOUT)
    narr = json.loads((out / "narrations" / "kitchen_0000.json").read_text())
    assert narr["split"] == "train" and narr["graph"]["sounds"][0]["source"] == "cutting_board"
    assert any("timer_beep" in l for l in narr["narration_av"]) and not any("timer_beep" in l for l in narr["narration_visual"])


def test_bench_reports_a_shortfall(tmp_path):
    out, info = _build(tmp_path, per_category=10_000)
    bench = read_jsonl(out / "bench.jsonl")
    assert not info["bench"]["complete"]
    for c in CATEGORIES:
        n = sum(r.category == c for r in bench)
        assert n == info["bench"]["available"][c] and info["bench"]["shortfall"][c] == 10_000 - n


def test_bench_sampling_balances_forms_and_skips_duplicates():
    g, (av, _) = _records(kitchen("kitchen_t"))
    chosen, available = sample_bench(av, 4, seed=0)
    keys = [(r.category, r.meta["form"], tuple(r.meta["event_ids"])) for r in chosen if r.category in ("SSA", "TR")]
    assert len(keys) == len(set(keys))
    avh = [r for r in chosen if r.category == "AVH"]
    # one of each stratum: sound yes, sound no, visual yes, visual no
    assert sorted((r.meta["probe_kind"] == "sound", r.meta["polarity"]) for r in avh) == [
        (False, "negative"), (False, "positive"), (True, "negative"), (True, "positive")]
    narr = [r.answer for r in chosen if r.category in ("AVDN", "AVSN")]
    assert len(narr) == len(set(narr)) == 8


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
    assert {"SSA/source", "SSA/visible", "SSA/sound_of", "TR/cause", "TR/response", "TR/order", "TR/first",
            "TR/before", "AVH/sound", "AVH/action", "AVH/state", "AVH/object", "AVDN/dense", "AVSN/summary"} <= set(done)
