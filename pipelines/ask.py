"""Ask a served teacher the wearer's questions of a recording, each on the model's full window
ending at the question, and keep what it says: the label answer, the language model's sentence
and the evidence the sentence was written from.

    with Client(endpoint) as client:
        rows = ask_recording(client, recording_dir)       # one dict per wearer query

The request is what an always-on camera would send: the model's whole audio history
(``ModelInput.audio_s``) and one frame per frame slot, JPEG-encoded as the glasses encode them.
The demo uses it for its timeline's sentences (``scripts/demo.py``, stage ``sentences``) and
``scripts/bench_lm.py`` for its latency requests: one definition of "the window at a question".
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from edge.jpeg import encode_jpeg
from shared.protocol import AudioWindow, Frame, InferRequest, ModelInput
from shared.queries import answer_matches
from shared.recording import Recording, load_recording

__all__ = ["window_request", "ask_recording"]

#: Generous: a sentence costs a language-model call (about a second on 2 cores).
ASK_DEADLINE_MS = 30_000


def window_request(rec: Recording, t_s: float, spec: ModelInput, query: str | None,
                   deadline_ms: int = ASK_DEADLINE_MS, jpeg_quality: int = 75) -> InferRequest:
    """The request for the model's window ending at ``t_s`` (seconds on the recording clock).

    Audio: ``spec.audio_s`` seconds ending at ``t_s`` (less when the question comes earlier in
    the recording: what was heard since it started), resampled by the server if the recording's
    rate differs. Frames: the recording's frame nearest
    each of the ``spec.frames`` slots, ``1 / spec.frame_hz`` s apart, ending at ``t_s``.
    """
    audio_s = min(spec.audio_s, t_s)
    audio = rec.audio_window(t_s, audio_s) if audio_s > 0 else None
    slots = t_s - np.arange(spec.frames - 1, -1, -1) / spec.frame_hz
    idx = sorted({rec.frame_index_at(float(s)) for s in slots} - {-1})
    frames = [Frame(t_s=float(rec.frame_times_s[j]), jpeg=encode_jpeg(rec.frames[j], jpeg_quality)) for j in idx]
    return InferRequest(id=0, deadline_ms=deadline_ms, trigger_label="query", trigger_score=1.0,
                        student_scores={}, student_confidence=0.0, query=query,
                        query_t_s=t_s if query is not None else None,
                        audio=AudioWindow.from_samples(audio, start_s=t_s - audio_s, rate_hz=rec.sample_rate_hz)
                        if audio is not None and len(audio) else None,
                        frames=frames)


def ask_recording(client, recording_dir: str | Path, deadline_ms: int = ASK_DEADLINE_MS) -> list[dict]:
    """Every wearer query of the recording at ``recording_dir``, asked through ``client``
    (an open :class:`edge.client.Client`), in the recording's order.

    Returns one dict per query: ``query_id``, ``t_s``, ``question``, ``gold``, ``answer`` (the
    teacher's label answer) and ``correct`` (scored by the wearer-query rule), ``sentence`` (None
    from a server without a language model), ``events`` (the evidence: label, modality, onset and
    offset in seconds relative to the question, peak probability, seen at the same time too), ``trust`` (the gate's, per
    modality), ``lm_ms`` and ``rtt_ms``.

    Raises:
        RuntimeError: the server has no model loaded (its ``hello`` names no input contract).
        edge.client.ClientError: a request failed (the server's error code and message).
    """
    caps = client.hello()
    if caps.input is None:
        raise RuntimeError(f"the server at {client.endpoint} has no model loaded (hello: ready={caps.ready})")
    rec = load_recording(recording_dir)
    rows = []
    for k, q in enumerate(rec.annotations.queries):
        req = replace(window_request(rec, q.t_s, caps.input, q.text, deadline_ms), id=k)
        t0 = time.perf_counter()
        res = client.infer(req, deadline_ms=deadline_ms)
        rtt_ms = 1e3 * (time.perf_counter() - t0)
        ev = res.evidence
        rows.append({
            "query_id": q.id, "t_s": round(float(q.t_s), 3), "question": q.text, "gold": q.answer,
            "answer": res.answer, "correct": bool(answer_matches(res.answer, q.answer)),
            "sentence": res.sentence,
            "events": [{"label": e.label, "modality": e.modality, "onset_s": round(e.onset_s, 2),
                        "offset_s": round(e.offset_s, 2), "p": round(e.p, 3), "seen_too": e.seen_too}
                       for e in ev.events] if ev else [],
            "trust": {"audio": round(ev.trust_audio, 3), "visual": round(ev.trust_visual, 3)} if ev else None,
            "lm_ms": round(float(res.timing_ms.get("lm_ms", 0.0)), 1), "rtt_ms": round(rtt_ms, 1),
        })
    return rows
