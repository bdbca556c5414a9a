"""Controls and the paired bench's figures (cloud/controls.py): a blind model cannot pass."""
from __future__ import annotations

import pytest

from cloud.controls import bench_figures, compare, fit_priors, prior_answers, shuffled_records
from cloud.data_engine.engine import RunPlan, build_instruct
from cloud.data_engine.pairs import PairParams
from cloud.data_engine.qa import QAParams
from cloud.data_engine.records import QARecord, read_jsonl
from cloud.data_engine.scoring import score
from tests.helpers.qa_world import write_dataset


@pytest.fixture(scope="module")
def qa(tmp_path_factory):
    root = tmp_path_factory.mktemp("controls")
    write_dataset(root / "world")
    plan = RunPlan(windows_per_recording=4, bench_windows_per_recording=8, bench_pairs_per_category=1000)
    build_instruct(root / "world", root / "qa", QAParams(), plan, PairParams())
    return {k: read_jsonl(root / "qa" / f"{k}.jsonl") for k in ("train_av", "bench")}


def test_blind_scene_and_constant_get_half_the_questions_and_no_pair(qa):
    """Issue 14's construction: a question-only model scores <= 50% per question and 0% per pair."""
    priors = fit_priors(qa["train_av"])
    bench = qa["bench"]
    closed = [r for r in bench if r.category in ("SSA", "TR", "AVH")]
    assert len({r.meta["pair_id"] for r in closed}) >= 20
    for control in ("question_only", "question_scene", "constant_answer"):
        answers = prior_answers(priors, bench, control)
        fig = bench_figures(bench, [score(r, a) for r, a in zip(bench, answers)])
        assert fig["closed"]["question"]["value"] <= 0.5 + 1e-9, control
        assert fig["closed"]["pair"]["value"] <= 0.05, control
        assert fig["AVH"]["question"]["value"] == pytest.approx(0.5)  # yes/no balanced exactly


def test_an_oracle_gets_every_pair_and_figures_have_sizes(qa):
    bench = qa["bench"]
    fig = bench_figures(bench, [1.0] * len(bench))
    assert fig["closed"]["pair"]["value"] == 1.0 and fig["closed"]["question"]["value"] == 1.0
    n_pairs = len({r.meta["pair_id"] for r in bench if "pair_id" in r.meta})
    assert fig["closed"]["pair"]["n"] == n_pairs and fig["closed"]["question"]["n"] == 2 * n_pairs
    assert fig["closed"]["pair"]["n_groups"] == len({r.recording_id for r in bench})
    assert "pair" not in fig["AVDN"]
    # one wrong record breaks its pair only
    scores = [1.0] * len(bench)
    i = next(i for i, r in enumerate(bench) if r.category == "TR")
    scores[i] = 0.0
    fig = bench_figures(bench, scores)
    assert fig["TR"]["pair"]["value"] == pytest.approx(1 - 1 / fig["TR"]["pair"]["n"])


def test_compare_pairs_by_recording(qa):
    bench = [r for r in qa["bench"] if "pair_id" in r.meta]
    good, bad = [1.0] * len(bench), [0.0] * len(bench)
    d = compare(bench, good, bad)
    assert d["value"] == 1.0 and d["lo"] == 1.0 and d["p_value"] == 0.0
    d = compare(bench, good, good, level="question")
    assert d["value"] == 0.0 and not (d["lo"] > 0 or d["hi"] < 0)


def test_shuffled_moves_every_record_to_another_recording():
    recs = [QARecord(f"r{i}.x.{j}.av", f"r{i}", "AVH", [0.0, 10.0], 10.0, "did you hear knock?", "yes", "yes_no",
                     "audio", "av", {}) for i in range(4) for j in range(3)]
    moved = shuffled_records(recs, seed=3)
    assert all(m.recording_id != r.recording_id for m, r in zip(moved, recs))
    donors = {}
    for m, r in zip(moved, recs):
        donors.setdefault(r.recording_id, set()).add(m.recording_id)
    assert all(len(v) == 1 for v in donors.values())  # one donor per recording
    with pytest.raises(ValueError, match="two held-out recordings"):
        shuffled_records(recs[:3])
