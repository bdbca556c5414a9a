"""``earshot trace``: what every on-device program and the cloud would say at every step.

The simulator cannot run the programs and the server for every policy it
evaluates, so this exhaustive mode runs them once per recording and writes
what each would have answered, and at what cost, into a trace file
(``traces/<recording_id>.jsonl``, format v1 in docs/edge.md)::

    line 1    header: recording, programs (sha256, labels, thresholds, MACs), server, offload specs,
              annotated events and queries
    line 2..  one per hop i (t_s = (i + 1) * hop_s): trigger probabilities and ms, SNR estimate,
              student probabilities / confidence / ms on the hop's frame, a blur estimate,
              the local answer to a query that falls in the hop, and the cloud's answer to each
              offload kind (light, full, audio) through the live server

Everything is computed as if the camera were on at every step (the student
sees every hop's newest frame; offloads carry the frames of the last
``audio_s`` seconds), so a replay can take any policy's view of it. Cloud
``latency_ms`` is server + loopback time; the simulator adds the network's
delay and loss from its profile.

`load_trace` reads a file back (validating the header); `replay_trace` runs a
policy over a trace the way the runtime would, deterministically (the
simulator's environment does the same with energy and network on top).
"""
from __future__ import annotations

import concurrent.futures
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge.local_answer import LocalMemory, answer_locally
from edge.policy import OFFLOAD_SPECS, Observation
from edge.runtime import answer_matches, build_request, step_times
from edge.snr import estimate_snr_db
from edge.source import AudioRing
from shared.trigger import TriggerHold

__all__ = ["TRACE_VERSION", "CLOUD_TOP_K", "LAPLACIAN_SHARP", "frame_blur", "trace_recording", "run_trace",
           "load_trace", "replay_trace", "TraceError"]

TRACE_VERSION = 1
#: Tags kept per cloud answer (the highest).
CLOUD_TOP_K = 5
#: Variance of the 4-neighbour Laplacian (grey levels^2) at which a frame counts as fully sharp.
LAPLACIAN_SHARP = 400.0
_TIE_EPS = 1e-9


class TraceError(ValueError):
    """A trace file that does not follow the format; the message names the file and line."""


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
    return {"program": program.path.name, "sha256": c.sha256, "labels": list(c.labels),
            "thresholds": c.threshold_vector(), "refractory_s": c.refractory_s, "macs": c.macs,
            "size_bytes": c.size_bytes, "precision": c.precision}


def _cloud_entry(fut: concurrent.futures.Future, t_submit: float, bytes_up: int) -> dict[str, Any]:
    from edge.client import ClientError
    from shared.protocol import encode

    err = fut.exception()
    latency_ms = 1000 * (time.monotonic() - t_submit)
    if err is not None:
        code = err.code if isinstance(err, ClientError) else "internal"
        return {"ok": False, "latency_ms": latency_ms, "bytes_up": bytes_up, "bytes_down": 0, "tags": {},
                "answer": None, "error": code}
    res = fut.result()
    tags = dict(sorted(res.tags.items(), key=lambda kv: (-kv[1], kv[0]))[:CLOUD_TOP_K])
    return {"ok": True, "latency_ms": latency_ms, "bytes_up": bytes_up, "bytes_down": len(encode(res)),
            "tags": tags, "answer": res.answer, "error": None}


def trace_recording(rec, trigger, student, client, *, hop_s: float = 0.25, deadline_ms: int = 5000,
                    endpoint: str | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(header, hop lines) of one loaded `Recording` (see the module docstring).

    ``client``: an ``edge.client.Client`` (None: every cloud entry is ``link_down``).
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
        "duration_s": rec.duration_s, "hop_s": hop_s, "snr_db": ann.snr_db,
        "trigger": _program_info(trigger), "student": _program_info(student),
        "server": {"endpoint": endpoint, "model_id": model_id},
        "offloads": {k: {"frames": s.frames, "jpeg_quality": s.jpeg_quality, "audio_s": s.audio_s}
                     for k, s in OFFLOAD_SPECS.items()},
        "events": [{"id": e.id, "label": e.label, "onset_s": e.onset_s, "offset_s": e.offset_s,
                    "modality": e.modality, "source_visible": e.source_visible} for e in ann.events],
        "queries": [{"id": q.id, "t_s": q.t_s, "text": q.text, "answer": q.answer, "kind": q.kind,
                     "event_ids": list(q.event_ids)} for q in ann.queries],
    }
    times = step_times(rec.duration_s, hop_s)
    queries = sorted(ann.queries, key=lambda q: q.t_s)
    memory = LocalMemory()
    hold = trigger.card.trigger_hold()  # the card's thresholds and refractory hold, as the runtime
    lines = []
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
                                "snr_db": estimate_snr_db(ring.last(n_trig), rate)}
        # student on the hop's newest frame
        k = rec.frame_index_at(t) if len(rec.frames) else -1
        captured = list(range(k + 1))
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
        # a query in this hop
        lo = t - hop_s if i else -math.inf
        hop_queries = [q for q in queries if lo + _TIE_EPS < q.t_s <= t + _TIE_EPS
                       or (i == len(times) - 1 and q.t_s > t)]
        if hop_queries:
            line["local_answer"] = {q.id: answer_locally(memory, q.text, t) for q in hop_queries}
        query = hop_queries[0] if hop_queries else None
        # the cloud, for every offload kind
        label = max(fired, key=lambda lab: probs[trigger.card.labels.index(lab)]) if fired else "trace"
        score = float(probs[trigger.card.labels.index(label)]) if fired else float(probs.max())
        cloud = {}
        submitted = {}
        for kind, spec in OFFLOAD_SPECS.items():
            req, n_bytes, _ = build_request(rec, ring, t, spec, captured, trigger_label=label, trigger_score=score,
                                            student_scores=s_scores, student_confidence=conf, query=query,
                                            deadline_ms=deadline_ms)
            if client is None:
                cloud[kind] = {"ok": False, "latency_ms": 0.0, "bytes_up": n_bytes, "bytes_down": 0, "tags": {},
                               "answer": None, "error": "link_down"}
            else:
                submitted[kind] = (client.submit(req, deadline_ms=deadline_ms), time.monotonic(), n_bytes)
        for kind, (fut, t_submit, n_bytes) in submitted.items():
            concurrent.futures.wait([fut])
            cloud[kind] = _cloud_entry(fut, t_submit, n_bytes)
        line["cloud"] = {k: cloud[k] for k in OFFLOAD_SPECS}
        lines.append(line)
    return header, lines


def _round(x: Any) -> Any:
    from edge.eventlog import round_floats

    return round_floats(x)


def run_trace(cfg) -> list[Path]:
    """Trace every recording of a `TraceConfig`; returns the files written."""
    from edge.programs import load_program
    from edge.edge_config import make_client, recording_folders
    from shared.recording import load_recording

    trigger = load_program(cfg.trigger, expect="trigger")
    student = load_program(cfg.student, expect="av")
    client = make_client(cfg.endpoint, cfg.server_public_key, cfg.client_keys, cfg.max_in_flight, cfg.deadline_ms)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    try:
        for folder in recording_folders(cfg.recording):
            rec = load_recording(folder)
            t0 = time.monotonic()
            header, lines = trace_recording(rec, trigger, student, client, hop_s=cfg.hop_s,
                                            deadline_ms=cfg.deadline_ms, endpoint=cfg.endpoint)
            path = out / f"{header['recording_id']}.jsonl"
            tmp = path.with_suffix(".jsonl.tmp")
            with open(tmp, "w", encoding="utf-8") as f:
                for obj in [header, *lines]:
                    f.write(json.dumps(_round(obj), ensure_ascii=False) + "\n")
            tmp.replace(path)
            ok = sum(c["ok"] for line in lines for c in line["cloud"].values())
            print(f"{path}: {len(lines)} hops, {ok}/{3 * len(lines)} cloud answers, {time.monotonic() - t0:.1f} s")
            written.append(path)
    finally:
        if client is not None:
            client.close()
    return written


def load_trace(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(header, hops) of a trace file.

    Raises:
        TraceError: not a v1 trace, a hop line missing a field, or hops out of order.
    """
    path = Path(path)
    with open(path, encoding="utf-8") as f:
        lines = [line for line in f if line.strip()]
    if not lines:
        raise TraceError(f"{path}: empty")
    try:
        header = json.loads(lines[0])
        hops = [json.loads(line) for line in lines[1:]]
    except json.JSONDecodeError as exc:
        raise TraceError(f"{path}: not JSON lines ({exc})") from None
    if header.get("trace_version") != TRACE_VERSION:
        raise TraceError(f"{path}:1: trace_version {header.get('trace_version')!r}, this reader knows {TRACE_VERSION}")
    for key in ("recording_id", "duration_s", "hop_s", "trigger", "student", "offloads", "events", "queries"):
        if key not in header:
            raise TraceError(f"{path}:1: header misses {key!r}")
    for n, hop in enumerate(hops):
        for key in ("i", "t_s", "trigger", "snr_db", "student", "student_confidence", "cloud"):
            if key not in hop:
                raise TraceError(f"{path}:{n + 2}: hop misses {key!r}")
        if hop["i"] != n:
            raise TraceError(f"{path}:{n + 2}: hop i={hop['i']}, expected {n}")
    return header, hops


def replay_trace(path: str | Path, policy, *, cloud_ok: bool = True) -> dict[str, Any]:
    """Run ``policy`` over a trace as the runtime would; returns the decisions and answers.

    Camera, student and offloads follow the policy's actions; the student's
    output is seen from the step after it ran; an offload's answer (the
    trace's cloud entry for its kind) arrives ``latency_ms`` later, with no
    network model (the simulator adds one). ``cloud_ok=False`` replays with the
    cloud down (every offload falls back). Deterministic: the same trace and
    policy give the same result.

    Returns: {"actions": [action index per hop], "offloads": [(i, kind)], "answers":
    {query_id: (answer, source, correct)}, "camera_steps": n, "frames": frames sent}.
    """
    header, hops = load_trace(path)
    t_labels, s_labels = header["trigger"]["labels"], header["student"]["labels"]
    hold = TriggerHold(t_labels, header["trigger"]["thresholds"], header["trigger"].get("refractory_s", 0.0))
    queries = {q["id"]: q for q in header["queries"]}
    policy.reset(seed=0)
    camera_on, student, s_conf, s_t, last_off = False, None, None, -math.inf, -math.inf
    pending: list[tuple[float, str, dict]] = []  # (arrival t, query id, cloud entry)
    out: dict[str, Any] = {"actions": [], "offloads": [], "answers": {}, "camera_steps": 0, "frames": 0}
    for hop in hops:
        t = hop["t_s"]
        scores = dict(zip(t_labels, hop["trigger"]))
        fired = tuple(hold.step(t, hop["trigger"])[0])  # the card's thresholds and hold, as the runtime
        qid = next(iter(hop.get("local_answer", {})), None)
        arrived = [p for p in pending if p[0] <= t + _TIE_EPS]
        pending = [p for p in pending if p[0] > t + _TIE_EPS]
        for _, q_id, entry in arrived:
            if q_id is not None and q_id not in out["answers"]:
                out["answers"][q_id] = (entry["answer"], "cloud", answer_matches(entry["answer"], queries[q_id]["answer"]))
        obs = Observation(t_s=t, trigger_scores=scores, trigger_fired=fired, student_scores=student,
                          student_confidence=s_conf, student_age_s=t - s_t, snr_db=hop["snr_db"],
                          link_up=cloud_ok, since_offload_s=t - last_off, pending=len(pending),
                          query=queries[qid]["text"] if qid else None, query_id=qid, camera_on=camera_on)
        action = policy.act(obs)
        out["actions"].append(action.index)
        camera_on = action.camera
        out["camera_steps"] += camera_on
        if action.student and hop["student"] is not None:
            student, s_conf, s_t = dict(zip(s_labels, hop["student"])), hop["student_confidence"], t
        if action.offload != "none":
            last_off = t
            out["offloads"].append((hop["i"], action.offload))
            out["frames"] += header["offloads"][action.offload]["frames"]
            entry = hop["cloud"][action.offload]
            if cloud_ok and entry["ok"]:
                pending.append((t + entry["latency_ms"] / 1000, qid, entry))
                continue
        if qid is not None:
            answer = hop["local_answer"][qid]
            out["answers"][qid] = (answer, "local", answer_matches(answer, queries[qid]["answer"]))
    for _, q_id, entry in pending:  # arrivals after the last hop
        if q_id is not None and q_id not in out["answers"]:
            out["answers"][q_id] = (entry["answer"], "cloud", answer_matches(entry["answer"], queries[q_id]["answer"]))
    return out
