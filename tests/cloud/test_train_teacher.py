"""`earshot train`: learning, exact resume after a kill, torchrun DDP, MLflow contents."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import safetensors.torch
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from cloud.train import run
from shared.training import latest_checkpoint
import cloud.verbs  # noqa: F401  (registers train_schema)
from cloud.teacher_config import TrainConfig
from shared.config import CONFIG_DIR, to_schema

from tests.helpers.teacher_world import make_world

pytestmark = pytest.mark.slow  # trains tiny teachers (kill + resume, torchrun)

BIN = Path(sys.executable).parent
EARSHOT = str(BIN / "earshot")
TORCHRUN = str(BIN / "torchrun")


@pytest.fixture(scope="module")
def qa_dir(tmp_path_factory) -> Path:
    return make_world(tmp_path_factory.mktemp("teacher_world"))


def tiny_args(qa_dir: Path, out: Path, *extra: str) -> list[str]:
    return ["train/preset=tiny", f"data.qa_dir={qa_dir}", f"out={out}", "threads=1", *extra]


def compose_train(overrides: list[str]) -> TrainConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return to_schema(compose(config_name="train", overrides=overrides), TrainConfig)


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(str(folder / "model.safetensors"))


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory) -> str:
    # One store for the module: creating an sqlite store costs seconds.
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(scope="module")
def overfit_run(qa_dir, tmp_path_factory, mlflow_uri):
    """One in-process tiny run that overfits the 16 records, tracked in the tmp store.

    End to end from signals (``perception.cache=false``): 20 steps of perception
    pre-training cannot make frozen encoders good enough to overfit with; the
    cached path is what the resume test below runs."""
    out = tmp_path_factory.mktemp("overfit") / "out"
    cfg = compose_train(tiny_args(qa_dir, out, "max_steps=160", "eval_every=80", f"mlflow.tracking_uri={mlflow_uri}",
                                  "mlflow.experiment=overfit", "perception.cache=false"))
    return run(cfg), mlflow_uri


def test_tiny_training_reduces_loss_and_overfits_a_handful_of_records(overfit_run):
    recipe, _ = overfit_run
    assert recipe.step == 160 and recipe.last_loss is not None
    assert recipe.last_ce < 0.35  # per-record answer loss, from ~3.7 (log of the vocabulary) at step 0
    assert (recipe.out / "perception" / "model.safetensors").is_file()  # phase 1 ran and was kept
    assert recipe.last_scores["overall"] >= 0.9, recipe.last_scores  # val = the training records
    assert (recipe.out / "model" / "model.safetensors").is_file()


def test_mlflow_run_has_params_per_step_loss_per_category_metrics_and_the_checkpoint(overfit_run):
    from mlflow import MlflowClient

    recipe, uri = overfit_run
    client = MlflowClient(tracking_uri=uri)
    (r,) = client.search_runs([client.get_experiment_by_name("overfit").experiment_id])
    assert r.info.status == "FINISHED" and r.info.run_id == recipe.mlflow_run_id
    assert r.data.params["model.fusion"] == "gate" and r.data.params["max_steps"] == "160"
    assert int(r.data.params["num_parameters"]) == recipe.model.num_parameters()
    losses = client.get_metric_history(r.info.run_id, "train/loss")
    assert sorted(m.step for m in losses) == list(range(1, 161))
    assert losses[-1].value < losses[0].value / 5
    for cat in ("SSA", "AVDN", "TR", "AVH"):
        history = client.get_metric_history(r.info.run_id, f"val/acc/{cat}")
        assert [m.step for m in history] == [80, 160]
    assert "val/evidence/audio" in r.data.metrics and "val/snr/snr_10_20" in r.data.metrics
    store_dir = Path(uri[len("sqlite:///") :]).parent
    assert r.info.artifact_uri.startswith((store_dir / "mlruns").as_uri())  # beside the store, not in the cwd
    artifacts = {a.path for a in client.list_artifacts(r.info.run_id, "model")}
    assert {"model/model.safetensors", "model/model_config.json", "model/vocab.json"} <= artifacts


def test_killed_run_resumes_and_ends_where_an_uninterrupted_run_ends(qa_dir, tmp_path, mlflow_uri):
    from mlflow import MlflowClient

    # Dropout on: the resumed run must also replay the random masks.
    common = ["max_steps=30", "checkpoint_every=5", "eval_every=1000", "model.dropout=0.1"]
    straight = run(compose_train(tiny_args(qa_dir, tmp_path / "straight", *common, "mlflow.enabled=false")))

    # The same run in a subprocess, SIGKILLed as soon as its first checkpoint lands;
    # log_every=1 flushes every step to MLflow, so some steps after the checkpoint are logged.
    out = tmp_path / "killed"
    tracked = [*common, "log_every=1", f"mlflow.tracking_uri={mlflow_uri}", "mlflow.experiment=resume"]
    proc = subprocess.Popen([EARSHOT, "train", *tiny_args(qa_dir, out, *tracked)], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while latest_checkpoint(out) is None and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # let it run a few steps past the checkpoint
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = latest_checkpoint(out)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    assert killed_at is not None and not (out / "model").exists(), "the run finished before the kill"
    at_kill = weights(killed_at)

    resumed = run(compose_train(tiny_args(qa_dir, out, *tracked)))
    assert resumed.resumed_from == int(killed_at.name.split("_")[1]) < 30
    assert resumed.last_loss == pytest.approx(straight.last_loss, rel=1e-6, abs=1e-7)
    a, b = weights(tmp_path / "straight" / "model"), weights(out / "model")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-6, atol=1e-7, msg=key)
    # The comparison can fail: the checkpoint the run was killed after is elsewhere.
    assert not torch.allclose(at_kill["sound_head.weight"], a["sound_head.weight"])

    # One MLflow run across the kill, every step logged once.
    client = MlflowClient(tracking_uri=mlflow_uri)
    (r,) = client.search_runs([client.get_experiment_by_name("resume").experiment_id])
    assert r.info.status == "FINISHED" and r.data.tags["resumed_from_step"] == str(resumed.resumed_from)
    assert sorted(m.step for m in client.get_metric_history(r.info.run_id, "train/loss")) == list(range(1, 31))


def test_resume_refuses_a_different_model(qa_dir, tmp_path):
    from shared.config import UserError

    run(compose_train(tiny_args(qa_dir, tmp_path / "o", "max_steps=2", "mlflow.enabled=false")))
    with pytest.raises(UserError, match="model.d_model"):
        run(compose_train(tiny_args(qa_dir, tmp_path / "o", "max_steps=4", "mlflow.enabled=false", "model.d_model=16")))
    # a phase 1 trained without per-label weights is not taken as one trained with them
    with pytest.raises(UserError, match="perception.pos_weight"):
        run(compose_train(tiny_args(qa_dir, tmp_path / "p", "max_steps=2", "mlflow.enabled=false",
                                    f"perception.init={tmp_path / 'o'}", "perception.pos_weight=sqrt")))


def test_torchrun_two_processes_with_gloo_runs_to_the_end_and_logs_one_run(qa_dir, tmp_path, mlflow_uri):
    from mlflow import MlflowClient

    # The store comes from the environment here, as a cluster job would set it.
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_uri, "OMP_NUM_THREADS": "1"}
    cmd = [TORCHRUN, "--nproc_per_node=2", "--no-python", EARSHOT, "train",
           *tiny_args(qa_dir, tmp_path / "ddp", "max_steps=6", "eval_every=6", "checkpoint_every=3", "mlflow.experiment=ddp")]
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    # phase 1 splits each batch over the two processes (4 windows each) and averages their gradients
    assert "2 process(es)" in out.stdout and "perception 20/20" in out.stdout and "step 6/6" in out.stdout
    assert (tmp_path / "ddp" / "model" / "model.safetensors").is_file()
    client = MlflowClient(tracking_uri=mlflow_uri)
    (r,) = client.search_runs([client.get_experiment_by_name("ddp").experiment_id])
    assert r.info.status == "FINISHED" and r.data.params["world_size"] == "2"
    assert len(client.get_metric_history(r.info.run_id, "train/loss")) == 6
    assert "val/acc/SSA" in r.data.metrics
