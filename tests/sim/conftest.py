"""Session fixtures for the simulator tests.

``real_traces``: traces written by the real ``earshot trace`` (edge/trace.py)
over one recording of the edge tests' small world (6 s with two tones), its
hand-built ``.pte`` programs and a live ``earshot serve`` with a tiny
teacher. The edge fixtures are re-used from tests/edge/conftest.py (loaded
under another module name: two modules cannot both be ``conftest``).
"""
from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest

_EDGE = Path(__file__).resolve().parents[1] / "edge" / "conftest.py"
_spec = importlib.util.spec_from_file_location("edge_fixtures_for_sim", _EDGE)
edge_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(edge_fixtures)

# Re-exported session fixtures (pytest finds fixtures among a conftest's attributes).
edge_world = edge_fixtures.edge_world
programs = edge_fixtures.programs
teacher = edge_fixtures.teacher


@pytest.fixture(scope="session")
def real_traces(edge_world, programs, teacher, tmp_path_factory) -> Path:
    """A folder with the trace of one recording from `earshot trace` against a live server."""
    work = tmp_path_factory.mktemp("real_traces")
    started: list = []
    port = edge_fixtures.free_port()
    try:
        edge_fixtures.start_server(started, teacher, work, port)
        out = work / "traces"
        proc = subprocess.run(
            [str(edge_fixtures.EARSHOT), "trace", f"recording={edge_world[0]}", f"trigger={programs['trigger']}",
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
