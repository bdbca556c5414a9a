"""Students on the bench's event probes (distill/probes.py): the answering rule, the figures, retention.

The bench comes from the data engine on the hand-built scenes of tests/helpers/qa_world.py; the
"programs" are hop outputs written by hand, so every figure can be checked exactly.
"""
from __future__ import annotations

import numpy as np
import pytest

from cloud.controls import fit_priors, prior_answers
from cloud.data_engine.engine import RunPlan, build_instruct
from cloud.data_engine.pairs import PairParams
from cloud.data_engine.qa import QAParams
from cloud.data_engine.records import QARecord, read_jsonl
from cloud.data_engine.scoring import score
from distill.probes import (EVENT_FORMS, HopOutputs, TeacherProbes, event_probes, probe_metrics, score_probes,
                            student_answers)
from distill.students import STUDENT_LABELS
from shared.dataset import load_dataset
from tests.helpers.qa_world import write_dataset

HOP_S = 0.25


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("probes")
    write_dataset(root / "world")
    plan = RunPlan(windows_per_recording=4, bench_windows_per_recording=8, bench_pairs_per_category=1000)
    build_instruct(root / "world", root / "qa", QAParams(), plan, PairParams())
    return {"world": load_dataset(root / "world"), "bench": read_jsonl(root / "qa" / "bench.jsonl"),
            "train": read_jsonl(root / "qa" / "train_av.jsonl")}


def _record(form: str, label: str, window, answer: str, pair: str, rid: str = "r0") -> QARecord:
    q = {"sound": f"did you hear {label}?", "action": f"did you {label} in this clip?", "state": f"did you see {label}?"}
    return QARecord(f"{pair}.{answer}.av", rid, "AVH", list(window), window[1], q[form], answer, "yes_no",
                    EVENT_FORMS[form], "av", {"form": form, "probe": [label], "pair_id": pair})


def _hops(spikes: dict[str, list[tuple[float, str, float]]], audio_s: float, duration_s: float = 30.0) -> HopOutputs:
    """Hop outputs that are 0 except ``p`` for ``label`` at hop time ``t`` (per recording)."""
    ends, probs = {}, {}
    for rid, spikes_of in spikes.items():
        t = HOP_S * np.arange(1, int(duration_s / HOP_S) + 1)
        p = np.zeros((len(t), len(STUDENT_LABELS)), np.float32)
        for at, label, value in spikes_of:
            p[np.argmin(np.abs(t - at)), STUDENT_LABELS.index(label)] = value
        ends[rid], probs[rid] = t, p
    return HopOutputs(ends, probs, audio_s, HOP_S, {rid: duration_s for rid in spikes})


def test_answers_read_the_hops_inside_the_window_against_the_card_threshold():
    thresholds = [0.5] * len(STUDENT_LABELS)
    recs = [_record("sound", "knock", (10.0, 20.0), "yes", "a"), _record("action", "chop", (10.0, 20.0), "yes", "b")]
    # a knock heard at 15 s, chop seen at 15 s: both yes
    assert student_answers(recs, _hops({"r0": [(15.0, "knock", 0.9), (15.0, "chop", 0.9)]}, 2.0), STUDENT_LABELS,
                           thresholds) == ["yes", "yes"]
    # at 11 s a 2 s call still hears a second before the window: not the window's sound; the frame is the window's
    assert student_answers(recs, _hops({"r0": [(11.0, "knock", 0.9), (11.0, "chop", 0.9)]}, 2.0), STUDENT_LABELS,
                           thresholds) == ["no", "yes"]
    # below the card's threshold: no; a lower threshold for that label: yes
    low = list(thresholds)
    low[STUDENT_LABELS.index("knock")] = 0.3
    assert student_answers(recs[:1], _hops({"r0": [(15.0, "knock", 0.4)]}, 2.0), STUDENT_LABELS, thresholds) == ["no"]
    assert student_answers(recs[:1], _hops({"r0": [(15.0, "knock", 0.4)]}, 2.0), STUDENT_LABELS, low) == ["yes"]
    # a trigger has no frame labels: it cannot answer a visual probe
    sounds = STUDENT_LABELS[:18]
    assert student_answers(recs, _hops({"r0": []}, 1.0), sounds, thresholds[:18]) == ["no", None]


def test_figures_and_retention_are_paired_ratios_over_recordings():
    recs = []
    for i in range(8):
        recs += [_record("sound", "knock", (0.0, 10.0), "yes", f"s{i}", f"r{i % 4}"),
                 _record("sound", "knock", (10.0, 20.0), "no", f"s{i}", f"r{i % 4}"),
                 _record("state", "door_open", (0.0, 10.0), "no", f"v{i}", f"r{i % 4}"),
                 _record("state", "door_open", (10.0, 20.0), "yes", f"v{i}", f"r{i % 4}")]
    teacher = [1.0] * len(recs)
    half = [0.0 if r.meta["pair_id"] in ("s0", "s1", "s2", "s3") and r.answer == "yes" else 1.0 for r in recs]
    out = score_probes(recs, {"student": half, "teacher": teacher})
    assert out["retention"]["audio"]["value"] == pytest.approx(0.5)
    assert out["retention"]["visual"]["value"] == pytest.approx(1.0)
    assert out["retention"]["all"]["value"] == pytest.approx(0.75)
    assert out["figures"]["student"]["audio"]["question"]["value"] == pytest.approx(0.75)
    assert out["figures"]["student"]["audio"]["pair"]["n"] == 8 and out["figures"]["student"]["audio"]["pair"]["n_groups"] == 4
    assert out["difference"]["audio"]["value"] == pytest.approx(-0.5)
    m = probe_metrics({**out, "modalities": ["audio", "visual", "all"], "headline": "all", "n_pairs": 16}, 0.9)
    assert m["retention"] == pytest.approx(0.75) and m["retention_visual"] == pytest.approx(1.0)
    assert m["probe_pair_accuracy_audio"] == pytest.approx(0.5) and m["teacher_probe_pair_accuracy"] == 1.0
    assert m["probe_targets_met"] == "false"  # audio keeps 50% < 90%
    # a teacher that gets no pair right leaves retention undefined rather than infinite
    assert score_probes(recs, {"student": half, "teacher": [0.0] * len(recs)})["retention"]["audio"] is None


def test_event_probes_keep_whole_pairs(bench):
    probes = event_probes(bench["bench"])
    assert probes and all(r.category == "AVH" and r.meta["form"] in EVENT_FORMS for r in probes)
    pairs = {}
    for r in probes:
        pairs.setdefault(r.meta["pair_id"], []).append(r)
    assert all(len(v) == 2 and {x.answer for x in v} == {"yes", "no"} for v in pairs.values())
    few = event_probes(bench["bench"], max_pairs=3)
    assert len(few) == 6 and len({r.meta["pair_id"] for r in few}) == 3


def _oracle(world, audio_s: float) -> HopOutputs:
    """What a perfect student says at every hop: the annotated labels of its audio span and its frame."""
    spikes = {}
    for e in world.split("test"):
        ann = world.annotations(e)
        out = []
        for t in HOP_S * np.arange(1, int(ann.duration_s / HOP_S) + 1):
            for ev in ann.events:
                if ev.label not in STUDENT_LABELS:
                    continue
                audio = STUDENT_LABELS.index(ev.label) < 18
                hit = (min(ev.offset_s, t) - max(ev.onset_s, t - audio_s) > 0.1) if audio else \
                    (ev.onset_s <= t < ev.offset_s and ev.source_visible is not False)
                if hit:
                    out.append((t, ev.label, 1.0))
        spikes[e.id] = out
    return _hops(spikes, audio_s)


def test_an_oracle_student_keeps_the_pairs_and_the_controls_do_not(bench):
    records = event_probes(bench["bench"])
    systems = {"teacher": [1.0] * len(records)}
    priors = fit_priors(bench["train"])
    systems["question_only"] = [score(r, a) for r, a in zip(records, prior_answers(priors, records, "question_only"))]
    probes = TeacherProbes(records, systems, bench["world"].root, seed=0)
    report = probes.score(_oracle(bench["world"], 2.0), STUDENT_LABELS, [0.5] * len(STUDENT_LABELS))
    assert report["modalities"] == ["audio", "visual", "all"] and report["n_pairs"] == len(records) // 2
    fig = report["figures"]
    assert fig["student"]["audio"]["pair"]["value"] >= 0.9 and fig["student"]["visual"]["pair"]["value"] >= 0.9
    assert fig["question_only"]["all"]["pair"]["value"] == 0.0
    assert fig["student_shuffled_clip"]["all"]["pair"]["value"] < fig["student"]["all"]["pair"]["value"] - 0.2
    assert report["retention"]["all"]["value"] == pytest.approx(fig["student"]["all"]["pair"]["value"])
    # the trigger (sounds only) is scored on the audio probes alone, every system on the same ones
    trig = probes.score(_oracle(bench["world"], 1.0), STUDENT_LABELS[:18], [0.5] * 18)
    assert trig["modalities"] == ["audio"] and trig["figures"]["teacher"]["audio"]["pair"]["n"] == trig["n_pairs"]
