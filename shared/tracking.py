"""MLflow plumbing shared by ``earshot distill``, ``earshot export`` and ``earshot sim train``.

Store: ``sqlite:///mlflow.db`` in the working directory unless the config's
``tracking_uri`` or ``MLFLOW_TRACKING_URI`` names another (as ``earshot
train``). Metrics are buffered and written in batches: one sqlite transaction
per scalar would cost more than a training step. Model versions are created
with the client from an artifact folder (MLflow 3's ``register_model`` wants
a logged MLflow *model*; a ``.pte`` plus its card is a plain artifact).
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

__all__ = ["flatten", "resolve_uri", "log_metric_batch", "Tracker"]


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def resolve_uri(tracking_uri: str | None) -> str:
    return tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def log_metric_batch(run_id: str, pending: list[tuple[str, float, int]]) -> None:
    """Write buffered ``(key, value, step)`` metrics to ``run_id`` in batched requests."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    batch = [Metric(k, v, now, s) for k, v, s in pending]
    client = MlflowClient()
    for i in range(0, len(batch), 1000):  # MLflow's per-request limit
        client.log_batch(run_id, metrics=batch[i : i + 1000])


class Tracker:
    """One MLflow run, or a no-op when disabled (``run_id`` is then None)."""

    def __init__(self, enabled: bool, tracking_uri: str | None, experiment: str, artifact_location: str | None = None) -> None:
        self.enabled = enabled
        self.run_id: str | None = None
        self._pending: list[tuple[str, float, int]] = []
        if not enabled:
            return
        import mlflow

        self.uri = resolve_uri(tracking_uri)
        mlflow.set_tracking_uri(self.uri)
        client = mlflow.MlflowClient()
        if client.get_experiment_by_name(experiment) is None:
            client.create_experiment(experiment, artifact_location=artifact_location)
        mlflow.set_experiment(experiment)

    def start(self, run_name: str | None = None, run_id: str | None = None) -> str | None:
        """Start a new run, or continue ``run_id`` (a resumed distillation)."""
        if not self.enabled:
            return None
        import mlflow

        run = mlflow.start_run(run_id=run_id) if run_id else mlflow.start_run(run_name=run_name)
        self.run_id = run.info.run_id
        return self.run_id

    def logged_through(self, key: str) -> int:
        """The last step of ``key`` already in the store (0 if none)."""
        if self.run_id is None:
            return 0
        import mlflow

        return max((m.step for m in mlflow.MlflowClient().get_metric_history(self.run_id, key)), default=0)

    def params(self, params: dict[str, Any]) -> None:
        if self.run_id is None:
            return
        import mlflow

        mlflow.log_params({k: ("" if v is None else v) for k, v in params.items()})

    def tags(self, tags: dict[str, str]) -> None:
        if self.run_id is not None:
            import mlflow

            mlflow.set_tags(tags)

    def metrics(self, metrics: dict[str, float], step: int) -> None:
        if self.run_id is not None:
            self._pending += [(k, float(v), step) for k, v in metrics.items() if not math.isnan(float(v))]

    def flush(self) -> None:
        if self.run_id is None or not self._pending:
            return
        log_metric_batch(self.run_id, self._pending)
        self._pending = []

    def artifacts(self, folder: str | Path, artifact_path: str) -> None:
        if self.run_id is not None:
            import mlflow

            mlflow.log_artifacts(str(folder), artifact_path=artifact_path)

    def artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if self.run_id is not None:
            import mlflow

            mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def register(self, name: str, artifact_path: str, tags: dict[str, str] | None = None) -> int | None:
        """Register ``<run artifacts>/<artifact_path>`` as a new version of model ``name``."""
        if self.run_id is None:
            return None
        import mlflow

        client = mlflow.MlflowClient()
        if not client.search_registered_models(filter_string=f"name = '{name}'"):
            client.create_registered_model(name)
        source = f"{client.get_run(self.run_id).info.artifact_uri}/{artifact_path}"
        version = client.create_model_version(name, source=source, run_id=self.run_id, tags=tags or {})
        return int(version.version)

    def end(self, failed: bool = False) -> None:
        if self.run_id is None:
            return
        import mlflow

        self.flush()
        mlflow.end_run(status="FAILED" if failed else "FINISHED")
        self.run_id = None
