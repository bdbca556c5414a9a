"""scripts/bench_reliability.py: how each request's outcome is classified, and when silent losses happened."""
from __future__ import annotations

import importlib.util
from concurrent.futures import Future
from pathlib import Path

from edge.client import ClientError

_SPEC = importlib.util.spec_from_file_location(
    "bench_reliability", Path(__file__).resolve().parents[2] / "scripts" / "bench_reliability.py")
_MOD = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_MOD)


def _failed(err: ClientError, wire_id: int | None = None) -> Future:
    f: Future = Future()
    f.set_exception(err)
    if wire_id is not None:
        f.wire_id = wire_id
    return f


def test_outcomes_are_classified_and_silent_losses_keep_their_submission_time():
    load = _MOD.Load("tcp://127.0.0.1:1", req=None, rate_rps=1.0, deadline_ms=1000, seed=0)
    try:
        t = load.t_start
        ok: Future = Future()
        load.pending.add(ok)  # in flight
        ok.set_result(object())
        load._done(ok, t + 0.5)
        assert not load.pending  # a finished request is not kept
        load._done(_failed(ClientError("busy", "queue full", from_server=True)), t + 1.0)
        load._done(_failed(ClientError("deadline_exceeded", "refused without computing: ...", from_server=True)), t + 1.5)
        load._done(_failed(ClientError("deadline_exceeded", "no reply within the deadline"), 11), t + 27.25)
        load._done(_failed(ClientError("deadline_exceeded", "no reply within the deadline"), 12), t + 3.0)
        load._done(_failed(ClientError("deadline_exceeded", "no reply within the deadline"), 13), t + 5.0)
        load._done(_failed(ClientError("unavailable", "connection lost")), t + 4.0)
        # the server's verdicts for two of the three timeouts reached the client after its timer
        load.client.late_replies.extend([(12, "deadline_exceeded", 4.5), (13, "result", 20.5), (99, "result", 1.0)])
        load.close()
    finally:
        load.client.close()
    assert load.outcomes == {"result": 1, "busy": 1, "shed_at_dispatch": 1, "silent_client_timeout": 3,
                             "client_unavailable": 1}
    assert len(load.busy_ms) == 1 and len(load.result_ms) == 1
    t = load.timeouts()
    assert t["client_timeouts"] == 3 and t["late_verdicts"] == 2  # id 99 was not one of ours
    assert t["late_verdict_kinds"] == {"deadline_exceeded": 1, "result": 1}
    assert t["late_ms_max"] == 20.5 and t["late_ms_p50"] == 12.5
    assert t["late_at_s"] == [3.0, 5.0]  # seconds into the run, not latencies
    assert t["silently_lost"] == 1 and t["lost_at_s"] == [27.25]
    rows = dict((r[0], r[1]) for r in _MOD._timeout_rows(t))
    assert rows["silently lost (no reply ever)"] == "1"


def test_times_are_listed_then_counted():
    assert _MOD._times([]) == "none"
    assert _MOD._times([1.04, 27.25]) == "1.0, 27.2"
    assert _MOD._times([float(i) for i in range(15)], most=3) == "0.0, 1.0, 2.0 ... (+12 more)"
