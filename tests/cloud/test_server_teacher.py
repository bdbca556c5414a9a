"""End to end with the real teacher: `earshot keys`, `earshot serve` (CurveZMQ on
loopback) and `earshot serve mode=broker` + `earshot worker`, each serving a
tiny, freshly initialised teacher checkpoint saved with cloud.model.io.

The product path is exercised as shipped: the verbs, Hydra configs, the
teacher backend (JPEG decoding at the model's size, log-mel, resampling, greedy
decoding, tag head) and the client library.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.server_harness import (EARSHOT, Proc, ping_until_ready, procs,  # noqa: F401
                                          time_limit, wait_for_lines)

from shared.protocol import AudioWindow, Frame, InferRequest  # noqa: E402
from tests.helpers.teacher_world import make_tiny_teacher  # noqa: E402


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return make_tiny_teacher(tmp_path_factory.mktemp("teacher") / "model",
                             ["kitchen; heard: timer_beep; did: open_oven", "what was that?"],
                             max_answer_tokens=6, frame_size_px=48)


def earshot(*args, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([str(EARSHOT), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def real_request(label: str, rate_hz: int = 16000, query: str | None = None, bad_jpeg: bool = False) -> InferRequest:
    from cloud.server.backend import encode_jpeg

    rng = np.random.default_rng(len(label))
    jpegs = [encode_jpeg((rng.random((96, 128, 3)) * 255).astype(np.uint8)) for _ in range(3)]
    if bad_jpeg:  # a valid header (the protocol accepts it) and scan data cut short: it does not decode
        jpegs[-1] = jpegs[-1][: len(jpegs[-1]) // 2]
    t = np.arange(int(1.5 * rate_hz)) / rate_hz
    pcm = (8000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
    return InferRequest(id=0, deadline_ms=1000, trigger_label=label, trigger_score=0.8,
                        student_scores={"timer_beep": 0.8}, student_confidence=0.4, query=query,
                        query_t_s=41.5 if query else None,
                        audio=AudioWindow.from_samples(pcm, start_s=40.0, rate_hz=rate_hz),
                        frames=[Frame(t_s=40.5 + 0.5 * k, jpeg=j) for k, j in enumerate(jpegs)])


def check_result(result) -> None:
    from cloud.model.teacher import TAG_NAMES

    assert result.model_id.startswith("avlm-") and len(result.model_id) == 17
    assert set(result.tags) == set(TAG_NAMES) and all(0.0 <= p <= 1.0 for p in result.tags.values())
    assert isinstance(result.answer, str)
    assert {"decode_ms", "model_ms", "queue_ms", "total_ms"} <= set(result.timing_ms)


@time_limit(90)
@pytest.mark.slow  # real teacher processes
def test_serve_real_teacher_with_curve_keys_then_sigterm(procs, tmp_path, checkpoint):
    from edge.client import Client, ClientError

    out = earshot("keys", "name=server", f"dir={tmp_path / 'keys'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    out = earshot("keys", "name=glasses-01", f"dir={tmp_path / 'keys'}", f"allow={tmp_path / 'clients'}", cwd=tmp_path)
    assert out.returncode == 0 and "allowed:" in out.stdout, out.stderr
    assert (tmp_path / "clients" / "glasses-01.key").is_file()
    assert (tmp_path / "keys" / "glasses-01.key_secret").stat().st_mode & 0o077 == 0
    again = earshot("keys", "name=server", f"dir={tmp_path / 'keys'}", cwd=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr

    ep_file = tmp_path / "ep.txt"
    server = Proc([str(EARSHOT), "serve", f"checkpoint={checkpoint}", "bind=tcp://127.0.0.1:*",
                   f"endpoint_file={ep_file}", f"secret_key={tmp_path / 'keys' / 'server.key_secret'}",
                   f"allowed_clients={tmp_path / 'clients'}", "max_batch_size=4"], tmp_path / "serve.log", cwd=tmp_path)
    procs.append(server)
    (ep,) = wait_for_lines(ep_file, server, timeout=60)
    with Client(ep, server_public_key=tmp_path / "keys" / "server.key",
                client_keys=tmp_path / "keys" / "glasses-01.key_secret", max_in_flight=8) as client:
        import time

        t_end = time.monotonic() + 60
        while True:
            try:
                if client.ping().ready:
                    break
            except ClientError:
                pass
            assert time.monotonic() < t_end, server.text()[-3000:]
            time.sleep(0.1)
        futs = [client.submit(real_request("a"), deadline_ms=20_000),
                client.submit(real_request("b", rate_hz=48000, query="what was that?"), deadline_ms=20_000),
                client.submit(real_request("c", bad_jpeg=True), deadline_ms=20_000)]
        check_result(futs[0].result())
        check_result(futs[1].result())
        err = futs[2].exception()
        assert isinstance(err, ClientError) and err.code == "bad_request" and "frames[2].jpeg" in err.message
    server.term()
    assert server.wait(timeout=30) == 0
    log = server.text()
    assert "CurveZMQ on" in log and "warm-up done" in log and "drained" in log


@time_limit(90)
@pytest.mark.slow  # real teacher processes
def test_broker_with_real_worker_and_non_loopback_refusal(procs, tmp_path, checkpoint):
    from edge.client import Client

    refused = earshot("serve", "mode=broker", "bind=tcp://0.0.0.0:*", cwd=tmp_path)
    assert refused.returncode == 2 and "refusing to bind tcp://0.0.0.0:*" in refused.stderr, refused.stderr

    ep_file = tmp_path / "ep.txt"
    broker = Proc([str(EARSHOT), "serve", "mode=broker", "bind=tcp://127.0.0.1:*", "worker_bind=tcp://127.0.0.1:*",
                   f"endpoint_file={ep_file}"], tmp_path / "broker.log", cwd=tmp_path)
    procs.append(broker)
    client_ep, worker_ep = wait_for_lines(ep_file, broker, n=2, timeout=60)
    worker = Proc([str(EARSHOT), "worker", f"connect={worker_ep}", f"checkpoint={checkpoint}", "name=gpu-box-1"],
                  tmp_path / "worker.log", cwd=tmp_path)
    procs.append(worker)
    ping_until_ready(client_ep, timeout=60, proc=broker)
    with Client(client_ep) as client:
        check_result(client.submit(real_request("x"), deadline_ms=20_000).result())
    worker.term()
    assert worker.wait(timeout=30) == 0
    broker.term()
    assert broker.wait(timeout=30) == 0
    assert "worker gpu-box-1 left (DISCONNECT)" in broker.text()
