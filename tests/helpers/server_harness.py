"""Shared helpers for the server and client tests: real processes on loopback.

- `time_limit(seconds)`: a per-test guard (SIGALRM; pytest-timeout is not installed).
- `procs` fixture: every process a test starts is registered there and killed
  (by its own pid) when the test ends, pass or fail.
- `start_double(...)`: a server/broker/worker process around the test-double
  backend (tests/helpers/server_double.py); `start_earshot(...)`: the real verbs.
- `request(label)`: a small valid infer request whose trigger label the double echoes.
"""
from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq

from shared.jpeg_header import EXAMPLE_JPEG
from shared.protocol import Frame, InferRequest, decode, encode, Ping

ROOT = Path(__file__).resolve().parents[2]
DOUBLE = Path(__file__).with_name("server_double.py")
EARSHOT = Path(sys.executable).parent / "earshot"
JPEG_STUB = EXAMPLE_JPEG  # 141 bytes, 8 x 8 grey: passes the protocol's header walk and decodes


def time_limit(seconds: float):
    """Fail the test (TimeoutError) if it runs longer than ``seconds``."""

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            def on_alarm(signum, frame):
                raise TimeoutError(f"{fn.__name__} exceeded its {seconds} s guard")

            old = signal.signal(signal.SIGALRM, on_alarm)
            signal.setitimer(signal.ITIMER_REAL, seconds)
            try:
                return fn(*args, **kwargs)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, old)

        return wrapper

    return deco


class Proc:
    """A child process started by a test, its output in ``log``."""

    def __init__(self, argv: list[str], log: Path, cwd: Path | None = None) -> None:
        self.argv, self.log = argv, log
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
        self._out = open(log, "ab")
        self.popen = subprocess.Popen(argv, stdout=self._out, stderr=subprocess.STDOUT, cwd=cwd or ROOT, env=env)
        self.pid = self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill9(self) -> None:
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)

    def term(self) -> None:
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout=timeout)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def close(self) -> None:
        self.kill9()
        self._out.close()


@pytest.fixture
def procs():
    """A list to register started processes in; all are killed at the end of the test."""
    started: list[Proc] = []
    try:
        yield started
    finally:
        for proc in started:
            proc.close()


def wait_for_lines(path: Path, proc: Proc, n: int = 1, timeout: float = 30.0) -> list[str]:
    """The first ``n`` lines of ``path`` once a process has written them."""
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if path.exists():
            lines = path.read_text().split()
            if len(lines) >= n:
                return lines[:n]
        if not proc.alive():
            raise AssertionError(f"process exited early ({proc.popen.returncode}):\n{proc.text()[-3000:]}")
        time.sleep(0.02)
    raise AssertionError(f"{path} not written in {timeout} s:\n{proc.text()[-3000:]}")


def ping_until_ready(endpoint: str, timeout: float = 30.0, proc: Proc | None = None) -> None:
    """Ping over a raw DEALER until a pong says ready."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(endpoint)
    t_end = time.monotonic() + timeout
    try:
        i = 0
        while time.monotonic() < t_end:
            i += 1
            sock.send(encode(Ping(id=i, t_client_s=1.0)))
            if sock.poll(200):
                msg = decode(sock.recv())
                if getattr(msg, "ready", False):
                    return
                time.sleep(0.05)
            if proc is not None and not proc.alive():
                raise AssertionError(f"server exited ({proc.popen.returncode}):\n{proc.text()[-3000:]}")
        raise AssertionError(f"{endpoint} not ready in {timeout} s" + (f":\n{proc.text()[-3000:]}" if proc else ""))
    finally:
        sock.close()


def start_double(procs: list, tmp_path: Path, role: str, *args: str, name: str = "fake", ready: bool = True,
                 endpoint_lines: int | None = None) -> tuple[Proc, list[str]]:
    """Start tests/helpers/server_double.py; returns (process, endpoints written by it)."""
    log = tmp_path / f"{role}-{name}.log"
    ep_file = tmp_path / f"{role}-{name}-{len(procs)}.ep"
    argv = [sys.executable, str(DOUBLE), role, "--name", name, *args]
    if role != "worker":
        argv += ["--endpoint-file", str(ep_file)]
    proc = Proc(argv, log)
    procs.append(proc)
    if role == "worker":
        return proc, []
    endpoints = wait_for_lines(ep_file, proc, endpoint_lines or (2 if role == "broker" else 1))
    if ready:
        ping_until_ready(endpoints[0], proc=proc)
    return proc, endpoints


def request(label: str = "timer_beep", n_frames: int = 1, frame_bytes: int = 0) -> InferRequest:
    """A valid infer (stub JPEGs, padded to ``frame_bytes``); ``id`` and
    ``deadline_ms`` are placeholders the client replaces."""
    jpeg = JPEG_STUB + bytes(max(0, frame_bytes - len(JPEG_STUB)))
    return InferRequest(id=0, deadline_ms=1000, trigger_label=label, trigger_score=0.9,
                        student_scores={"timer_beep": 0.9}, student_confidence=0.5,
                        frames=[Frame(t_s=float(k), jpeg=jpeg) for k in range(n_frames)])


def rss_mb(pid: int) -> float:
    """Resident memory of a process (MB), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")

