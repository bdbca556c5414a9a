"""``earshot serve`` in a child process on a free loopback port, for orchestration that needs a
live teacher (the demo's edge stage, the simulator's held-out study).

    server = ServedTeacher(checkpoint, workdir=out, log=out / "logs" / "serve.log")
    ... server.endpoint, server.model_id ...
    server.stop()   # SIGTERM: the server drains, then exits

Readiness is the protocol's own: the endpoint file the server writes once bound, then a ``ping``
that reports ``ready`` (the model is loaded). A server that exits or never gets ready raises
``ServeFailed`` naming its log.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["ServeFailed", "ServedTeacher"]


class ServeFailed(RuntimeError):
    """The server exited while starting, or never reported ready within the timeout."""


class ServedTeacher:
    """``earshot serve checkpoint=<checkpoint>`` bound to ``tcp://127.0.0.1:*`` until :meth:`stop`.

    Args:
        checkpoint: a teacher model folder (``<train out>/model``).
        workdir: the server's working directory; ``serve.endpoint`` is written there.
        log: the server's stdout and stderr.
        start_timeout_s: how long binding, loading and the first ``ready`` may take.
        lm: ``earshot serve lm=``: a language model that writes ``result.sentence`` for requests
            with a query (``default``, a local ``.gguf`` or Hugging Face folder); None: none.
    """

    def __init__(self, checkpoint: Path, workdir: Path, log: Path, start_timeout_s: float = 180.0,
                 lm: str | None = None) -> None:
        ep_file = workdir / "serve.endpoint"
        ep_file.unlink(missing_ok=True)
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log
        self.log = open(log, "w")
        exe = str(Path(sys.executable).with_name("earshot"))
        self.proc = subprocess.Popen(
            [exe, "serve", f"checkpoint={checkpoint}", "bind=tcp://127.0.0.1:*", f"endpoint_file={ep_file}",
             f"hydra.run.dir={log.parent / 'hydra-serve'}", *([f"lm={lm}"] if lm else [])],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=workdir)
        t0 = time.monotonic()
        while not (ep_file.exists() and ep_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() - t0 > start_timeout_s:
                self.stop()
                raise ServeFailed(f"earshot serve did not start; see {log}")
            time.sleep(0.2)
        self.endpoint = ep_file.read_text().splitlines()[0].strip()
        self.model_id = self._wait_ready(t0, start_timeout_s)

    def _wait_ready(self, t0: float, timeout_s: float) -> str:
        from edge.client import Client, ClientError

        with Client(self.endpoint) as client:
            while True:
                try:
                    pong = client.ping(timeout_ms=1000)
                    if pong.ready:
                        return pong.model_id
                except ClientError:
                    pass
                if self.proc.poll() is not None or time.monotonic() - t0 > timeout_s:
                    self.stop()
                    raise ServeFailed(f"earshot serve never reported ready; see {self.log_path}")
                time.sleep(0.3)

    def stop(self) -> None:
        """SIGTERM (the server drains what it accepted), kill after 60 s; idempotent."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if not self.log.closed:
            self.log.close()
