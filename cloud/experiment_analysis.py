"""What each experiment measures: bench breakdowns, result tables and targets.

``earshot experiment`` (``pipelines/experiments.py``) trains two variants and
scores both on the same bench; this module turns their predictions into
numbers (`breakdown`), picks the columns each experiment reports (`TABLES`)
and checks the experiment's targets (`check_targets`). Torch-free, so the
verb's schema can import `TARGET_KEYS` while the CLI lists verbs.

A breakdown is ``{group: {key: {"value": float, "n": int}}}``; every value is
an accuracy in [0, 1] except the gate's mean trust. Groups:

=============  ================================================================
``category``   SSA, AVDN, AVSN, TR, AVH and ``overall`` (their macro mean)
``evidence``   audio, visual, audiovisual (``visual``: the visual-only questions)
``snr``        recording SNR bins of ``cloud.eval.SNR_BINS``, all questions
``snr_audio``  the same bins, questions whose evidence needs audio
``gate_audio`` the gate's mean audio trust per SNR bin (``value`` in (0, 1))
``ssa``        SSA by where the source was: ``onscreen``, ``offscreen`` (off-screen or unseen)
``avh``        AVH by probe: ``sound``, ``visual`` (action, state, object), ``action``, ``yes``, ``no``
``avh_tags``   AVH sound and action probes answered by the tag head instead of the
               decoder (yes iff the label's tag probability > 0.5): does the encoder
               know what the decoder says?
``avh_prior``  `prior_agreement` (added by the verb: it needs the training records)
``tr``         TR: ``all``; ``lagged`` (cause and response questions about a link
               whose lag is 1-5 s), ``cause`` (the cause form of those), one key
               per lag bucket (``lag_1_2`` ...); ``old_sound``: TR questions about
               a sound that ended more than `CO_OCCURRING_S` before the query
               (out of reach of a model that hears only the last second)
=============  ================================================================
"""
from __future__ import annotations

import math
import re
from typing import Any, Callable, Mapping, Sequence

from cloud.data_engine.records import CATEGORIES, EVIDENCE, QARecord, normalize_answer
from cloud.data_engine.scoring import score

__all__ = [
    "KINDS",
    "TARGET_KEYS",
    "LAG_BUCKETS",
    "CO_OCCURRING_S",
    "TABLES",
    "breakdown",
    "question_prior",
    "no_look_baselines",
    "prior_agreement",
    "table",
    "check_targets",
]

KINDS = ("data", "temporal", "trust")
#: The thresholds each experiment's config must give (configs/experiment/<kind>.yaml).
TARGET_KEYS = {
    "data": ("ssa_ratio_min", "visual_drop_max_pts", "avh_min"),
    "temporal": ("lagged_tr_gain_min_pts",),
    "trust": ("noisiest_bin_gain_min_pts", "avh_min"),
}
#: Cause-to-effect lag buckets (s, lower edge inclusive) for TR cause and response questions.
LAG_BUCKETS = ((1.0, 2.0, "lag_1_2"), (2.0, 3.0, "lag_2_3"), (3.0, 4.0, "lag_3_4"), (4.0, 5.0 + 1e-6, "lag_4_5"))
LAGGED_RANGE_S = (LAG_BUCKETS[0][0], LAG_BUCKETS[-1][1])
#: What the temporal baseline hears: the second that ends at the query.
CO_OCCURRING_S = 1.0
_NOISIEST_BIN = "snr_lt0"

# (column title, group, key, format): format "pct" prints 100 x value, "trust" two decimals.
Column = tuple[str, str, str, str]
TABLES: dict[str, list[tuple[str, list[Column]]]] = {
    "data": [
        ("bench accuracy (%) per category, and by the evidence a question needs", [
            *[(c, "category", c, "pct") for c in CATEGORIES],
            ("overall", "category", "overall", "pct"),
            ("visual-only qs", "evidence", "visual", "pct"),
            ("audio qs", "evidence", "audio", "pct"),
            ("audio-visual qs", "evidence", "audiovisual", "pct"),
        ]),
        ("SSA accuracy (%) by where the source was", [
            ("on-screen source", "ssa", "onscreen", "pct"),
            ("off-screen or unseen source", "ssa", "offscreen", "pct"),
        ]),
        ("AVH accuracy (%) by probe", [
            ("sound probes", "avh", "sound", "pct"),
            ("visual probes", "avh", "visual", "pct"),
            ("yes probes", "avh", "yes", "pct"),
            ("no probes", "avh", "no", "pct"),
            ("action probes", "avh", "action", "pct"),
            ("sound probes, tag head", "avh_tags", "sound", "pct"),
            ("action probes, tag head", "avh_tags", "action", "pct"),
        ]),
        ("AVH: answered from the question? (the question's majority answer in train_av)", [
            ("answers = that majority", "avh_prior", "agree", "pct"),
            ("accuracy where it is right", "avh_prior", "prior_right", "pct"),
            ("accuracy where it is wrong", "avh_prior", "prior_wrong", "pct"),
        ]),
    ],
    "temporal": [
        ("TR accuracy (%): cause/response questions bucketed by cause-to-effect lag", [
            ("TR (all)", "tr", "all", "pct"),
            ("lagged 1-5 s", "tr", "lagged", "pct"),
            ("cause", "tr", "cause", "pct"),
            ("lag 1-2 s", "tr", "lag_1_2", "pct"),
            ("lag 2-3 s", "tr", "lag_2_3", "pct"),
            ("lag 3-4 s", "tr", "lag_3_4", "pct"),
            ("lag 4-5 s", "tr", "lag_4_5", "pct"),
            ("sound > 1 s before query", "tr", "old_sound", "pct"),
        ]),
    ],
    "trust": [
        ("bench accuracy (%) per recording SNR bin, quiet to loud", [
            (">= 20 dB", "snr", "snr_ge20", "pct"),
            ("10-20 dB", "snr", "snr_10_20", "pct"),
            ("0-10 dB", "snr", "snr_0_10", "pct"),
            ("< 0 dB (to -5)", "snr", "snr_lt0", "pct"),
            ("audio qs < 0 dB", "snr_audio", "snr_lt0", "pct"),
            ("AVH", "category", "AVH", "pct"),
            ("overall", "category", "overall", "pct"),
        ]),
        ("gate: mean audio trust per SNR bin (blind: one learned constant)", [
            (">= 20 dB", "gate_audio", "snr_ge20", "trust"),
            ("10-20 dB", "gate_audio", "snr_10_20", "trust"),
            ("0-10 dB", "gate_audio", "snr_0_10", "trust"),
            ("< 0 dB", "gate_audio", "snr_lt0", "trust"),
        ]),
    ],
}


def _cell(values: Sequence[float]) -> dict[str, Any]:
    return {"value": (sum(values) / len(values)) if values else None, "n": len(values)}


def _group(items: Sequence[tuple[str, float]], order: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    by: dict[str, list[float]] = {}
    for key, v in items:
        by.setdefault(key, []).append(v)
    keys = [k for k in order if k in by] if order is not None else list(by)
    return {k: _cell(by[k]) for k in keys}


_AVH_LABEL = {"sound": re.compile(r"^did you hear (\S+)\?$"), "action": re.compile(r"^did you (\S+) in this clip\?$")}


def _tag_answer(r: QARecord, p: Mapping[str, Any]) -> str | None:
    """The tag head's answer to an AVH sound or action probe: yes iff p(label) > 0.5."""
    from cloud.model.teacher import TAG_NAMES

    pattern = _AVH_LABEL.get(r.meta.get("probe_kind"))
    m = pattern.match(r.question) if pattern and "tag_probs" in p else None
    if m is None or m.group(1) not in TAG_NAMES:
        return None
    return "yes" if p["tag_probs"][TAG_NAMES.index(m.group(1))] > 0.5 else "no"


def _lag_bucket(lag_s: float) -> str | None:
    for lo, hi, name in LAG_BUCKETS:
        if lo <= lag_s < hi:
            return name
    return None


def breakdown(
    records: Sequence[QARecord],
    predictions: Sequence[Mapping[str, Any]],
    sound_offsets: Callable[[QARecord], list[float]] | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Every breakdown any experiment reports (module docstring), from one bench run.

    Args:
        records: the bench records.
        predictions: aligned with ``records``: ``prediction`` (text) and
            ``reliability`` ([audio, visual] gate trust).
        sound_offsets: offsets (s, recording clock) of the sound events a
            record asks about; None leaves ``tr.old_sound`` out.

    Raises:
        ValueError: predictions and records differ in length.
    """
    from cloud.eval import SNR_BINS, snr_bin

    if len(records) != len(predictions):
        raise ValueError(f"predictions: {len(predictions)} for {len(records)} records")
    scores = [score(r, p["prediction"]) for r, p in zip(records, predictions)]
    pairs = list(zip(records, scores, predictions))
    bins = [name for *_, name in SNR_BINS] + ["snr_unknown"]

    out: dict[str, dict[str, dict[str, Any]]] = {}
    out["category"] = _group([(r.category, s) for r, s, _ in pairs], CATEGORIES)
    present = [c["value"] for c in out["category"].values()]
    out["category"]["overall"] = {"value": sum(present) / len(present) if present else None, "n": len(records)}
    out["evidence"] = _group([(r.evidence, s) for r, s, _ in pairs], EVIDENCE)
    out["snr"] = _group([(snr_bin(r.meta.get("snr_db")), s) for r, s, _ in pairs], bins)
    out["snr_audio"] = _group([(snr_bin(r.meta.get("snr_db")), s) for r, s, _ in pairs if r.evidence != "visual"], bins)
    out["gate_audio"] = _group([(snr_bin(r.meta.get("snr_db")), float(p["reliability"][0])) for r, _, p in pairs], bins)

    out["ssa"] = _group([("offscreen" if r.meta.get("offscreen") else "onscreen", s)
                         for r, s, _ in pairs if r.category == "SSA"], ("onscreen", "offscreen"))

    avh, tags = [], []
    for r, s, p in pairs:
        if r.category == "AVH":
            kind = r.meta.get("probe_kind", r.meta.get("form"))
            avh.append(("sound" if kind == "sound" else "visual", s))
            avh.append((r.answer, s))  # yes / no
            if kind == "action":
                avh.append(("action", s))
            tag = _tag_answer(r, p)
            if tag is not None:
                tags.append((kind, float(tag == r.answer)))
    out["avh"] = _group(avh, ("sound", "visual", "action", "yes", "no"))
    out["avh_tags"] = _group(tags, ("sound", "action"))

    tr: list[tuple[str, float]] = []
    for r, s, _ in pairs:
        if r.category != "TR":
            continue
        tr.append(("all", s))
        lag = r.meta.get("lag_s")
        if lag is not None and LAGGED_RANGE_S[0] <= lag < LAGGED_RANGE_S[1]:
            tr.append(("lagged", s))
            tr.append((_lag_bucket(lag), s))
            if r.meta.get("form") == "cause":
                tr.append(("cause", s))
        if sound_offsets is not None and any(off < r.t_query_s - CO_OCCURRING_S for off in sound_offsets(r)):
            tr.append(("old_sound", s))
    out["tr"] = _group(tr, ("all", "lagged", "cause", *[name for *_, name in LAG_BUCKETS], "old_sound"))
    return out


def question_prior(train: Sequence[QARecord], bench: Sequence[QARecord],
                   keep: Callable[[QARecord], bool]) -> dict[str, Any]:
    """Accuracy of a model that never looks at the clip, on the bench records ``keep``
    selects: it answers each question with its majority answer in ``train`` (the
    category's overall majority for a question never seen there). A model near this
    number answers from which question is asked, not from what it heard and saw."""
    counts: dict[str, dict[str, dict[str, int]]] = {}  # category -> question -> answer -> count
    for r in train:
        c = counts.setdefault(r.category, {}).setdefault(r.question, {})
        c[r.answer] = c.get(r.answer, 0) + 1

    def majority(c: Mapping[str, int]) -> str:
        return max(sorted(c), key=c.get)

    hits = []
    for r in bench:
        if not keep(r):
            continue
        by_question = counts.get(r.category, {})
        if r.question in by_question:
            guess = majority(by_question[r.question])
        else:
            overall: dict[str, int] = {}
            for c in by_question.values():
                for a, k in c.items():
                    overall[a] = overall.get(a, 0) + k
            guess = majority(overall) if overall else ""
        hits.append(float(score(r, guess)))
    return _cell(hits)


def _prior_answers(train: Sequence[QARecord]) -> dict[tuple[str, str], str]:
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for r in train:
        c = counts.setdefault((r.category, r.question), {})
        c[r.answer] = c.get(r.answer, 0) + 1
    return {k: max(sorted(c), key=c.get) for k, c in counts.items()}


def prior_agreement(train: Sequence[QARecord], bench: Sequence[QARecord], predictions: Sequence[Mapping[str, Any]],
                    category: str = "AVH") -> dict[str, dict[str, Any]]:
    """Does a model answer ``category`` from the question? Over the bench questions also
    asked in ``train``: ``agree``, the share of answers equal to the question's training
    majority; ``prior_right`` and ``prior_wrong``, the model's accuracy where that majority
    is and is not the gold answer (a model that looks at the clip does well on both)."""
    prior = _prior_answers(train)
    agree, right, wrong = [], [], []
    for r, p in zip(bench, predictions):
        guess = prior.get((r.category, r.question))
        if r.category != category or guess is None:
            continue
        try:
            said = normalize_answer(p["prediction"], r.answer_type)
        except ValueError:  # unparseable: agrees with nothing
            said = None
        agree.append(float(said == guess))
        (right if score(r, guess) == 1.0 else wrong).append(score(r, p["prediction"]))
    cells = {"agree": _cell(agree), "prior_right": _cell(right), "prior_wrong": _cell(wrong)}
    return {k: c for k, c in cells.items() if c["n"]}


def no_look_baselines(train: Sequence[QARecord], bench: Sequence[QARecord]) -> dict[str, dict[str, Any]]:
    """`question_prior` on the bench parts the targets are about: SSA (and its off-screen
    part), TR with a 1-5 s lag, AVH."""
    def lagged(r: QARecord) -> bool:
        lag = r.meta.get("lag_s")
        return r.category == "TR" and lag is not None and LAGGED_RANGE_S[0] <= lag < LAGGED_RANGE_S[1]

    return {
        "SSA": question_prior(train, bench, lambda r: r.category == "SSA"),
        "SSA off-screen": question_prior(train, bench, lambda r: r.category == "SSA" and bool(r.meta.get("offscreen"))),
        "TR lagged 1-5 s": question_prior(train, bench, lagged),
        "AVH": question_prior(train, bench, lambda r: r.category == "AVH"),
    }


def _value(scores: Mapping[str, Any], group: str, key: str) -> float | None:
    return scores.get(group, {}).get(key, {}).get("value")


def _fmt(value: float | None, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100 * value:.1f}" if fmt == "pct" else f"{value:.2f}"


def table(kind: str, variants: Mapping[str, Mapping[str, Any]], columns: Sequence[Column]) -> str:
    """A markdown table: one row per variant, ``columns`` of its breakdown.

    ``variants`` maps a variant name to its ``scores`` (a `breakdown`). The
    header gives each column's question count (from the first variant: all
    variants are scored on the same bench).
    """
    first = next(iter(variants.values()))
    heads = []
    for title, group, key, _ in columns:
        n = first.get(group, {}).get(key, {}).get("n", 0)
        heads.append(f"{title} (n={n})")
    lines = ["| variant | " + " | ".join(heads) + " |", "| --- |" + " ---: |" * len(columns)]
    for name, scores in variants.items():
        cells = [_fmt(_value(scores, group, key), fmt) for _, group, key, fmt in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _pts(v: float) -> str:
    return f"{100 * v:+.1f} points"


def check_targets(kind: str, targets: Mapping[str, float], baseline: str, treatment: str,
                  scores: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``[{"target", "measured", "met"}]`` for the experiment ``kind``.

    ``scores`` maps variant name -> breakdown; ``baseline`` and ``treatment``
    name the two variants. A target whose numbers are missing (no such
    question in the bench) is reported as not met.
    """
    b, t = scores[baseline], scores[treatment]
    out: list[dict[str, Any]] = []

    def add(target: str, measured: str, met: bool | None) -> None:
        out.append({"target": target, "measured": measured, "met": bool(met)})

    if kind == "data":
        sb, st = _value(b, "category", "SSA"), _value(t, "category", "SSA")
        ratio = None if sb is None or st is None else (st / sb if sb > 0 else (math.inf if st > 0 else 1.0))
        add(f"SSA accuracy of {treatment} >= {targets['ssa_ratio_min']:g} x {baseline}",
            f"{treatment} {_pct(st)} vs {baseline} {_pct(sb)}: " + ("-" if ratio is None else f"{ratio:.2f}x"),
            ratio is not None and ratio >= targets["ssa_ratio_min"])
        vb, vt = _value(b, "evidence", "visual"), _value(t, "evidence", "visual")
        drop = None if vb is None or vt is None else vb - vt
        add(f"{treatment} loses at most {targets['visual_drop_max_pts']:g} points on visual-only questions",
            f"{treatment} {_pct(vt)} vs {baseline} {_pct(vb)}" + ("" if drop is None else f" ({_pts(-drop)})"),
            drop is not None and 100 * drop <= targets["visual_drop_max_pts"] + 1e-9)
        avh = _value(t, "category", "AVH")
        add(f"AVH accuracy of {treatment} >= {100 * targets['avh_min']:g}%", _pct(avh),
            avh is not None and avh >= targets["avh_min"] - 1e-12)
    elif kind == "temporal":
        lb, lt = _value(b, "tr", "lagged"), _value(t, "tr", "lagged")
        gain = None if lb is None or lt is None else lt - lb
        add(f"{treatment} beats {baseline} on TR with a 1-5 s lag by >= {targets['lagged_tr_gain_min_pts']:g} points",
            f"{treatment} {_pct(lt)} vs {baseline} {_pct(lb)}" + ("" if gain is None else f" ({_pts(gain)})"),
            gain is not None and 100 * gain >= targets["lagged_tr_gain_min_pts"] - 1e-9)
    elif kind == "trust":
        nb, nt = _value(b, "snr", _NOISIEST_BIN), _value(t, "snr", _NOISIEST_BIN)
        gain = None if nb is None or nt is None else nt - nb
        add(f"{treatment} beats {baseline} in the noisiest SNR bin (< 0 dB) by > "
            f"{targets['noisiest_bin_gain_min_pts']:g} points",
            f"{treatment} {_pct(nt)} vs {baseline} {_pct(nb)}" + ("" if gain is None else f" ({_pts(gain)})"),
            gain is not None and 100 * gain > targets["noisiest_bin_gain_min_pts"])
        avh = _value(t, "category", "AVH")
        add(f"AVH accuracy of {treatment} >= {100 * targets['avh_min']:g}%", _pct(avh),
            avh is not None and avh >= targets["avh_min"] - 1e-12)
    else:
        raise ValueError(f"unknown experiment kind {kind!r}; kinds are {KINDS}")
    return out
