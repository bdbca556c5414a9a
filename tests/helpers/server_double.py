"""A server, broker or worker process around a test-double backend (tests only).

The product path (`earshot serve checkpoint=...`) always serves the real
teacher; the mechanics tests (queueing, batching, deadlines, shedding, drain,
reconnects) need a model whose speed they control, so this script runs the
very same `cloud.server` code with `FakeBackend`:

    python tests/helpers/server_double.py serve  --bind tcp://127.0.0.1:* --endpoint-file ep.txt --batch-ms 50
    python tests/helpers/server_double.py broker --bind ... --worker-bind ... --endpoint-file ep.txt
    python tests/helpers/server_double.py worker --connect tcp://127.0.0.1:PORT --name w1

FakeBackend answers ``"<name> heard <trigger_label>"`` so a test can check
that every answer went to the request it belongs to, and appends every
trigger label it computes to ``--computed`` (one per line) so a test can check
that an expired request was never computed.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cloud.server.backend import Answer, BatchOutput  # noqa: E402
from cloud.server.security import CurveKeys, load_keypair, load_public_key  # noqa: E402
from cloud.server.server import ServerOptions, run_broker, run_server  # noqa: E402
from cloud.server.worker import Worker, WorkerCurve  # noqa: E402
from shared.protocol import ErrorCode, ProtocolError  # noqa: E402


class FakeBackend:
    """Sleeps ``batch_ms + item_ms * n`` per batch; answers echo the trigger label."""

    def __init__(self, *, name: str = "fake", batch_ms: float = 20.0, item_ms: float = 0.0, max_batch_size: int = 8,
                 warmup_s: float = 0.0, computed: str | None = None) -> None:
        self.model_id = f"fake-{name}"
        self.name = name
        self.batch_ms, self.item_ms = batch_ms, item_ms
        self.max_batch_size = max_batch_size
        self.warmup_s = warmup_s
        self.computed = computed

    def warmup(self) -> None:
        time.sleep(self.warmup_s)

    def capabilities(self) -> dict:
        """A small model description, so 'hello' can be tested through a broker and a worker."""
        from cloud.server.capabilities import TEACHER_ANSWERS, model_capabilities
        from shared.protocol import ModelInput

        return model_capabilities(ModelInput(audio_s=2.0, sample_rate_hz=16000, frame_hz=4.0, frames=8,
                                             frame_size_px=16), ("timer_beep",), TEACHER_ANSWERS[:1])

    def infer(self, requests):
        time.sleep((self.batch_ms + self.item_ms * len(requests)) / 1000)
        if self.computed:
            with open(self.computed, "a") as f:
                f.write("".join(f"{r.trigger_label}\n" for r in requests))
        items = []
        for r in requests:
            if r.trigger_label == "poison":  # a per-request failure must not sink the batch
                items.append(ProtocolError(ErrorCode.BAD_REQUEST, "poison frame", "infer.frames[0].jpeg"))
            else:
                items.append(Answer(f"{self.name} heard {r.trigger_label}", {"timer_beep": 0.5}))
        return BatchOutput(items, {"model_ms": self.batch_ms})


def _keys(secret: str | None, allowed: str | None) -> CurveKeys | None:
    if secret is None:
        return None
    public, secret_key = load_keypair(secret)
    return CurveKeys(public, secret_key, Path(allowed))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("role", choices=["serve", "broker", "worker"])
    ap.add_argument("--bind", default="tcp://127.0.0.1:*")
    ap.add_argument("--worker-bind", default="tcp://127.0.0.1:*")
    ap.add_argument("--connect")
    ap.add_argument("--endpoint-file")
    ap.add_argument("--name", default="fake")
    ap.add_argument("--batch-ms", type=float, default=20.0)
    ap.add_argument("--item-ms", type=float, default=0.0)
    ap.add_argument("--warmup-s", type=float, default=0.0)
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--max-delay-ms", type=float, default=5.0)
    ap.add_argument("--queue", type=int, default=64)
    ap.add_argument("--no-early-reject", action="store_true")
    ap.add_argument("--computed")
    ap.add_argument("--secret-key")
    ap.add_argument("--allowed")
    ap.add_argument("--server-key")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    def backend():
        return FakeBackend(name=args.name, batch_ms=args.batch_ms, item_ms=args.item_ms,
                           max_batch_size=args.max_batch, warmup_s=args.warmup_s, computed=args.computed)

    if args.role == "worker":
        curve = None
        if args.secret_key:
            public, secret = load_keypair(args.secret_key)
            curve = WorkerCurve(load_public_key(args.server_key), public, secret)
        worker = Worker(args.connect, backend, name=args.name, curve=curve)
        signal.signal(signal.SIGTERM, lambda *_: worker.stop())
        worker.run()
        return 0
    options = ServerOptions(
        bind=args.bind, worker_bind=args.worker_bind if args.role == "broker" else None,
        max_batch_size=args.max_batch, max_queue_delay_ms=args.max_delay_ms, queue_capacity=args.queue,
        early_reject=not args.no_early_reject, endpoint_file=args.endpoint_file,
        keys=_keys(args.secret_key, args.allowed), drain_timeout_s=20.0,
    )
    if args.role == "broker":
        return run_broker(options)
    return run_server(options, backend)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
