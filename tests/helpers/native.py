"""Fixtures and helpers for the native edge binary's tests (edge/native/); test modules import them.

The programs, recordings, teacher and server come from tests/helpers/edge_world.py
(hand-built tone programs exported to real .pte files, two 6 s recordings
with queries). Here:

- ``native_bin``: edge/native/build/earshot-edge, built by scripts/test
  (edge/native/build.sh). When it is missing the tests fail (never skip)
  with the command that builds it.
- ``native_world``: the edge_world recordings with their frames decoded into
  ``frames.u8`` (edge/native/decode_frames.py), as the binary reads them.
- ``run_native(...)``: runs the binary on a recording, returns (returncode, events, stderr).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "edge" / "native" / "build" / "earshot-edge"


@pytest.fixture(scope="session")
def native_bin() -> Path:
    if not BIN.is_file():
        pytest.fail(f"{BIN} is not built: run edge/native/build.sh (scripts/test runs it; see its warning "
                    "for why the build failed)", pytrace=False)
    return BIN


@pytest.fixture(scope="session")
def native_world(edge_world) -> list[Path]:
    sys.path.insert(0, str(ROOT / "edge" / "native"))
    from decode_frames import main as decode

    for rec in edge_world:
        decode([str(rec)])
    return edge_world


def run_native(binary: Path, recording: Path, programs: dict, log: Path, *args: str, timeout: float = 60.0,
               student: bool = True):
    """Run earshot-edge on ``recording``; returns (returncode, events, stderr)."""
    argv = [str(binary), "--recording", str(recording), "--trigger", str(programs["trigger"]),
            "--log", str(log), "--threads", "1", *args]
    if student:
        argv += ["--student", str(programs["student"])]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    events = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
    return proc.returncode, events, proc.stderr


# --- comparing the two runtimes (tests/edge/native/test_native_parity.py, test_native_trigger.py) ---


def python_events(recording, programs, log, policy, **params):
    """The Python runtime's event log for ``recording`` (no cloud), as a list of dicts."""
    from tests.helpers.edge_world import make_runtime, read_jsonl

    runtime, client = make_runtime(recording, programs, log, policy=policy, **params)
    runtime.run()
    runtime.log.close()
    return read_jsonl(log)


def decisions(events):
    """The exact part of a log: (kind, t_s, key fields) per event, scores left out."""
    out = []
    for e in events:
        k = e["kind"]
        if k in ("trigger", "early"):
            out.append((k, e["t_s"], e["label"]))
        elif k == "camera":
            out.append((k, e["t_s"], e["on"]))
        elif k == "local_inference":
            out.append((k, e["t_s"], tuple(lab for lab, _ in e["top"])))
        elif k == "offload":
            out.append((k, e["t_s"], e["request_id"], e["offload"], e["frames"], e["jpeg_quality"], e["audio_s"],
                        e["query_id"]))
        elif k == "fallback":
            out.append((k, e["t_s"], e["request_id"], e["reason"], e["query_id"]))
        elif k == "answer":
            out.append((k, e["t_s"], e["query_id"], e["answer"], e["source"], e["correct"]))
        elif k == "end":
            out.append((k, e["t_s"], e["steps"], e["offloads"], e["frames_captured"], e["queries"],
                        e["answers_correct"]))
        elif k == "start":
            out.append((k, e["recording_id"], e["policy"], tuple(sorted(e["policy_params"].items())), e["hop_s"],
                        e["device"], e["network"]))
    return out
