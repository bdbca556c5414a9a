"""The instruction data engine on hand-built annotations: graph, narrations, counterfactual pairs, splits.

The scenes mirror what sim/world scripts (kitchen timer -> open oven, doorbell
-> walk to door -> open door, kettle -> pour, phone -> pick up, "could you pass
the salt" -> reach), with off-screen sources, silent actions and object
states, so every rule is checked against annotations we wrote by hand.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from shared.annotations import Annotations, Event

from cloud.data_engine.engine import RunPlan, build_instruct, narration_records, pair_records, sample_bench_pairs
from cloud.data_engine.graph import AUDIBLE_SNR_DB, build_graph
from cloud.data_engine.narration import narrate
from cloud.data_engine.pairs import PairParams, Probe, answer, make_options, probe_pairs, recording_probes
from cloud.data_engine.qa import QAParams, Window, answer_in, make_windows, window_questions
from cloud.data_engine.records import CATEGORIES, SPLIT_FILES, read_jsonl


# --- hand-built scenes ----------------------------------------------------------------------


def E(id, t0, t1, label, modality, source=None, visible=None, cause=None, **attrs):
    return Event(id, t0, t1, label, modality, source=source, source_visible=visible, cause=cause, attrs=attrs)


def kitchen(rid="kitchen_a", dt=0.0, snr_db=2.0) -> Annotations:
    """Chopping; an off-screen timer beeps and the wearer opens the oven 3 s later; the
    housemate asks for the salt; dishes in the next room; the kettle whistles -> pour."""
    s = lambda t: round(t + dt, 3)  # noqa: E731
    ev = [
        E("e000", s(0.0), s(5.5), "chop", "visual", "cutting_board"),
        E("e001", s(0.4), s(5.0), "chopping", "audio", "cutting_board", True, action_id="e000"),
        E("e002", s(3.0), s(6.0), "timer_beep", "audio", "oven", False),
        E("e003", s(6.0), s(7.2), "open_oven", "visual", "oven", cause="e002", lag_s=3.0),
        E("e004", s(6.7), s(10.0), "oven_door_open", "visual", "oven", cause="e003"),
        E("e005", s(8.0), s(10.0), "footsteps", "audio", "housemate", False, location="hallway"),
        E("e006", s(12.0), s(14.0), "speech", "audio", "housemate", True,
          text="could you pass the salt", request=True, object="salt"),
        E("e007", s(14.5), s(16.1), "reach_for_object", "visual", "salt", cause="e006", object="salt", lag_s=2.5),
        E("e008", s(16.5), s(22.0), "stir", "visual", "pan"),  # a silent action
        E("e009", s(18.0), s(20.0), "dishes", "audio", "housemate", False, location="next room"),
        E("e010", s(19.0), s(27.0), "kettle_steaming", "visual", "kettle"),
        E("e011", s(22.0), s(25.0), "kettle_whistle", "audio", "kettle", True),
        E("e012", s(25.0), s(28.0), "pour", "visual", "kettle", cause="e011", lag_s=3.0),
        E("e013", s(25.6), s(27.7), "pouring", "audio", "cup", True, action_id="e012"),
    ]
    return Annotations(rid, 30.0 + dt, "kitchen", snr_db, ev,
                       objects=["counter", "cutting_board", "oven", "kettle", "pan", "salt", "cup", "sink", "housemate"])


def living_room(rid="living_a", dt=0.0, snr_db=12.0) -> Annotations:
    """Doorbell off-screen -> walk to door -> open door -> door open; a phone rings -> pick up."""
    s = lambda t: round(t + dt, 3)  # noqa: E731
    ev = [
        E("e000", s(0.0), s(5.0), "idle", "visual", "tv"),
        E("e001", s(2.0), s(3.5), "doorbell", "audio", "door", False),
        E("e002", s(5.0), s(7.5), "walk_to_door", "visual", "door", cause="e001", lag_s=3.0),
        E("e003", s(5.1), s(7.4), "footsteps", "audio", "wearer", False, action_id="e002"),
        E("e004", s(7.5), s(8.5), "open_door", "visual", "door", cause="e002"),
        E("e005", s(8.0), s(8.8), "door_sound", "audio", "door", True, action_id="e004"),
        E("e006", s(8.1), s(12.0), "door_open", "visual", "door", cause="e004"),
        E("e007", s(8.9), s(10.9), "speech", "audio", "visitor", True, text="hello, a parcel for you"),
        E("e008", s(16.0), s(19.0), "phone_ring", "audio", "phone", True),
        E("e009", s(18.0), s(19.2), "pick_up_phone", "visual", "phone", cause="e008", lag_s=2.0),
        E("e010", s(16.0), s(23.0), "phone_screen_lit", "visual", "phone", cause="e008"),
        E("e011", s(19.2), s(23.0), "read", "visual", "phone"),
        E("e012", s(24.0), s(26.0), "alarm", "audio", "someone", False, location="bedroom"),
        E("e013", s(23.5), s(29.0), "idle", "visual", "tv"),
    ]
    return Annotations(rid, 30.0 + dt, "living_room", snr_db, ev,
                       objects=["coffee_table", "tv", "door", "sofa", "friend", "phone", "remote"])


def office(rid="office_a", dt=0.0, snr_db=22.0) -> Annotations:
    """Typing; an off-screen notification; a colleague asks for the stapler; a knock -> door."""
    s = lambda t: round(t + dt, 3)  # noqa: E731
    ev = [
        E("e000", s(0.0), s(9.0), "type", "visual", "keyboard"),
        E("e001", s(0.4), s(8.6), "keyboard_typing", "audio", "keyboard", True, action_id="e000"),
        E("e002", s(4.0), s(4.6), "phone_notification", "audio", "colleague_desk", False),
        E("e003", s(9.5), s(11.5), "speech", "audio", "colleague", False,
          text="could you pass the stapler", request=True, object="stapler"),
        E("e004", s(13.0), s(14.6), "reach_for_object", "visual", "stapler", cause="e003", object="stapler", lag_s=3.5),
        E("e005", s(15.0), s(20.0), "read", "visual", "monitor"),
        E("e006", s(17.0), s(18.5), "knock", "audio", "door", False),
        E("e007", s(21.0), s(23.5), "walk_to_door", "visual", "door", cause="e006", lag_s=4.0),
        E("e008", s(23.5), s(24.5), "open_door", "visual", "door", cause="e007"),
        E("e009", s(24.1), s(28.0), "door_open", "visual", "door", cause="e008"),
    ]
    return Annotations(rid, 30.0 + dt, "office", snr_db, ev,
                       objects=["desk", "monitor", "keyboard", "stapler", "door", "colleague", "mug"])


def street(rid="street_a", dt=0.0, snr_db=0.0) -> Annotations:
    """Walking (own footsteps); a horn in the next street -> the wearer stops; a phone rings in the pocket."""
    s = lambda t: round(t + dt, 3)  # noqa: E731
    ev = [
        E("e000", s(0.0), s(9.0), "walk", "visual", "traffic_light", False),  # looking down the street
        E("e001", s(0.1), s(8.8), "footsteps", "audio", "wearer", False, action_id="e000"),
        E("e002", s(6.0), s(6.8), "car_horn", "audio", "driver", False, location="next street"),
        E("e003", s(8.0), s(11.0), "idle", "visual", None, cause="e002", lag_s=2.0, stopped="walk"),
        E("e004", s(14.0), s(17.0), "phone_ring", "audio", "phone", False, location="pocket"),
        E("e005", s(16.5), s(17.7), "pick_up_phone", "visual", "phone", cause="e004", lag_s=2.5),
        E("e006", s(14.0), s(21.0), "phone_screen_lit", "visual", "phone", False, cause="e004"),  # in the pocket: unseen
        E("e007", s(17.7), s(21.0), "read", "visual", "phone"),
        E("e008", s(22.0), s(24.0), "speech", "audio", "passer_by", True, text="excuse me"),
    ]
    return Annotations(rid, 30.0 + dt, "street", snr_db, ev, objects=["shop", "tree", "bench", "car", "van", "passer_by"])


def kitchen_twice(rid="kitchen_b", dt=0.0, snr_db=5.0) -> Annotations:
    """Two timer beeps, one from the oven and one from the microwave, each answered; a doorbell
    nobody answers; a sizzle too quiet to hear (-12 dB)."""
    s = lambda t: round(t + dt, 3)  # noqa: E731
    ev = [
        E("e000", s(1.0), s(3.0), "timer_beep", "audio", "oven", False),
        E("e001", s(4.0), s(5.2), "open_oven", "visual", "oven", cause="e000", lag_s=3.0),
        E("e002", s(9.0), s(10.0), "doorbell", "audio", "door", False, ignored=True),
        E("e003", s(17.0), s(19.0), "timer_beep", "audio", "microwave", True),
        E("e004", s(21.0), s(22.2), "open_microwave", "visual", "microwave", cause="e003", lag_s=4.0),
        E("e005", s(24.0), s(29.0), "sizzle", "audio", "pan", True),
    ]
    ann = Annotations(rid, 30.0 + dt, "kitchen", snr_db, ev, objects=["oven", "microwave", "door", "pan"])
    ann.events[5].snr_db = -12.0
    for e in ann.events[:5]:
        if e.modality == "audio":
            e.snr_db = 8.0
    return ann


SCENES = {"kitchen": kitchen, "living_room": living_room, "office": office, "street": street,
          "kitchen_twice": kitchen_twice}

#: (recording id, scene, time shift, split): every environment in train, some in val and test.
LAYOUT = [
    ("kitchen_0000", "kitchen", 0.0, "train"),
    ("living_0001", "living_room", 0.0, "train"),
    ("office_0002", "office", 0.0, "train"),
    ("street_0003", "street", 0.0, "train"),
    ("kitchen_0004", "kitchen", 1.3, "train"),
    ("office_0005", "office", 0.7, "val"),
    ("kitchen_0006", "kitchen", 0.6, "test"),
    ("living_0007", "living_room", 1.1, "test"),
    ("kitchen_0008", "kitchen_twice", 0.0, "train"),
    ("kitchen_0009", "kitchen_twice", 0.4, "test"),
]


def write_dataset(root: Path, layout=LAYOUT) -> Path:
    """A dataset folder with annotations only (the engine never reads signals)."""
    entries = []
    for rid, scene, dt, split in layout:
        ann = SCENES[scene](rid, dt)
        folder = root / "recordings" / rid
        folder.mkdir(parents=True)
        (folder / "annotations.json").write_text(json.dumps(ann.to_dict(), indent=1))
        entries.append({"id": rid, "split": split, "environment": ann.environment,
                        "duration_s": ann.duration_s, "snr_db": ann.snr_db})
    manifest = {"schema_version": 1, "generator": {"name": "tests/cloud"}, "config": {}, "recordings": entries}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return root


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


# --- every record against the annotations (also used on generated data) ---------------------------


def _overlapping(ann, label, t0, t1, by="label"):
    return [e for e in ann.events if getattr(e, by) == label and e.onset_s < t1 and e.offset_s > t0]


def check_records(anns: dict, records, margin_s: float = 1.0) -> dict[str, int]:
    """Check each record's answer against the annotations it came from; returns checks per form.

    ``narration=av`` answers must be the ground truth; ``narration=visual``
    answers may only rest on what is visible. Pairs must differ in gold.
    """
    from cloud.data_engine.records import normalize_label, parse_dense, parse_summary

    done: dict[str, int] = {}
    golds: dict[str, set] = {}
    for r in records:
        ann = anns[r.recording_id]
        t0, t1 = r.window_s
        form = r.meta["form"]
        visual = r.narration == "visual"
        key = r.meta.get("probe", [])
        if r.category in ("SSA", "TR", "AVH"):
            if not visual:
                golds.setdefault(r.meta["pair_id"], set()).add(r.answer)
            assert r.answer in r.meta["options"], r
        if r.category == "AVH":
            hits = [e for e in _overlapping(ann, key[0], t0, t1)]
            if r.answer == "no" and not visual:
                assert not _overlapping(ann, key[0], t0 - margin_s, t1 + margin_s), r
            if r.answer == "yes":
                assert hits, r
                if visual and form == "sound":
                    assert any(e.source_visible for e in hits), r
        elif form == "source":
            hits = _overlapping(ann, key[0], t0, t1)
            if r.answer == "none":
                assert visual or not _overlapping(ann, key[0], t0 - margin_s, t1 + margin_s), r
            else:
                assert {normalize_label(e.source) for e in hits} == {r.answer}, r
        elif form == "sound_of":
            hits = [e for e in ann.events if e.source and normalize_label(e.source) == key[0]
                    and e.onset_s < t1 and e.offset_s > t0 and e.modality != "visual"]
            if r.answer == "none":
                assert visual or not any(e.onset_s < t1 + margin_s and e.offset_s > t0 - margin_s for e in
                                         ann.events if e.source and normalize_label(e.source) == key[0]
                                         and e.modality != "visual"), r
            else:
                assert {e.label for e in hits} == {r.answer}, r
        elif form == "visible":
            (e,) = _overlapping(ann, key[0], t0, t1)
            assert r.answer == ("yes" if e.source_visible else "no"), r
        elif form == "cause":
            effects = _overlapping(ann, key[0], t0, t1)
            if r.answer == "none":
                assert not _overlapping(ann, key[0], t0 - margin_s, t1 + margin_s), r
            else:
                (eff,) = effects
                cau = ann.event(eff.cause)
                assert cau.label == r.answer and t0 <= cau.onset_s < eff.onset_s < t1, r
                assert r.meta["lag_s"] == pytest.approx(eff.onset_s - cau.onset_s, abs=1e-3)
        elif form == "response":
            causes = _overlapping(ann, key[0], t0, t1)
            effects = [e for c in causes for e in ann.events if e.cause == c.id and e.modality == "visual"
                       and e.label not in ("phone_screen_lit",)]
            if r.answer == "none":
                assert not effects or visual, r
            else:
                assert r.answer in {e.label for e in effects}, r
        elif form == "before":
            a, b = (_overlapping(ann, k, t0, t1)[0] for k in key)
            assert r.answer == ("yes" if a.onset_s < b.onset_s else "no"), r
        elif r.category == "AVDN":
            for sec, label in parse_dense(r.answer)[0]:
                match = [e for e in _overlapping(ann, label, t0, t1)
                         if int(max(0.0, max(e.onset_s, t0) - t0) + 0.5) == sec]
                assert match, (r, sec, label)
                if visual and match[0].modality != "visual":
                    assert any(e.source_visible for e in match), r
        elif r.category == "AVSN":
            s = parse_summary(r.answer)
            assert s["environment"] == ann.environment
            for label in s["heard"] + s["did"]:
                match = _overlapping(ann, label, t0, t1)
                assert match, (r, label)
                if visual and label in s["heard"]:
                    assert any(e.source_visible for e in match), r
        done[f"{r.category}/{form}"] = done.get(f"{r.category}/{form}", 0) + 1
    assert all(len(g) == 2 for g in golds.values()), "a pair whose two golds agree"
    return done


def test_every_record_of_the_hand_built_dataset_is_true(tmp_path):
    out, _ = _build(tmp_path)
    anns = {rid: SCENES[scene](rid, dt) for rid, scene, dt, _ in LAYOUT}
    recs = [r for f in SPLIT_FILES.values() for r in read_jsonl(out / f)]
    done = check_records(anns, recs)
    assert {"SSA/source", "SSA/visible", "SSA/sound_of", "TR/cause", "TR/response", "AVH/sound",
            "AVH/action", "AVH/state", "AVDN/dense", "AVSN/summary"} <= set(done), done
