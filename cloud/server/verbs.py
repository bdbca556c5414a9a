"""Serving verbs: ``earshot serve``, ``earshot worker``, ``earshot keys``.

    earshot serve checkpoint=runs/teacher/model                          # one process, loopback
    earshot serve mode=broker bind=tcp://*:5555 worker_bind=tcp://*:5556 \\
        secret_key=keys/server.key_secret allowed_clients=keys/clients allowed_workers=keys/workers
    earshot worker connect=tcp://broker-host:5556 checkpoint=runs/teacher/model \\
        server_key=keys/server.key secret_key=keys/worker-01.key_secret
    earshot keys name=server

The full guide, with several hosts: docs/serving.md. The schemas below are the
whole configuration surface; configs/serve.yaml, worker.yaml and keys.yaml
carry the defaults and the trade-off comments. Torch is imported only when a
model is loaded, so listing verbs stays fast.
"""
from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from omegaconf import MISSING

from shared.config import UserError, check, verb
from shared.protocol import MAX_BATCH_SIZE, MAX_MODEL_ID_BYTES

__all__ = ["ServeConfig", "WorkerConfig", "KeysConfig", "serve_main", "worker_main", "keys_main"]

log = logging.getLogger("earshot.server")

_MODES = ("server", "broker")


def _check_checkpoint(path: str | None, key: str = "checkpoint") -> None:
    if path is None:
        return
    folder = Path(path)
    ok = (folder / "model.safetensors").is_file() or (folder / "model" / "model.safetensors").is_file()
    check(ok, key, f"{path!r} is not a teacher folder (no model.safetensors, nor model/model.safetensors)")


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

    def __post_init__(self) -> None:
        check(self.mode in _MODES, "mode", f"must be one of {_MODES}, got {self.mode!r}")
        check(self.mode == "broker" or self.checkpoint is not None, "checkpoint",
              "required in mode=server (a teacher folder written by 'earshot train')")
        _check_checkpoint(self.checkpoint)
        _check_endpoint(self.bind, "bind")
        _check_endpoint(self.worker_bind, "worker_bind")
        check(1 <= self.max_batch_size <= MAX_BATCH_SIZE, "max_batch_size",
              f"must be in [1, {MAX_BATCH_SIZE}], got {self.max_batch_size}")
        check(0.0 <= self.max_queue_delay_ms <= 1000.0, "max_queue_delay_ms",
              f"must be in [0, 1000] ms, got {self.max_queue_delay_ms}")
        check(1 <= self.queue_capacity <= 100_000, "queue_capacity",
              f"must be in [1, 100000], got {self.queue_capacity}")
        check(0.0 < self.drain_timeout_s <= 3600.0, "drain_timeout_s",
              f"must be in (0, 3600] s, got {self.drain_timeout_s}")
        check(1 <= self.latency_window <= 1_000_000, "latency_window",
              f"must be in [1, 1e6], got {self.latency_window}")
        for key in ("rcvhwm", "sndhwm"):
            check(1 <= getattr(self, key) <= 1_000_000, key, f"must be in [1, 1e6] messages, got {getattr(self, key)}")
        check(0 <= self.threads <= 256, "threads", f"must be in [0, 256] (0 = torch's default), got {self.threads}")
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

    def __post_init__(self) -> None:
        _check_endpoint(self.connect, "connect")
        _check_checkpoint(self.checkpoint)
        check(1 <= self.max_batch_size <= MAX_BATCH_SIZE, "max_batch_size",
              f"must be in [1, {MAX_BATCH_SIZE}], got {self.max_batch_size}")
        check(0 <= self.threads <= 256, "threads", f"must be in [0, 256] (0 = torch's default), got {self.threads}")
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


def _backend_factory(checkpoint: str, max_batch_size: int, model_id: str | None, threads: int):
    def make():
        from cloud.server.backend import load_teacher_backend

        return load_teacher_backend(checkpoint, max_batch_size=max_batch_size, model_id=model_id, threads=threads)

    return make


@verb("serve", ServeConfig)
def serve_main(cfg: ServeConfig) -> None:
    """Serve the teacher over wire protocol v1 (a server, or a broker for 'earshot worker's)."""
    from cloud.server.security import plan_security
    from cloud.server.server import ServerOptions, run_broker, run_server

    keys = plan_security(cfg.bind, cfg.secret_key, cfg.allowed_clients, cfg.insecure, "client endpoint")
    worker_keys = None
    if cfg.mode == "broker":
        worker_keys = plan_security(cfg.worker_bind, cfg.secret_key if cfg.allowed_workers else None,
                                    cfg.allowed_workers, cfg.insecure, "worker endpoint")
    options = ServerOptions(
        bind=cfg.bind, worker_bind=cfg.worker_bind if cfg.mode == "broker" else None,
        max_batch_size=cfg.max_batch_size, max_queue_delay_ms=cfg.max_queue_delay_ms,
        queue_capacity=cfg.queue_capacity, early_reject=cfg.early_reject, drain_timeout_s=cfg.drain_timeout_s,
        latency_window=cfg.latency_window, rcvhwm=cfg.rcvhwm, sndhwm=cfg.sndhwm,
        endpoint_file=cfg.endpoint_file, keys=keys, worker_keys=worker_keys,
    )
    if cfg.mode == "broker":
        status = run_broker(options)
    else:
        status = run_server(options, _backend_factory(cfg.checkpoint, cfg.max_batch_size, cfg.model_id, cfg.threads))
    if status:
        sys.exit(status)


@verb("worker", WorkerConfig)
def worker_main(cfg: WorkerConfig) -> None:
    """Run the teacher for a broker ('earshot serve mode=broker'); reconnects on its own."""
    import signal

    from cloud.server.security import is_loopback, load_keypair, load_public_key
    from cloud.server.worker import Worker, WorkerCurve

    curve = None
    if cfg.secret_key is not None:
        public, secret = load_keypair(cfg.secret_key)
        curve = WorkerCurve(load_public_key(cfg.server_key), public, secret)
    elif is_loopback(cfg.connect):
        log.warning("worker -> %s: loopback WITHOUT CurveZMQ (development only)", cfg.connect)
    elif not cfg.insecure:
        raise UserError(f"refusing to connect to {cfg.connect} (not loopback) without CurveZMQ keys; "
                        f"give server_key and secret_key, or set insecure=true on a trusted network")
    else:
        log.error("worker -> %s WITHOUT CurveZMQ because insecure=true", cfg.connect)
    worker = Worker(cfg.connect, _backend_factory(cfg.checkpoint, cfg.max_batch_size, cfg.model_id, cfg.threads),
                    name=cfg.name, curve=curve)

    def on_signal(signum, frame):
        log.info("signal %d: finishing the current batch, then leaving", signum)
        worker.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    worker.run()


@verb("keys", KeysConfig)
def keys_main(cfg: KeysConfig) -> None:
    """Make a CurveZMQ key pair for a server, broker, worker or client."""
    import shutil

    from cloud.server.security import create_keypair

    public, secret = Path(cfg.dir) / f"{cfg.name}.key", Path(cfg.dir) / f"{cfg.name}.key_secret"
    if (public.exists() or secret.exists()) and not cfg.force:
        raise UserError(f"{secret} already exists; set force=true to replace it")
    public, secret = create_keypair(cfg.dir, cfg.name)
    print(f"public key: {public}  (give it to peers)")
    print(f"secret key: {secret}  (keep it on this host only)")
    if cfg.allow:
        Path(cfg.allow).mkdir(parents=True, exist_ok=True)
        shutil.copy(public, Path(cfg.allow) / public.name)
        print(f"allowed:    {Path(cfg.allow) / public.name}")
