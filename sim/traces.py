"""Traces of recordings as numpy arrays, loaded once for the simulator.

The format and its reader are ``shared/trace.py``; this module turns each
file into a :class:`Trace` of plain arrays indexed by hop, so the
environment's ``step`` is array indexing and arithmetic, never JSON.

Conventions:

- hop ``i`` covers ``(i * hop_s, (i + 1) * hop_s]``; ``t_s[i]`` is its end.
- capture variants are indexed in :data:`shared.trace.VARIANT_NAMES` order
  (``light, full_now, full_warm, audio``), offload kinds in ``OFFLOAD_KINDS``.
- a hop asks at most one query (``query_at``); queries past the last hop
  (``late_queries``) are answered on the device when the recording ends.
- important events (a config list of labels) have a notification window
  ``(onset_s, onset_s + notify_s]``; :meth:`Trace.event_hops` lists its hops.

What the device answers depends on the hops the student actually ran:
:meth:`Trace.local_correct` rebuilds the runtime's detection memory from the
trigger's rising edges (every hop) and the student's detections on the hops
it ran (sounds, and the actions it saw), and asks
``edge.local_answer.answer_locally``, the runtime's own answerer. Results are cached per (query, student hops that matter).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from shared.answering import is_unknown
from shared.labels import names
from shared.queries import answer_matches
from shared.trace import (CAPTURE_VARIANTS, N_MASKS, OFFLOAD_KINDS, VARIANT_NAMES, TraceError, read_trace,
                          trace_files)
from shared.trigger import hold_runs, over_threshold

__all__ = ["VARIANTS", "KINDS", "Trace", "TraceSet", "load_trace", "load_traces", "TraceError"]

VARIANTS = VARIANT_NAMES
KINDS = OFFLOAD_KINDS
_SOUNDS = frozenset(names("audio_event"))


@dataclass
class Trace:
    """One recording's trace as arrays (``T`` hops, ``V = len(VARIANTS)``, ``Q`` queries).

    Attributes (shapes; units):
        trigger [T, Nt] float32 probabilities; trigger_fired [T, Nt] bool (held under the card's thresholds
            and refractory hold, shared/trigger.py)
        student [T, Ns] float32 (0 before the first frame); student_confidence, student_ms [T]
        snr_db [T]; frames_per_hop [T] frames the camera captures during the hop
        cloud_ok, bytes_up, bytes_down, frames_sent: [V, T]
        cloud_tags [V, T, Ni]: the cloud's tag probability for each important label (0 if not in its top 5)
        warm_from_hop [T]: the first hop the camera must have been on since for ``full_warm``
        service_ms: offload kind -> measured service times (ms)
        query_ids, query_texts, query_kinds, query_gold [Q]; query_at [T] (-1: none); query_hop [Q]
        cloud_correct [V, Q] bool; late_queries: query indices answered on the device at the end
        mask_correct [Q, M] bool, mask_frames [Q, M]: the cloud's answer and the frames it carried for a
            ``full`` offload under each window mask (``shared.trace``, "Window masks"; ``M = N_MASKS``);
            window_hops: hops in the full offload's window
        cloud_unknown [V, Q], mask_unknown [Q, M] bool: the cloud answered ``unknown`` (or nothing) there; the
            runtime then shows the device's answer
        event_label [E] index into ``important``; event_onset_s [E]
        since_trigger [T]: seconds from the trigger's last rising edge (at or before the hop) to the
            hop's end; inf before the first one of the recording
        trigger_early [T]: per hop, the labels of the trigger card's early stage that rose at that hop
            while the trigger itself did not hold them (``edge/runtime.py``'s ``early`` events; all
            empty when the card has no early stage): ``Observation.trigger_early``
    """

    path: str
    recording_id: str
    environment: str
    split: str | None
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
    snr_db: np.ndarray
    student: np.ndarray
    student_confidence: np.ndarray
    student_ms: np.ndarray
    frames_per_hop: np.ndarray
    cloud_ok: np.ndarray
    bytes_up: np.ndarray
    bytes_down: np.ndarray
    frames_sent: np.ndarray
    cloud_tags: np.ndarray
    warm_from_hop: np.ndarray
    service_ms: dict[str, np.ndarray]
    query_ids: list[str]
    query_texts: list[str]
    query_kinds: list[str]
    query_gold: list[str]
    query_hop: np.ndarray
    query_at: np.ndarray
    cloud_correct: np.ndarray
    late_queries: list[int]
    local_answer_all: list[str]
    important: tuple[str, ...]
    event_ids: list[str] = field(default_factory=list)
    event_label: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    event_onset_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    since_trigger: np.ndarray = field(default_factory=lambda: np.zeros(0))
    mask_correct: np.ndarray = field(default_factory=lambda: np.zeros((0, N_MASKS), bool))
    mask_frames: np.ndarray = field(default_factory=lambda: np.zeros((0, N_MASKS), np.int64))
    cloud_unknown: np.ndarray = field(default_factory=lambda: np.zeros((len(VARIANT_NAMES), 0), bool))
    mask_unknown: np.ndarray = field(default_factory=lambda: np.zeros((0, N_MASKS), bool))
    trigger_early: list[tuple[str, ...]] = field(default_factory=list)
    window_hops: int = 20
    # Detections that feed the device's answers: per hop, (label, score) in the runtime's order.
    trigger_detections: list[list[tuple[str, float]]] = field(default_factory=list, repr=False)
    student_detections: list[list[tuple[str, float]]] = field(default_factory=list, repr=False)
    _query_student_hops: list[list[int]] = field(default_factory=list, repr=False)
    _local_cache: dict[tuple[int, int], bool] = field(default_factory=dict, repr=False)

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

    def student_hops_that_matter(self, q: int) -> list[int]:
        """Hops up to query ``q``'s whose student detections could change the device's answer."""
        return self._query_student_hops[q]

    def local_correct(self, q: int, student_ran: Sequence[bool]) -> bool:
        """Whether the device answers query ``q`` correctly when the student ran on the hops where
        ``student_ran[h]`` is true (the runtime's memory and answerer, see the module docstring)."""
        hops = self._query_student_hops[q]
        mask = 0
        for b, h in enumerate(hops):
            if student_ran[h]:
                mask |= 1 << b
        key = (q, mask)
        hit = self._local_cache.get(key)
        if hit is None:
            hit = self._local_cache[key] = self._answer_is_right(q, [h for b, h in enumerate(hops) if mask >> b & 1])
        return hit

    def local_answer(self, q: int, student_hops: Sequence[int]) -> str:
        """The device's answer to query ``q`` with the student run on ``student_hops``."""
        from edge.local_answer import LocalMemory, answer_locally

        h_q = self.query_hop[q]
        ran = set(student_hops)
        memory = LocalMemory()
        for h in range(h_q + 1):
            t = float(self.t_s[h])
            for label, score in self.trigger_detections[h]:
                memory.add(t, label, score, "trigger")
            if h in ran:
                for label, score in self.student_detections[h]:
                    memory.add(t, label, score, "student")
        return answer_locally(memory, self.query_texts[q], float(self.t_s[h_q]))

    def _answer_is_right(self, q: int, student_hops: Sequence[int]) -> bool:
        return bool(answer_matches(self.local_answer(q, student_hops), self.query_gold[q]))


def _thresholds(block: dict[str, Any], labels: list[str]) -> np.ndarray:
    thr = block["thresholds"]
    if isinstance(thr, dict):
        return np.array([float(thr.get(l, 0.5)) for l in labels], np.float32)
    return np.asarray(thr, np.float32)


def _detections(probs: np.ndarray, thresholds: np.ndarray, labels: list[str], kept: set[str]) -> list[list[int]]:
    """Per hop, the indices of labels over their threshold that the device's memory keeps (``kept``)."""
    keep = np.array([l in kept for l in labels], bool)
    over = over_threshold(probs, thresholds[None, :]) & keep[None, :]
    return [np.flatnonzero(row).tolist() for row in over]


def _hops_that_matter(text: str, hop: int, t_s: np.ndarray, student_dets: list[list[tuple[str, float]]]) -> list[int]:
    """Hops up to ``hop`` whose student detections can change ``edge.local_answer``'s answer to ``text``.

    Mirrors the table of ``shared/answering.py``: "which came first" reads the
    first two sounds the question names, "did ..." and "how many ..." the sounds
    it names (the first for a count), "what did I just do?" and "what am I
    doing?" the actions seen within their look-back, anything else the sounds of
    the last ``LOOKBACK_S``. Fewer hops, fewer distinct student histories to
    answer for (the cache); tests/sim check the narrowing against the unnarrowed
    answer.
    """
    from shared.answering import ACTION_LOOKBACK_S, ACTIVITY_LOOKBACK_S, LOOKBACK_S, parsed_query
    from shared.queries import ACTIONS, ACTIVITIES

    kind, named = parsed_query(text)
    if named and kind in ("order", "yes_no", "count"):
        wanted = set(named[:2] if kind == "order" else named[:1] if kind == "count" else named)
        return [h for h in range(hop + 1) if any(l in wanted for l, _ in student_dets[h])]
    if kind in ("action", "activity"):
        wanted, back = (set(ACTIONS), ACTION_LOOKBACK_S) if kind == "action" else (set(ACTIVITIES), ACTIVITY_LOOKBACK_S)
    else:
        wanted, back = _SOUNDS, LOOKBACK_S
    lo = float(t_s[hop]) - back - 1e-9
    return [h for h in range(hop + 1) if t_s[h] >= lo and any(l in wanted for l, _ in student_dets[h])]


def load_trace(path: str | Path, important: Sequence[str]) -> Trace:
    """Read one trace file (``shared.trace.read_trace``) into arrays.

    Args:
        path: the trace file.
        important: labels whose events must be detected and notified.

    Raises:
        TraceError: anything :func:`shared.trace.read_trace` refuses.
    """

    path = Path(path)
    header, hops = read_trace(path)
    trig, stud = header["trigger"], header["student"]
    hop_s = float(header["hop_s"])
    t_labels, s_labels = list(trig["labels"]), list(stud["labels"])
    t_thr, s_thr = _thresholds(trig, t_labels), _thresholds(stud, s_labels)
    important = tuple(important)
    T, V, Ni = len(hops), len(VARIANTS), len(important)
    t_s = np.array([float(h["t_s"]) for h in hops])
    trigger = np.array([h["trigger"] for h in hops], np.float32).reshape(T, len(t_labels))
    has_student = np.array([h["student"] is not None for h in hops])
    student = np.zeros((T, len(s_labels)), np.float32)
    if has_student.any():
        student[has_student] = np.array([h["student"] for h in hops if h["student"] is not None], np.float32)
    cloud_ok = np.array([[bool(h["cloud"][v]["ok"]) for h in hops] for v in VARIANTS], bool)
    bytes_up = np.array([[int(h["cloud"][v]["bytes_up"]) for h in hops] for v in VARIANTS], np.int64)
    bytes_down = np.array([[int(h["cloud"][v]["bytes_down"]) for h in hops] for v in VARIANTS], np.int64)
    frames_sent = np.array([[len(h["cloud"][v]["frame_t_s"]) for h in hops] for v in VARIANTS], np.int64)
    tags = np.zeros((V, T, Ni), np.float32)
    for v, name in enumerate(VARIANTS):
        for i, h in enumerate(hops):
            got = h["cloud"][name]["tags"] or {}
            tags[v, i] = [float(got.get(l, 0.0)) for l in important]
    # full_warm needs the camera on since the hop of its oldest frame (the current hop at least).
    warm = VARIANTS.index("full_warm")
    warm_from = np.arange(T)
    for i, h in enumerate(hops):
        ft = h["cloud"][VARIANTS[warm]]["frame_t_s"]
        if ft:
            warm_from[i] = min(i, max(0, int(math.ceil(min(ft) / hop_s - 1e-9)) - 1))
    frames_per_hop = np.array([int(h["frames"]) for h in hops], np.int64)

    # Queries: the hop that asks each one, and what the cloud answered there under each variant.
    queries = {q["id"]: q for q in header["queries"]}
    asked: dict[str, int] = {}
    late: list[str] = []
    local_all: dict[str, str] = {}
    for i, h in enumerate(hops):
        for qid, ans in (h.get("local_answer") or {}).items():
            local_all[qid] = ans
            if qid == h["query_id"]:
                asked[qid] = i
            else:
                late.append(qid)
    qids = sorted(set(asked) | set(late), key=lambda q: (asked.get(q, T), q))
    query_at = np.full(T, -1, np.int64)
    query_hop = np.array([asked.get(q, T - 1) for q in qids], np.int64)
    cloud_correct = np.zeros((V, len(qids)), bool)
    mask_correct = np.zeros((len(qids), N_MASKS), bool)
    mask_frames = np.zeros((len(qids), N_MASKS), np.int64)
    cloud_unknown = np.zeros((V, len(qids)), bool)
    mask_unknown = np.zeros((len(qids), N_MASKS), bool)
    for n, qid in enumerate(qids):
        if qid in asked:
            i = asked[qid]
            query_at[i] = n
            gold = queries[qid]["answer"]
            for v, name in enumerate(VARIANTS):
                c = hops[i]["cloud"][name]
                cloud_correct[v, n] = bool(c["ok"]) and bool(answer_matches(c["answer"], gold))
                cloud_unknown[v, n] = bool(c["ok"]) and is_unknown(c["answer"])
            for m, c in enumerate(hops[i]["cloud_masks"]):
                mask_correct[n, m] = bool(c["ok"]) and bool(answer_matches(c["answer"], gold))
                mask_unknown[n, m] = bool(c["ok"]) and is_unknown(c["answer"])
                mask_frames[n, m] = len(c["frame_t_s"])
    # The device's memory: the trigger's triggers every hop (its card's thresholds and refractory
    # hold, shared/trigger.py, as both runtimes), student detections where it ran.
    audio = set(_SOUNDS)
    early_thr = trig.get("early_thresholds")
    settings = t_thr[None, :] if early_thr is None else np.stack([t_thr, np.asarray(early_thr, np.float32)])
    triggered, held = hold_runs(trigger, settings, float(trig.get("refractory_s") or 0.0), hop_s)
    fired = held[0]
    # The early stage: its own hold (same refractory), an edge counting where the trigger does not hold
    # the label at that step (edge/runtime.py, _run_trigger).
    early = triggered[1] & ~held[0] if early_thr is not None else np.zeros_like(fired)
    trigger_early = [tuple(t_labels[j] for j in np.flatnonzero(row)) for row in early]
    keep = np.array([l in audio for l in t_labels], bool)
    trigger_dets = [[(t_labels[j], float(trigger[i, j])) for j in np.flatnonzero(triggered[0, i] & keep)]
                    for i in range(T)]
    edges = np.flatnonzero([bool(d) for d in trigger_dets])  # hops with a rising edge
    last = np.searchsorted(edges, np.arange(T), side="right") - 1  # the latest at or before each hop
    since_trigger = np.full(T, np.inf)
    since_trigger[last >= 0] = t_s[last >= 0] - t_s[edges[last[last >= 0]]]
    s_det = _detections(student, s_thr, s_labels, audio | set(names("visual_action")))
    student_dets = [[(s_labels[j], float(student[i, j])) for j in s_det[i]] if has_student[i] else [] for i in range(T)]
    q_hops = [_hops_that_matter(queries[q]["text"], int(query_hop[n]), t_s, student_dets)
              for n, q in enumerate(qids)]

    events = [e for e in header["events"] if e.get("label") in important]
    service = {k: np.asarray(header["service_ms"].get(k, []), float) for k in KINDS}
    return Trace(
        path=str(path), recording_id=str(header["recording_id"]), environment=str(header["environment"]),
        split=header["split"], duration_s=float(header["duration_s"]), hop_s=hop_s, header=header,
        trigger_labels=t_labels, student_labels=s_labels, trigger_thresholds=t_thr, student_thresholds=s_thr,
        trigger_macs=int(trig["macs"] or 0), student_macs=int(stud["macs"] or 0), t_s=t_s, trigger=trigger,
        trigger_fired=fired, snr_db=np.array([float(h["snr_db"] or 0.0) for h in hops]), student=student,
        student_confidence=np.array([float(h["student_confidence"] or 0.0) for h in hops], np.float32),
        student_ms=np.array([float(h["student_ms"] or 0.0) for h in hops]), frames_per_hop=frames_per_hop,
        cloud_ok=cloud_ok, bytes_up=bytes_up, bytes_down=bytes_down, frames_sent=frames_sent, cloud_tags=tags,
        warm_from_hop=warm_from, service_ms=service, query_ids=qids,
        query_texts=[queries[q]["text"] for q in qids], query_kinds=[str(queries[q].get("kind", "")) for q in qids],
        query_gold=[queries[q]["answer"] for q in qids], query_hop=query_hop, query_at=query_at,
        cloud_correct=cloud_correct, late_queries=[n for n, q in enumerate(qids) if q not in asked],
        local_answer_all=[local_all[q] for q in qids], important=important,
        event_ids=[e["id"] for e in events],
        event_label=np.array([important.index(e["label"]) for e in events], np.int64),
        event_onset_s=np.array([float(e["onset_s"]) for e in events]),
        trigger_detections=trigger_dets, student_detections=student_dets, _query_student_hops=q_hops,
        since_trigger=since_trigger, mask_correct=mask_correct, mask_frames=mask_frames,
        cloud_unknown=cloud_unknown, mask_unknown=mask_unknown, trigger_early=trigger_early,
        window_hops=max(1, int(round(float(header["offloads"]["full"]["audio_s"]) / hop_s))),
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

    def split(self, name: str | None) -> "TraceSet":
        """The traces of one dataset split (``train``, ``val``, ``test``); None or ``all``: every trace.

        Raises:
            TraceError: no trace of that split.
        """
        if name in (None, "all"):
            return self
        keep = [t for t in self.traces if t.split == name]
        if not keep:
            have = sorted({str(t.split) for t in self.traces})
            raise TraceError(f"no traces of split {name!r} (the traces' splits: {have}); trace a dataset folder "
                             "with a manifest, or use split=all")
        return TraceSet(keep, self.important)


def load_traces(source: str | Path | Sequence[str | Path], important: Sequence[str]) -> TraceSet:
    """Load a folder of ``*.jsonl`` traces, one file, or a list of files.

    Raises:
        TraceError: no traces found, a malformed file, or traces whose label
            lists or hop lengths disagree (one env cannot mix them).
    """
    traces = sorted((load_trace(f, important) for f in trace_files(source)), key=lambda t: t.recording_id)
    first = traces[0]
    for t in traces[1:]:
        if t.trigger_labels != first.trigger_labels or t.student_labels != first.student_labels:
            raise TraceError(f"{t.path}: labels differ from {first.path}; trace all recordings with the same programs")
        if abs(t.hop_s - first.hop_s) > 1e-9:
            raise TraceError(f"{t.path}: hop_s {t.hop_s} differs from {first.path} ({first.hop_s})")
    return TraceSet(traces, tuple(important))
