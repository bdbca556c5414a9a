"""Counterfactual pairs: each closed-form question asked on two windows of one
recording whose gold answers differ.

A model that answers from the question alone, or from the question and the
scene, gives the same answer on both windows of a pair (same recording, same
scene, same noise), so it gets at most one of the two right: 50% per question
and 0% per pair on the yes/no pairs, by construction. Only a model that looks
and listens can get both. (ARCHITECTURE.md section 10.)

Probes (the closed-form questions; each names what it asks about):

====  ==========  =============================================  =========================================
cat   form        question                                       answer on a window
====  ==========  =============================================  =========================================
AVH   sound       did you hear {label}?                          yes: an audible {label} in the window;
                                                                 no: none within ``negative_margin_s``
AVH   action      did you {label} in this clip?                  yes / no, the same rule
AVH   state       did you see {label}?                           yes / no, the same rule
SSA   source      what made the {sound} sound?                   its source; ``none`` if no {sound}
SSA   sound_of    what sound did the {source} make?              the sound label; ``none`` if silent
SSA   visible     was the source of the {sound} sound in view?   yes / no (the sound is in both windows)
TR    cause       what caused {effect}?                          the cause sound (heard inside the
                                                                 window); ``none`` if no {effect}
TR    response    what happened because of {cause}?              the response; ``none`` if nobody
                                                                 responded (or no {cause})
TR    before      did {a} start before {b}?                      yes / no (both in both windows)
====  ==========  =============================================  =========================================

A window where the answer is not certain gives no answer (``None``) and is
never used: the event only grazes the window, two instances disagree, an
inaudible instance of the sound is near (``graph.AUDIBLE_SNR_DB``), the cause
was before the window, or the response could still come.

Pairs: answers are computed on every window of a grid (``PairParams.grid_s``);
a probe with two or more distinct answers gives a pair. ``contrast`` pairs
(two different non-``none`` answers: the oven vs the microwave made the
timer beep; the doorbell vs the knock caused the walk to the door) are
preferred over ``presence`` pairs (an answer vs ``none``); yes/no pairs are
``presence`` pairs for AVH and ``contrast`` pairs for SSA visible and TR
before. Each record names its answer ``options`` (from every recording of
the dataset), so closed-form answers can be scored by option likelihood.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from cloud.data_engine.graph import ACTION, SOUND, STATE, WEARER, ContextGraph, Node
from cloud.data_engine.records import NONE_ANSWER

__all__ = [
    "PAIR_CATEGORIES",
    "PAIR_FORMS",
    "TWINS",
    "RESPONSE_LABELS",
    "CAUSE_LABELS",
    "PairParams",
    "Probe",
    "Options",
    "Pair",
    "make_options",
    "window_grid",
    "recording_probes",
    "answer",
    "probe_pairs",
]

PAIR_CATEGORIES = ("SSA", "TR", "AVH")
PAIR_FORMS = {
    "SSA": ("source", "sound_of", "visible"),
    "TR": ("cause", "response", "before"),
    "AVH": ("sound", "action", "state"),
}
#: Wearer actions that always answer a sound (the chains of sim/world): "what caused X?".
RESPONSE_LABELS = ("open_oven", "open_microwave", "pour", "walk_to_door", "pick_up_phone", "reach_for_object")
#: Sounds that may or may not be answered: "what happened because of X?".
CAUSE_LABELS = ("timer_beep", "alarm", "microwave_beep", "kettle_whistle", "doorbell", "knock", "phone_ring",
                "phone_notification", "car_horn", "speech")
_YES, _NO = "yes", "no"
#: Labels that the other modality also shows: a sound with the action or state
#: that makes it. An AVH question about one of them can be answered from either
#: modality when the twin agrees (meta ``cross_modal``): the trust experiment
#: corrupts one modality and asks them.
TWINS: dict[str, tuple[str, ...]] = {
    "chopping": ("chop",), "keyboard_typing": ("type",), "running_water": ("wash", "tap_running"),
    "pouring": ("pour",), "sizzle": ("pan_steaming",), "kettle_whistle": ("kettle_steaming",),
    "footsteps": ("walk", "walk_to_door"), "door_sound": ("open_door",),
    "phone_ring": ("phone_screen_lit",), "phone_notification": ("phone_screen_lit",),
}
for _sound, _seen in list(TWINS.items()):
    for _label in _seen:
        TWINS[_label] = tuple(dict.fromkeys([*TWINS.get(_label, ()), _sound]))


@dataclass(frozen=True)
class PairParams:
    """How windows are laid out and when an answer is certain."""

    window_s: float = 10.0
    grid_s: float = 0.5  # window starts every this many seconds
    min_overlap_s: float = 0.5  # an event must overlap a window this much to be "in" it
    negative_margin_s: float = 1.0  # "no" / "none": nothing within the window widened by this
    tr_min_gap_s: float = 1.0  # "before": onsets at least this far apart
    response_wait_s: float = 6.0  # "nobody responded": the cause began at least this long before the end


@dataclass(frozen=True)
class Probe:
    category: str
    form: str
    key: tuple[str, ...]
    text: str
    answer_type: str  # label | yes_no


@dataclass(frozen=True)
class Options:
    """Answer options per probe key, from every recording of a dataset (vocabulary, not gold)."""

    sources_of: dict[str, tuple[str, ...]]  # sound label -> sources
    sounds_of: dict[str, tuple[str, ...]]  # source -> sound labels
    causes_of: dict[str, tuple[str, ...]]  # response label -> cause labels
    responses_of: dict[str, tuple[str, ...]]  # cause label -> response labels

    def for_probe(self, probe: Probe) -> list[str]:
        if probe.answer_type == "yes_no":
            return [_YES, _NO]
        table = {"source": self.sources_of, "sound_of": self.sounds_of, "cause": self.causes_of,
                 "response": self.responses_of}[probe.form]
        return sorted(set(table.get(probe.key[0], ())) | {NONE_ANSWER})


@dataclass
class Pair:
    """One probe on two windows: ``starts`` and ``answers`` in the same order."""

    probe: Probe
    starts: tuple[float, float]
    answers: tuple[str, str]
    kind: str  # contrast | presence
    meta: tuple[dict[str, Any], dict[str, Any]] = field(default_factory=lambda: ({}, {}))


# --- options -------------------------------------------------------------------


def _action_effect(g: ContextGraph, cause: Node) -> Node | None:
    for n in g.effects_of(cause.id):
        if n.kind == ACTION:
            return n
    return None


def make_options(graphs: Iterable[ContextGraph]) -> Options:
    """Options from the full graphs of every recording (answers a question could have)."""
    src: dict[str, set] = {}
    snd: dict[str, set] = {}
    cau: dict[str, set] = {}
    rsp: dict[str, set] = {}
    for g in graphs:
        for n in g.nodes:
            if n.kind == SOUND and n.source:
                src.setdefault(n.label, set()).add(n.source)
                snd.setdefault(n.source, set()).add(n.label)
            if n.kind == SOUND and n.label in CAUSE_LABELS:
                eff = _action_effect(g, n)
                if eff is not None:
                    rsp.setdefault(n.label, set()).add(eff.label)
        for link in g.links:
            eff, c = g.node(link.effect), g.node(link.cause)
            if eff.label in RESPONSE_LABELS and c.kind == SOUND:
                cau.setdefault(eff.label, set()).add(c.label)
    frz = lambda d: {k: tuple(sorted(v)) for k, v in sorted(d.items())}  # noqa: E731
    return Options(frz(src), frz(snd), frz(cau), frz(rsp))


# --- probes ----------------------------------------------------------------------


def _text(form: str, key: tuple[str, ...]) -> str:
    return {
        "sound": "did you hear {0}?",
        "action": "did you {0} in this clip?",
        "state": "did you see {0}?",
        "source": "what made the {0} sound?",
        "sound_of": "what sound did the {0} make?",
        "visible": "was the source of the {0} sound in view?",
        "cause": "what caused {0}?",
        "response": "what happened because of {0}?",
        "before": "did {0} start before {1}?",
    }[form].format(*key)


def _probe(category: str, form: str, *key: str) -> Probe:
    yes_no = form in ("sound", "action", "state", "visible", "before")
    return Probe(category, form, tuple(key), _text(form, key), "yes_no" if yes_no else "label")


def recording_probes(g: ContextGraph) -> list[Probe]:
    """Every probe worth asking about recording ``g`` (its own labels and sources)."""
    sounds = sorted({n.label for n in g.nodes if n.kind == SOUND})
    actions = sorted({n.label for n in g.nodes if n.kind == ACTION})
    states = sorted({n.label for n in g.nodes if n.kind == STATE})
    sources = sorted({n.source for n in g.nodes if n.kind == SOUND and n.source and n.source != WEARER})
    out = [_probe("AVH", "sound", l) for l in sounds]
    out += [_probe("AVH", "action", l) for l in actions]
    out += [_probe("AVH", "state", l) for l in states]
    out += [_probe("SSA", "source", l) for l in sounds]
    out += [_probe("SSA", "visible", l) for l in sounds]
    out += [_probe("SSA", "sound_of", s) for s in sources]
    out += [_probe("TR", "cause", l) for l in actions if l in RESPONSE_LABELS]
    out += [_probe("TR", "response", l) for l in sounds if l in CAUSE_LABELS]
    # "before" can only flip inside one recording when both labels recur
    counts: dict[str, int] = {}
    for n in g.nodes:
        if n.kind in (SOUND, ACTION):
            counts[n.label] = counts.get(n.label, 0) + 1
    twice = sorted(l for l, c in counts.items() if c >= 2)
    out += [_probe("TR", "before", a, b) for a in twice for b in twice if a != b]
    return out


# --- answers ----------------------------------------------------------------------


def window_grid(duration_s: float, p: PairParams) -> list[float]:
    """Window starts on the grid (one window at 0 for a recording shorter than a window)."""
    last = duration_s - p.window_s
    if last <= 0:
        return [0.0]
    n = int(last / p.grid_s + 1e-9)
    return [round(i * p.grid_s, 3) for i in range(n + 1)]


def _in(view: ContextGraph, w0: float, w1: float, p: PairParams, pred: Callable[[Node], bool]) -> list[Node]:
    return [n for n in view.inside(w0, w1, p.min_overlap_s) if pred(n)]


def _near(full: ContextGraph, w0: float, w1: float, p: PairParams, pred: Callable[[Node], bool]) -> list[Node]:
    m = p.negative_margin_s
    return [n for n in full.touching(w0 - m, w1 + m) if pred(n)]


def answer(probe: Probe, view: ContextGraph, full: ContextGraph, w0: float, p: PairParams
           ) -> tuple[str | None, dict[str, Any]]:
    """``(answer, meta)`` of ``probe`` on the window starting at ``w0`` from ``view``.

    ``view`` is the av view (gold answers: a negative needs the event absent from
    the *full* graph near the window) or the visual view (what the vision-only
    narration says: absent from the view is a negative). ``None``: not certain.
    """
    w1 = w0 + p.window_s
    strict = view.view_name != "visual"
    f, key = probe.form, probe.key
    meta: dict[str, Any] = {}

    def absent(pred) -> bool:
        return not _near(full if strict else view, w0, w1, p, pred)

    if f in ("sound", "action", "state"):
        kind = {"sound": SOUND, "action": ACTION, "state": STATE}[f]
        pred = lambda n: n.kind == kind and n.label == key[0]  # noqa: E731
        hits = _in(view, w0, w1, p, pred)
        twins = TWINS.get(key[0], ())
        twin_in = bool(twins) and bool(_in(view, w0, w1, p, lambda n: n.label in twins))
        if hits:
            if kind == SOUND:
                meta["offscreen"] = not any(n.on_screen is True for n in hits)
                meta["event_snr_db"] = max((n.snr_db for n in hits if n.snr_db is not None), default=None)
            return _YES, {**meta, "event_ids": [n.id for n in hits], "cross_modal": twin_in}
        if strict and _in(full, w0, w1, p, pred):
            return None, meta  # there, but not observable (inaudible, state out of frame)
        twin_out = bool(twins) and not _near(full, w0, w1, p, lambda n: n.label in twins)
        return (_NO, {"event_ids": [], "cross_modal": twin_out}) if absent(pred) or not strict else (None, meta)

    if f in ("source", "visible"):
        pred = lambda n: n.kind == SOUND and n.label == key[0]  # noqa: E731
        hits = _in(view, w0, w1, p, pred)
        near = [n for n in view.touching(w0, w1) if pred(n)]
        if hits:
            if f == "source":
                srcs = {n.source for n in near if n.source}
                if len(srcs) != 1 or any(not n.audible for n in _near(full, w0, w1, p, pred)):
                    return None, meta
                n = hits[0]
                return srcs.pop(), _sound_meta(hits, n)
            if len(near) != 1 or hits[0].on_screen is None:
                return None, meta
            return (_YES if hits[0].on_screen else _NO), _sound_meta(hits, hits[0])
        if f == "visible" or (strict and _in(full, w0, w1, p, pred)):
            return None, meta
        return (NONE_ANSWER, {"event_ids": []}) if absent(pred) or not strict else (None, meta)

    if f == "sound_of":
        pred = lambda n: n.kind == SOUND and n.source == key[0]  # noqa: E731
        hits = _in(view, w0, w1, p, pred)
        near = [n for n in view.touching(w0, w1) if pred(n)]
        if hits:
            labels = {n.label for n in near}
            if len(labels) != 1 or any(not n.audible for n in _near(full, w0, w1, p, pred)):
                return None, meta
            return labels.pop(), _sound_meta(hits, hits[0])
        if strict and _in(full, w0, w1, p, pred):
            return None, meta
        return (NONE_ANSWER, {"event_ids": []}) if absent(pred) or not strict else (None, meta)

    if f == "cause":
        pred = lambda n: n.kind == ACTION and n.label == key[0]  # noqa: E731
        hits = _in(view, w0, w1, p, pred)
        if hits:
            near = [n for n in view.touching(w0, w1) if pred(n)]
            if len(near) != 1:
                return None, meta
            eff = hits[0]
            cause = view.cause_of(eff.id) if view.has(eff.id) else None
            if cause is None or cause.kind != SOUND or cause.onset_s < w0 or not cause.audible:
                return None, meta  # the cause was not heard inside this window
            return cause.label, {
                "event_ids": [eff.id, cause.id],
                "lag_s": round(eff.onset_s - cause.onset_s, 3),
                "cause_end_before_query_s": round(w1 - cause.offset_s, 3),
                "offscreen": cause.on_screen is not True,
            }
        return (NONE_ANSWER, {"event_ids": []}) if absent(pred) else (None, meta)

    if f == "response":
        pred = lambda n: n.kind == SOUND and n.label == key[0]  # noqa: E731
        started = [n for n in _in(view, w0, w1, p, pred) if n.onset_s >= w0]
        near = [n for n in view.touching(w0, w1) if pred(n)]
        if started:
            if len(near) != 1 or any(not n.audible for n in _near(full, w0, w1, p, pred)):
                return None, meta
            c = started[0]
            eff = _action_effect(full, c)
            base = {"offscreen": c.on_screen is not True}
            if eff is None:
                if w1 - c.onset_s < p.response_wait_s:
                    return None, meta  # a response could still come after the question
                return NONE_ANSWER, {**base, "event_ids": [c.id]}
            if eff.overlap_s(w0, w1) < min(p.min_overlap_s, eff.offset_s - eff.onset_s):
                return None, meta  # it responded, but after the window
            return eff.label, {**base, "event_ids": [eff.id, c.id], "lag_s": round(eff.onset_s - c.onset_s, 3)}
        if near or (strict and _in(full, w0, w1, p, pred)):
            return None, meta
        return (NONE_ANSWER, {"event_ids": []}) if absent(pred) or not strict else (None, meta)

    if f == "before":
        nodes = []
        for label in key:
            pred = lambda n, l=label: n.kind in (SOUND, ACTION) and n.label == l  # noqa: E731
            near = [n for n in view.touching(w0, w1) if pred(n)]
            if len(near) != 1 or not (w0 <= near[0].onset_s < w1) or not near[0].audible:
                return None, meta
            nodes.append(near[0])
        a, b = nodes
        if abs(a.onset_s - b.onset_s) < p.tr_min_gap_s:
            return None, meta
        return (_YES if a.onset_s < b.onset_s else _NO), {"event_ids": [a.id, b.id]}
    raise ValueError(f"unknown probe form {probe.category}/{f}")


def _sound_meta(hits: list[Node], n: Node) -> dict[str, Any]:
    out: dict[str, Any] = {"event_ids": [h.id for h in hits], "source_visible": n.on_screen,
                           "offscreen": n.on_screen is not True, "foreground": n.foreground}
    if n.location:
        out["location"] = n.location
    if n.snr_db is not None:
        out["event_snr_db"] = n.snr_db
    return out


# --- pairs ----------------------------------------------------------------------------


def probe_pairs(g: ContextGraph, p: PairParams, rng: random.Random, per_probe: int = 1) -> list[Pair]:
    """Up to ``per_probe`` pairs of every probe of ``g`` (different windows each).

    A probe whose gold answers on the grid take two or more values gives
    pairs: ``contrast`` (two different non-``none`` answers) when it can,
    else ``presence``. Deterministic for a given ``rng`` state.
    """
    av = g.view("av")
    grid = window_grid(g.duration_s, p)
    out: list[Pair] = []
    for probe in recording_probes(g):
        by_answer: dict[str, list[tuple[float, dict[str, Any]]]] = {}
        for w0 in grid:
            a, meta = answer(probe, av, g, w0, p)
            if a is not None:
                by_answer.setdefault(a, []).append((w0, meta))
        if len(by_answer) < 2:
            continue
        answers = sorted(by_answer)
        real = [a for a in answers if a != NONE_ANSWER]
        used: set[tuple[float, float]] = set()
        for _ in range(per_probe):
            if probe.answer_type == "label" and len(real) >= 2:
                a, b = rng.sample(real, 2)
                kind = "contrast"
            elif probe.answer_type == "label":
                a, b = real[0], NONE_ANSWER
                kind = "presence"
            else:
                a, b = _YES, _NO
                kind = "presence" if probe.category == "AVH" else "contrast"
            wa, ma = rng.choice(by_answer[a])
            wb, mb = rng.choice(by_answer[b])
            if (wa, wb) in used:
                continue
            used.add((wa, wb))
            if rng.random() < 0.5:  # which of the two comes first says nothing
                (wa, ma, a), (wb, mb, b) = (wb, mb, b), (wa, ma, a)
            out.append(Pair(probe, (wa, wb), (a, b), kind, (ma, mb)))
    return out
