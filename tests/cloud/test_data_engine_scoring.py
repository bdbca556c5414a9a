"""The QA record contract (strict I/O) and exact scoring."""
from __future__ import annotations

import json

import pytest

from cloud.data_engine.records import (
    QARecord,
    RecordError,
    format_dense,
    format_summary,
    normalize_answer,
    parse_dense,
    parse_summary,
    read_jsonl,
    write_jsonl,
)
from cloud.data_engine.scoring import aggregate, aggregate_by, score, score_answer


def rec(category="TR", answer="timer_beep", answer_type="label", id="k.w00.tr00.av", **kw) -> QARecord:
    base = dict(id=id, recording_id="k", category=category, window_s=[2.0, 12.0], t_query_s=12.0,
                question="what caused open_oven?", answer=answer, answer_type=answer_type, evidence="audiovisual",
                narration="av", meta={"lag_s": 3.0, "noise": "noisy"})
    base.update(kw)
    return QARecord(**base)


GOLD = [
    rec("SSA", "oven", "label", id="a"),
    rec("SSA", "no", "yes_no", id="b"),
    rec("AVDN", "0s chop; 3s timer_beep; 6s open_oven", "dense", id="c"),
    rec("AVSN", "kitchen; heard: timer_beep; did: chop, open_oven", "summary", id="d"),
    rec("TR", "timer_beep", "label", id="e"),
    rec("TR", "doorbell, walk_to_door, open_door", "sequence", id="f"),
    rec("AVH", "yes", "yes_no", id="g"),
    rec("AVH", "no", "yes_no", id="h", meta={"noise": "quiet"}),
]


# --- records -----------------------------------------------------------------------------------


def test_round_trip_through_jsonl(tmp_path):
    path = tmp_path / "qa.jsonl"
    assert write_jsonl(path, GOLD) == len(GOLD)
    back = read_jsonl(path)
    assert [r.to_dict() for r in back] == [r.to_dict() for r in GOLD]
    first = json.loads(path.read_text().splitlines()[0])
    assert list(first) == ["id", "recording_id", "category", "window_s", "t_query_s", "question", "answer",
                           "answer_type", "evidence", "narration", "meta"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"category": "XYZ"}, "category: must be one of"),
        ({"answer_type": "free"}, "answer_type: must be one of"),
        ({"evidence": "smell"}, "evidence: must be one of"),
        ({"narration": "both"}, "narration: must be one of"),
        ({"window_s": [5.0, 16.5]}, "window_s: 11.5 s is longer than 10 s"),
        ({"window_s": [5.0, 5.0]}, "window_s: expected 0 <= start < end"),
        ({"window_s": "0-10"}, "window_s: expected [start, end]"),
        ({"t_query_s": 1.0}, "t_query_s: 1.0 is before the window start"),
        ({"t_query_s": True}, "t_query_s: expected a finite number"),
        ({"answer": "Timer beep"}, "answer: 'Timer beep' is not normalised for label (expected 'timer_beep')"),
        ({"answer": ""}, "answer: expected a non-empty string"),
        ({"question": 3}, "question: expected a non-empty string"),
        ({"meta": []}, "meta: expected an object"),
        ({"bogus": 1}, "bogus: unknown field"),
        ({"id": None}, "id: expected a non-empty string"),
    ],
)
def test_from_dict_is_strict_and_names_the_field(change, message):
    d = rec().to_dict()
    d.update(change)
    with pytest.raises(RecordError) as exc:
        QARecord.from_dict(d)
    assert str(exc.value).startswith(message), str(exc.value)


def test_missing_field_and_bad_line_are_named(tmp_path):
    d = rec().to_dict()
    del d["evidence"]
    with pytest.raises(RecordError, match="^evidence: required field is missing"):
        QARecord.from_dict(d)
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(rec().to_dict()) + "\n" + json.dumps({**rec().to_dict(), "id": "x", "category": "Q"}) + "\n")
    with pytest.raises(RecordError, match=r"bad.jsonl:2: category: must be one of"):
        read_jsonl(path)
    path.write_text(json.dumps(rec().to_dict()) + "\n" + json.dumps(rec().to_dict()) + "\n")
    with pytest.raises(RecordError, match=r":2: id: duplicate 'k.w00.tr00.av' \(also line 1\)"):
        read_jsonl(path)


def test_answer_formats_round_trip():
    assert format_dense([(0, "chop"), (3, "Timer beep")]) == "0s chop; 3s timer_beep"
    assert format_dense([]) == "none" and parse_dense("none") == ([], 0)
    assert parse_dense("0s chop; 3 s timer beep; junk") == ([(0, "chop"), (3, "timer_beep")], 1)
    assert format_summary("kitchen", [], ["chop"]) == "kitchen; heard: none; did: chop"
    assert parse_summary("Kitchen; heard: none; did: chop, open oven.") == {
        "environment": "kitchen", "heard": [], "did": ["chop", "open_oven"]}
    assert parse_summary("heard: x") == {"environment": None, "heard": ["x"], "did": None}
    assert normalize_answer(" Yes, it was.", "yes_no") == "yes"
    assert normalize_answer("Doorbell,walk to door , open-door", "sequence") == "doorbell, walk_to_door, open_door"


# --- scoring -----------------------------------------------------------------------------------


def test_perfect_predictions_score_one_everywhere():
    preds = {r.id: r.answer for r in GOLD}
    assert aggregate(GOLD, preds) == {"SSA": 1.0, "AVDN": 1.0, "AVSN": 1.0, "TR": 1.0, "AVH": 1.0}
    assert aggregate(GOLD, [r.answer for r in GOLD]) == aggregate(GOLD, preds)


def test_wrong_and_missing_predictions_score_zero():
    wrong = {"a": "kettle", "b": "yes", "c": "5s doorbell", "d": "office; heard: knock; did: type",
             "e": "doorbell", "f": "open_door, walk_to_door, doorbell", "g": "no", "h": "yes"}
    assert aggregate(GOLD, wrong) == {"SSA": 0.0, "AVDN": 0.0, "AVSN": 0.0, "TR": 0.0, "AVH": 0.0}
    assert aggregate(GOLD, {}) == {"SSA": 0.0, "AVDN": 0.0, "AVSN": 0.0, "TR": 0.0, "AVH": 0.0}
    with pytest.raises(RecordError, match="predictions: 1 given for 8 records"):
        aggregate(GOLD, ["yes"])


def test_normalisation_before_exact_match():
    assert score(GOLD[0], "Oven.") == 1.0 and score(GOLD[0], "the oven") == 0.0
    assert score(GOLD[4], '"Timer beep"') == 1.0
    assert score(GOLD[6], "Yes, I did") == 1.0 and score(GOLD[6], "yeah") == 0.0


def test_dense_is_f1_over_timed_items():
    gold = "0s chop; 3s timer_beep; 6s open_oven"
    assert score_answer("dense", gold, "1s chop; 2s timer_beep; 7s open_oven") == 1.0  # within 1 s
    assert score_answer("dense", gold, "0s chop; 5s timer_beep") == pytest.approx(2 * 1 / (3 + 2))  # 3 s off: no match
    assert score_answer("dense", gold, "0s chop; 3s timer_beep; 6s open_oven; 8s footsteps") == pytest.approx(6 / 7)
    assert score_answer("dense", gold, "0s chop; 0s chop; 3s timer_beep; 6s open_oven") == pytest.approx(6 / 7)
    assert score_answer("dense", gold, "0s chop; garbage; 3s timer_beep; 6s open_oven") == pytest.approx(6 / 7)
    assert score_answer("dense", "none", "none") == 1.0 and score_answer("dense", "none", "0s chop") == 0.0


def test_summary_is_the_mean_of_its_three_parts():
    gold = "kitchen; heard: timer_beep, chopping; did: chop"
    assert score_answer("summary", gold, "kitchen; heard: chopping, timer_beep; did: chop") == 1.0  # sets
    assert score_answer("summary", gold, "kitchen; heard: chopping; did: chop") == pytest.approx((1 + 2 / 3 + 1) / 3)
    assert score_answer("summary", gold, "office; heard: timer_beep, chopping; did: chop") == pytest.approx(2 / 3)
    assert score_answer("summary", gold, "kitchen; did: chop") == pytest.approx(2 / 3)  # heard missing: 0
    assert score_answer("summary", "street; heard: none; did: walk", "street; heard: none; did: walk") == 1.0


def test_aggregate_by_meta():
    preds = {r.id: r.answer for r in GOLD}
    preds["h"] = "yes"
    by = aggregate_by(GOLD, preds, lambda r: r.meta["noise"])
    assert by == {"noisy": 1.0, "quiet": 0.0}
