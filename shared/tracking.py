"""The one MLflow tracker, used by every verb that records runs.

    tracker = make_tracker(cfg.mlflow)                # a TrackingConfig (shared/config.py)
    tracker.start(run_name="kd-trigger")              # or start(run_id=...) to continue a run
    tracker.params(flatten(dataclasses.asdict(cfg)))
    tracker.metrics({"train/loss": 0.7}, step=10)     # buffered; flush() writes them in one batch
    tracker.artifacts("runs/kd/student", "student")
    tracker.end()

Store: ``tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else
``sqlite:///mlflow.db`` in the working directory.

Artifacts (one placement for every verb): a new experiment keeps them in the
config's ``artifact_location`` if given, else in ``mlruns/`` next to an sqlite
store's database file (MLflow's own default is the working directory of
whoever creates the experiment, which scatters artifacts when runs start from
different folders), else where the store puts them.

Everything goes through an ``MlflowClient`` bound to the store, with explicit
run ids: no process-wide active run, so a parent run (``earshot experiment``)
and the training runs nested in it can be open at once, and one verb's store
never leaks into the next verb run in the same process.

Metrics are buffered and written in batches: one sqlite transaction per scalar
would cost more than a training step. A continued run (exact resume) can skip
the steps its killed predecessor had already written (:meth:`Tracker.skip_logged`),
so each step is logged once. Model versions are created from an artifact folder
(MLflow 3's ``register_model`` wants a logged MLflow *model*; a ``.pte`` plus
its card is a plain artifact).
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

__all__ = ["flatten", "resolve_uri", "artifact_root", "Tracker", "make_tracker"]

#: MLflow's per-request limits of ``log_batch``.
_MAX_METRICS_PER_BATCH = 1000
_MAX_PARAMS_PER_BATCH = 100
#: Tag naming a run's parent (MLflow's UI nests runs by it).
PARENT_TAG = "mlflow.parentRunId"


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1} (config params, resume diffs)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def resolve_uri(tracking_uri: str | None) -> str:
    """The store: ``tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else sqlite:///mlflow.db in the cwd."""
    return tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def artifact_root(uri: str, artifact_location: str | None) -> str | None:
    """Where a new experiment keeps its artifacts (module docstring); None: the store's default."""
    if artifact_location:
        return artifact_location
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).resolve().parent / "mlruns").as_uri()
    return None


def _default_tags(extra: dict[str, str]) -> dict[str, str]:
    """MLflow's context tags (source, user, git commit), as ``mlflow.start_run`` adds them."""
    try:
        from mlflow.tracking.context.registry import resolve_tags

        return dict(resolve_tags(extra))
    except Exception:  # an internal API: the run is worth more than its source tags
        return dict(extra)


class Tracker:
    """One MLflow run, or a no-op when disabled (``run_id`` is then None)."""

    def __init__(self, enabled: bool, tracking_uri: str | None, experiment: str,
                 artifact_location: str | None = None) -> None:
        self.enabled = enabled
        self.run_id: str | None = None
        self.uri: str | None = None
        self._pending: list[tuple[str, float, int]] = []
        self._skip_through = 0
        if not enabled:
            return
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        self.uri = resolve_uri(tracking_uri)
        self.client = MlflowClient(tracking_uri=self.uri)
        found = self.client.get_experiment_by_name(experiment)
        if found is None:
            try:
                self.experiment_id = self.client.create_experiment(
                    experiment, artifact_location=artifact_root(self.uri, artifact_location))
            except MlflowException:  # another process created it first
                self.experiment_id = self.client.get_experiment_by_name(experiment).experiment_id
        else:
            self.experiment_id = found.experiment_id

    def start(self, run_name: str | None = None, run_id: str | None = None, parent_run_id: str | None = None,
              tags: dict[str, str] | None = None) -> str | None:
        """Start a new run (nested under ``parent_run_id`` if given), or continue ``run_id``."""
        if not self.enabled:
            return None
        if run_id is not None:
            self.client.update_run(run_id, status="RUNNING")
            self.run_id = run_id
            return run_id
        tags = dict(tags or {})
        if parent_run_id:
            tags[PARENT_TAG] = parent_run_id
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags=_default_tags(tags))
        self.run_id = run.info.run_id
        return self.run_id

    def has_run(self, run_id: str) -> bool:
        """Whether ``run_id`` is a run of this store (a state file may name one of another store)."""
        if not self.enabled:
            return False
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_run(run_id)
            return True
        except MlflowException:
            return False

    def logged_through(self, key: str) -> int:
        """The last step of ``key`` already in the store (0 if none)."""
        if self.run_id is None:
            return 0
        return max((m.step for m in self.client.get_metric_history(self.run_id, key)), default=0)

    def skip_logged(self, key: str) -> int:
        """Drop metrics of steps up to the last one of ``key`` already stored; returns that step.

        For a continued run under exact resume: the steps after its checkpoint that the
        killed run had already flushed come out identical, so they are logged once."""
        self._skip_through = self.logged_through(key)
        return self._skip_through

    def params(self, params: dict[str, Any]) -> None:
        if self.run_id is None:
            return
        from mlflow.entities import Param

        batch = [Param(k, "" if v is None else str(v)) for k, v in params.items()]
        for i in range(0, len(batch), _MAX_PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=batch[i : i + _MAX_PARAMS_PER_BATCH])

    def tags(self, tags: dict[str, str]) -> None:
        if self.run_id is None:
            return
        for k, v in tags.items():
            self.client.set_tag(self.run_id, k, v)

    def metrics(self, metrics: dict[str, float], step: int) -> None:
        """Buffer ``metrics`` at ``step`` (NaNs and already-stored steps are left out)."""
        if self.run_id is None or (self._skip_through and step <= self._skip_through):
            return
        self._pending += [(k, float(v), step) for k, v in metrics.items() if not math.isnan(float(v))]

    def flush(self) -> None:
        """Write the buffered metrics in batched requests."""
        if self.run_id is None or not self._pending:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, v, now, s) for k, v, s in self._pending]
        for i in range(0, len(batch), _MAX_METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=batch[i : i + _MAX_METRICS_PER_BATCH])
        self._pending = []

    def artifacts(self, folder: str | Path, artifact_path: str) -> None:
        if self.run_id is not None:
            self.client.log_artifacts(self.run_id, str(folder), artifact_path=artifact_path)

    def artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if self.run_id is not None:
            self.client.log_artifact(self.run_id, str(path), artifact_path=artifact_path)

    def adopt(self, child_run_id: str | None) -> None:
        """Nest an existing run under this one."""
        if self.run_id is not None and child_run_id:
            self.client.set_tag(child_run_id, PARENT_TAG, self.run_id)

    def register(self, name: str, artifact_path: str, tags: dict[str, str] | None = None) -> int | None:
        """Register ``<run artifacts>/<artifact_path>`` as a new version of model ``name``."""
        if self.run_id is None:
            return None
        if not self.client.search_registered_models(filter_string=f"name = '{name}'"):
            self.client.create_registered_model(name)
        source = f"{self.client.get_run(self.run_id).info.artifact_uri}/{artifact_path}"
        version = self.client.create_model_version(name, source=source, run_id=self.run_id, tags=tags or {})
        return int(version.version)

    def end(self, failed: bool = False) -> None:
        """Flush and close the run (FINISHED, or FAILED)."""
        if self.run_id is None:
            return
        self.flush()
        self.client.set_terminated(self.run_id, "FAILED" if failed else "FINISHED")
        self.run_id = None


def make_tracker(cfg: Any, enabled: bool = True) -> Tracker:
    """A :class:`Tracker` from a ``shared.config.TrackingConfig`` (``enabled=False``: off
    whatever the config says, e.g. on every torchrun process but rank 0)."""
    return Tracker(enabled and cfg.enabled, cfg.tracking_uri, cfg.experiment, cfg.artifact_location)
