"""Trigger quality as users of wake-word and sound-event detectors measure it.

The trigger runs every hop (``t_i = (i + 1) * hop_s``) on the last
``audio_s`` seconds; the card's thresholds and refractory hold
(``shared/trigger.py``) turn its probabilities into *triggers*: (label, time).
This module scores those triggers against the annotated sound events of whole
recordings, the way the runtimes produce them:

- a trigger of label L at time t **hits** an event of label L when the
  trigger's window still holds part of the event:
  ``onset_s <= t <= offset_s + audio_s``;
- an event is **detected** (event-level recall) when at least one trigger of
  its label hits it; further hits on the same event are *repeats*;
- a trigger that hits no event of its label is a **false trigger**; the
  false-trigger rate is per hour of audio. On background recordings (a
  scene's noise at its level and no sound event: ``earshot synth
  synth/preset=background``) every trigger is false: that is the rate the
  targets quote. On labelled recordings it counts triggers outside events of
  their label (wrong-label triggers during another sound included).

Intervals are recording-level bootstraps (``shared/stats.py``): recall
resamples recordings with their events, rates resample recordings with their
hours.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np

from shared.stats import Interval, bootstrap_quantile, bootstrap_ratio
from shared.trigger import hold_runs

__all__ = [
    "SNR_BINS_DB", "TriggerStream", "stream_of", "Scores", "score_streams", "hits_and_false",
    "detection_delays", "event_recall", "false_per_hour", "detection_delay", "snr_bin",
]

#: Event-SNR bins (dB) for the robustness table: [lo, hi).
SNR_BINS_DB: tuple[tuple[float, float], ...] = ((-math.inf, -5.0), (-5.0, 0.0), (0.0, 5.0), (5.0, 10.0),
                                                (10.0, 20.0), (20.0, math.inf))


def snr_bin(snr_db: float | None) -> str:
    """``"-5..0"``-style name of the bin of ``snr_db`` (``"unknown"`` for None)."""
    if snr_db is None or not math.isfinite(snr_db):
        return "unknown"
    for lo, hi in SNR_BINS_DB:
        if lo <= snr_db < hi:
            return f"<{hi:g}" if lo == -math.inf else (f">={lo:g}" if hi == math.inf else f"{lo:g}..{hi:g}")
    return "unknown"


@dataclass
class TriggerStream:
    """One recording as the trigger saw it.

    Attributes:
        recording_id, scenario: which recording, which scene.
        snr_db: the recording's SNR (annotations), None if unknown.
        duration_s: audio length.
        probs: float32 (T, C) trigger probabilities at steps ``(i + 1) * hop_s``.
        events: (E, 4) float64 rows of (label index, onset_s, offset_s, event snr_db or NaN),
            the audio events of the trigger's labels.
        background: True for an event-free background recording.
    """

    recording_id: str
    scenario: str
    snr_db: float | None
    duration_s: float
    probs: np.ndarray
    events: np.ndarray
    background: bool = False

    @property
    def hours(self) -> float:
        return self.duration_s / 3600.0


def stream_of(recording, labels: Sequence[str], run: Callable[[np.ndarray], np.ndarray], *, audio_s: float,
              hop_s: float, batch: int = 256, background: bool = False) -> TriggerStream:
    """Run the trigger over a whole `shared.recording.Recording`, one window per hop.

    Args:
        run: int16 (B, N) windows -> (B, C) probabilities (a batched eager model, or a
            program called once per row, as on the device).
        audio_s, hop_s: the program's window and the runtime's hop (s).

    The window of step i ends at ``(i + 1) * hop_s``; samples before 0 are zeros,
    as the runtimes' ring buffer holds at the start.
    """
    rate = recording.sample_rate_hz
    n = int(round(audio_s * rate))
    hop_n = int(round(hop_s * rate))
    audio = recording.audio
    steps = int(math.floor(len(audio) / hop_n + 1e-9))
    padded = np.concatenate([np.zeros(n, np.int16), audio])
    outs = []
    for i0 in range(0, steps, batch):
        ends = (np.arange(i0, min(i0 + batch, steps)) + 1) * hop_n + n  # in padded samples
        windows = np.stack([padded[e - n:e] for e in ends])
        outs.append(np.asarray(run(windows), np.float32))
    probs = np.concatenate(outs) if outs else np.zeros((0, len(labels)), np.float32)
    index = {lab: i for i, lab in enumerate(labels)}
    ann = recording.annotations
    rows = [(index[e.label], e.onset_s, e.offset_s, np.nan if e.snr_db is None else e.snr_db)
            for e in ann.events if e.label in index]
    return TriggerStream(ann.recording_id, ann.environment or "unknown", ann.snr_db, len(audio) / rate, probs,
                         np.asarray(rows, np.float64).reshape(-1, 4), background)


def hits_and_false(triggered: np.ndarray, events: np.ndarray, hop_s: float, audio_s: float
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Match the triggers of one recording to its events, for K settings at once.

    Args:
        triggered: bool (K, T, C) from `shared.trigger.hold_runs`.
        events: (E, 4) rows as in `TriggerStream.events`.

    Returns:
        ``(detected, false, repeats)``: bool (K, E) event detected; int (K, C)
        false triggers per label; int (K, C) repeat hits per label.
    """
    k, n, c = triggered.shape
    times = (np.arange(n) + 1) * hop_s
    inside = np.zeros((n, c), bool)  # step i of label c lies in the hit span of some event of c
    detected = np.zeros((k, len(events)), bool)
    hits = np.zeros((k, c), np.int64)
    for j, (lab, on, off, _snr) in enumerate(events):
        span = (times >= on - 1e-6) & (times <= off + audio_s + 1e-6)
        inside[:, int(lab)] |= span
        any_hit = triggered[:, span, int(lab)]
        detected[:, j] = any_hit.any(axis=1)
    counts = triggered.sum(axis=1)  # (K, C) all triggers
    in_events = (triggered & inside[None]).sum(axis=1)
    false = counts - in_events
    for lab in range(c):  # repeats: hits beyond the first per detected event (overlapping events counted once)
        n_detected = detected[:, events[:, 0] == lab].sum(axis=1) if len(events) else np.zeros(k, np.int64)
        hits[:, lab] = np.maximum(in_events[:, lab] - n_detected, 0)
    return detected, false, hits


def detection_delays(triggered: np.ndarray, events: np.ndarray, hop_s: float, audio_s: float) -> np.ndarray:
    """Seconds from each event's onset to its first hit, for K settings: float (K, E), NaN if missed.

    The hit is the step of the first trigger of the event's label inside its hit span
    (``onset_s <= t <= offset_s + audio_s``, as `hits_and_false`), so the delay is what
    ``scripts/bench_latency.py`` calls "onset -> trigger fires" without the trigger's own
    call time: where the step grid and the detector put the first trigger.
    """
    k, n, _c = triggered.shape
    times = (np.arange(n) + 1) * hop_s
    out = np.full((k, len(events)), np.nan)
    for j, (lab, on, off, _snr) in enumerate(events):
        span = np.flatnonzero((times >= on - 1e-6) & (times <= off + audio_s + 1e-6))
        if not len(span):
            continue
        hit = triggered[:, span, int(lab)]
        first = hit.argmax(axis=1)
        found = hit.any(axis=1)
        out[found, j] = times[span[first[found]]] - on
    return out


@dataclass
class Scores:
    """Hits and false triggers of K settings over many recordings (one row per recording).

    Attributes:
        detected: per recording, bool (K, E_r).
        false: int (R, K, C) false triggers.
        repeats: int (R, K, C).
        streams: the recordings (their events and hours).
    """

    streams: list[TriggerStream]
    detected: list[np.ndarray]
    false: np.ndarray
    repeats: np.ndarray
    thresholds: np.ndarray  # (K, C)
    held: list[np.ndarray] = field(default_factory=list)  # per recording (K, T, C), kept on request
    delays: list[np.ndarray] = field(default_factory=list)  # per recording (K, E_r) s, NaN if missed


def score_streams(streams: Iterable[TriggerStream], thresholds: np.ndarray, refractory_s: float, hop_s: float,
                  audio_s: float, keep_held: bool = False) -> Scores:
    """Apply K threshold settings (K, C) with the hold and match every recording."""
    thresholds = np.atleast_2d(thresholds)
    streams = list(streams)
    detected, false, repeats, held, delays = [], [], [], [], []
    for s in streams:
        trig, h = hold_runs(s.probs, thresholds, refractory_s, hop_s)
        d, f, r = hits_and_false(trig, s.events, hop_s, audio_s)
        detected.append(d), false.append(f), repeats.append(r)
        delays.append(detection_delays(trig, s.events, hop_s, audio_s))
        if keep_held:
            held.append(h)
    k, c = thresholds.shape
    return Scores(streams, detected, np.asarray(false).reshape(len(streams), k, c),
                  np.asarray(repeats).reshape(len(streams), k, c), thresholds, held, delays)


def event_recall(scores: Scores, k: int, *, label: int | None = None,
                 select: Callable[[np.ndarray], np.ndarray] | None = None, seed: int = 0) -> Interval | None:
    """Share of events detected under setting ``k`` (one label, or all), recording bootstrap.

    ``select`` picks events by their rows (E, 4) (e.g. an SNR bin); None if no event qualifies.
    """
    values, groups = [], []
    for s, d in zip(scores.streams, scores.detected):
        keep = np.ones(len(s.events), bool)
        if label is not None:
            keep &= s.events[:, 0] == label
        if select is not None and len(s.events):
            keep &= select(s.events)
        values += d[k, keep].astype(float).tolist()
        groups += [s.recording_id] * int(keep.sum())
    if not values:
        return None
    return bootstrap_ratio(values, np.ones(len(values)), groups, seed=seed)


def false_per_hour(scores: Scores, k: int, *, label: int | None = None,
                   streams: Callable[[TriggerStream], bool] | None = None, seed: int = 0) -> Interval | None:
    """False triggers per hour under setting ``k`` over the chosen recordings, recording bootstrap."""
    counts, hours, groups = [], [], []
    for r, s in enumerate(scores.streams):
        if streams is not None and not streams(s):
            continue
        f = scores.false[r, k]
        counts.append(float(f[label] if label is not None else f.sum()))
        hours.append(s.hours)
        groups.append(s.recording_id)
    if not counts:
        return None
    return bootstrap_ratio(counts, hours, groups, seed=seed)


def detection_delay(scores: Scores, k: int, q: float, *, select: Callable[[np.ndarray], np.ndarray] | None = None,
                    seed: int = 0) -> Interval | None:
    """The ``q`` quantile of onset -> first hit (s) over the events detected under setting ``k``.

    Recording-level bootstrap; None if no event was detected. Only detected events count, so a
    setting that detects more (quiet, slow) events can have a longer tail: compare settings on the
    same events (`Scores.delays`) as well.
    """
    values, groups = [], []
    for s, d in zip(scores.streams, scores.delays):
        keep = np.isfinite(d[k])
        if select is not None and len(s.events):
            keep &= select(s.events)
        values += d[k, keep].tolist()
        groups += [s.recording_id] * int(keep.sum())
    if not values:
        return None
    return bootstrap_quantile(values, groups, q, seed=seed)
