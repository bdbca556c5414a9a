"""Traces of recordings, loaded once into numpy arrays for the simulator.

A trace (``earshot trace``, format in the contract / ``docs/simulator.md``) is
one JSONL file per recording: a header, then one line per hop with what every
on-device model and the cloud (for each offload kind) answered on that hop.
:func:`load_traces` turns a folder of them into a :class:`TraceSet`; each
:class:`Trace` holds plain arrays indexed by hop, so the environment's
``step`` is array indexing and arithmetic, never JSON or dict look-ups.

Conventions:

- hop ``i`` covers ``(i * hop_s, (i + 1) * hop_s]``; ``t_s[i]`` is its end.
- offload kinds are indexed in :data:`KINDS` order (``light, full, audio``).
- a query belongs to the hop whose line carries its ``local_answer``; when two
  queries share a hop, the later one moves to the next hop without a query
  (the edge answers one query per decision).
- important events (a config list of labels) have a notification window
  ``(onset_s, onset_s + notify_s]``; :meth:`Trace.event_hops` lists its hops.

Raises :class:`TraceError` (a :class:`shared.config.UserError`) naming the
file and line of anything malformed.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from shared.config import UserError
from shared.queries import answer_matches
from shared.trigger import hold_runs

__all__ = ["KINDS", "TRACE_VERSION", "TraceError", "Trace", "TraceSet", "load_trace", "load_traces"]

TRACE_VERSION = 1
#: Offload kinds in array order (the contract's OFFLOAD_SPECS keys minus "none").
KINDS: tuple[str, ...] = ("light", "full", "audio")


class TraceError(UserError):
    """A malformed trace file; the message names the file and line."""


def _thresholds(block: dict[str, Any], labels: list[str]) -> np.ndarray:
    thr = block.get("thresholds")
    if thr is None:
        return np.full(len(labels), 0.5, np.float32)
    if isinstance(thr, dict):
        return np.array([float(thr.get(l, 0.5)) for l in labels], np.float32)
    return np.asarray(thr, np.float32)


@dataclass
class Trace:
    """One recording's trace as arrays (``T`` hops, ``K = len(KINDS)`` kinds).

    Attributes (shapes; units):
        trigger [T, Nt] float32 probabilities; trigger_fired [T, Nt] bool (held under the card's thresholds and refractory hold, shared/trigger.py)
        student [T, Ns] float32; student_confidence [T] float32; student_ms, trigger_ms [T]
        snr_db [T]; frame_blur [T] (nan where the trace has null)
        cloud_ok, cloud_latency_ms, bytes_up, bytes_down: [K, T]
        cloud_tags [K, T, Ni]: the cloud's tag probability for each important label (0 if not in its top 5)
        query_hop [Q] int; query_at [T] int (-1: none); local_correct [Q] bool;
        cloud_correct [K, Q] bool (ok and answer == gold); query_ids, query_texts [Q]
        event_label [E] index into ``important``; event_onset_s [E]
    """

    path: str
    recording_id: str
    environment: str
    duration_s: float
    hop_s: float
    header: dict[str, Any]
    trigger_labels: list[str]
    student_labels: list[str]
    trigger_thresholds: np.ndarray
    student_thresholds: np.ndarray
    trigger_macs: int
    student_macs: int
    t_s: np.ndarray
    trigger: np.ndarray
    trigger_fired: np.ndarray
    trigger_ms: np.ndarray
    snr_db: np.ndarray
    student: np.ndarray
    student_confidence: np.ndarray
    student_ms: np.ndarray
    frame_blur: np.ndarray
    cloud_ok: np.ndarray
    cloud_latency_ms: np.ndarray
    bytes_up: np.ndarray
    bytes_down: np.ndarray
    cloud_tags: np.ndarray
    query_ids: list[str]
    query_texts: list[str]
    query_gold: list[str]
    query_hop: np.ndarray
    query_at: np.ndarray
    local_correct: np.ndarray
    cloud_correct: np.ndarray
    important: tuple[str, ...]
    event_ids: list[str] = field(default_factory=list)
    event_label: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    event_onset_s: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def n_hops(self) -> int:
        return len(self.t_s)

    def event_hops(self, notify_s: float) -> list[tuple[int, int]]:
        """Per important event, the hop range ``[first, last]`` whose end falls in
        ``(onset_s, onset_s + notify_s]`` (at least the hop that contains the onset)."""
        out = []
        for onset in self.event_onset_s:
            first = min(int(math.floor(onset / self.hop_s)), self.n_hops - 1)
            last = min(max(first, int(math.ceil((onset + notify_s) / self.hop_s)) - 1), self.n_hops - 1)
            out.append((first, last))
        return out


def _bad(path: Path, line: int, msg: str) -> TraceError:
    return TraceError(f"{path}:{line}: {msg}")


def load_trace(path: str | Path, important: Sequence[str]) -> Trace:
    """Read one ``<recording_id>.jsonl`` trace into arrays.

    Args:
        path: the trace file.
        important: labels whose events must be detected and notified.

    Raises:
        TraceError: unreadable JSON, a wrong version, missing keys or hops out of order.
    """
    path = Path(path)
    try:
        lines = [l for l in path.read_text(encoding="utf-8").splitlines() if l.strip()]
    except OSError as exc:
        raise TraceError(f"{path}: cannot read ({exc})") from None
    if len(lines) < 2:
        raise TraceError(f"{path}: a trace needs a header and at least one hop")
    try:
        header = json.loads(lines[0])
        hops = [json.loads(l) for l in lines[1:]]
    except json.JSONDecodeError as exc:
        raise TraceError(f"{path}: invalid JSON ({exc})") from None
    if header.get("trace_version") != TRACE_VERSION:
        raise _bad(path, 1, f"trace_version must be {TRACE_VERSION}, got {header.get('trace_version')!r}")
    try:
        trig, stud = header["trigger"], header["student"]
        hop_s = float(header["hop_s"])
        t_labels, s_labels = list(trig["labels"]), list(stud["labels"])
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad(path, 1, f"header is missing {exc}") from None
    important = tuple(important)
    T, K, Ni = len(hops), len(KINDS), len(important)
    a = {
        "t_s": np.zeros(T), "trigger": np.zeros((T, len(t_labels)), np.float32), "trigger_ms": np.zeros(T),
        "snr_db": np.zeros(T), "student": np.zeros((T, len(s_labels)), np.float32),
        "student_confidence": np.zeros(T, np.float32), "student_ms": np.zeros(T), "frame_blur": np.full(T, np.nan),
        "cloud_ok": np.zeros((K, T), bool), "cloud_latency_ms": np.zeros((K, T)), "bytes_up": np.zeros((K, T), np.int64),
        "bytes_down": np.zeros((K, T), np.int64), "cloud_tags": np.zeros((K, T, Ni), np.float32),
    }
    gold = {q["id"]: q["answer"] for q in header.get("queries", [])}
    texts = {q["id"]: q.get("text", "") for q in header.get("queries", [])}
    q_hop: dict[str, int] = {}
    q_local: dict[str, bool] = {}
    q_cloud: dict[str, list[bool]] = {}
    for i, h in enumerate(hops):
        ln = i + 2
        try:
            if int(h["i"]) != i:
                raise _bad(path, ln, f"hop index {h['i']} out of order (expected {i})")
            a["t_s"][i] = h["t_s"]
            a["trigger"][i] = h["trigger"]
            a["trigger_ms"][i] = h.get("trigger_ms") or 0.0
            a["snr_db"][i] = h.get("snr_db", header.get("snr_db", 0.0)) or 0.0
            a["student"][i] = h["student"]
            a["student_confidence"][i] = h.get("student_confidence") or 0.0
            a["student_ms"][i] = h.get("student_ms") or 0.0
            if h.get("frame_blur") is not None:
                a["frame_blur"][i] = h["frame_blur"]
            for k, kind in enumerate(KINDS):
                c = h["cloud"][kind]
                a["cloud_ok"][k, i] = bool(c["ok"])
                a["cloud_latency_ms"][k, i] = c.get("latency_ms") or 0.0
                a["bytes_up"][k, i] = c.get("bytes_up") or 0
                a["bytes_down"][k, i] = c.get("bytes_down") or 0
                tags = c.get("tags") or {}
                a["cloud_tags"][k, i] = [float(tags.get(l, 0.0)) for l in important]
            for qid, answer in (h.get("local_answer") or {}).items():
                if qid not in gold:
                    raise _bad(path, ln, f"local_answer names query {qid!r}, which the header does not list")
                q_hop[qid] = i
                q_local[qid] = bool(answer_matches(answer, gold[qid]))
                q_cloud[qid] = [bool(h["cloud"][kind]["ok"]) and bool(answer_matches(h["cloud"][kind].get("answer"), gold[qid]))
                                for kind in KINDS]
        except TraceError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise _bad(path, ln, f"bad hop ({type(exc).__name__}: {exc})") from None
    # One query per hop: a later query sharing a hop moves to the next free hop.
    query_at = np.full(T, -1, np.int64)
    qids = sorted(q_hop, key=lambda q: (q_hop[q], q))
    for n, qid in enumerate(qids):
        i = q_hop[qid]
        while i < T - 1 and query_at[i] >= 0:
            i += 1
        query_at[i] = n
        q_hop[qid] = i
    t_thr, s_thr = _thresholds(trig, t_labels), _thresholds(stud, s_labels)
    events = [e for e in header.get("events", []) if e.get("label") in important]
    return Trace(
        path=str(path), recording_id=str(header.get("recording_id", path.stem)),
        environment=str(header.get("environment", "")), duration_s=float(header.get("duration_s", T * hop_s)),
        hop_s=hop_s, header=header, trigger_labels=t_labels, student_labels=s_labels,
        trigger_thresholds=t_thr, student_thresholds=s_thr,
        trigger_macs=int(trig.get("macs") or 0), student_macs=int(stud.get("macs") or 0),
        # The card's thresholds and refractory hold, as both runtimes apply them (shared/trigger.py).
        trigger_fired=hold_runs(a["trigger"], t_thr[None, :], float(trig.get("refractory_s") or 0.0), hop_s)[1][0],
        query_ids=qids, query_texts=[texts[q] for q in qids],
        query_gold=[gold[q] for q in qids], query_hop=np.array([q_hop[q] for q in qids], np.int64), query_at=query_at,
        local_correct=np.array([q_local[q] for q in qids], bool),
        cloud_correct=np.array([q_cloud[q] for q in qids], bool).reshape(len(qids), K).T.copy(),
        important=important, event_ids=[e["id"] for e in events],
        event_label=np.array([important.index(e["label"]) for e in events], np.int64),
        event_onset_s=np.array([float(e["onset_s"]) for e in events]),
        **{k: v for k, v in a.items()},
    )


@dataclass
class TraceSet:
    """Every trace of a folder, loaded once (recordings sorted by id)."""

    traces: list[Trace]
    important: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.traces)

    def __getitem__(self, i: int) -> Trace:
        return self.traces[i]

    @property
    def recording_ids(self) -> list[str]:
        return [t.recording_id for t in self.traces]

    @property
    def trigger_labels(self) -> list[str]:
        return self.traces[0].trigger_labels

    @property
    def student_labels(self) -> list[str]:
        return self.traces[0].student_labels

    def index(self, recording_id: str) -> int:
        try:
            return self.recording_ids.index(recording_id)
        except ValueError:
            raise TraceError(f"no trace for recording {recording_id!r}; have {self.recording_ids}") from None

    def subset(self, recording_ids: Sequence[str]) -> "TraceSet":
        return TraceSet([self.traces[self.index(r)] for r in recording_ids], self.important)


def load_traces(source: str | Path | Sequence[str | Path], important: Sequence[str]) -> TraceSet:
    """Load a folder of ``*.jsonl`` traces, one file, or a list of files.

    Raises:
        TraceError: no traces found, a malformed file, or traces whose label
            lists or hop lengths disagree (one env cannot mix them).
    """
    if isinstance(source, (str, Path)):
        p = Path(source)
        files = sorted(p.glob("*.jsonl")) if p.is_dir() else [p]
    else:
        files = [Path(f) for f in source]
    if not files or not all(f.is_file() for f in files):
        raise TraceError(f"{source}: no trace files (*.jsonl); make them with 'earshot trace'")
    traces = sorted((load_trace(f, important) for f in files), key=lambda t: t.recording_id)
    first = traces[0]
    for t in traces[1:]:
        if t.trigger_labels != first.trigger_labels or t.student_labels != first.student_labels:
            raise TraceError(f"{t.path}: labels differ from {first.path}; trace all recordings with the same programs")
        if abs(t.hop_s - first.hop_s) > 1e-9:
            raise TraceError(f"{t.path}: hop_s {t.hop_s} differs from {first.path} ({first.hop_s})")
    return TraceSet(traces, tuple(important))
