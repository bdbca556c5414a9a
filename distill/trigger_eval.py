"""The trigger scored as a detector, for ``earshot export`` (one report per program).

    report, op = evaluate_trigger(run, labels, audio_s, cfg, dataset, background)

1. The program runs over every val and test recording, one window per hop
   (``distill/detection.py:stream_of``), and over the background recordings.
2. The operating point (per-label thresholds, or one shared threshold where
   per-label ones do not help) is chosen on **val** only
   (``distill/operating_point.py``: a false-trigger budget on the background
   hours, a separate one for confusions on labelled recordings) and goes into
   the model card with the refractory hold.
3. On **test** (held-out recordings): event-level recall per class and
   overall, false triggers per hour on background hours and on the labelled
   recordings, repeats per detected event, the single-threshold control, the
   DET curve (recall vs false triggers per hour, every threshold shifted in
   logit space), recall on audible events (``AUDIBLE_SNR_DB``) beside recall
   on every event, recall per event-SNR bin, false triggers per scene, and the
   noisiest scenes (recordings under 0 dB). Event-based F1 comes from DCASE's
   ``sed_eval`` (`event_based_f1`). All intervals are recording-level
   bootstraps (``shared/stats.py``).

PSDS is not reported: DCASE's two PSDS packages do not run under this
project's pandas 3 (psds_eval 0.5.3 calls ``DataFrame.fillna(method=...)``,
removed in pandas 3; sed_scores_eval 0.0.4's Cython kernel rejects pandas 3's
read-only arrays), and the brief rules out a hand-written PSDS. The DET curve
is the threshold-free view instead.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Sequence

import numpy as np

from cloud.data_engine.graph import AUDIBLE_SNR_DB
from distill.detection import (TriggerStream, detection_delay, event_recall, false_per_hour, score_streams, snr_bin,
                               stream_of)
from distill.operating_point import DET_SHIFTS, OperatingPoint, choose_early_stage, choose_operating_point, shifted
from distill.trigger_config import TriggerEvalConfig
from shared.dataset import Dataset
from shared.stats import bootstrap_quantile, paired_quantile_difference

__all__ = ["load_streams", "evaluate_trigger", "event_based_f1", "render_det"]

#: sed_eval's event-based F1: onset within this collar (s). A trigger knows the onset only to
#: within its hop (and its window), so the DCASE default of 0.2 s would score timing, not detection.
EVENT_F1_COLLAR_S = 0.5


def _iv(x) -> dict | None:
    return None if x is None else x.to_dict()


def load_streams(dataset: Dataset | None, split: str, run: Callable[[np.ndarray], np.ndarray], labels: Sequence[str],
                 *, audio_s: float, hop_s: float, background: bool = False, max_recordings: int = 0) -> list[TriggerStream]:
    """Trigger streams of one split (empty when there is no dataset or no such split)."""
    if dataset is None:
        return []
    entries = dataset.split(split)
    if max_recordings > 0:
        entries = entries[:max_recordings]
    return [stream_of(dataset.load(e, video=False), labels, run, audio_s=audio_s, hop_s=hop_s, background=background)
            for e in entries]


def event_based_f1(streams: list[TriggerStream], held: list[np.ndarray], labels: Sequence[str], hop_s: float,
                   k: int) -> dict[str, Any]:
    """DCASE event-based F1 (``sed_eval``) of the held detections of setting ``k``.

    A detection runs from half a hop before its trigger to the end of its held run; only
    onsets are scored (``EVENT_F1_COLLAR_S``), as a trigger has no offset to speak of.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dcase_util imports pkg_resources (deprecated)
        import dcase_util
        import sed_eval

    metrics = sed_eval.sound_event.EventBasedMetrics(event_label_list=list(labels), t_collar=EVENT_F1_COLLAR_S,
                                                     evaluate_onset=True, evaluate_offset=False)
    for s, h in zip(streams, held):
        ref = [{"filename": s.recording_id, "event_label": labels[int(e[0])], "onset": float(e[1]),
                "offset": float(e[2])} for e in s.events]
        est = []
        for c in range(len(labels)):
            on = h[k, :, c]
            edges = np.flatnonzero(np.diff(np.concatenate([[0], on.astype(np.int8), [0]])))
            for a, b in zip(edges[::2], edges[1::2]):  # held over steps a..b-1
                est.append({"filename": s.recording_id, "event_label": labels[c],
                            "onset": max(0.0, (a + 1) * hop_s - hop_s / 2), "offset": (b + 1) * hop_s})
        metrics.evaluate(reference_event_list=dcase_util.containers.MetaDataContainer(ref),
                         estimated_event_list=dcase_util.containers.MetaDataContainer(est))
    r = metrics.results()
    clean = lambda x: None if x is None or (isinstance(x, float) and not math.isfinite(x)) else float(x)  # noqa: E731
    return {"collar_s": EVENT_F1_COLLAR_S, "micro_f1": clean(r["overall"]["f_measure"]["f_measure"]),
            "micro_precision": clean(r["overall"]["f_measure"]["precision"]),
            "micro_recall": clean(r["overall"]["f_measure"]["recall"]),
            "macro_f1": clean(r["class_wise_average"]["f_measure"]["f_measure"])}


def evaluate_trigger(run: Callable[[np.ndarray], np.ndarray], labels: Sequence[str], audio_s: float,
                     cfg: TriggerEvalConfig, dataset: Dataset, background: Dataset | None
                     ) -> tuple[dict[str, Any], OperatingPoint]:
    """(report, operating point) of one trigger program (module docstring)."""
    kw = dict(audio_s=audio_s, hop_s=cfg.hop_s, max_recordings=cfg.max_recordings)
    val = load_streams(dataset, "val", run, labels, **kw) + load_streams(background, "val", run, labels, background=True, **kw)
    op = choose_operating_point(val, len(labels), refractory_s=cfg.refractory_s, hop_s=cfg.hop_s, audio_s=audio_s,
                                fa_per_hour=cfg.fa_per_hour, budget_on=cfg.budget_on,
                                confusions_per_hour=cfg.confusions_per_hour)
    early = None
    if cfg.early_fires_per_hour is not None:
        early = choose_early_stage(val, op.thresholds, refractory_s=cfg.refractory_s, hop_s=cfg.hop_s,
                                   audio_s=audio_s, fires_per_hour=cfg.early_fires_per_hour)
    test = load_streams(dataset, "test", run, labels, **kw) + load_streams(background, "test", run, labels, background=True, **kw)
    settings = np.vstack([np.asarray(op.thresholds)[None, :], np.full((1, len(labels)), op.single_threshold),
                          shifted(op.thresholds)] + ([np.asarray(early.thresholds)[None, :]] if early else []))
    sc = score_streams(test, settings, cfg.refractory_s, cfg.hop_s, audio_s, keep_held=True)
    OP, SINGLE = 0, 1
    bg = (lambda s: s.background) if any(s.background for s in test) else (lambda s: not s.background)
    labelled = lambda s: not s.background  # noqa: E731
    n_events = int(sum(len(s.events) for s in test))
    detected = int(sum(d[OP].sum() for d in sc.detected))
    repeats = int(sc.repeats[:, OP].sum())
    per_class = []
    for c, lab in enumerate(labels):
        n_c = int(sum((s.events[:, 0] == c).sum() for s in test))
        per_class.append({"label": lab, "threshold": op.thresholds[c], "n_events": n_c,
                          "recall": _iv(event_recall(sc, OP, label=c)),
                          "fa_per_hour_background": _iv(false_per_hour(sc, OP, label=c, streams=bg))})
    det = []
    for j, shift in enumerate(DET_SHIFTS):
        k = 2 + j
        r = event_recall(sc, k)
        f = false_per_hour(sc, k, streams=bg)
        d95 = detection_delay(sc, k, 0.95)
        det.append({"shift": float(shift), "recall": None if r is None else r.value,
                    "fa_per_hour_background": None if f is None else f.value,
                    "delay_p95_s": None if d95 is None else d95.value})
    bins = []
    for name in dict.fromkeys(snr_bin(e[3] if np.isfinite(e[3]) else None) for s in test for e in s.events):
        sel = lambda ev, name=name: np.array([snr_bin(x if np.isfinite(x) else None) == name for x in ev[:, 3]])  # noqa: E731
        r = event_recall(sc, OP, select=sel)
        bins.append({"snr_bin": name, "n_events": 0 if r is None else r.n, "recall": _iv(r)})
    scenes = []
    for scene in sorted({s.scenario for s in test}):
        in_scene = lambda s, scene=scene: s.scenario == scene  # noqa: E731
        sub_bg = [s for s in test if in_scene(s) and bg(s)]
        scenes.append({"scenario": scene, "hours_background": sum(s.hours for s in sub_bg),
                       "fa_per_hour_background": _iv(false_per_hour(sc, OP, streams=lambda s, f=in_scene: f(s) and bg(s))),
                       "recall": _iv(_recall_where(sc, OP, in_scene))})
    noisy = lambda s: s.snr_db is not None and s.snr_db < 0.0  # noqa: E731
    recall = event_recall(sc, OP)
    audible = lambda ev: ~(ev[:, 3] < AUDIBLE_SNR_DB)  # noqa: E731  (unknown SNR counts as audible)
    recall_audible = event_recall(sc, OP, select=audible)
    fa_bg = false_per_hour(sc, OP, streams=bg)
    report: dict[str, Any] = {
        "hop_s": cfg.hop_s, "refractory_s": cfg.refractory_s, "audio_s": audio_s,
        "operating_point": op.to_dict(),
        "test": {
            "n_recordings_labelled": sum(1 for s in test if labelled(s)),
            "n_recordings_background": sum(1 for s in test if s.background),
            "hours_labelled": sum(s.hours for s in test if labelled(s)),
            "hours_background": sum(s.hours for s in test if s.background),
            "background_source": "background recordings" if any(s.background for s in test)
                                 else "labelled recordings outside events (no background dataset)",
            "n_events": n_events, "detected": detected, "repeats": repeats,
            "event_recall": _iv(recall), "fa_per_hour_background": _iv(fa_bg),
            "audible_snr_db": AUDIBLE_SNR_DB, "event_recall_audible": _iv(recall_audible),
            "fa_per_hour_labelled": _iv(false_per_hour(sc, OP, streams=labelled)),
            "delay_s": {"p50": _iv(detection_delay(sc, OP, 0.5)), "p95": _iv(detection_delay(sc, OP, 0.95))},
            "single_threshold": {"threshold": op.single_threshold, "event_recall": _iv(event_recall(sc, SINGLE)),
                                 "fa_per_hour_background": _iv(false_per_hour(sc, SINGLE, streams=bg))},
            "event_f1": event_based_f1([s for s in test if labelled(s)],
                                       [h for s, h in zip(test, sc.held) if labelled(s)], labels, cfg.hop_s, OP),
        },
        "per_class": per_class, "det": det, "snr_bins": bins, "scenes": scenes,
        "noisiest": {"rule": "labelled test recordings under 0 dB, and background hours of scenes under 0 dB",
                     "recall": _iv(_recall_where(sc, OP, noisy)),
                     "fa_per_hour_background": _iv(false_per_hour(sc, OP, streams=lambda s: noisy(s) and bg(s)))},
    }
    report["early_stage"] = None if early is None else _early_report(sc, early, len(settings) - 1, bg, labelled)
    met = (recall is not None and fa_bg is not None and recall.value >= cfg.target_recall
           and fa_bg.value <= cfg.target_fa_per_hour)
    report["targets"] = {"recall": cfg.target_recall, "fa_per_hour": cfg.target_fa_per_hour, "met": bool(met)}
    return report, op


def _early_report(sc, early, k: int, bg, labelled) -> dict[str, Any]:
    """The early stage on test: its fires outside events, and how much sooner the first fire
    (early or the trigger's own) comes on the events the trigger detects (paired, same events)."""
    first, alone, groups = [], [], []
    for s, d in zip(sc.streams, sc.delays):
        hit = np.isfinite(d[0])
        first += np.fmin(d[0], d[k])[hit].tolist()
        alone += d[0, hit].tolist()
        groups += [s.recording_id] * int(hit.sum())
    out: dict[str, Any] = {**early.to_dict(),
                           "fires_per_hour_background": _iv(false_per_hour(sc, k, streams=bg)),
                           "fires_per_hour_labelled": _iv(false_per_hour(sc, k, streams=labelled)),
                           "recall": _iv(event_recall(sc, k)), "n_events": len(first)}
    if first:
        out["delay_s"] = {
            "first_fire": {"p50": _iv(bootstrap_quantile(first, groups, 0.5)),
                           "p95": _iv(bootstrap_quantile(first, groups, 0.95))},
            "trigger_alone": {"p50": _iv(bootstrap_quantile(alone, groups, 0.5)),
                              "p95": _iv(bootstrap_quantile(alone, groups, 0.95))},
            "p95_difference": _iv(paired_quantile_difference(first, alone, groups, 0.95)),
        }
    return out


def _recall_where(sc, k: int, which: Callable[[TriggerStream], bool]):
    """Event recall over the recordings ``which`` picks."""
    sub = type(sc)([s for s in sc.streams if which(s)], [d for s, d in zip(sc.streams, sc.detected) if which(s)],
                   sc.false, sc.repeats, sc.thresholds)
    return event_recall(sub, k)


def render_det(report: dict[str, Any], title: str) -> bytes:
    """PNG of the DET curve (recall vs false triggers per hour), the operating point and the targets."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [(d["fa_per_hour_background"], d["recall"]) for d in report["det"]
           if d["recall"] is not None and d["fa_per_hour_background"] is not None]
    fig, ax = plt.subplots(figsize=(6.0, 4.2), dpi=110)
    if pts:
        x, y = zip(*sorted(pts))
        ax.plot(np.maximum(x, 0.05), np.asarray(y) * 100, "-o", ms=3, label="all thresholds shifted in logit")
    t = report["test"]
    if t["event_recall"] and t["fa_per_hour_background"]:
        ax.plot(max(t["fa_per_hour_background"]["value"], 0.05), 100 * t["event_recall"]["value"], "r*", ms=12,
                label=f"operating point ({report['operating_point']['rule']}, chosen on val)")
    s = t["single_threshold"]
    if s["event_recall"] and s["fa_per_hour_background"]:
        ax.plot(max(s["fa_per_hour_background"]["value"], 0.05), 100 * s["event_recall"]["value"], "ks", ms=6,
                label="control: one threshold for all labels")
    tg = report["targets"]
    ax.axvline(tg["fa_per_hour"], color="grey", ls="--", lw=1)
    ax.axhline(100 * tg["recall"], color="grey", ls="--", lw=1, label="target")
    ax.set_xscale("log")
    hours = report["test"]["hours_background"]
    ax.set_xlabel(f"false triggers per hour ({hours:.2f} h of background, test; 0 drawn at 0.05)")
    ax.set_ylabel("event recall, % (test)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
