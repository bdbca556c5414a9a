"""scripts/bench_latency.py: which variants run and which pairs are compared, and the paired comparison."""
from __future__ import annotations

import importlib.util
from pathlib import Path

_SPEC = importlib.util.spec_from_file_location(
    "bench_latency", Path(__file__).resolve().parents[2] / "scripts" / "bench_latency.py")
_MOD = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_MOD)


def test_two_triggers_two_hops_and_both_early_modes():
    plan = _MOD.plan_variants([0.25, 0.1], [True, False], ["trigger", "baseline"], has_early=True)
    assert len(plan["runs"]) == 8 and len({r[0] for r in plan["runs"]}) == 8
    assert ("baseline: hop 0.1 s, no early stage", 0.1, "baseline", False) in plan["runs"]
    pairs = plan["pairs"]
    assert pairs[0] == ("trigger: hop 0.1 s, early stage", "trigger: hop 0.25 s, early stage")  # hops
    assert ("baseline: hop 0.25 s, early stage", "baseline: hop 0.25 s, no early stage") in pairs  # early vs none
    # the trigger against the baseline: same hop, same early mode, every combination
    vs = [p for p in pairs if p[0].startswith("trigger:") and p[1].startswith("baseline:")]
    assert len(vs) == 4 and all(a.split(": ")[1] == b.split(": ")[1] for a, b in vs)
    assert len(pairs) == 1 + 4 + 4


def test_one_trigger_without_an_early_stage_keeps_the_old_names():
    plan = _MOD.plan_variants([0.25], [True], [""], has_early=False)
    assert plan == {"runs": [("hop 0.25 s", 0.25, "", True)], "pairs": []}


def test_compare_pairs_on_the_onsets_both_answered():
    def rows(shift, skip=()):
        return [{"recording": f"r{i % 5}", "onset_s": float(i), "label": "doorbell",
                 "total_ms": None if i in skip else 300.0 + 10 * i + shift} for i in range(40)]

    out = _MOD.compare({"new": rows(-50.0, skip=(3,)), "old": rows(0.0, skip=(4,))}, [("new", "old")])
    assert out["new"]["vs"] == "old" and out["new"]["paired_onsets"] == 38
    assert abs(out["new"]["difference_ms"]["value"] + 50.0) < 1e-9  # every paired onset 50 ms sooner
    assert out["new"]["difference_ms"]["hi"] < 0


def test_onsets_offloaded_before_any_trigger_edge_are_counted_and_named(capsys):
    def row(i, fired_by):
        stages = dict(zip(_MOD.STAGES, (100.0 + i, 5.0, 80.0, 0.0)))
        return {"recording": f"r{i % 4}", "onset_s": float(i), "label": "doorbell", "stages_ms": stages,
                "total_ms": sum(stages.values()), "shown_at_next_step_ms": 0.0, "fired_by": fired_by}

    rows = [row(i, None if i < 6 else "trigger") for i in range(20)] + [
        {"recording": "r0", "onset_s": 99.0, "label": "doorbell"}]  # missed: not counted
    summary = _MOD.summarize(rows)
    assert summary["answered"] == 20 and summary["offloaded_before_a_trigger"] == 6
    _MOD.print_table(summary, "t")
    assert "6 of 20 answered onsets were offloaded before any trigger edge" in capsys.readouterr().out
