"""The trigger without a teacher, and `earshot export` scoring it as a detector (distill/trigger_eval.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers.distill_world import compose_config
from shared.config import ConfigError
from shared.model_card import load_model_card


@pytest.fixture(scope="module")
def labels_only(world, mlflow_env, tmp_path_factory):
    """A tiny trigger distilled from the world's labels alone, exported with the detector evaluation."""
    from distill.export import run as export
    from distill.recipe import run

    out = tmp_path_factory.mktemp("kd_labels") / "out"
    mlflow = [f"mlflow.tracking_uri={mlflow_env['uri']}", f"mlflow.artifact_location={mlflow_env['artifacts']}"]
    recipe = run(compose_config("distill", [
        "distill/student=trigger", "distill/preset=tiny", "teacher=null", "kd.kd_weight=0", f"data.dataset={world}",
        "data.pos_weight=2.0", f"out={out}", "threads=1", "max_steps=60", *mlflow]))
    cards = export(compose_config("export", [
        f"checkpoint={out}", "threads=1", "calibration_windows=8", "max_eval_windows=16", "precisions=[fp32]",
        "tflite=off", "trigger.refractory_s=0.75", "trigger.fa_per_hour=50", "trigger.early_fires_per_hour=100", *mlflow]))
    return recipe, cards, out / "export"


def test_without_a_teacher_the_recipe_learns_the_labels(labels_only):
    recipe, _, _ = labels_only
    assert recipe.teacher is None and recipe.targets == {}
    assert recipe.last_metrics["val/macro_f1"] == recipe.last_metrics["val/macro_f1"]  # computed, not NaN
    assert "val/teacher_macro_f1" not in recipe.last_metrics


def test_the_card_carries_the_operating_point_and_the_hold(labels_only):
    _, cards, folder = labels_only
    card = load_model_card(folder / "trigger_xnnpack_fp32.json", check_program=True)
    report = json.loads((folder / card.extra["trigger_eval"]).read_text())
    assert card.refractory_s == 0.75 and report["refractory_s"] == 0.75
    assert card.threshold_vector() == report["operating_point"]["thresholds"]
    assert "chosen on val" in card.threshold_rule
    assert card.teacher == {} and card.metrics["teacher_macro_f1"] is None
    t = report["test"]
    assert t["n_events"] == 4 and 0 <= t["detected"] <= 4  # 2 test recordings x 2 tones
    assert card.metrics["event_recall"] == pytest.approx(t["detected"] / t["n_events"])
    assert "outside events" in t["background_source"]  # no background dataset given
    # ... so the budget (background by default) fell back to every val recording, and says so
    assert report["operating_point"]["budget_on"] == "all"
    assert report["operating_point"]["confusions_per_hour_budget"] is None
    # recall on audible events (>= -5 dB) beside recall on every event: the tones are loud
    assert t["audible_snr_db"] == -5.0 and t["event_recall_audible"]["n"] <= t["n_events"]
    assert [c["label"] for c in report["per_class"]] == card.labels
    assert len(report["det"]) >= 9 and (folder / card.extra["det_curve"]).read_bytes()[:4] == b"\x89PNG"
    # The curve passes through the operating point (shift 0). It need not be monotone: a label held
    # on through two events under a very low threshold triggers once, not twice.
    at_op = next(d for d in report["det"] if d["shift"] == 0.0)
    assert at_op["recall"] == pytest.approx(t["event_recall"]["value"])
    assert all(0.0 <= d["recall"] <= 1.0 for d in report["det"])
    assert set(t["event_f1"]) >= {"micro_f1", "macro_f1", "collar_s"}
    # how soon the trigger fires after an onset (only detected events count)
    if t["detected"]:
        assert 0.0 < t["delay_s"]["p50"]["value"] <= t["delay_s"]["p95"]["value"] <= 1.0 + 1.0  # offset + window
        assert at_op["delay_p95_s"] == pytest.approx(t["delay_s"]["p95"]["value"])


def test_the_early_stage_is_chosen_on_val_within_its_budget_and_fires_no_later(labels_only):
    _, _, folder = labels_only
    card = load_model_card(folder / "trigger_xnnpack_fp32.json", check_program=True)
    report = json.loads((folder / card.extra["trigger_eval"]).read_text())
    early = report["early_stage"]
    assert early["fires_per_hour_budget"] == 100 and early["val_fires_per_hour"] <= 100
    assert early["shift"] <= 0.0
    assert [card.early_thresholds[lab] for lab in card.labels] == pytest.approx(early["thresholds"])
    assert all(card.early_thresholds[lab] <= card.thresholds[lab] for lab in card.labels)
    if early["n_events"]:
        d = early["delay_s"]
        # paired on the events the trigger detects: the first fire is the earlier of the two
        assert d["first_fire"]["p95"]["value"] <= d["trigger_alone"]["p95"]["value"]
        assert d["p95_difference"]["value"] <= 0.0


def test_a_labels_only_run_with_a_teacher_term_is_refused():
    with pytest.raises(ConfigError, match="kd.kd_weight"):
        compose_config("distill", ["teacher=null", "data.dataset=/tmp/x"])
    with pytest.raises(ConfigError, match="data.dataset"):
        compose_config("distill", ["teacher=null", "kd.kd_weight=0"])


def test_a_wrong_trigger_budget_is_a_config_error():
    with pytest.raises(ConfigError, match="trigger.budget_on"):
        compose_config("export", ["checkpoint=/tmp/x", "trigger.budget_on=labelled"])
    with pytest.raises(ConfigError, match="trigger.confusions_per_hour"):
        compose_config("export", ["checkpoint=/tmp/x", "trigger.confusions_per_hour=-1"])
    with pytest.raises(ConfigError, match="data.onset_weight"):
        compose_config("distill", ["teacher=null", "kd.kd_weight=0", "data.dataset=/tmp/x", "data.onset_weight=-1"])
    with pytest.raises(ConfigError, match="trigger.early_fires_per_hour"):
        compose_config("export", ["checkpoint=/tmp/x", "trigger.early_fires_per_hour=-5"])
