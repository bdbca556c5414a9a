"""Session fixtures for the simulator tests.

``real_traces``: traces written by the real ``earshot trace`` (edge/trace.py)
over one recording of the edge tests' small world (6 s with two tones), its
hand-built ``.pte`` programs and a live ``earshot serve`` with a tiny
teacher (``edge_world``, ``programs``, ``teacher``: tests/helpers/edge_world.py,
registered by tests/conftest.py).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.edge_world import trace_recording


@pytest.fixture(scope="session")
def real_traces(edge_world, programs, teacher, tmp_path_factory) -> Path:
    """A folder with the trace of one recording from `earshot trace` against a live server."""
    return trace_recording(edge_world[0], programs, teacher, tmp_path_factory.mktemp("real_traces"))
