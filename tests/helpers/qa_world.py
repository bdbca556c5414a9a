"""Hand-built annotations for the instruction data engine's tests, and the check of every QA
record against the annotations it came from (also run on generated data).

The scenes mirror what sim/world scripts (kitchen timer -> open oven, doorbell
-> walk to door -> open door, kettle -> pour, phone -> pick up, "could you pass
the salt" -> reach), with off-screen sources, silent actions and object
states, so every rule is checked against annotations we wrote by hand.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.annotations import Annotations, Event

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
