"""Students on the counterfactual bench's event probes, beside the teacher and its controls.

    probes = TeacherProbes.load(teacher, tokenizer, tcard, cfg.probes, dataset)     # once per export
    report = probes.score(program, card, hops)                                       # per program

The probes are the bench's AVH pairs (``cloud/data_engine/pairs.py``): one
question on two windows of one held-out recording whose gold answers differ.

=========  =============================  ==========  =================================================
form       question                       modality    how a student answers (its own outputs only)
=========  =============================  ==========  =================================================
sound      did you hear {X}?              audio       yes iff max over the window's hops of p(X) >= the
                                                      card's threshold for X; hops whose whole audio
                                                      lies inside the window
action     did you {X} in this clip?      visual      the same over the hops whose camera frame lies in
state      did you see {X}?               visual      the window (AV student only)
=========  =============================  ==========  =================================================

A hop is one call of the program as a runtime makes it (``hop_s``, 0.25 s):
the last ``audio_s`` of PCM and the newest camera frame, one window per call.
The teacher answers the same records with ``cloud.eval.predict`` (the
likelier of "yes" and "no" under the model, given the 10 s window).

Beside them, on the same records (``cloud/controls.py``): ``question_only``,
``question_scene`` and ``constant_answer`` from the training records (they
answer both windows of a pair alike: 50% per question, 0% per pair), and the
shuffled clip, each model on another held-out recording's window at the same
times (``shuffled_records``). Figures are accuracy per question and per pair
(both windows right), with recording-level bootstrap 95% intervals
(``shared/stats.py``). **Retention** is the student's pair accuracy over the
teacher's on the same pairs: ``bootstrap_ratio`` of per-pair outcomes,
resampling recordings for both at once (paired). The trigger answers the
audio probes only; the AV student both.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from cloud.controls import compare, fit_priors, prior_answers, shuffled_records, subset_figures
from cloud.data_engine.records import QARecord
from cloud.data_engine.scoring import score
from shared.config import UserError
from shared.stats import bootstrap_ratio

__all__ = ["EVENT_FORMS", "MODALITIES", "NoProbes", "event_probes", "HopOutputs", "hop_outputs", "student_answers",
           "TeacherProbes", "score_probes", "probe_metrics"]

#: The bench's event probes (AVH forms) and the modality each needs.
EVENT_FORMS = {"sound": "audio", "action": "visual", "state": "visual"}
MODALITIES = ("audio", "visual", "all")
_YES, _NO = "yes", "no"
_EPS = 1e-6


class NoProbes(UserError):
    """A bench with no event-probe pair to answer (``probes.mode=auto`` then skips the probes)."""


def event_probes(records: Sequence[QARecord], max_pairs: int = 0) -> list[QARecord]:
    """The AVH event-probe records of a bench, both windows of every pair, in file order.

    ``max_pairs`` > 0 keeps that many pairs, evenly spaced over the file (every recording
    and form stays represented, as ``cloud.data.load_records`` limits)."""
    by_pair: dict[str, list[QARecord]] = {}
    for r in records:
        if r.category == "AVH" and r.meta.get("form") in EVENT_FORMS and r.meta.get("pair_id") is not None:
            by_pair.setdefault(str(r.meta["pair_id"]), []).append(r)
    pairs = [v for v in by_pair.values() if len(v) == 2]
    if 0 < max_pairs < len(pairs):
        step = len(pairs) / max_pairs
        pairs = [pairs[int(i * step)] for i in range(max_pairs)]
    return [r for pair in pairs for r in pair]


def _modality(r: QARecord) -> str:
    return EVENT_FORMS[str(r.meta["form"])]


@dataclass
class HopOutputs:
    """A program's outputs at every hop of some recordings.

    Attributes:
        ends_s: {recording id: (n,) hop times, the end of each call's audio}.
        probs: {recording id: (n, L) the program's first output at those hops}.
        audio_s: seconds of audio per call; hop_s: seconds between calls;
        duration_s: {recording id: seconds}.
    """

    ends_s: dict[str, np.ndarray]
    probs: dict[str, np.ndarray]
    audio_s: float
    hop_s: float
    duration_s: dict[str, float]


def hop_outputs(run: Callable[..., Sequence[np.ndarray]], windows, hop_s: float) -> HopOutputs:
    """Run ``run`` (a program: one window per call) at every window of ``windows``
    (a ``distill.data.WindowSet`` on the hop grid, camera frames kept)."""
    from tqdm import tqdm

    rows: dict[str, list[np.ndarray]] = {}
    ends: dict[str, list[float]] = {}
    for k in tqdm(range(len(windows)), desc="probes: program at every hop", unit="call", leave=False, mininterval=2.0):
        rec = windows.recordings[int(windows.windows[k, 0])]
        out = run(*windows.student_inputs([k], camera=True))[0]
        rows.setdefault(rec.id, []).append(np.asarray(out, np.float32).reshape(-1))
        ends.setdefault(rec.id, []).append(float(windows.windows[k, 1]))
    return HopOutputs({k: np.asarray(v) for k, v in ends.items()}, {k: np.stack(v) for k, v in rows.items()},
                      windows.audio_s, hop_s, {r.id: r.duration_s for r in windows.recordings})


def _answer(r: QARecord, recording: str, hops: HopOutputs, labels: Sequence[str], thresholds: Sequence[float]) -> str | None:
    """One student answer (module table); None when the program cannot answer the question."""
    label = str((r.meta.get("probe") or [""])[0])
    if label not in labels or recording not in hops.ends_s:
        return None
    c = list(labels).index(label)
    w0, w1 = float(r.window_s[0]), float(r.window_s[1])
    dur = hops.duration_s[recording]
    w0, w1 = min(w0, dur), min(w1, dur)  # a shuffled clip on a shorter recording: its own end
    t = hops.ends_s[recording]
    if _modality(r) == "audio":
        sel = (t >= w0 + hops.audio_s - _EPS) & (t <= w1 + _EPS)
        if not sel.any():  # a window shorter than one call: the calls that end inside it
            sel = (t > w0 + _EPS) & (t <= w1 + _EPS)
    else:
        sel = (t >= w0 - _EPS) & (t <= w1 + _EPS)
    if not sel.any():
        return _NO
    return _YES if float(hops.probs[recording][sel, c].max()) >= float(thresholds[c]) else _NO


def student_answers(records: Sequence[QARecord], hops: HopOutputs, labels: Sequence[str],
                    thresholds: Sequence[float]) -> list[str | None]:
    """A student's answer to every record, from its outputs on the record's own recording."""
    return [_answer(r, r.recording_id, hops, labels, thresholds) for r in records]


def _pair_outcomes(records: Sequence[QARecord], scores: Sequence[float], select) -> tuple[list[float], list[str]]:
    """(both right, 0/1 per pair; the pair's recording) over the pairs whose records ``select`` keeps."""
    by_pair: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        if select(r):
            by_pair.setdefault(str(r.meta["pair_id"]), []).append(i)
    out, groups = [], []
    for idx in by_pair.values():
        if len(idx) == 2:
            out.append(float(all(scores[i] >= 1.0 for i in idx)))
            groups.append(records[idx[0]].recording_id)
    return out, groups


def _select(modality: str):
    return (lambda r: True) if modality == "all" else (lambda r: _modality(r) == modality)


def _iv(x) -> dict[str, Any] | None:
    return None if x is None else x.to_dict()


def score_probes(records: Sequence[QARecord], systems: dict[str, list[float]], *, student: str = "student",
                 teacher: str = "teacher", modalities: Sequence[str] = MODALITIES, seed: int = 0) -> dict[str, Any]:
    """Figures of every system per modality, and the student's retention of the teacher's pair accuracy.

    Returns ``{"figures": {system: {modality: {"question", "pair"}}}, "retention": {modality: Interval
    dict | None}, "difference": {modality: student - teacher pair accuracy, paired}}`` (intervals as
    ``shared.stats.Interval`` dicts; None where the modality has no pair or the teacher got none right).
    """
    figures: dict[str, Any] = {}
    for name, sc in systems.items():
        figures[name] = {}
        for m in modalities:
            sel = _select(m)
            figures[name][m] = subset_figures(records, sc, sel, seed=seed) if any(sel(r) for r in records) else None
    retention, difference = {}, {}
    for m in modalities:
        s_out, groups = _pair_outcomes(records, systems[student], _select(m))
        t_out, _ = _pair_outcomes(records, systems[teacher], _select(m))
        retention[m] = _iv(bootstrap_ratio(s_out, t_out, groups, seed=seed)) if s_out and sum(t_out) > 0 else None
        difference[m] = compare(records, systems[student], systems[teacher], level="pair", seed=seed,
                                select=_select(m)) if s_out else None
    return {"figures": figures, "retention": retention, "difference": difference}


class TeacherProbes:
    """The bench's event probes with the teacher's and the controls' scores, computed once per export."""

    def __init__(self, records: list[QARecord], systems: dict[str, list[float]], qa_dir: Path, seed: int) -> None:
        self.records, self.systems, self.qa_dir, self.seed = records, systems, qa_dir, seed
        self.shuffled = shuffled_records(records, seed) if len({r.recording_id for r in records}) >= 2 else None

    @property
    def recording_ids(self) -> set[str]:
        return {r.recording_id for r in self.records}

    @classmethod
    def load(cls, teacher, tokenizer, tcard: dict[str, Any], qa_dir: str | Path, *, max_pairs: int, batch_size: int,
             seed: int, dataset_root: str | Path) -> "TeacherProbes":
        """Read ``<qa_dir>/bench.jsonl``, answer its event probes with the teacher and the controls.

        Raises:
            UserError: no bench; NoProbes: no event-probe pair in it.
        """
        from cloud.data import FeatureCache, RecordingStore, WindowSpec, load_records
        from cloud.eval import evaluate

        qa_dir = Path(qa_dir)
        records = event_probes(load_records(qa_dir, "bench"), max_pairs)
        if not records:
            raise NoProbes(f"{qa_dir / 'bench.jsonl'} has no AVH event-probe pair (forms {sorted(EVENT_FORMS)})")
        spec = WindowSpec(**tcard["data"])
        store = RecordingStore(dataset_root, spec.frame_size_px, spec.n_mels)
        narration = (tcard.get("trained_on") or {}).get("narration", "av")
        try:
            train = load_records(qa_dir, f"train_{narration}")
        except UserError:
            train = None  # no training records: the prior controls are left out (said in the report)
        per_tok = teacher.cfg.mel_frames_per_token
        on_grid = all(int(round(float(r.window_s[1]) * 100)) % per_tok == 0 for r in records)
        result = evaluate(teacher, tokenizer, records, store, spec, train, batch_size, seed,
                          FeatureCache(teacher, store) if on_grid else None)
        systems = {"teacher" if k == "model" else k: v for k, v in result["systems"].items()}
        if "shuffled_clip" in systems:
            systems["teacher_shuffled_clip"] = systems.pop("shuffled_clip")
        return cls(records, systems, qa_dir, seed)

    def score(self, hops: HopOutputs, labels: Sequence[str], thresholds: Sequence[float]) -> dict[str, Any]:
        """The student (program) beside the teacher and the controls (``score_probes``), as JSON-able dicts."""
        answers = student_answers(self.records, hops, labels, thresholds)
        answerable = [a is not None for a in answers]
        modalities = [m for m in ("audio", "visual")
                      if any(ok and _modality(r) == m for ok, r in zip(answerable, self.records))]
        if not modalities:
            raise UserError("probes: the program answers none of the bench's event probes (its labels name none)")
        # Only the probes this program can answer (the trigger: the audio ones), for every system alike.
        keep = [i for i, r in enumerate(self.records) if _modality(r) in modalities]
        records = [self.records[i] for i in keep]
        systems = {"student": [score(records[j], answers[i]) for j, i in enumerate(keep)]}
        if self.shuffled is not None:
            # the same question on another recording's window, scored against this window's gold
            moved = student_answers([self.shuffled[i] for i in keep], hops, labels, thresholds)
            systems["student_shuffled_clip"] = [score(records[j], a) for j, a in enumerate(moved)]
        systems.update({k: [v[i] for i in keep] for k, v in self.systems.items()})
        mods = ([*modalities, "all"] if len(modalities) > 1 else modalities)
        out = score_probes(records, systems, modalities=mods, seed=self.seed)
        out.update(n_records=len(records), n_pairs=len(records) // 2, n_recordings=len({r.recording_id for r in records}),
                   modalities=mods, headline=mods[-1], qa_dir=str(self.qa_dir.resolve()), hop_s=hops.hop_s,
                   by_form={f: sum(1 for r in records if r.meta["form"] == f) // 2 for f in EVENT_FORMS},
                   systems=list(systems))
        return out


def probe_metrics(report: dict[str, Any], target_retention: float) -> dict[str, Any]:
    """The card's headline figures from a probes report: pair accuracy of the student and the
    teacher and the retention (with ``_lo``/``_hi``), per modality, and whether the target is met."""
    m: dict[str, Any] = {}
    for mod in report["modalities"]:
        suffix = "" if mod == report["headline"] else f"_{mod}"
        for key, system in (("probe_pair_accuracy", "student"), ("teacher_probe_pair_accuracy", "teacher")):
            iv = (report["figures"][system].get(mod) or {}).get("pair")
            m[key + suffix] = None if iv is None else iv["value"]
        r = report["retention"][mod]
        m["retention" + suffix] = None if r is None else r["value"]
        m["retention" + suffix + "_lo"], m["retention" + suffix + "_hi"] = (None, None) if r is None else (r["lo"], r["hi"])
    per_mod = [report["retention"][mod] for mod in report["modalities"] if mod != "all"]
    met = all(r is not None and math.isfinite(r["value"]) and r["value"] >= target_retention for r in per_mod)
    m.update(n_probe_pairs=report["n_pairs"], probe_target_retention=target_retention,
             probe_targets_met=str(bool(per_mod) and met).lower())
    return m
