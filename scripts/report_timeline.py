"""The demo report's timeline of one recording: what the glasses heard, saw, decided and answered.

Rows on the recording's time axis:

1. frame strip (evenly spaced frames);
2. log-mel spectrogram with the annotated audio events;
3. trigger: the rising edges from the event log, one marker per label;
4. camera: on/off state over time (shaded), student runs as ticks;
5. cloud: each offload as a bar from its send time to its result (or fallback);
6. queries: the wearer's questions, the answer given, its source and whether it was right,
   and (when given) the language model's sentence for the same question.

Reads a recording folder and an ``earshot edge`` event log (docs/edge.md); uses
matplotlib's object API (Agg), no pyplot state.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

__all__ = ["read_event_log", "render_timeline"]


def read_event_log(path: str | Path) -> list[dict]:
    """The event log's lines as dicts (blank lines skipped; a bad line names its number)."""
    out = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{n}: not JSON: {exc}") from None
    return out


def render_timeline(recording_dir: str | Path, events: list[dict], *, n_frames: int = 12, dpi: int = 90,
                    sentences: dict[str, str] | None = None) -> bytes:
    """PNG bytes of the timeline (see the module docstring). ``sentences``: query id -> the
    language model's sentence for that question, drawn under its answer."""
    from matplotlib.figure import Figure
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from shared.recording import load_recording
    from sim.world.render_sheet import spectrogram_db

    rec = load_recording(recording_dir)
    dur = rec.duration_s
    fig = Figure(figsize=(14, 9), dpi=dpi)
    FigureCanvasAgg(fig)
    gs = fig.add_gridspec(6, 1, height_ratios=[1.3, 1.6, 0.8, 0.6, 0.8, 1.2], hspace=0.35,
                          left=0.11, right=0.98, top=0.95, bottom=0.06)
    axes = [fig.add_subplot(gs[i]) for i in range(6)]

    # 1. frames
    ax = axes[0]
    idx = np.linspace(0, len(rec.frames) - 1, n_frames).round().astype(int)
    strip = np.concatenate([rec.frames[i] for i in idx], axis=1)
    ax.imshow(strip, aspect="auto", extent=(0, dur, 0, 1))
    ax.set_yticks([])
    ax.set_title(f"{rec.annotations.recording_id} ({rec.annotations.environment}, SNR "
                 f"{rec.annotations.snr_db if rec.annotations.snr_db is not None else '?'} dB)", loc="left")

    # 2. spectrogram + audio events
    ax = axes[1]
    spec, times, edges = spectrogram_db(rec.audio, rec.sample_rate_hz)
    extent = (0.0, dur, 0.0, float(spec.shape[0]))
    ax.imshow(spec, aspect="auto", origin="lower", extent=extent, cmap="magma")
    for ev in rec.annotations.events:
        if ev.modality in ("audio", "audiovisual"):
            ax.axvspan(ev.onset_s, ev.offset_s, color="cyan", alpha=0.12)
            ax.text(ev.onset_s, extent[3] * 0.92, ev.label, color="white", fontsize=7)
    ax.set_ylabel("mel")

    by_kind: dict[str, list[dict]] = {}
    for e in events:
        by_kind.setdefault(e.get("kind", "?"), []).append(e)

    # 3. trigger rising edges
    ax = axes[2]
    labels = sorted({e["label"] for e in by_kind.get("trigger", [])})
    for e in by_kind.get("trigger", []):
        y = labels.index(e["label"])
        ax.plot([e["t_s"]], [y], "v", color="tab:red", ms=6)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_ylim(-0.8, max(len(labels), 1) - 0.2)
    ax.set_ylabel("trigger")

    # 4. camera state and student runs
    ax = axes[3]
    on_since = None
    for e in by_kind.get("camera", []):
        if e["on"] and on_since is None:
            on_since = e["t_s"]
        elif not e["on"] and on_since is not None:
            ax.axvspan(on_since, e["t_s"], color="tab:green", alpha=0.4)
            on_since = None
    if on_since is not None:
        ax.axvspan(on_since, dur, color="tab:green", alpha=0.4)
    for e in by_kind.get("local_inference", []):
        ax.plot([e["t_s"]], [0.5], "|", color="black", ms=8)
    ax.set_yticks([])
    ax.set_ylabel("camera")

    # 5. offloads: send -> result / fallback
    ax = axes[4]
    done = {e.get("request_id"): e for e in by_kind.get("result", []) + by_kind.get("fallback", [])}
    for k, e in enumerate(by_kind.get("offload", [])):
        end = done.get(e["request_id"])
        ok = end is not None and end.get("kind") == "result"
        t1 = e["t_s"] + (end.get("latency_ms", 0.0) / 1000.0 if ok else 0.25)
        ax.plot([e["t_s"], t1], [k % 3, k % 3], "-", lw=4, color="tab:blue" if ok else "tab:orange")
    ax.set_yticks([])
    ax.set_ylabel("cloud")

    # 6. queries and answers
    ax = axes[5]
    gold = {q.id: q for q in rec.annotations.queries}
    answers = {e["query_id"]: e for e in by_kind.get("answer", [])}
    for k, q in enumerate(rec.annotations.queries):
        a = answers.get(q.id)
        y = k % 3
        ax.plot([q.t_s], [y], "o", color="tab:purple")
        if a is None:
            text = f"{q.text!r}: no answer"
            color = "tab:gray"
        else:
            mark = {True: "right", False: "wrong"}.get(a.get("correct"), "?")
            text = f"{q.text!r} -> {a.get('answer')!r} ({a.get('source')}, {mark}; gold {gold[q.id].answer!r})"
            color = {"right": "tab:green", "wrong": "tab:red"}.get(mark, "black")
        said = (sentences or {}).get(q.id)
        if said:
            text += f'\n"{said}"'
        right_half = q.t_s > dur / 2
        ax.text(q.t_s, y + 0.25, text, fontsize=7, color=color, ha="right" if right_half else "left",
                va="bottom")
    ax.set_ylim(-0.5, 3)
    ax.set_yticks([])
    ax.set_ylabel("queries")
    for ax in axes:
        ax.set_xlim(0, dur)
    axes[-1].set_xlabel("time (s)")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
