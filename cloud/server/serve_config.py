"""Schemas of ``earshot serve``, ``earshot worker`` and ``earshot keys``
(``configs/serve.yaml``, ``worker.yaml``, ``keys.yaml``).

The YAML files carry the defaults and the trade-off comments; these dataclasses
are the whole configuration surface and check every value before any work
(``shared.config``). The verbs are in ``cloud/server/verbs.py``; the guide is
docs/serving.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import MISSING

from shared.config import ConfigError, UserError, check, check_choice, check_range, check_threads
from shared.protocol import MAX_BATCH_SIZE, MAX_MODEL_ID_BYTES

__all__ = ["ServeConfig", "WorkerConfig", "KeysConfig"]

_MODES = ("server", "broker")


def _check_checkpoint(path: str | None, key: str = "checkpoint") -> None:
    if path is None:
        return
    folder = Path(path)
    ok = (folder / "model.safetensors").is_file() or (folder / "model" / "model.safetensors").is_file()
    check(ok, key, f"{path!r} is not a teacher folder (no model.safetensors, nor model/model.safetensors)")


def _check_lm(lm: str | None, adapter: str | None) -> None:
    """``lm`` / ``lm_adapter`` exist before anything loads (cloud/lm/load.py, cloud/lm/tune.py)."""
    if lm is None:
        return
    from cloud.lm.load import check_adapter, resolve_lm_path

    try:
        resolve_lm_path(lm, key="lm")
        check_adapter(adapter, lm, key="lm_adapter")
    except UserError as exc:
        raise ConfigError(str(exc)) from None


def _check_endpoint(value: str, key: str) -> None:
    check(value.startswith(("tcp://", "ipc://")), key, f"must be a tcp:// or ipc:// endpoint, got {value!r}")


@dataclass
class ServeConfig:
    """``earshot serve``: the reasoning server (configs/serve.yaml)."""

    mode: str = "server"                 # server: model in this process | broker: workers connect
    checkpoint: str | None = None        # teacher folder (mode=server)
    bind: str = "tcp://127.0.0.1:5555"   # clients connect here
    worker_bind: str = "tcp://127.0.0.1:5556"  # workers connect here (mode=broker)
    max_batch_size: int = 8
    max_queue_delay_ms: float = 5.0
    queue_capacity: int = 64
    early_reject: bool = True
    drain_timeout_s: float = 30.0
    latency_window: int = 1024
    rcvhwm: int = 1000
    sndhwm: int = 1000
    threads: int = 1
    model_id: str | None = None
    secret_key: str | None = None
    allowed_clients: str | None = None
    allowed_workers: str | None = None
    insecure: bool = False
    endpoint_file: str | None = None
    lm: str | None = None                # language model for result.sentence: default | <.gguf> | <HF folder>
    lm_adapter: str | None = "default"   # its answerer LoRA (default: the shipped one; null: prompted as is)

    def __post_init__(self) -> None:
        check_choice("mode", self.mode, _MODES)
        _check_lm(self.lm, self.lm_adapter)
        check(self.mode == "broker" or self.checkpoint is not None, "checkpoint",
              "required in mode=server (a teacher folder written by 'earshot train')")
        _check_checkpoint(self.checkpoint)
        _check_endpoint(self.bind, "bind")
        _check_endpoint(self.worker_bind, "worker_bind")
        check_range("max_batch_size", self.max_batch_size, 1, MAX_BATCH_SIZE)
        check_range("max_queue_delay_ms", self.max_queue_delay_ms, 0.0, 1000.0, unit="ms")
        check_range("queue_capacity", self.queue_capacity, 1, 100_000)
        check_range("drain_timeout_s", self.drain_timeout_s, 0.0, 3600.0, lo_open=True, unit="s")
        check_range("latency_window", self.latency_window, 1, 1_000_000)
        for key in ("rcvhwm", "sndhwm"):
            check_range(key, getattr(self, key), 1, 1_000_000, unit="messages")
        check_threads(self.threads)
        check(self.model_id is None or 1 <= len(self.model_id.encode()) <= MAX_MODEL_ID_BYTES, "model_id",
              f"must be 1..{MAX_MODEL_ID_BYTES} bytes")
        for key in ("secret_key",):
            value = getattr(self, key)
            check(value is None or Path(value).is_file(), key, f"no such file: {value}")
        for key in ("allowed_clients", "allowed_workers"):
            value = getattr(self, key)
            check(value is None or Path(value).is_dir(), key, f"no such folder: {value}")


@dataclass
class WorkerConfig:
    """``earshot worker``: run the teacher for a broker (configs/worker.yaml)."""

    connect: str = "tcp://127.0.0.1:5556"  # the broker's worker_bind
    checkpoint: str = MISSING
    max_batch_size: int = 8
    threads: int = 1
    model_id: str | None = None
    name: str | None = None
    server_key: str | None = None   # the broker's public key (.key)
    secret_key: str | None = None   # this worker's key pair (.key_secret)
    insecure: bool = False
    lm: str | None = None
    lm_adapter: str | None = "default"

    def __post_init__(self) -> None:
        _check_endpoint(self.connect, "connect")
        _check_lm(self.lm, self.lm_adapter)
        _check_checkpoint(self.checkpoint)
        check_range("max_batch_size", self.max_batch_size, 1, MAX_BATCH_SIZE)
        check_threads(self.threads)
        check(self.model_id is None or 1 <= len(self.model_id.encode()) <= MAX_MODEL_ID_BYTES, "model_id",
              f"must be 1..{MAX_MODEL_ID_BYTES} bytes")
        check((self.server_key is None) == (self.secret_key is None), "server_key",
              "give both server_key and secret_key for CurveZMQ, or neither")
        for key in ("server_key", "secret_key"):
            value = getattr(self, key)
            check(value is None or Path(value).is_file(), key, f"no such file: {value}")


@dataclass
class KeysConfig:
    """``earshot keys``: make a CurveZMQ key pair (configs/keys.yaml)."""

    name: str = MISSING         # file stem: <dir>/<name>.key and <dir>/<name>.key_secret
    dir: str = "keys"
    allow: str | None = None    # also copy the public key into this allow-list folder
    force: bool = False         # replace an existing pair

    def __post_init__(self) -> None:
        check(bool(self.name) and all(c.isalnum() or c in "-_." for c in self.name) and not self.name.startswith("."),
              "name", f"use letters, digits, '-', '_' and '.', got {self.name!r}")
