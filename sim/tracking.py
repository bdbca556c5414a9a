"""MLflow tracking for ``earshot sim train`` (the same store rules as the other verbs).

Store: the config's ``tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else
``sqlite:///mlflow.db`` in the working directory. Metrics are buffered and
written in batches (one sqlite transaction per scalar costs more than a PPO
rollout step). ``sim`` may not import ``distill`` (ARCHITECTURE.md section 2),
hence this small copy of the pattern in ``distill/tracking.py``.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

__all__ = ["resolve_uri", "Tracker"]


def resolve_uri(tracking_uri: str | None) -> str:
    return tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


class Tracker:
    """One MLflow run, or a no-op when disabled (``run_id`` is then None)."""

    def __init__(self, enabled: bool, tracking_uri: str | None, experiment: str) -> None:
        self.enabled = enabled
        self.run_id: str | None = None
        self._pending: list[tuple[str, float, int]] = []
        if not enabled:
            return
        import mlflow

        mlflow.set_tracking_uri(resolve_uri(tracking_uri))
        mlflow.set_experiment(experiment)

    def start(self, run_name: str | None = None) -> str | None:
        if not self.enabled:
            return None
        import mlflow

        self.run_id = mlflow.start_run(run_name=run_name).info.run_id
        return self.run_id

    def params(self, params: dict[str, Any]) -> None:
        if self.run_id is not None:
            import mlflow

            mlflow.log_params({k: ("" if v is None else v) for k, v in params.items()})

    def metrics(self, metrics: dict[str, float], step: int) -> None:
        if self.run_id is not None:
            self._pending += [(k, float(v), step) for k, v in metrics.items() if not math.isnan(float(v))]

    def flush(self) -> None:
        if self.run_id is None or not self._pending:
            return
        from mlflow import MlflowClient
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, v, now, s) for k, v, s in self._pending]
        for i in range(0, len(batch), 1000):  # MLflow's per-request limit
            MlflowClient().log_batch(self.run_id, metrics=batch[i : i + 1000])
        self._pending = []

    def artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if self.run_id is not None:
            import mlflow

            mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def end(self, failed: bool = False) -> None:
        if self.run_id is None:
            return
        import mlflow

        self.flush()
        mlflow.end_run(status="FAILED" if failed else "FINISHED")
        self.run_id = None
