"""A hand-built trace file (the contract's format) for the simulator's unit tests.

``make_trace`` writes ``<out>/<recording_id>.jsonl`` with a header and one line
per hop. Its numbers are chosen to make the tests' arithmetic easy:

- the trigger fires on its label during every audio event of ``events`` unless
  the event has ``"trigger_misses": True`` (then only the student and the cloud
  see it);
- the student's confidence is high (0.9) except around ``hard`` hops (0.3);
- the device answers a query correctly iff ``local_ok``; the cloud (every kind)
  answers correctly, ``server_ms`` after it got the request;
- offload sizes: light 1 JPEG (4 kB) + 2 s PCM (64 kB), full 4 JPEG (24 kB) + 5 s
  PCM (160 kB), audio 5 s PCM (160 kB); 200 bytes down.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from shared.labels import names

TRIGGER_LABELS = names("audio_event")
STUDENT_LABELS = names("audio_event") + names("visual_action")
BYTES_UP = {"light": 4_000 + 64_000, "full": 24_000 + 160_000, "audio": 160_000}
BYTES_DOWN = 200

DEFAULT_EVENTS = [
    {"id": "e0", "label": "timer_beep", "onset_s": 1.6, "offset_s": 2.6, "modality": "audio", "source_visible": False},
    {"id": "e1", "label": "chopping", "onset_s": 3.0, "offset_s": 6.0, "modality": "audio", "source_visible": True},
    {"id": "e2", "label": "doorbell", "onset_s": 6.2, "offset_s": 7.0, "modality": "audio", "source_visible": False,
     "trigger_misses": True},
]
DEFAULT_QUERIES = [
    {"id": "q0", "t_s": 3.1, "text": "what was that sound?", "answer": "timer_beep", "kind": "sound_id", "local_ok": True},
    {"id": "q1", "t_s": 7.4, "text": "what was that sound?", "answer": "doorbell", "kind": "sound_id", "local_ok": False},
]


def make_trace(out: str | Path, recording_id: str = "kitchen_t0", *, duration_s: float = 10.0, hop_s: float = 0.25,
               events=None, queries=None, server_ms: float = 150.0, seed: int = 0, snr_db: float = 10.0,
               trigger_macs: int = 2_000_000, student_macs: int = 20_000_000) -> Path:
    rng = np.random.default_rng(seed)
    events = DEFAULT_EVENTS if events is None else events
    queries = DEFAULT_QUERIES if queries is None else queries
    n = int(round(duration_s / hop_s))
    header = {
        "trace_version": 1, "recording_id": recording_id, "environment": "kitchen", "duration_s": duration_s,
        "hop_s": hop_s, "snr_db": snr_db,
        "trigger": {"program": "trigger_xnnpack_int8.pte", "sha256": "0" * 64, "labels": TRIGGER_LABELS,
                    "thresholds": {l: 0.5 for l in TRIGGER_LABELS}, "macs": trigger_macs, "size_bytes": 100_000},
        "student": {"program": "av_xnnpack_int8.pte", "sha256": "1" * 64, "labels": STUDENT_LABELS,
                    "thresholds": {l: 0.5 for l in STUDENT_LABELS}, "macs": student_macs, "size_bytes": 400_000},
        "server": {"endpoint": "tcp://127.0.0.1:5555", "model_id": "double"},
        "offloads": {"light": {"frames": 1, "jpeg_quality": 50, "audio_s": 2.0},
                     "full": {"frames": 4, "jpeg_quality": 75, "audio_s": 5.0},
                     "audio": {"frames": 0, "jpeg_quality": 0, "audio_s": 5.0}},
        "events": [{k: v for k, v in e.items() if k != "trigger_misses"} for e in events],
        "queries": [{k: v for k, v in q.items() if k != "local_ok"} for q in queries],
    }
    lines = [json.dumps(header)]
    q_hop = {q["id"]: min(n - 1, int(q["t_s"] // hop_s)) for q in queries}
    for i in range(n):
        t0, t1 = i * hop_s, (i + 1) * hop_s
        trig = rng.uniform(0.0, 0.1, len(TRIGGER_LABELS))
        stud = rng.uniform(0.0, 0.1, len(STUDENT_LABELS))
        tags = {}
        hard = False
        for e in events:
            if e["onset_s"] < t1 and e["offset_s"] > t0:
                j = TRIGGER_LABELS.index(e["label"])
                trig[j] = 0.3 if e.get("trigger_misses") else 0.9
                stud[STUDENT_LABELS.index(e["label"])] = 0.8
                tags[e["label"]] = 0.95
                hard = hard or bool(e.get("trigger_misses"))
        for l in ("speech", "dishes", "footsteps", "sizzle"):
            tags.setdefault(l, 0.2)
        cloud = {}
        for kind in ("light", "full", "audio"):
            cloud[kind] = {"ok": True, "latency_ms": round(server_ms * rng.uniform(0.9, 1.1), 3),
                           "bytes_up": BYTES_UP[kind], "bytes_down": BYTES_DOWN,
                           "tags": dict(sorted(tags.items(), key=lambda kv: -kv[1])[:5]), "answer": None, "error": None}
        hop = {"i": i, "t_s": round(t1, 6), "trigger": [round(float(p), 4) for p in trig], "trigger_ms": 1.5,
               "snr_db": snr_db, "student": [round(float(p), 4) for p in stud],
               "student_confidence": 0.3 if hard else 0.9, "student_ms": 12.0, "frame_blur": None, "cloud": cloud}
        local = {}
        for q in queries:
            if q_hop[q["id"]] == i:
                local[q["id"]] = q["answer"] if q["local_ok"] else "unknown"
                for kind in cloud:
                    cloud[kind]["answer"] = q["answer"]
        if local:
            hop["local_answer"] = local
        lines.append(json.dumps(hop))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{recording_id}.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def make_trace_dir(out: str | Path, n: int = 3, **kw) -> Path:
    """``n`` traces with different seeds (and ids) in one folder."""
    for k in range(n):
        make_trace(out, f"kitchen_t{k}", seed=k, **kw)
    return Path(out)
