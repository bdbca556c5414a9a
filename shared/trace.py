"""The trace format: what every on-device program and the cloud answered at every hop.

One definition of the format for its one writer (``earshot trace``,
``edge/trace.py``) and its one reader (this module's :func:`read_trace`, which
the simulator's ``sim/traces.py`` turns into arrays). A trace is one JSON-lines
file per recording, ``<recording_id>.jsonl``::

    line 1    header
    line 2..  one line per hop i, covering (i * hop_s, (i + 1) * hop_s]; t_s = (i + 1) * hop_s

Header keys (all required):

| key | meaning |
| --- | --- |
| ``trace_version`` | :data:`TRACE_VERSION` |
| ``recording_id``, ``environment``, ``duration_s``, ``hop_s``, ``snr_db`` | the recording |
| ``split`` | ``train`` / ``val`` / ``test`` from the dataset manifest, or null |
| ``trigger``, ``student`` | program blocks: ``program``, ``sha256``, ``labels``, ``thresholds``, ``refractory_s`` (the trigger's hold, ``shared/trigger.py``; absent for programs whose card has none: 0, no hold), ``macs``, ``size_bytes``, ``precision``; optional ``early_thresholds`` (the trigger card's early stage in label order, each at or below its threshold; absent: none) |
| ``server`` | ``endpoint`` and ``model_id`` (null without a cloud) |
| ``offloads`` | per offload kind: ``frames``, ``jpeg_quality``, ``audio_s`` |
| ``variants`` | per capture variant (:data:`CAPTURE_VARIANTS`): ``offload`` and ``history`` |
| ``service_ms`` | per offload kind, the server's service times (ms) measured one request at a time |
| ``cloud_hops`` | ``{"mode": "all"}``, or ``{"mode": "needed", "labels": [...], "window_s": s}``: the cloud was asked only at hops that ask a query or lie within ``window_s`` of the onset of an event with one of ``labels`` (elsewhere every variant says ``ok: false, error: "not_traced"``) |
| ``events``, ``queries`` | the recording's annotated events and wearer queries (with gold answers) |

Hop keys: ``i``, ``t_s``, ``trigger`` (probabilities in label order),
``trigger_ms``, ``snr_db``, ``student`` (probabilities on the hop's newest
frame, or null before the first frame), ``student_confidence``,
``student_ms``, ``frame_blur``, ``frames`` (frames the camera captures during
the hop when it is on), ``query_id``, ``cloud``, ``local_answer`` and, on a
hop that asks a query, ``cloud_masks`` (below).
A hop asks at most one query (``query_id``, else null): the next unasked query
whose time has come, as the runtime picks it; a second query in the same hop
waits for the next hop, and queries left after the last hop are answered on the
device only (listed in the last hop's ``local_answer``). ``local_answer`` maps
those query ids to the device's answer with the student run on every hop (the
simulator recomputes it from the hops the student actually ran).

``cloud`` holds one entry per capture variant: ``ok``, ``error``,
``bytes_up`` (the encoded request), ``bytes_down``, ``frame_t_s`` (the times of
the frames the request carried), ``tags`` (the cloud's top tag probabilities)
and ``answer`` (to the hop's query, or to the server's default question).

**Capture variants.** What the camera captured decides what an offload can
carry, so the cloud is asked once per capture history that matters:

- ``light``: 1 frame (the hop's newest) + 2 s of audio; the camera is on this hop.
- ``full_now``: up to 4 frames from this hop only (the camera just turned on) + 5 s of audio.
- ``full_warm``: 4 frames spread over the last 5 s + 5 s of audio; valid only when
  the camera was on continuously since the hop of its oldest frame.
- ``audio``: 5 s of audio, no frames (camera off).

A policy that never turned the camera on can only send ``audio``; frames sent
never exceed frames captured.

**Window masks** (``cloud_masks``, on every hop that asks a query). The glasses
keep the frames the camera captured and a ``full`` offload carries up to 4 of
those within its 5 s window (``edge.runtime.build_request``), whether or not the
camera stayed on in between: a camera that came on for a sound and went off
again still holds the frames of what happened then. So at a query hop the
cloud is also asked once per pattern of the window's coverage: the window is
cut into :data:`WINDOW_SEGMENTS` equal runs of hops (:func:`window_segments`,
oldest first) and mask ``m`` (bit ``k`` = segment ``k``) carries the frames of
the hops of the covered segments plus the query hop's own, picked by the
runtime's rule. ``cloud_masks`` is a list of ``2 ** WINDOW_SEGMENTS`` cloud
entries indexed by mask; mask 0 is ``full_now`` and the full mask is
``full_warm`` (the same requests, not asked twice). A segment counts as
covered only when the camera was on at every one of its hops
(:func:`camera_mask`), so frames sent never exceed frames captured.

Service times are measured sequentially (one
request in flight, the server otherwise idle) so that the simulator samples a
distribution that does not depend on how loaded the machine was while tracing;
the per-hop requests themselves are sent concurrently and their wall time is
not recorded.

Raises :class:`TraceError` (a :class:`shared.config.UserError`) naming the file
and line of anything malformed.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from shared.config import UserError

__all__ = ["TRACE_VERSION", "TraceError", "CaptureVariant", "CAPTURE_VARIANTS", "VARIANT_NAMES", "OFFLOAD_KINDS",
           "HEADER_KEYS", "HOP_KEYS", "CLOUD_KEYS", "NOT_TRACED", "WINDOW_SEGMENTS", "N_MASKS", "window_segments",
           "camera_mask", "read_trace", "write_trace", "trace_files", "labels_not_covered"]

TRACE_VERSION = 3
#: The full offload's window is cut into this many runs of hops for ``cloud_masks``.
WINDOW_SEGMENTS = 4
#: Masks per query hop.
N_MASKS = 2 ** WINDOW_SEGMENTS
#: Offload kinds, in the order every array of the simulator uses (edge.policy.OFFLOAD_SPECS keys).
OFFLOAD_KINDS: tuple[str, ...] = ("light", "full", "audio")


@dataclass(frozen=True)
class CaptureVariant:
    """One capture history the cloud is asked under.

    Attributes:
        offload: the offload kind (its frames, JPEG quality and seconds of audio).
        history: ``none`` (no frames), ``now`` (frames of this hop only) or
            ``window`` (frames spread over the offload's audio window).
    """

    offload: str
    history: str


#: Capture variants in array order (see the module docstring).
CAPTURE_VARIANTS: dict[str, CaptureVariant] = {
    "light": CaptureVariant("light", "now"),
    "full_now": CaptureVariant("full", "now"),
    "full_warm": CaptureVariant("full", "window"),
    "audio": CaptureVariant("audio", "none"),
}
VARIANT_NAMES: tuple[str, ...] = tuple(CAPTURE_VARIANTS)

HEADER_KEYS = ("trace_version", "recording_id", "environment", "duration_s", "hop_s", "snr_db", "split", "trigger",
               "student", "server", "offloads", "variants", "service_ms", "cloud_hops", "events", "queries")
#: The error of a cloud entry the tracer did not ask for (``cloud_hops`` mode ``needed``).
NOT_TRACED = "not_traced"
PROGRAM_KEYS = ("program", "sha256", "labels", "thresholds", "macs", "size_bytes", "precision")
HOP_KEYS = ("i", "t_s", "trigger", "trigger_ms", "snr_db", "student", "student_confidence", "student_ms",
            "frame_blur", "frames", "query_id", "cloud")
CLOUD_KEYS = ("ok", "error", "bytes_up", "bytes_down", "frame_t_s", "tags", "answer")


def window_segments(i: int, window_hops: int, n: int = WINDOW_SEGMENTS) -> list[tuple[int, int]]:
    """Hop ranges ``[lo, hi)`` of the ``n`` segments (oldest first) of the ``window_hops`` hops that end
    with hop ``i``; hops before 0 are cut off, so early segments may be empty."""
    if window_hops < 1:
        raise ValueError(f"window_hops: must be >= 1, got {window_hops}")
    first = i - window_hops + 1
    bounds = [first + (k * window_hops) // n for k in range(n + 1)]
    return [(max(0, bounds[k]), max(0, bounds[k + 1])) for k in range(n)]


def camera_mask(camera_on: Sequence[bool], i: int, window_hops: int, n: int = WINDOW_SEGMENTS) -> int:
    """The window mask of hop ``i`` (bit ``k``: segment ``k`` covered) from the camera's state per hop:
    a segment is covered when the camera was on at every one of its hops (an empty one is)."""
    m = 0
    for k, (lo, hi) in enumerate(window_segments(i, window_hops, n)):
        if all(camera_on[lo:hi]):
            m |= 1 << k
    return m


class TraceError(UserError, ValueError):
    """A trace file that does not follow the format; the message names the file and line."""


def _check_header(path: Path, h: Any) -> None:
    where = f"{path}:1"
    if not isinstance(h, dict):
        raise TraceError(f"{where}: the header must be a JSON object")
    if h.get("trace_version") != TRACE_VERSION:
        raise TraceError(f"{where}: trace_version {h.get('trace_version')!r}; this reader knows {TRACE_VERSION} "
                         "(re-run 'earshot trace')")
    missing = [k for k in HEADER_KEYS if k not in h]
    if missing:
        raise TraceError(f"{where}: header misses {missing}")
    try:
        hop_s = float(h["hop_s"])
    except (TypeError, ValueError):
        raise TraceError(f"{where}: hop_s must be a number, got {h['hop_s']!r}") from None
    if not hop_s > 0:
        raise TraceError(f"{where}: hop_s must be > 0, got {hop_s}")
    for prog in ("trigger", "student"):
        block = h[prog]
        if not isinstance(block, dict) or [k for k in PROGRAM_KEYS if k not in block]:
            raise TraceError(f"{where}: {prog} must hold {list(PROGRAM_KEYS)}")
        if len(block["labels"]) != len(block["thresholds"]):
            raise TraceError(f"{where}: {prog}: {len(block['labels'])} labels but {len(block['thresholds'])} thresholds")
        early = block.get("early_thresholds")
        if early is not None and not (
                isinstance(early, list) and len(early) == len(block["thresholds"])
                and all(isinstance(e, (int, float)) and isinstance(t, (int, float)) and 0.0 <= e <= t
                        for e, t in zip(early, block["thresholds"]))):
            raise TraceError(f"{where}: {prog}.early_thresholds must be null or one number per label in "
                             f"[0, that label's threshold], got {early!r}")
    if set(h["variants"]) != set(VARIANT_NAMES):
        raise TraceError(f"{where}: variants {sorted(h['variants'])}, expected {sorted(VARIANT_NAMES)}")
    if not isinstance(h["service_ms"], dict) or set(h["service_ms"]) - set(OFFLOAD_KINDS):
        raise TraceError(f"{where}: service_ms must map offload kinds {OFFLOAD_KINDS} to lists of ms")
    for kind, samples in h["service_ms"].items():
        if not isinstance(samples, list) or not all(isinstance(x, (int, float)) and x >= 0 for x in samples):
            raise TraceError(f"{where}: service_ms.{kind} must be a list of non-negative ms")
    ch = h["cloud_hops"]
    if not isinstance(ch, dict) or ch.get("mode") not in ("all", "needed") or (
            ch["mode"] == "needed" and not (isinstance(ch.get("labels"), list) and isinstance(ch.get("window_s"),
                                                                                                (int, float)))):
        raise TraceError(f"{where}: cloud_hops must be {{mode: all}} or {{mode: needed, labels: [...], window_s: s}}")
    ids = [q.get("id") for q in h["queries"]]
    if len(set(ids)) != len(ids) or not all(isinstance(q.get("answer"), str) and isinstance(q.get("text"), str)
                                            for q in h["queries"]):
        raise TraceError(f"{where}: queries need unique ids, a text and a gold answer")


def _check_hop(path: Path, n: int, hop: Any, header: dict[str, Any]) -> None:
    where = f"{path}:{n + 2}"
    if not isinstance(hop, dict):
        raise TraceError(f"{where}: a hop must be a JSON object")
    missing = [k for k in HOP_KEYS if k not in hop]
    if missing:
        raise TraceError(f"{where}: hop misses {missing}")
    if hop["i"] != n:
        raise TraceError(f"{where}: hop i={hop['i']!r}, expected {n} (hops in order, none missing)")
    if len(hop["trigger"]) != len(header["trigger"]["labels"]):
        raise TraceError(f"{where}: {len(hop['trigger'])} trigger scores for {len(header['trigger']['labels'])} labels")
    if hop["student"] is not None and len(hop["student"]) != len(header["student"]["labels"]):
        raise TraceError(f"{where}: {len(hop['student'])} student scores for {len(header['student']['labels'])} labels")
    cloud = hop["cloud"]
    if not isinstance(cloud, dict) or set(cloud) != set(VARIANT_NAMES):
        raise TraceError(f"{where}: cloud must hold one entry per variant {list(VARIANT_NAMES)}")
    for name, entry in cloud.items():
        bad = [k for k in CLOUD_KEYS if k not in entry]
        if bad:
            raise TraceError(f"{where}: cloud.{name} misses {bad}")
    asked = hop.get("local_answer") or {}
    known = {q["id"] for q in header["queries"]}
    unknown = sorted(set(asked) - known)
    if unknown:
        raise TraceError(f"{where}: local_answer names queries {unknown}, which the header does not list")
    qid = hop["query_id"]
    if qid is not None and (qid not in known or qid not in asked):
        raise TraceError(f"{where}: query_id {qid!r} must be a header query with a local_answer on this hop")
    masks = hop.get("cloud_masks")
    if masks is not None:
        if not isinstance(masks, list) or len(masks) != N_MASKS:
            raise TraceError(f"{where}: cloud_masks must be a list of {N_MASKS} cloud entries")
        for m, entry in enumerate(masks):
            bad = [k for k in CLOUD_KEYS if k not in entry] if isinstance(entry, dict) else list(CLOUD_KEYS)
            if bad:
                raise TraceError(f"{where}: cloud_masks[{m}] misses {bad}")
    elif hop["query_id"] is not None:
        raise TraceError(f"{where}: a hop that asks a query needs cloud_masks (one cloud entry per window mask)")


def read_trace(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(header, hops) of one trace file, validated.

    Raises:
        TraceError: unreadable, not JSON lines, another version, missing keys,
            label lists that disagree with the scores, or hops out of order.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError(f"{path}: cannot read ({exc})") from None
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if len(lines) < 2:
        raise TraceError(f"{path}: a trace needs a header and at least one hop")
    objs = []
    for n, line in lines:
        try:
            objs.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise TraceError(f"{path}:{n}: not JSON ({exc.msg})") from None
    header, hops = objs[0], objs[1:]
    _check_header(path, header)
    for n, hop in enumerate(hops):
        _check_hop(path, n, hop, header)
    return header, hops


def write_trace(path: str | Path, header: dict[str, Any], hops: Sequence[dict[str, Any]]) -> Path:
    """Write a trace atomically (a ``.tmp`` file renamed into place); returns the path.

    The header must carry this module's version; the writer validates what it
    writes with the reader's own checks.

    Raises:
        TraceError: the header or a hop does not follow the format.
    """
    path = Path(path)
    _check_header(path, header)
    for n, hop in enumerate(hops):
        _check_hop(path, n, hop, header)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        text = "".join(json.dumps(obj, ensure_ascii=False, allow_nan=False) + "\n" for obj in (header, *hops))
    except ValueError as exc:  # NaN or infinity: JSON has no spelling for them
        raise TraceError(f"{path}: cannot write ({exc})") from None
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def labels_not_covered(header: dict[str, Any], labels: Iterable[str], notify_s: float) -> list[str]:
    """The ``labels`` whose events the cloud may be missing from: the trace asked the cloud only
    near some labels' events, or for a shorter window than ``notify_s`` (empty: all covered)."""
    ch = header["cloud_hops"]
    if ch["mode"] == "all":
        return []
    if float(ch["window_s"]) < notify_s:
        return sorted(labels)
    return sorted(set(labels) - set(ch["labels"]))


def trace_files(source: str | Path | Iterable[str | Path]) -> list[Path]:
    """The ``*.jsonl`` files of a folder (sorted), one file, or a list of files.

    Raises:
        TraceError: nothing found, or a listed file does not exist.
    """
    if isinstance(source, (str, Path)):
        p = Path(source)
        files = sorted(p.glob("*.jsonl")) if p.is_dir() else [p]
    else:
        files = [Path(f) for f in source]
    if not files or not all(f.is_file() for f in files):
        raise TraceError(f"{source}: no trace files (*.jsonl); make them with 'earshot trace'")
    return files
