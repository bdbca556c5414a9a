"""Serving verbs: ``earshot serve``, ``earshot worker``, ``earshot keys``.

    earshot serve checkpoint=runs/teacher/model                          # one process, loopback
    earshot serve mode=broker bind=tcp://*:5555 worker_bind=tcp://*:5556 \\
        secret_key=keys/server.key_secret allowed_clients=keys/clients allowed_workers=keys/workers
    earshot worker connect=tcp://broker-host:5556 checkpoint=runs/teacher/model \\
        server_key=keys/server.key secret_key=keys/worker-01.key_secret
    earshot keys name=server

The full guide, with several hosts: docs/serving.md. The schemas live in
``cloud/server/serve_config.py``; configs/serve.yaml, worker.yaml and keys.yaml
carry the defaults and the trade-off comments. Torch is imported only when a
model is loaded, so listing verbs stays fast.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

from cloud.server.serve_config import KeysConfig, ServeConfig, WorkerConfig
from shared.config import UserError, verb

__all__ = ["serve_main", "worker_main", "keys_main"]

log = logging.getLogger("earshot.server")


def _backend_factory(checkpoint: str, max_batch_size: int, model_id: str | None, threads: int,
                     lm: str | None = None, lm_adapter: str | None = "default"):
    def make():
        from cloud.server.backend import load_teacher_backend

        return load_teacher_backend(checkpoint, max_batch_size=max_batch_size, model_id=model_id, threads=threads,
                                    lm=lm, lm_adapter=lm_adapter)

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
        status = run_server(options, _backend_factory(cfg.checkpoint, cfg.max_batch_size, cfg.model_id, cfg.threads,
                                                              cfg.lm, cfg.lm_adapter))
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
    worker = Worker(cfg.connect, _backend_factory(cfg.checkpoint, cfg.max_batch_size, cfg.model_id, cfg.threads,
                                                  cfg.lm, cfg.lm_adapter),
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
