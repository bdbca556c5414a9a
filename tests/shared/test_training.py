"""shared.training (what both recipes share) and shared.tracking (the one MLflow tracker)."""
import json
import math
from types import SimpleNamespace

import pytest
import torch

from shared.config import OptimConfig, UserError
from shared.tracking import Tracker, artifact_root
from shared.training import (CHECKPOINTS_DIR, STATE_FILE, batch_indices, check_resume_config, config_changes,
                             latest_checkpoint, load_optimizer, lr_at, make_adamw, read_state, save_checkpoint,
                             save_optimizer)


def test_lr_warms_up_linearly_then_decays_by_cosine_to_the_floor():
    optim = OptimConfig(lr=1e-2, warmup_steps=4, min_lr_ratio=0.1)
    assert [lr_at(s, optim, 104) for s in range(4)] == pytest.approx([2.5e-3, 5e-3, 7.5e-3, 1e-2])
    assert lr_at(4, optim, 104) == pytest.approx(1e-2)
    assert lr_at(54, optim, 104) == pytest.approx(1e-2 * (0.1 + 0.9 * 0.5))  # half way: cos = 0
    assert lr_at(104, optim, 104) == pytest.approx(1e-3) and lr_at(500, optim, 104) == pytest.approx(1e-3)


def test_batches_are_a_pure_function_of_seed_and_step_and_cover_each_epoch():
    a = [batch_indices(10, 4, seed=3, step=s) for s in range(2)]
    assert a == [batch_indices(10, 4, seed=3, step=s) for s in range(2)]
    assert a != [batch_indices(10, 4, seed=4, step=s) for s in range(2)]
    assert len(set(a[0]) | set(a[1])) == 8  # two batches of an epoch never repeat an example
    # ranks split the global batch; together they are the single-process batch
    full = batch_indices(10, 4, seed=3, step=5)
    assert sorted(batch_indices(10, 4, 3, 5, rank=0, world_size=2) + batch_indices(10, 4, 3, 5, rank=1, world_size=2)) == sorted(full)
    assert len(batch_indices(3, 8, seed=0, step=0)) == 8  # a tiny set is repeated to fill a batch


def test_checkpoints_are_atomic_pruned_and_found(tmp_path):
    for step in (10, 20, 30):
        save_checkpoint(tmp_path, step, lambda f: (f / "w.bin").write_bytes(b"x") and None, {"step": step}, keep=2)
    root = tmp_path / CHECKPOINTS_DIR
    assert sorted(p.name for p in root.iterdir()) == ["step_0000020", "step_0000030"]
    assert latest_checkpoint(tmp_path).name == "step_0000030" and read_state(root / "step_0000030") == {"step": 30}
    # a folder without its state file (a kill before the rename) is not a checkpoint
    (root / "step_0000040").mkdir()
    assert latest_checkpoint(tmp_path).name == "step_0000030"
    with pytest.raises(RuntimeError):
        save_checkpoint(tmp_path, 50, lambda f: (_ for _ in ()).throw(RuntimeError("disk full")), {"step": 50}, keep=2)
    assert latest_checkpoint(tmp_path).name == "step_0000030" and not (root / "step_0000050").exists()


def test_optimizer_state_round_trips_without_pickle(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = make_adamw(model.parameters(), OptimConfig())
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    saved = save_optimizer(opt, tmp_path)
    json.dumps(saved)  # the rest is JSON
    fresh = make_adamw(model.parameters(), OptimConfig())
    load_optimizer(fresh, tmp_path, json.loads(json.dumps(saved)))
    for a, b in zip(opt.state.values(), fresh.state.values()):
        assert torch.equal(a["exp_avg"], b["exp_avg"]) and torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])
    assert [g["weight_decay"] for g in fresh.param_groups] == [0.05, 0.0]  # matrices decay, biases do not


def test_resume_diff_ignores_only_the_keys_that_may_change(tmp_path):
    then = {"seed": 0, "optim": {"lr": 1e-3}, "mlflow": {"run_name": "a"}, "max_steps": 10}
    now = {"seed": 0, "optim": {"lr": 2e-3}, "mlflow": {"run_name": "b"}, "max_steps": 20}
    assert config_changes(then, now, {"max_steps", "mlflow"}) == ["optim.lr"]
    with pytest.raises(UserError, match=r"was distilled with a different config \(optim.lr\)"):
        check_resume_config(tmp_path, then, now, {"max_steps", "mlflow"}, "distilled")


@pytest.mark.slow  # creates an sqlite MLflow store (6-15 s here)
def test_tracker_places_artifacts_beside_the_store_and_logs_a_resumed_step_once(tmp_path):
    uri = f"sqlite:///{tmp_path / 'db' / 'mlflow.db'}"
    (tmp_path / "db").mkdir()
    assert artifact_root(uri, None) == (tmp_path / "db" / "mlruns").as_uri()
    assert artifact_root(uri, "/elsewhere") == "/elsewhere"
    t = Tracker(True, uri, "unit")
    run_id = t.start(run_name="first")
    for step in (1, 2, 3):
        t.metrics({"train/loss": 1.0 / step, "nan": math.nan}, step)
    t.end(failed=True)  # a killed run had flushed steps 1..3
    again = Tracker(True, uri, "unit")
    again.start(run_id=run_id)
    assert again.skip_logged("train/loss") == 3
    for step in (2, 3, 4):
        again.metrics({"train/loss": 1.0 / step}, step)
    (tmp_path / "f.txt").write_text("x")
    again.artifact(tmp_path / "f.txt")
    again.end()
    history = again.client.get_metric_history(run_id, "train/loss")
    assert sorted(m.step for m in history) == [1, 2, 3, 4]
    assert again.client.get_metric_history(run_id, "nan") == []
    run = again.client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.artifact_uri.startswith((tmp_path / "db" / "mlruns").as_uri())
    assert (tmp_path / "db" / "mlruns").is_dir()
    off = Tracker(False, uri, "unit")
    assert off.start(run_name="x") is None and off.run_id is None
    off.metrics({"a": 1.0}, 1)
    off.end()


def test_adamw_betas_come_from_the_config():
    opt = make_adamw(torch.nn.Linear(2, 2).parameters(), SimpleNamespace(lr=0.1, weight_decay=0.0, beta1=0.8, beta2=0.9))
    assert opt.param_groups[0]["betas"] == (0.8, 0.9)
