"""Fixtures every test folder may use (defined in tests/helpers/, registered once here so a
session fixture is built once per run, not once per folder that uses it).

- ``procs``: processes a test starts, killed by pid when it ends (tests/helpers/server_harness.py);
- ``edge_world``, ``programs``, ``teacher``, ``server``: the edge world, its hand-built .pte
  programs, a tiny teacher and a live ``earshot serve`` (tests/helpers/edge_world.py), used by
  the edge, native and simulator tests.
"""
from tests.helpers.edge_world import edge_world, programs, server, teacher  # noqa: F401
from tests.helpers.server_harness import procs  # noqa: F401
