"""What each experiment measures on the counterfactual bench, and its targets.

``earshot experiment`` (``pipelines/experiments.py``) trains a baseline and a
treatment teacher with several seeds, answers the same held-out bench with
each, and hands the per-record scores here. Figures are seed-averaged and come
with recording-level bootstrap 95% intervals (``cloud/controls.py``,
``shared/stats.py``); a claim's difference is treatment - baseline on the
same records, paired by recording. Torch-free.

The claim subsets (each is designed so that it cannot be won from priors):

=========  ==========================  ================================================  =====
kind       subset                      records                                           level
=========  ==========================  ================================================  =====
data       off-screen sound            SSA pairs and AVH sound pairs whose sound was     pair
                                       off screen (``pair_offscreen``)
data       visual-only                 AVH action and state pairs (evidence visual)      question
temporal   lagged ambiguous cause      TR "what caused X?" where X has two plausible     question
                                       causes, the cause began 1-5 s before X and had
                                       ended > 1 s before the question (outside the
                                       co-occurring second, so hearing only that second
                                       is at chance by construction)
trust      cross-modal, per SNR bin    AVH pairs about a sound and the action that makes  question
                                       it (``pairs.TWINS``), one modality corrupted per
                                       pair (``cloud/corrupt.py``); bins by the window's
                                       effective audio SNR
=========  ==========================  ================================================  =====

Every experiment also checks the treatment's headline (``HEADLINE``): pair
and question accuracy on the closed-form bench, AVH sound pairs, and the
shuffled-clip control within a few points of the question-only control.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

from cloud.controls import CONTROLS, bench_figures, compare, subset_figures
from cloud.data_engine.records import NONE_ANSWER, QARecord

__all__ = [
    "KINDS",
    "TARGET_KEYS",
    "HEADLINE",
    "CO_OCCURRING_S",
    "SNR_EDGES_DB",
    "effective_snr_db",
    "snr_bin_of",
    "SUBSETS",
    "trust_diagnostics",
    "analyse",
]

KINDS = ("data", "temporal", "trust")
#: The thresholds each experiment's config must give (configs/experiment/<kind>.yaml).
TARGET_KEYS = {
    "data": ("gain_min_pts", "visual_drop_max_pts"),
    "temporal": ("gain_min_pts",),
    "trust": ("noisy_gain_min_pts", "quiet_drop_max_pts"),
}
#: The treatment (the default teacher) on the whole closed-form bench.
HEADLINE = {"pair_min": 0.60, "question_min": 0.80, "avh_sound_pair_min": 0.70, "shuffled_vs_blind_max_pts": 5.0}
#: The temporal baseline hears this much audio: the second that co-occurs with the last frame.
CO_OCCURRING_S = 1.0
#: Effective-SNR bins of the trust experiment (dB, lower edge inclusive).
SNR_EDGES_DB = ((-math.inf, 0.0, "snr_lt0"), (0.0, 10.0, "snr_0_10"), (10.0, 20.0, "snr_10_20"),
                (20.0, math.inf, "snr_ge20"))


# --- subsets ------------------------------------------------------------------------


def _offscreen_sound(r: QARecord) -> bool:
    return (r.category == "SSA" or (r.category == "AVH" and r.meta.get("form") == "sound")) and bool(
        r.meta.get("pair_offscreen"))


def _visual_only(r: QARecord) -> bool:
    return r.category in ("SSA", "TR", "AVH") and r.evidence == "visual"


def _lagged_ambiguous(r: QARecord) -> bool:
    if r.category != "TR" or r.meta.get("form") != "cause" or r.answer == NONE_ANSWER:
        return False
    causes = [o for o in r.meta.get("options", []) if o != NONE_ANSWER]
    lag, gap = r.meta.get("lag_s"), r.meta.get("cause_end_before_query_s")
    return len(causes) >= 2 and lag is not None and 1.0 <= lag <= 5.0 and gap is not None and gap > CO_OCCURRING_S


def effective_snr_db(r: QARecord) -> float | None:
    """The audio SNR a window's model heard: the recording's, lowered by the noise an
    ``audio_noise`` corruption added (that noise's level is set over the recording's
    mean power, ``cloud/corrupt.py``)."""
    snr = r.meta.get("snr_db")
    if snr is None:
        return None
    if r.meta.get("corrupt") == "audio_noise":
        from cloud.corrupt import noise_level_db

        s = 10 ** (snr / 10)
        added = 10 ** (noise_level_db(r.recording_id) / 10) * (s + 1)  # in units of the original noise power
        return 10 * math.log10(s / (1 + added))
    return float(snr)


def snr_bin_of(r: QARecord) -> str:
    snr = effective_snr_db(r)
    if snr is None:
        return "snr_unknown"
    return next(name for lo, hi, name in SNR_EDGES_DB if lo <= snr < hi)


def _cross_modal(bin_name: str | None = None) -> Callable[[QARecord], bool]:
    def select(r: QARecord) -> bool:
        ok = r.category == "AVH" and bool(r.meta.get("cross_modal"))
        return ok and (bin_name is None or snr_bin_of(r) == bin_name)

    return select


#: kind -> [(key, title, select, level of the claim)]
SUBSETS: dict[str, list[tuple[str, str, Callable[[QARecord], bool], str]]] = {
    "data": [("offscreen_sound", "off-screen SSA + AVH sound", _offscreen_sound, "pair"),
             ("visual_only", "visual-only (AVH action, state)", _visual_only, "question")],
    "temporal": [("lagged_ambiguous_cause", "lagged ambiguous cause (TR, 1-5 s, cause outside the last second)",
                  _lagged_ambiguous, "question")],
    "trust": [(f"cross_modal_{name}", f"cross-modal AVH, effective SNR {label}", _cross_modal(name), "question")
              for name, label in (("snr_lt0", "< 0 dB"), ("snr_0_10", "0-10 dB"), ("snr_10_20", "10-20 dB"),
                                  ("snr_ge20", ">= 20 dB"))],
}


# --- the analysis ---------------------------------------------------------------------


def _pts(iv: Mapping[str, Any] | None) -> str:
    if not iv:
        return "no data"
    return f"{100 * iv['value']:+.1f} pts [{100 * iv['lo']:+.1f}, {100 * iv['hi']:+.1f}] (n={iv['n']}, {iv['n_groups']} rec)"


def _acc(iv: Mapping[str, Any] | None) -> str:
    if not iv:
        return "no data"
    return f"{100 * iv['value']:.1f}% [{100 * iv['lo']:.1f}, {100 * iv['hi']:.1f}] (n={iv['n']})"


def _headline_targets(figures: Mapping[str, Any], controls: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
    closed, avh = figures.get("closed", {}), figures.get("AVH", {})
    out = []
    pair, question = closed.get("pair"), closed.get("question")
    out.append({"target": f"{name}: closed-form pair accuracy >= {100 * HEADLINE['pair_min']:.0f}%",
                "measured": _acc(pair), "met": bool(pair and pair["value"] >= HEADLINE["pair_min"])})
    out.append({"target": f"{name}: closed-form per-question accuracy >= {100 * HEADLINE['question_min']:.0f}%",
                "measured": _acc(question), "met": bool(question and question["value"] >= HEADLINE["question_min"])})
    return out


#: Rows of the trust diagnostics: no corruption, then each kind (``cloud/corrupt.py``).
TRUST_CONDITIONS = ("clean", "audio_noise", "video_blur", "video_hands")


def trust_diagnostics(records: Sequence[QARecord], scores: Mapping[str, Sequence[Sequence[float]]],
                      reliability: Mapping[str, Sequence[Sequence[Sequence[float] | None]]]) -> dict[str, Any]:
    """What the gate does on the trust bench, per variant (all seeds pooled).

    ``trust``: mean reliability (audio, visual) the gate gave the windows of each
    corruption (``TRUST_CONDITIONS``): whether its trust moves with the context.
    ``noisy_errors``: on the cross-modal AVH questions below 0 dB, the share of
    "yes" questions answered wrong (misses) and of "no" questions answered wrong
    (false "yes"): which kind of error a gate could remove.

    Args:
        scores: variant -> per-seed per-record scores (1 = right).
        reliability: variant -> per-seed per-record ``[r_audio, r_visual]`` (None if not recorded).
    """
    trust: dict[str, Any] = {}
    for name, per_seed in reliability.items():
        sums = {c: [0.0, 0.0, 0] for c in TRUST_CONDITIONS}
        for rel in per_seed:
            for r, rv in zip(records, rel):
                if rv is None:
                    continue
                acc = sums[r.meta.get("corrupt") or "clean"]
                acc[0] += float(rv[0])
                acc[1] += float(rv[1])
                acc[2] += 1
        seeds = max(len(per_seed), 1)  # n: bench windows (each counted once, whatever the seeds)
        trust[name] = {c: {"audio": a / n, "visual": v / n, "n": n // seeds} if n else None
                       for c, (a, v, n) in sums.items()}
    noisy = _cross_modal("snr_lt0")
    errors: dict[str, Any] = {}
    for name, per_seed in scores.items():
        row = {}
        for gold in ("yes", "no"):
            idx = [i for i, r in enumerate(records) if noisy(r) and r.answer == gold]
            wrong = sum(1 for sc in per_seed for i in idx if sc[i] < 1)
            total = len(idx) * len(per_seed)
            row[gold] = {"wrong": wrong / total if total else None, "n": len(idx)}
        errors[name] = row
    return {"trust": trust, "noisy_errors": errors}


def analyse(kind: str, records: Sequence[QARecord], variants: Mapping[str, Sequence[Sequence[float]]],
            controls: Mapping[str, Sequence[Sequence[float]] | Sequence[float]], baseline: str, treatment: str,
            targets: Mapping[str, float], *, sound_pairs: Callable[[QARecord], bool] | None = None,
            seed: int = 0, reliability: Mapping[str, Sequence[Sequence[Sequence[float] | None]]] | None = None
            ) -> dict[str, Any]:
    """Figures, subsets, differences and targets of one experiment.

    Args:
        variants: name -> per-seed lists of per-record scores (same record order).
        controls: control name -> per-record scores (or per-seed lists).
        reliability: trust only: name -> per-seed lists of the gate's per-record
            ``[r_audio, r_visual]`` (``trust_diagnostics``).

    Returns:
        ``{"figures": {system: bench_figures}, "subsets": [{key, title, level,
        systems: {system: {question, pair}}, difference}], "targets": [...]}``,
        and for trust with ``reliability`` given, ``"trust_diagnostics"``.
    """
    systems: dict[str, Any] = {**variants, **{c: s for c, s in controls.items() if c in CONTROLS}}
    figures = {name: bench_figures(records, scores, seed=seed) for name, scores in systems.items()}
    subsets = []
    for key, title, select, level in SUBSETS[kind]:
        subsets.append({
            "key": key, "title": title, "level": level,
            "systems": {name: subset_figures(records, scores, select, seed=seed) for name, scores in systems.items()},
            "difference": compare(records, variants[treatment], variants[baseline], level=level, seed=seed,
                                  select=select),
        })
    by_key = {s["key"]: s for s in subsets}
    t_list = _headline_targets(figures[treatment], controls, treatment)
    avh_sound = subset_figures(records, variants[treatment], sound_pairs or (
        lambda r: r.category == "AVH" and r.meta.get("form") == "sound"), seed=seed)["pair"]
    t_list.append({"target": f"{treatment}: AVH sound pair accuracy >= {100 * HEADLINE['avh_sound_pair_min']:.0f}%",
                   "measured": _acc(avh_sound),
                   "met": bool(avh_sound and avh_sound["value"] >= HEADLINE["avh_sound_pair_min"])})
    if "shuffled_clip" in figures and "question_only" in figures:
        sh, bl = figures["shuffled_clip"]["closed"]["question"], figures["question_only"]["closed"]["question"]
        gap = 100 * (sh["value"] - bl["value"])
        t_list.append({"target": f"shuffled-clip control within {HEADLINE['shuffled_vs_blind_max_pts']:.0f} points "
                                 "of the question-only control (per question)",
                       "measured": f"shuffled {100 * sh['value']:.1f}%, blind {100 * bl['value']:.1f}% ({gap:+.1f} pts)",
                       "met": abs(gap) <= HEADLINE["shuffled_vs_blind_max_pts"]})

    def gain(sub: str, minimum_pts: float, what: str) -> dict[str, Any]:
        d = by_key[sub]["difference"]
        ok = bool(d and d["lo"] > 0 and d["value"] >= minimum_pts / 100)
        return {"target": f"{what}: {treatment} - {baseline} >= {minimum_pts:g} pts, interval excluding 0",
                "measured": _pts(d), "met": ok}

    def drop(sub: str, max_pts: float, what: str) -> dict[str, Any]:
        d = by_key[sub]["difference"]
        ok = bool(d and d["value"] >= -max_pts / 100)
        return {"target": f"{what}: {treatment} loses at most {max_pts:g} pts to {baseline}", "measured": _pts(d),
                "met": ok}

    if kind == "data":
        t_list += [gain("offscreen_sound", targets["gain_min_pts"], "off-screen sound pairs"),
                   drop("visual_only", targets["visual_drop_max_pts"], "visual-only questions")]
    elif kind == "temporal":
        t_list.append(gain("lagged_ambiguous_cause", targets["gain_min_pts"], "lagged ambiguous-cause questions"))
    elif kind == "trust":
        d = by_key["cross_modal_snr_lt0"]["difference"]
        t_list.append({"target": f"cross-modal AVH below 0 dB: {treatment} - {baseline} >= "
                                 f"{targets['noisy_gain_min_pts']:g} pts, interval excluding 0",
                       "measured": _pts(d),
                       "met": bool(d and d["lo"] > 0 and d["value"] >= targets["noisy_gain_min_pts"] / 100)})
        t_list.append(drop("cross_modal_snr_ge20", targets["quiet_drop_max_pts"], "cross-modal AVH at >= 20 dB"))
    out = {"figures": figures, "subsets": subsets, "targets": t_list}
    if kind == "trust" and reliability:
        out["trust_diagnostics"] = trust_diagnostics(records, variants, reliability)
    return out
