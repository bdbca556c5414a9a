"""The grounding check (cloud/lm/grounding.py) on a tiny world, with a stand-in answerer.

The language model is replaced by a faithful copier (it says exactly the sounds the notes
list), so the check's own logic is what is tested: which records are audio-event probes,
that a copier scores exactly what the notes score, that the controls are computed on the
same pairs, and that the gap to the teacher and the target follow from the figures.
scripts/bench_lm.py runs the check with the real language model."""
from __future__ import annotations

import pytest

from cloud.data import RecordingStore, WindowSpec
from cloud.data_engine.records import QARecord
from cloud.lm.evidence import Event, Evidence
from cloud.lm.grounding import GROUNDING_QUESTION, TARGET_POINTS, audio_probe_pairs, grounding_check
from cloud.model.io import load_teacher
from tests.helpers.teacher_world import PAIRS, make_tiny_teacher, make_world


class CopyingAnswerer:
    """Names every sound the notes list, and nothing else; asked "Did you hear X?", says yes
    exactly when the notes list X."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def answer_batch(self, questions, evidences):
        self.asked += list(questions)
        out = []
        for q, ev in zip(questions, evidences):
            heard = [l.replace("_", " ") for l in dict.fromkeys(ev.heard() if isinstance(ev, Evidence) else [])]
            if q.startswith("Did you hear "):
                label = q[len("Did you hear "):].rstrip("?")
                out.append(f"Yes, I heard {label}." if label in heard else f"No, I did not hear {label}.")
            else:
                out.append("I heard " + " and ".join(heard) + "." if heard else "I did not hear anything.")
        return out

    def answer(self, question, evidence):
        return self.answer_batch([question], [evidence])[0]

    def option_logprobs(self, questions, evidences, options, batch_size=8):
        return [[0.0, -1.0] for _ in questions]  # always the first option ("Yes.")


def _probe(rid: str, label: str, end: float, answer: str, pair: str) -> QARecord:
    return QARecord(id=f"{rid}.{pair}.{answer}", recording_id=rid, category="AVH", window_s=[max(0.0, end - 4.0), end],
                    t_query_s=end, question=f"did you hear {label.replace('_', ' ')}?", answer=answer,
                    answer_type="yes_no", evidence="audio", narration="av",
                    meta={"form": "sound", "label": label, "pair_id": pair, "options": ["yes", "no"]})


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("grounding")
    qa = make_world(root, n_recordings=4, seconds=10.0, frame_px=32)
    teacher = make_tiny_teacher(root / "teacher", ["yes no", "what sound did you hear?", "did you hear timer beep?"],
                                max_answer_tokens=3, frame_size_px=32)
    records = []
    for i in range(4):
        rid, label = f"fixture_{i:02d}", PAIRS[i % len(PAIRS)][0]
        # the tone sounds ~2-3 s in: heard in the window ending at 6 s, absent in the one ending at 1.5 s
        records += [_probe(rid, label, 6.0, "yes", f"p{i}"), _probe(rid, label, 1.5, "no", f"p{i}")]
    records.append(QARecord(id="x.ssa", recording_id="fixture_00", category="SSA", window_s=[0.0, 6.0], t_query_s=6.0,
                            question="what sound did you hear?", answer="timer_beep", answer_type="label",
                            evidence="audio", narration="av", meta={"pair_id": "p9"}))
    return root, qa, teacher, records


def test_only_audio_event_probes_with_both_windows_are_taken(world):
    _, _, _, records = world
    probes = audio_probe_pairs(records + [_probe("fixture_00", "doorbell", 6.0, "yes", "lonely")])
    assert len(probes) == 8 and {r.meta["pair_id"] for r in probes} == {"p0", "p1", "p2", "p3"}
    assert len(audio_probe_pairs(records, max_pairs=2)) == 4


def _notes(records):
    """Hand-made teacher notes per window: pairs 0 and 1 perceived right, pair 2 heard on both
    windows (a false alarm), pair 3 on neither (a miss); another sound on every window."""
    def ev(r):
        heard = {"p0": r.answer == "yes", "p1": r.answer == "yes", "p2": True, "p3": False}.get(r.meta["pair_id"])
        sounds = [Event("footsteps", "audio", -3.0, -2.5, 0.9)]
        if heard:
            sounds.append(Event(r.meta["label"], "audio", -2.0, -1.0, 0.8))
        return Evidence(sounds, 0.9, 0.9, 4.0)
    return {(r.recording_id, r.t_query_s): ev(r) for r in records}


class DroppingAnswerer(CopyingAnswerer):
    """Names only the first sound the notes list: loses the probe sound behind footsteps."""

    def answer_batch(self, questions, evidences):
        return [s.split(" and ")[0].rstrip(".") + "." for s in super().answer_batch(questions, evidences)]


def test_the_sentence_is_scored_by_the_sound_it_names_beside_notes_and_controls(world, monkeypatch):
    import cloud.lm.grounding as grounding

    root, qa, teacher_dir, records = world
    teacher, tokenizer, card = load_teacher(teacher_dir)
    spec = WindowSpec(**card["data"])
    store = RecordingStore(root / "world", spec.frame_size_px, spec.n_mels)
    probes = audio_probe_pairs(records)
    notes = _notes(probes)
    monkeypatch.setattr(grounding, "teacher_evidence",
                        lambda m, t, recs, *a, **k: [notes.get((r.recording_id, r.t_query_s), Evidence([], 1.0, 1.0))
                                                     for r in recs])
    answerer = CopyingAnswerer()
    out = grounding_check(answerer, teacher, tokenizer, probes, store, spec, n_samples=3)
    figs = out["figures"]
    assert out["n_records"] == 8 and out["n_pairs"] == 4
    assert set(figs) == {"sentence", "teacher", "evidence", "sentence_asked", "sentence_yes_no", "no_evidence",
                         "shuffled_clip"}
    # notes right on pairs 0 and 1, one window of pair 2 and one of pair 3: 6 of 8 windows, 2 of 4 pairs
    for system in ("evidence", "sentence"):  # a faithful copier scores what its notes score
        assert figs[system]["question"]["value"] == 0.75 and figs[system]["pair"]["value"] == 0.5, system
    # no notes: "I did not hear anything." is right on every absent window, never on a pair
    assert figs["no_evidence"]["question"]["value"] == 0.5 and figs["no_evidence"]["pair"]["value"] == 0.0
    # asked "did you hear <label>?" in words, the copier's "Yes, ..." / "No, ..." follows the notes too
    assert figs["sentence_asked"]["question"]["value"] == 0.75 and figs["sentence_asked"]["pair"]["value"] == 0.5
    # always "Yes.": right on the heard windows only
    assert figs["sentence_yes_no"]["question"]["value"] == 0.5 and figs["sentence_yes_no"]["pair"]["value"] == 0.0
    gap = 100 * (figs["teacher"]["pair"]["value"] - figs["sentence"]["pair"]["value"])
    assert out["gap_points"] == pytest.approx(gap) and out["target_met"] == (gap <= TARGET_POINTS)
    assert answerer.asked.count(GROUNDING_QUESTION) >= 8  # the wearer's free-form question, not the probe
    assert len(out["samples"]) == 3 and all(s["question"] == GROUNDING_QUESTION for s in out["samples"])
    # an answerer that drops the probe sound behind another loses every heard window
    dropped = grounding_check(DroppingAnswerer(), teacher, tokenizer, probes, store, spec, shuffled=False)
    assert dropped["figures"]["sentence"]["question"]["value"] == 0.5
    assert dropped["figures"]["sentence"]["pair"]["value"] == 0.0 and "shuffled_clip" not in dropped["figures"]
    assert dropped["figures"]["sentence_asked"]["pair"]["value"] == 0.5  # "Yes, I heard timer beep." has no "and"


def test_no_probe_pairs_is_a_clear_error(world):
    root, _, teacher_dir, records = world
    teacher, tokenizer, card = load_teacher(teacher_dir)
    spec = WindowSpec(**card["data"])
    with pytest.raises(ValueError, match="no audio-event probe pairs"):
        grounding_check(CopyingAnswerer(), teacher, tokenizer, [], RecordingStore(root / "world", 32, 64), spec)
