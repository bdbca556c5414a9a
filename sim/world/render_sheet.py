"""A contact sheet: one PNG that shows whether a recording looks and sounds as annotated.

Rows, all on the recording's time axis:

1. **frames**: ``n_frames`` frames evenly spread in time (their times are
   marked by thin lines on the rows below);
2. **spectrogram** (log-mel or linear STFT) with a box per audio event over
   its annotated interval and band (dashed when the source is off-screen);
3. **events**: one lane per label, audiovisual/audio events solid (hatched
   when off-screen), visual events lighter; arrows from cause to effect with
   the lag; query markers with their gold answer;
4. **per-frame ground truth**: camera motion, hand occlusion, blur;
5. **queries**: time, kind, text and gold answer (red markers on row 3).

Works for any recording folder (imported ones simply have fewer annotations).
Uses matplotlib's object API with the Agg canvas: no pyplot, no global state.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from shared.labels import GROUPS, group_of
from shared.recording import Recording

__all__ = ["render_contact_sheet", "label_colors", "spectrogram_db"]

_N_FFT = 512  # 32 ms at 16 kHz: resolves beeps and transients alike
_HOP_S = 0.01
_N_MELS = 64
_FMIN_HZ = 50.0
_DYNAMIC_RANGE_DB = 70.0  # the colour map spans this much below the loudest bin


def label_colors() -> dict[str, tuple]:
    """A fixed colour per label name (same colours on every sheet)."""
    from matplotlib import colormaps

    cmap = [*colormaps["tab20"].colors, *colormaps["tab20b"].colors, *colormaps["Set2"].colors]
    all_labels = [lab.name for g in ("audio_event", "visual_action", "object_state") for lab in GROUPS[g]]
    return {name: cmap[i % len(cmap)] for i, name in enumerate(all_labels)}


def _hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, float) / 700.0)


def _mel_to_hz(m):
    return 700.0 * (10 ** (np.asarray(m, float) / 2595.0) - 1.0)


def spectrogram_db(audio: np.ndarray, rate_hz: int, kind: str = "mel") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(S_db (bins, frames), frame_times_s, bin_edges)``: power in dB.

    ``bin_edges`` are Hz for ``stft`` and mel values for ``mel`` (edges of the
    ``bins + 1`` rows), so boxes in Hz can be placed on either.
    """
    x = audio.astype(np.float32) / 32768.0
    hop = int(round(_HOP_S * rate_hz))
    n = 1 + max(0, (len(x) - _N_FFT)) // hop
    idx = np.arange(_N_FFT)[None, :] + hop * np.arange(n)[:, None]
    frames = np.pad(x, (0, _N_FFT))[idx] * np.hanning(_N_FFT).astype(np.float32)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # (n, n_fft/2 + 1)
    times = (np.arange(n) * hop + _N_FFT / 2) / rate_hz
    freqs = np.fft.rfftfreq(_N_FFT, 1.0 / rate_hz)
    if kind == "stft":
        S = power.T
        df = freqs[1] - freqs[0]
        edges = np.concatenate([freqs - df / 2, [freqs[-1] + df / 2]])
    else:
        m_edges = np.linspace(_hz_to_mel(_FMIN_HZ), _hz_to_mel(rate_hz / 2), _N_MELS + 2)
        f_pts = _mel_to_hz(m_edges)
        lo, mid, hi = f_pts[:-2, None], f_pts[1:-1, None], f_pts[2:, None]
        fb = np.clip(np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)), 0.0, None)
        S = fb @ power.T
        dm = m_edges[1] - m_edges[0]  # uniform in mel: row i is centred on m_edges[i + 1]
        edges = np.linspace(m_edges[1] - dm / 2, m_edges[-2] + dm / 2, _N_MELS + 1)
    S_db = 10 * np.log10(np.maximum(S, 1e-12))
    return np.maximum(S_db, S_db.max() - _DYNAMIC_RANGE_DB), times, edges


def _lanes(events) -> list[str]:
    order = {"audio_event": 0, "visual_action": 1, "object_state": 2}
    first: dict[str, float] = {}
    for e in events:
        first[e.label] = min(first.get(e.label, np.inf), e.onset_s)
    return sorted(first, key=lambda lab: (order.get(group_of_safe(lab), 3), first[lab]))


def render_contact_sheet(rec: Recording, out_png: str | Path, *, n_frames: int = 10, spectrogram: str = "mel",
                         dpi: int = 110, max_duration_s: float = 60.0) -> Path:
    """Draw ``rec`` (the first ``max_duration_s`` seconds) to ``out_png``; returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch, Rectangle

    ann = rec.annotations
    T = min(rec.duration_s, max_duration_s)
    events = [e for e in ann.events if e.onset_s < T]
    lanes = _lanes(events)
    colors = label_colors()
    lane_h = 0.24 * max(len(lanes), 4) + 0.5
    query_h = 0.16 * max(len(ann.queries), 1) + 0.1
    heights = [1.7, 2.6, lane_h, 1.0, query_h]
    fig = Figure(figsize=(16, sum(heights) * 1.25 + 0.8))
    FigureCanvasAgg(fig)
    gs = fig.add_gridspec(5, 1, height_ratios=heights, hspace=0.4, left=0.11, right=0.98, top=0.95, bottom=0.02)
    snr = "unknown" if ann.snr_db is None else f"{ann.snr_db:.1f} dB"
    origins = ann.provenance.get("sound_origins", {})
    fig.suptitle(f"{ann.recording_id}   environment={ann.environment}   SNR={snr}   "
                 f"events={len(ann.events)}   cause links={len(ann.cause_links())}   "
                 f"sources: {', '.join(f'{k} {v}' for k, v in origins.items()) or 'n/a'}", fontsize=11)

    # 1. frames
    strip = gs[0].subgridspec(1, n_frames, wspace=0.04)
    n_vid = len(rec.frames)
    picks = np.linspace(0, T, n_frames, endpoint=False) + T / n_frames / 2 if n_vid else []
    frame_times = []
    for i, t in enumerate(picks):
        k = max(0, rec.frame_index_at(float(t)))
        ax = fig.add_subplot(strip[0, i])
        ax.imshow(rec.frames[k], interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{rec.frame_times_s[k]:.1f} s", fontsize=8)
        frame_times.append(float(rec.frame_times_s[k]))

    # 2. spectrogram with event boxes in their bands
    ax_s = fig.add_subplot(gs[1])
    n_keep = int(T * rec.sample_rate_hz)
    S_db, st, edges = spectrogram_db(rec.audio[:n_keep], rec.sample_rate_hz, spectrogram)
    ax_s.imshow(S_db, origin="lower", aspect="auto", cmap="magma", extent=[0, T, edges[0], edges[-1]],
                interpolation="nearest")
    to_y = (lambda f: _hz_to_mel(f)) if spectrogram == "mel" else (lambda f: np.asarray(f, float))
    ticks_hz = [100, 250, 500, 1000, 2000, 4000, 8000]
    ax_s.set_yticks([float(to_y(f)) for f in ticks_hz if f <= rec.sample_rate_hz / 2])
    ax_s.set_yticklabels([f"{f / 1000:g}k" if f >= 1000 else str(f) for f in ticks_hz if f <= rec.sample_rate_hz / 2])
    ax_s.set_ylabel(f"{spectrogram} (Hz)")
    ax_s.set_xlim(0, T)
    for e in events:
        band = e.attrs.get("band_hz")
        if group_of_safe(e.label) != "audio_event" or not band:
            continue
        y0, y1 = float(to_y(max(band[0], _FMIN_HZ))), float(to_y(min(band[1], rec.sample_rate_hz / 2)))
        ax_s.add_patch(Rectangle((e.onset_s, y0), max(e.offset_s - e.onset_s, 0.05), max(y1 - y0, 1e-3), fill=False,
                                 ec=colors.get(e.label, "w"), lw=1.4, ls="--" if e.source_visible is False else "-"))
        ax_s.text(e.onset_s, y1, e.label, color=colors.get(e.label, "w"), fontsize=7, va="bottom")
    for t in frame_times:
        ax_s.axvline(t, color="w", lw=0.5, alpha=0.4)

    # 3. event lanes, cause arrows, queries
    ax_e = fig.add_subplot(gs[2], sharex=ax_s)
    y_of = {lab: len(lanes) - 1 - i for i, lab in enumerate(lanes)}
    for e in events:
        y = y_of[e.label]
        visual = e.modality == "visual"
        ax_e.add_patch(Rectangle((e.onset_s, y - 0.35), max(e.offset_s - e.onset_s, 0.05), 0.7,
                                 fc=colors.get(e.label, "grey"), alpha=0.45 if visual else 0.9,
                                 hatch="///" if e.source_visible is False else None, ec="k", lw=0.4))
    by_id = {e.id: e for e in events}
    for effect, cause, lag in ann.cause_links():
        if effect.id not in by_id or cause.id not in by_id:
            continue
        ax_e.add_patch(FancyArrowPatch((cause.onset_s, y_of[cause.label]), (effect.onset_s, y_of[effect.label]),
                                       arrowstyle="-|>", mutation_scale=10, color="k", lw=1.0,
                                       connectionstyle="arc3,rad=-0.15"))
        ax_e.text((cause.onset_s + effect.onset_s) / 2, (y_of[cause.label] + y_of[effect.label]) / 2 + 0.3,
                  f"{lag:.1f}s", fontsize=6)
    for q in ann.queries:
        if q.t_s <= T:
            ax_e.axvline(q.t_s, color="tab:red", lw=1.0, ls=":")
            ax_e.text(q.t_s, len(lanes) - 0.45, q.id, color="tab:red", fontsize=7, va="bottom", ha="center")
    for t in frame_times:
        ax_e.axvline(t, color="grey", lw=0.5, alpha=0.3)
    ax_e.set_yticks(range(len(lanes)))
    ax_e.set_yticklabels([lanes[len(lanes) - 1 - i] for i in range(len(lanes))], fontsize=7)
    ax_e.set_ylim(-0.6, max(len(lanes), 1) + 0.4)
    ax_e.set_title("events (solid: source in frame, hatched: off-screen, pale: visual; arrows: cause -> effect "
                   "with lag; red: queries)", fontsize=8, loc="left")
    ax_q = fig.add_subplot(gs[4])
    ax_q.axis("off")
    lines = [f"{q.id}  t={q.t_s:.1f}s  [{q.kind}]  {q.text}  ->  {q.answer}" for q in ann.queries]
    ax_q.text(0.0, 1.0, "\n".join(lines) or "no queries", va="top", ha="left", fontsize=8, color="tab:red",
              family="monospace", transform=ax_q.transAxes)

    # 4. per-frame ground truth
    ax_f = fig.add_subplot(gs[3], sharex=ax_s)
    fr = ann.frames
    if len(fr):
        t = rec.frame_times_s[: len(fr.camera_motion_deg_s)]
        ax_f.plot(t, fr.camera_motion_deg_s, lw=0.8, label="camera motion (deg/s)")
        ax_f.set_ylabel("deg/s", fontsize=8)
        ax2 = ax_f.twinx()
        ax2.plot(t, 100 * np.asarray(fr.hand_occlusion), color="tab:orange", lw=0.8, label="hand occlusion (%)")
        ax2.plot(t, fr.blur_px, color="tab:green", lw=0.8, label="blur (px)")
        ax2.set_ylabel("% / px", fontsize=8)
        lines = ax_f.get_lines() + ax2.get_lines()
        ax_f.legend(lines, [ln.get_label() for ln in lines], fontsize=7, loc="upper right", ncol=3)
    ax_f.set_xlabel("time (s)")
    ax_f.set_xlim(0, T)

    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi)
    return out


def group_of_safe(name: str) -> str | None:
    """The label's group, or None for an imported dataset's own class names."""
    try:
        return group_of(name)
    except KeyError:
        return None
