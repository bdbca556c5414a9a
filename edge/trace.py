"""``earshot trace``: what every on-device program and the cloud would say at every step.

The simulator cannot run the programs and the server for every policy it
evaluates, so this exhaustive mode runs them once per recording and writes
what each would have answered, and at what cost, into a trace file
(``<out>/<recording_id>.jsonl``; the format, its version and its one reader
are ``shared/trace.py``)::

    line 1    header: recording and split, programs (sha256, labels, thresholds, MACs), server,
              offload specs, capture variants, the server's service times measured sequentially,
              annotated events and queries
    line 2..  one per hop i (t_s = (i + 1) * hop_s): trigger probabilities and ms, SNR estimate,
              student probabilities / confidence / ms on the hop's frame, a blur estimate, the
              device's answer to a query in the hop (student on every hop), and the cloud's answer
              under each capture variant (light, full_now, full_warm, audio)

What the camera captured decides what an offload carries, so each hop asks
the cloud once per capture variant (``shared.trace.CAPTURE_VARIANTS``): the
frames of this hop only, the frames of the whole window, or none. The student
runs on every hop here; the simulator rebuilds the device's answers from the
hops a policy actually ran it on.

Service time: before tracing, :func:`measure_service_ms` sends requests one
at a time (nothing else in flight) and records their round trip on loopback;
the simulator samples that distribution and adds the network's delay. The
per-hop requests are sent concurrently (the server batches them) and their
wall time is not kept: it depends on the machine's load while tracing.
"""
from __future__ import annotations

import concurrent.futures
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge.local_answer import LocalMemory, answer_locally
from edge.policy import OFFLOAD_SPECS
from edge.runtime import build_request, step_times
from edge.snr import estimate_snr_db
from edge.source import AudioRing
from shared.trace import (CAPTURE_VARIANTS, N_MASKS, NOT_TRACED, OFFLOAD_KINDS, TRACE_VERSION, window_segments,
                          write_trace)

__all__ = ["CLOUD_TOP_K", "LAPLACIAN_SHARP", "SERVICE_SAMPLES", "frame_blur", "measure_service_ms",
           "trace_recording", "run_trace"]

#: Tags kept per cloud answer (the highest).
CLOUD_TOP_K = 5
#: Variance of the 4-neighbour Laplacian (grey levels^2) at which a frame counts as fully sharp.
LAPLACIAN_SHARP = 400.0
#: Sequential requests per offload kind for the service-time distribution: 24 gives its median
#: within a few percent and a p95 from the two slowest, in a few seconds of a tiny teacher.
SERVICE_SAMPLES = 24
_TIE_EPS = 1e-9


def frame_blur(rgb: np.ndarray) -> float:
    """Blur estimate in [0, 1] (0 sharp, 1 no detail): 1 - min(1, var(Laplacian of grey) / LAPLACIAN_SHARP).

    Motion blur and defocus remove high frequencies, which the Laplacian
    measures; a plain wall also reads as blurry (no detail to see either way).
    """
    g = rgb.astype(np.float32).mean(axis=2)
    lap = g[1:-1, 1:-1] * 4 - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
    return float(1.0 - min(1.0, float(lap.var()) / LAPLACIAN_SHARP))


def _program_info(program) -> dict[str, Any]:
    c = program.card
    info = {"program": program.path.name, "sha256": c.sha256, "labels": list(c.labels),
            "thresholds": c.threshold_vector(), "refractory_s": c.refractory_s, "macs": c.macs,
            "size_bytes": c.size_bytes, "precision": c.precision}
    if c.early_thresholds is not None:  # the trigger's early stage (docs/edge.md), replayed by the simulator
        info["early_thresholds"] = c.early_threshold_vector()
    return info


def _cloud_entry(fut: concurrent.futures.Future | str, bytes_up: int, frame_t_s: list[float]) -> dict[str, Any]:
    """One variant's cloud entry (``fut`` a string: not sent, that is the error: ``link_down``, ``not_traced``)."""
    from shared.protocol import encode

    base = {"bytes_up": bytes_up, "frame_t_s": frame_t_s}
    if isinstance(fut, str):
        return {"ok": False, "error": fut, "bytes_down": 0, "tags": {}, "answer": None, **base}
    err = fut.exception()
    if err is not None:
        from edge.client import ClientError

        code = err.code if isinstance(err, ClientError) else "internal"
        return {"ok": False, "error": code, "bytes_down": 0, "tags": {}, "answer": None, **base}
    res = fut.result()
    tags = dict(sorted(res.tags.items(), key=lambda kv: (-kv[1], kv[0]))[:CLOUD_TOP_K])
    return {"ok": True, "error": None, "bytes_down": len(encode(res)), "tags": tags, "answer": res.answer, **base}


def _captured(rec, t: float, hop_s: float, history: str) -> list[int]:
    """Frame indices the camera holds at ``t`` under a capture history (``now``: this hop's only)."""
    k = rec.frame_index_at(t) if len(rec.frames) else -1
    if history == "none" or k < 0:
        return []
    if history == "window":
        return list(range(k + 1))
    lo = int(np.searchsorted(rec.frame_times_s, t - hop_s + _TIE_EPS, side="left"))
    return list(range(lo, k + 1))


def _finish_hop(line: dict[str, Any], sent: dict[str, tuple]) -> None:
    """Wait for a hop's replies and write its ``cloud`` (and ``cloud_masks``) entries."""
    futures = [f for f, _, _ in sent.values() if not isinstance(f, str)]
    if futures:
        concurrent.futures.wait(futures)
    line["cloud"] = {name: _cloud_entry(fut, n, ft) for name, (fut, n, ft) in sent.items()}
    if "_masks" in line:
        _finish_masks(line)


def _finish_masks(line: dict[str, Any]) -> None:
    """``cloud_masks`` of a query hop: the traced masks, mask 0 = ``full_now`` and the full mask =
    ``full_warm``; a mask not asked (no cloud) carries the full_now entry's error."""
    masks = line.pop("_masks") or {}
    now, warm = line["cloud"]["full_now"], line["cloud"]["full_warm"]
    out = []
    for m in range(N_MASKS):
        if m == 0:
            out.append(now)
        elif m == N_MASKS - 1:
            out.append(warm)
        else:
            out.append(masks.get(m) or {**now, "frame_t_s": [], "ok": False, "answer": None, "tags": {},
                                        "bytes_down": 0, "error": now["error"] or NOT_TRACED})
    line["cloud_masks"] = out


def _mask_captured(rec, i: int, hop_s: float, window_hops: int, mask: int) -> list[int]:
    """Frame indices the camera holds at hop ``i`` when it covered the window's segments in ``mask``
    (``shared.trace.window_segments``) and is on at hop ``i`` itself."""
    if not len(rec.frames):
        return []
    hops = {i}
    for k, (lo, hi) in enumerate(window_segments(i, window_hops)):
        if mask >> k & 1:
            hops.update(range(lo, hi))
    times = np.asarray(rec.frame_times_s)
    hop_of = np.ceil(times / hop_s - _TIE_EPS).astype(int) - 1  # hop h covers (h * hop_s, (h + 1) * hop_s]
    return [int(k) for k in np.flatnonzero(np.isin(hop_of, sorted(hops)))]


def measure_service_ms(rec, client, *, hop_s: float, deadline_ms: int,
                       samples: int = SERVICE_SAMPLES) -> dict[str, list[float]]:
    """Service time (ms, loopback round trip) per offload kind, one request at a time.

    Requests are built from ``samples`` hops spread over the recording, with the
    window's frames; each waits for its reply before the next is sent. A failed
    request is left out (the trace's per-hop entries say which variants fail).
    """
    from edge.client import ClientError

    ring = AudioRing(int(8.0 * rec.sample_rate_hz))
    times = step_times(rec.duration_s, hop_s)
    picks = set(np.linspace(0, len(times) - 1, min(samples, len(times))).round().astype(int).tolist())
    out: dict[str, list[float]] = {k: [] for k in OFFLOAD_KINDS}
    pos = 0
    for i, t in enumerate(times):
        stop = min(int(round(t * rec.sample_rate_hz)), len(rec.audio))
        ring.push(rec.audio[pos:stop])
        pos = stop
        if i not in picks:
            continue
        for kind in OFFLOAD_KINDS:
            spec = OFFLOAD_SPECS[kind]
            req, _, _ = build_request(rec, ring, t, spec, _captured(rec, t, hop_s, "window"), trigger_label="trace",
                                      trigger_score=0.0, student_scores=None, student_confidence=None, query=None,
                                      deadline_ms=deadline_ms)
            t0 = time.perf_counter()
            try:
                client.submit(req, deadline_ms=deadline_ms).result()
            except ClientError:
                continue
            out[kind].append(1000.0 * (time.perf_counter() - t0))
    return out


def trace_recording(rec, trigger, student, client, *, hop_s: float = 0.25, deadline_ms: int = 5000,
                    endpoint: str | None = None, split: str | None = None,
                    service_ms: dict[str, list[float]] | None = None, max_in_flight: int = 8,
                    cloud_hops: str = "all", important: tuple[str, ...] = (),
                    event_window_s: float = 5.0) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(header, hop lines) of one loaded `Recording` (see the module docstring).

    ``client``: an ``edge.client.Client`` (None: every cloud entry is ``link_down``).
    ``service_ms``: the sequential measurement to store (:func:`measure_service_ms`).
    ``max_in_flight``: the client's limit; the next hops' requests are sent while
    earlier ones are served, within it. ``cloud_hops="needed"``: ask the cloud only at
    hops that ask a query or end within ``(onset, onset + event_window_s]`` of an event
    labelled in ``important`` (the requests are still built: their bytes and frames are
    recorded); elsewhere every variant says ``not_traced``.
    """
    ann = rec.annotations
    rate = rec.sample_rate_hz
    ring = AudioRing(int(8.0 * rate))
    n_trig = trigger.card.inputs[0].shape[-1]
    n_stud = next(s.shape[-1] for s in student.card.inputs if s.dtype == "int16")
    model_id = None
    if client is not None:
        from edge.client import ClientError

        try:
            model_id = client.ping(timeout_ms=max(1000, deadline_ms)).model_id
        except ClientError:
            pass
    header = {
        "trace_version": TRACE_VERSION, "recording_id": ann.recording_id, "environment": ann.environment,
        "duration_s": rec.duration_s, "hop_s": hop_s, "snr_db": ann.snr_db, "split": split,
        "trigger": _program_info(trigger), "student": _program_info(student),
        "server": {"endpoint": endpoint, "model_id": model_id},
        "offloads": {k: {"frames": s.frames, "jpeg_quality": s.jpeg_quality, "audio_s": s.audio_s}
                     for k, s in OFFLOAD_SPECS.items()},
        "variants": {n: {"offload": v.offload, "history": v.history} for n, v in CAPTURE_VARIANTS.items()},
        "service_ms": {k: [float(x) for x in v] for k, v in (service_ms or {k: [] for k in OFFLOAD_KINDS}).items()},
        "cloud_hops": ({"mode": "all"} if cloud_hops == "all" else
                       {"mode": "needed", "labels": sorted(important), "window_s": float(event_window_s)}),
        "events": [{"id": e.id, "label": e.label, "onset_s": e.onset_s, "offset_s": e.offset_s,
                    "modality": e.modality, "source_visible": e.source_visible} for e in ann.events],
        "queries": [{"id": q.id, "t_s": q.t_s, "text": q.text, "answer": q.answer, "kind": q.kind,
                     "event_ids": list(q.event_ids)} for q in ann.queries],
    }
    times = step_times(rec.duration_s, hop_s)
    queries = sorted(ann.queries, key=lambda q: q.t_s)
    onsets = [e.onset_s for e in ann.events if e.label in important]
    memory = LocalMemory()
    hold = trigger.card.trigger_hold()  # the card's thresholds and refractory hold, as the runtime
    lines = []
    in_flight: list[tuple[dict, dict]] = []
    ahead = max(1, max_in_flight // len(CAPTURE_VARIANTS) - 1)  # hops whose requests may wait for replies
    pos = 0
    for i, t in enumerate(times):
        stop = min(int(round(t * rate)), len(rec.audio))
        ring.push(rec.audio[pos:stop])
        pos = stop
        # trigger
        probs = trigger(ring.last(n_trig)[None])[0].reshape(-1)
        fired, new = hold.step(t, probs)
        for lab in new:
            memory.add(t, lab, float(probs[trigger.card.labels.index(lab)]), "trigger")
        line: dict[str, Any] = {"i": i, "t_s": t, "trigger": [float(p) for p in probs], "trigger_ms": trigger.last_ms,
                                "snr_db": estimate_snr_db(ring.last(n_trig), rate),
                                "frames": len(_captured(rec, t, hop_s, "now"))}
        # student on the hop's newest frame
        k = rec.frame_index_at(t) if len(rec.frames) else -1
        if k >= 0:
            outs = student(rec.frames[k][None], ring.last(n_stud)[None])  # the program resizes in its graph
            s_probs = outs[0].reshape(-1)
            conf = float(outs[1].reshape(-1)[0]) if len(outs) > 1 else float(s_probs.max())
            for lab in student.card.decide(s_probs):
                memory.add(t, lab, float(s_probs[student.card.labels.index(lab)]), "student")
            line.update(student=[float(p) for p in s_probs], student_confidence=conf, student_ms=student.last_ms,
                        frame_blur=frame_blur(rec.frames[k]))
            s_scores = dict(zip(student.card.labels, (float(p) for p in s_probs)))
        else:
            line.update(student=None, student_confidence=None, student_ms=None, frame_blur=None)
            s_scores, conf = None, None
        # the query of this hop, as the runtime picks it: the next unasked one whose time has
        # come, one per hop (a second one in the same hop waits for the next)
        query = queries.pop(0) if queries and queries[0].t_s <= t + _TIE_EPS else None
        line["query_id"] = query.id if query is not None else None
        asked = [query] if query is not None else []
        if i == len(times) - 1:
            asked += queries  # past the last hop: the runtime answers them on the device at the end
        if asked:
            line["local_answer"] = {q.id: answer_locally(memory, q.text, t) for q in asked}
        # the cloud, under every capture variant, sent together
        label = max(fired, key=lambda lab: probs[trigger.card.labels.index(lab)]) if fired else "trace"
        score = float(probs[trigger.card.labels.index(label)]) if fired else float(probs.max())
        ask = client is not None and (cloud_hops == "all" or query is not None
                                      or any(t > o and t - hop_s < o + event_window_s for o in onsets))
        sent = {}
        masks = None
        if query is not None and ask:
            # Every pattern of window coverage (shared.trace, "Window masks"): drain the hops in
            # flight, then ask in chunks the client takes; mask 0 is full_now, the full mask full_warm.
            while in_flight:
                _finish_hop(*in_flight.pop(0))
            window_hops = int(round(OFFLOAD_SPECS["full"].audio_s / hop_s))
            masks = {}
            todo = list(range(1, N_MASKS - 1))
            chunk = max(1, client.max_in_flight)
            for c0 in range(0, len(todo), chunk):
                futs = {}
                for m in todo[c0:c0 + chunk]:
                    req, n_bytes, _ = build_request(rec, ring, t, OFFLOAD_SPECS["full"],
                                                    _mask_captured(rec, i, hop_s, window_hops, m),
                                                    trigger_label=label, trigger_score=score, student_scores=s_scores,
                                                    student_confidence=conf, query=query, deadline_ms=deadline_ms)
                    futs[m] = (client.submit(req, deadline_ms=deadline_ms), n_bytes, [float(f.t_s) for f in req.frames])
                concurrent.futures.wait([f for f, _, _ in futs.values()])
                masks.update({m: _cloud_entry(f, n, ft) for m, (f, n, ft) in futs.items()})
        for name, variant in CAPTURE_VARIANTS.items():
            camera = variant.history != "none"
            captured = _captured(rec, t, hop_s, variant.history)
            req, n_bytes, _ = build_request(rec, ring, t, OFFLOAD_SPECS[variant.offload], captured,
                                            trigger_label=label, trigger_score=score,
                                            student_scores=s_scores if camera else None,
                                            student_confidence=conf if camera else None, query=query,
                                            deadline_ms=deadline_ms)
            fut = client.submit(req, deadline_ms=deadline_ms) if ask else ("link_down" if client is None else NOT_TRACED)
            sent[name] = (fut, n_bytes, [float(f.t_s) for f in req.frames])
        # Keep the next hops' requests coming while these are served (the server batches them);
        # a hop's line is finished once its replies are in.
        if query is not None:
            line["_masks"] = masks  # completed with full_now / full_warm once this hop's replies are in
        in_flight.append((line, sent))
        while len(in_flight) > ahead or (i == len(times) - 1 and in_flight):
            _finish_hop(*in_flight.pop(0))
        lines.append(line)
    return header, lines


def _splits(path: Path) -> dict[str, str]:
    """recording id -> split from the dataset manifest: ``path`` is a dataset folder, or a recording
    inside one (``<dataset>/recordings/<id>``); empty when there is no manifest."""
    from shared.dataset import MANIFEST_FILE, load_dataset

    for root in (path, path.parent.parent):
        if (root / MANIFEST_FILE).is_file():
            return {e.id: e.split for e in load_dataset(root).entries}
    return {}


def run_trace(cfg) -> list[Path]:
    """Trace every recording of a `TraceConfig`; returns the files written."""
    from edge.eventlog import round_floats
    from edge.programs import load_program
    from edge.edge_config import make_client, recording_folders
    from shared.recording import load_recording

    trigger = load_program(cfg.trigger, expect="trigger")
    student = load_program(cfg.student, expect="av")
    client = make_client(cfg.endpoint, cfg.server_public_key, cfg.client_keys, cfg.max_in_flight, cfg.deadline_ms)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    folders = recording_folders(cfg.recording)
    splits = _splits(Path(cfg.recording))
    written = []
    try:
        service = None
        if client is not None and folders:
            t0 = time.monotonic()
            service = measure_service_ms(load_recording(folders[0]), client, hop_s=cfg.hop_s,
                                         deadline_ms=cfg.deadline_ms)
            med = {k: float(np.median(v)) if v else math.nan for k, v in service.items()}
            print(f"service time, {SERVICE_SAMPLES} sequential requests per kind: median "
                  + ", ".join(f"{k} {v:.1f} ms" for k, v in med.items()) + f" ({time.monotonic() - t0:.1f} s)")
        for folder in _progress(folders):
            rec = load_recording(folder)
            t0 = time.monotonic()
            header, lines = trace_recording(rec, trigger, student, client, hop_s=cfg.hop_s,
                                            deadline_ms=cfg.deadline_ms, endpoint=cfg.endpoint,
                                            split=splits.get(rec.annotations.recording_id), service_ms=service,
                                            max_in_flight=cfg.max_in_flight, cloud_hops=cfg.cloud_hops,
                                            important=tuple(cfg.important_labels),
                                            event_window_s=cfg.event_window_s)
            path = write_trace(out / f"{header['recording_id']}.jsonl", round_floats(header),
                               [round_floats(line) for line in lines])
            ok = sum(c["ok"] for line in lines for c in line["cloud"].values())
            asked = sum(c["error"] != NOT_TRACED for line in lines for c in line["cloud"].values())
            masks = [c for line in lines for c in (line.get("cloud_masks") or [])[1:-1]]  # 0, last: variants
            n_masks = sum(c["ok"] for c in masks)
            print(f"{path}: {len(lines)} hops, {ok}/{asked} cloud answers ({asked} of "
                  f"{len(CAPTURE_VARIANTS) * len(lines)} asked), {n_masks}/{len(masks)} window-mask answers, "
                  f"{time.monotonic() - t0:.1f} s")
            written.append(path)
    finally:
        if client is not None:
            client.close()
    return written


def _progress(items: list) -> Any:
    """A rich progress bar over many recordings (plain iteration for one)."""
    if len(items) < 2:
        return items
    from rich.progress import track

    return track(items, description="tracing recordings")
