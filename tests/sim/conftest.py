"""Session fixtures for the simulator tests.

``real_traces``: traces written by the real ``earshot trace`` (edge/trace.py)
over one recording of the edge tests' small world (6 s with two tones), its
hand-built ``.pte`` programs and a live ``earshot serve`` with a tiny
teacher (``edge_world``, ``programs``, ``teacher``: tests/helpers/edge_world.py,
registered by tests/conftest.py).
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helpers.edge_world import EARSHOT, free_port, start_server


@pytest.fixture(scope="session")
def real_traces(edge_world, programs, teacher, tmp_path_factory) -> Path:
    """A folder with the trace of one recording from `earshot trace` against a live server."""
    work = tmp_path_factory.mktemp("real_traces")
    started: list = []
    port = free_port()
    try:
        start_server(started, teacher, work, port)
        out = work / "traces"
        proc = subprocess.run(
            [str(EARSHOT), "trace", f"recording={edge_world[0]}", f"trigger={programs['trigger']}",
             f"student={programs['student']}", f"endpoint=tcp://127.0.0.1:{port}", f"out={out}",
             f"hydra.run.dir={work / 'hydra'}"],
            cwd=work, capture_output=True, text=True, timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    finally:
        for p in started:
            p.close()
    assert len(list(out.glob("*.jsonl"))) == 1
    return out
