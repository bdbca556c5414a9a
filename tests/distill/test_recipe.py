"""`earshot distill`: a tiny end-to-end run, exact resume after a kill, MLflow contents, config checks."""
import pytest
import safetensors.torch
import torch

from distill.io import load_student
from distill.recipe import TARGETS_FILE, DistillRecipe, run
from shared.training import latest_checkpoint
from shared.config import UserError

from tests.helpers.distill_world import compose_config, distill_overrides

pytestmark = pytest.mark.slow  # needs the tiny distill runs (a minute)

# Step-1 hard loss of the tiny trigger run: fixed by the seed, the student's
# initialisation and the fixture world (not by the teacher, whose code may still change); the
# per-token labels and their mask (distill/data.py) define it.
PINNED_FIRST_HARD_LOSS = 0.6847928


def _history(uri, run_id, key):
    from mlflow import MlflowClient

    return sorted(MlflowClient(tracking_uri=uri).get_metric_history(run_id, key), key=lambda m: m.step)


def test_tiny_run_learns_and_writes_a_loadable_student(trigger_run, mlflow_env):
    recipe = trigger_run
    assert recipe.step == 30 and recipe.last_loss is not None
    losses = [m.value for m in _history(mlflow_env["uri"], recipe.mlflow_run_id, "train/loss")]
    assert [m.step for m in _history(mlflow_env["uri"], recipe.mlflow_run_id, "train/loss")] == list(range(1, 31))
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5  # it learns
    hard = _history(mlflow_env["uri"], recipe.mlflow_run_id, "train/hard")[0].value
    assert hard == pytest.approx(PINNED_FIRST_HARD_LOSS, rel=1e-4)
    model, cfg, card = load_student(recipe.out)
    assert cfg == recipe.cfg.student and card["step"] == 30 and card["macs"] == recipe.macs
    assert card["labels"][0] == "speech" and len(card["labels"]) == 18
    assert (recipe.out / TARGETS_FILE).is_file()


def test_mlflow_run_has_params_losses_val_metrics_and_the_student(trigger_run, mlflow_env):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_env["uri"])
    r = client.get_run(trigger_run.mlflow_run_id)
    assert r.info.status == "FINISHED"
    assert r.data.params["student.name"] == "trigger" and r.data.params["kd.temperature"] == "2.0"
    assert int(r.data.params["num_parameters"]) == trigger_run.num_parameters
    for key in ("train/kd", "train/hard", "val/macro_f1", "val/teacher_macro_f1", "val/agreement_f1", "val/kd"):
        assert key in r.data.metrics, key
    assert sorted(a.path for a in client.list_artifacts(r.info.run_id, "student")) == [
        "student/student.json", "student/student.safetensors"]


def test_av_run_trains_confidence_and_feature_distillation(av_run, mlflow_env):
    assert av_run.adapter is not None
    for key in ("train/confidence", "train/feature", "val/agreement_rate"):
        assert _history(mlflow_env["uri"], av_run.mlflow_run_id, key), key
    # val/confidence_auroc is logged when val has both agreeing and disagreeing windows (undefined otherwise).
    assert "val/confidence_auroc" in av_run.last_metrics
    weights = safetensors.torch.load_file(str(latest_checkpoint(av_run.out) / "weights.safetensors"))
    assert "adapter.weight" in weights and "student.confidence.0.weight" in weights
    _, cfg, card = load_student(av_run.out)
    assert cfg.name == "av" and len(card["labels"]) == 41 and card["kd"]["feature_weight"] == 0.5
    assert card["labels"][18:20] == ["idle", "walk"] and card["labels"][-1] == "screen_on"  # actions, then states


def test_resume_after_a_kill_ends_where_an_uninterrupted_run_ends(trigger_run, teacher_dir, mlflow_env, tmp_path, monkeypatch):
    out = tmp_path / "out"
    cfg = compose_config("distill", distill_overrides("trigger", teacher_dir, out, mlflow_env, "mlflow.experiment=kd-resume"))
    real_step = DistillRecipe._loss_step

    def dies_at_step_17(self, idx):
        if self.step == 17:
            raise KeyboardInterrupt("killed")  # the process dies mid-run, after the step-10 checkpoint
        return real_step(self, idx)

    monkeypatch.setattr(DistillRecipe, "_loss_step", dies_at_step_17)
    with pytest.raises(KeyboardInterrupt):
        run(cfg)
    assert latest_checkpoint(out).name == "step_0000010"
    targets_mtime = (out / TARGETS_FILE).stat().st_mtime_ns
    monkeypatch.setattr(DistillRecipe, "_loss_step", real_step)

    resumed = run(cfg)
    assert resumed.resumed_from == 10 and resumed.step == 30
    assert (out / TARGETS_FILE).stat().st_mtime_ns == targets_mtime  # teacher targets computed once per run
    a = safetensors.torch.load_file(str(out / "student" / "student.safetensors"))
    b = safetensors.torch.load_file(str(trigger_run.out / "student" / "student.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key  # bit-exact, BatchNorm statistics included
    history = _history(mlflow_env["uri"], resumed.mlflow_run_id, "train/loss")
    assert [m.step for m in history] == list(range(1, 31))  # one MLflow run, every step logged once
    reference = _history(mlflow_env["uri"], trigger_run.mlflow_run_id, "train/loss")
    assert [m.value for m in history] == [m.value for m in reference]


def test_resume_refuses_a_changed_config_or_resume_false(trigger_run, teacher_dir, mlflow_env):
    changed = compose_config("distill", distill_overrides("trigger", teacher_dir, trigger_run.out, mlflow_env, "kd.temperature=3.0"))
    with pytest.raises(UserError, match="kd.temperature"):
        run(changed)
    refused = compose_config("distill", distill_overrides("trigger", teacher_dir, trigger_run.out, mlflow_env, "resume=false"))
    with pytest.raises(UserError, match="resume=true"):
        run(refused)
