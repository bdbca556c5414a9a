"""Builders and fixtures the tests share, imported as ``tests.helpers.<module>``.

Test modules never import each other or a conftest: what two test files need
lives here, and tests/conftest.py (or a folder's conftest.py) registers the
fixtures.

| module | what it builds |
| --- | --- |
| ``recordings`` | a small synthetic recording, an mp4 with sound, EPIC-SOUNDS CSV rows |
| ``qa_world`` | hand-built annotations for the data engine, and the check of every QA record |
| ``teacher_world`` | a small world and QA folder a tiny teacher trains on |
| ``server_harness`` | real server processes on loopback (``procs``), time limits, requests |
| ``server_double`` | the server's test-double backend (also run as a script) |
| ``spec_client`` | a wire-protocol client written from docs/protocol.md alone (pyzmq + msgpack) |
| ``edge_world`` | the edge world, hand-built ``.pte`` programs, a tiny teacher, ``earshot serve`` |
| ``native`` | the native binary (``native_bin``), its decoded frames, ``run_native`` |
| ``trace_double`` | trace files with known contents for the simulator |
| ``distill_world`` | a distillation world, a tiny teacher, tiny distill and export runs |
"""
