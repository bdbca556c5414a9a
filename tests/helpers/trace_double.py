"""A hand-built trace file (``shared/trace.py``'s format) for the simulator's unit tests.

``make_trace`` writes ``<out>/<recording_id>.jsonl`` with a header and one line
per hop, validated by the format's own writer. Its numbers are chosen to make
the tests' arithmetic easy:

- the trigger fires on its label during every audio event of ``events`` unless
  the event has ``"trigger_misses": True`` (then only the student and the cloud
  see it); the student scores every event's label 0.8 (over its 0.5 threshold);
- the student's confidence is high (0.9) except around ``hard`` hops (0.3);
- the device's answers come from ``edge.local_answer`` over those detections,
  exactly as the tracer computes them (student on every hop);
- the cloud answers a query correctly under the capture variants listed in its
  ``"cloud"`` key (default: every variant), else ``unknown`` (or the query's
  ``"wrong"`` answer); its tags score
  every event's label 0.95 under every variant; under a window mask
  (``cloud_masks``) it is right for the masks listed in the query's ``"masks"``
  key (default: mask 0 as ``full_now``, the full mask as ``full_warm``, every
  partial mask as ``full_now``);
- service times: ``server_ms`` x [0.9, 1.1] measured per offload kind;
- offload sizes: light 1 JPEG (4 kB) + 2 s PCM (64 kB), full_now 2 JPEG (12 kB)
  + 5 s PCM, full_warm 4 JPEG (24 kB) + 5 s PCM (160 kB), audio 5 s PCM (160 kB);
  200 bytes down.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.local_answer import LocalMemory, answer_locally
from shared.labels import names
from shared.trace import CAPTURE_VARIANTS, N_MASKS, TRACE_VERSION, VARIANT_NAMES, window_segments, write_trace

TRIGGER_LABELS = names("audio_event")
STUDENT_LABELS = names("audio_event") + names("visual_action")
BYTES_UP = {"light": 4_000 + 64_000, "full_now": 12_000 + 160_000, "full_warm": 24_000 + 160_000, "audio": 160_000}
FRAMES = {"light": 1, "full_now": 2, "full_warm": 4, "audio": 0}
BYTES_DOWN = 200

DEFAULT_EVENTS = [
    {"id": "e0", "label": "timer_beep", "onset_s": 1.6, "offset_s": 2.6, "modality": "audio", "source_visible": False},
    {"id": "e1", "label": "chopping", "onset_s": 3.0, "offset_s": 6.0, "modality": "audio", "source_visible": True},
    {"id": "e2", "label": "doorbell", "onset_s": 6.2, "offset_s": 7.0, "modality": "audio", "source_visible": False,
     "trigger_misses": True},
]
#: q0: the trigger heard it (the device is right); q1: only the student or the cloud know the doorbell;
#: q2: only the cloud with 5 s of frames (full_warm) knows what was asked for.
DEFAULT_QUERIES = [
    {"id": "q0", "t_s": 2.9, "text": "what was that sound?", "answer": "timer_beep", "kind": "sound_id"},
    {"id": "q1", "t_s": 7.4, "text": "what was that sound?", "answer": "doorbell", "kind": "sound_id"},
    {"id": "q2", "t_s": 9.1, "text": "what did they ask me for?", "answer": "salt", "kind": "object",
     "cloud": ["full_warm"]},
]


def make_trace(out: str | Path, recording_id: str = "kitchen_t0", *, duration_s: float = 10.0, hop_s: float = 0.25,
               events=None, queries=None, server_ms: float = 150.0, seed: int = 0, snr_db: float = 10.0,
               trigger_macs: int = 2_000_000, student_macs: int = 20_000_000, split: str | None = None,
               cloud: bool = True) -> Path:
    rng = np.random.default_rng(seed)
    events = DEFAULT_EVENTS if events is None else events
    queries = DEFAULT_QUERIES if queries is None else queries
    n = int(round(duration_s / hop_s))
    kinds = ("light", "full", "audio")
    header = {
        "trace_version": TRACE_VERSION, "recording_id": recording_id, "environment": "kitchen",
        "duration_s": duration_s, "hop_s": hop_s, "snr_db": snr_db, "split": split,
        "trigger": {"program": "trigger_xnnpack_int8.pte", "sha256": "0" * 64, "labels": TRIGGER_LABELS,
                    "thresholds": [0.5] * len(TRIGGER_LABELS), "refractory_s": 0.0, "macs": trigger_macs,
                    "size_bytes": 100_000,
                    "precision": "int8"},
        "student": {"program": "av_xnnpack_int8.pte", "sha256": "1" * 64, "labels": STUDENT_LABELS,
                    "thresholds": [0.5] * len(STUDENT_LABELS), "refractory_s": 0.0, "macs": student_macs,
                    "size_bytes": 400_000,
                    "precision": "int8"},
        "server": {"endpoint": "tcp://127.0.0.1:5555" if cloud else None, "model_id": "double" if cloud else None},
        "offloads": {"light": {"frames": 1, "jpeg_quality": 50, "audio_s": 2.0},
                     "full": {"frames": 4, "jpeg_quality": 75, "audio_s": 5.0},
                     "audio": {"frames": 0, "jpeg_quality": 0, "audio_s": 5.0}},
        "variants": {k: {"offload": v.offload, "history": v.history} for k, v in CAPTURE_VARIANTS.items()},
        "service_ms": {k: ([round(server_ms * x, 3) for x in rng.uniform(0.9, 1.1, 24)] if cloud else [])
                       for k in kinds},
        "cloud_hops": {"mode": "all"},
        "events": [{k: v for k, v in e.items() if k != "trigger_misses"} for e in events],
        "queries": [{k: v for k, v in q.items() if k not in ("cloud", "masks", "wrong")} for q in queries],
    }
    memory = LocalMemory()
    prev: set[str] = set()
    pending = sorted(queries, key=lambda q: q["t_s"])
    hops = []
    for i in range(n):
        t0, t1 = i * hop_s, (i + 1) * hop_s
        trig = rng.uniform(0.0, 0.1, len(TRIGGER_LABELS))
        stud = rng.uniform(0.0, 0.1, len(STUDENT_LABELS))
        tags = {}
        hard = False
        for e in events:
            if e["onset_s"] < t1 and e["offset_s"] > t0:
                if e["label"] in TRIGGER_LABELS:  # a visual action: only the student (and the cloud) see it
                    trig[TRIGGER_LABELS.index(e["label"])] = 0.3 if e.get("trigger_misses") else 0.9
                stud[STUDENT_LABELS.index(e["label"])] = 0.8
                tags[e["label"]] = 0.95
                hard = hard or bool(e.get("trigger_misses"))
        trig, stud = [round(float(p), 4) for p in trig], [round(float(p), 4) for p in stud]
        fired = {l for l, p in zip(TRIGGER_LABELS, trig) if p >= 0.5}
        for l in sorted(fired - prev, key=TRIGGER_LABELS.index):
            memory.add(t1, l, trig[TRIGGER_LABELS.index(l)], "trigger")
        prev = fired
        for l, p in zip(STUDENT_LABELS, stud):
            if p >= 0.5:
                memory.add(t1, l, p, "student")
        query = pending.pop(0) if pending and pending[0]["t_s"] <= t1 + 1e-9 else None
        asked = [query] if query else []
        if i == n - 1:
            asked += pending
        for l in ("speech", "dishes", "footsteps", "sizzle"):
            tags.setdefault(l, 0.2)
        top = dict(sorted(tags.items(), key=lambda kv: -kv[1])[:5])
        t_frames = {"light": [t1 - 0.05], "full_now": [t1 - 0.15, t1 - 0.05],
                    "full_warm": [max(0.05, t1 - d) for d in (4.95, 3.3, 1.65, 0.05)], "audio": []}
        cloud_entries = {}
        for v in VARIANT_NAMES:
            right = query is not None and v in query.get("cloud", VARIANT_NAMES)
            answer = (query["answer"] if right else query.get("wrong", "unknown")) if query is not None else "kitchen"
            cloud_entries[v] = {"ok": cloud, "error": None if cloud else "link_down", "bytes_up": BYTES_UP[v],
                                "bytes_down": BYTES_DOWN if cloud else 0, "frame_t_s": [round(x, 3) for x in t_frames[v]],
                                "tags": top if cloud else {}, "answer": answer if cloud else None}
        masks = None
        if query is not None:
            right_in = query.get("cloud", VARIANT_NAMES)
            default = {m for m in range(N_MASKS) if ("full_warm" if m == N_MASKS - 1 else "full_now") in right_in}
            right_masks = set(query.get("masks", default))
            masks = []
            for m in range(N_MASKS):
                base = cloud_entries["full_warm" if m == N_MASKS - 1 else "full_now"]
                # one frame from the last hop of each covered segment, and this hop's (4 at most)
                held = sorted({hi - 1 for k, (lo, hi) in enumerate(window_segments(i, int(round(5.0 / hop_s))))
                               if m >> k & 1 and hi > lo} | {i})[-4:]
                masks.append({**base, "answer": (query["answer"] if m in right_masks else query.get("wrong", "unknown"))
                              if cloud else None,
                              "frame_t_s": base["frame_t_s"] if m in (0, N_MASKS - 1) else
                              [round((h + 1) * hop_s - 0.05, 3) for h in held]})
        hop = {"i": i, "t_s": round(t1, 6), "trigger": trig, "trigger_ms": 1.5, "snr_db": snr_db, "student": stud,
               "student_confidence": 0.3 if hard else 0.9, "student_ms": 12.0, "frame_blur": None, "frames": 2 + i % 2,
               "query_id": query["id"] if query else None, "cloud": cloud_entries}
        if masks is not None:
            hop["cloud_masks"] = masks
        if asked:
            hop["local_answer"] = {q["id"]: answer_locally(memory, q["text"], t1) for q in asked}
        hops.append(hop)
    return write_trace(Path(out) / f"{recording_id}.jsonl", header, hops)


def make_trace_dir(out: str | Path, n: int = 3, **kw) -> Path:
    """``n`` traces with different seeds (and ids) in one folder."""
    for k in range(n):
        make_trace(out, f"kitchen_t{k}", seed=k, **kw)
    return Path(out)
