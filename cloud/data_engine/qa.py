"""Instruction QA from a context graph: windows, questions, answers from a view.

For each recording: :func:`make_windows` places clips of ``window_s``
seconds (half of them, at most, anchored on a sound -> reaction cause link so
the cause and its effect are both inside). For each window,
:func:`window_questions` poses questions from the joint audio-visual view, and
:func:`answer_in` answers any question from either view:

- ``narration=av`` answers from the av view (the ground truth a listener who
  also watches could know); these are the gold answers.
- ``narration=visual`` answers the *same* question from the vision-only view.
  A question that mentions an event the vision-only narration does not
  contain (``Question.refs``) cannot be written from it and is dropped;
  questions with computed answers (AVDN, AVSN, AVH) are answered with what the
  narration says, so off-screen sounds are missing from AVDN/AVSN and
  "did you hear X?" is ``no`` for an off-screen X.

Templates (label names verbatim, answers closed-form):

====  ==========  ==================================================  ===========
cat   form        question                                            answer
====  ==========  ==================================================  ===========
SSA   source      what made the {sound} sound?                        source
SSA   sound_of    what sound did the {source} make?                   sound label
SSA   visible     was the source of the {sound} sound in view?        yes / no
AVDN  dense       narrate the clip: ...                               ``0s chop; 3s timer_beep``
AVSN  summary     summarise the clip: ...                             ``kitchen; heard: ..; did: ..``
TR    cause       what caused {effect}?                               cause label
TR    response    what happened because of {cause}?                   effect label
                  (a label that recurs in the window is named "{label} at {second}s")
TR    first       which came first: {a} or {b}?                       label
TR    before      did {a} start before {b}?                           yes / no
TR    order       put in time order: {x}, {y}, {z}                    ``x, y, z``
AVH   sound       did you hear {label}?                               yes / no
AVH   action      did you {label} in this clip?                       yes / no
AVH   state       did you see {label}?                                yes / no
AVH   object      was there a {object} in view?                       yes / no
====  ==========  ==================================================  ===========
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Any, Iterable

from shared.labels import names

from cloud.data_engine.graph import ACTION, KINDS, SOUND, STATE, WEARER, ContextGraph, Node
from cloud.data_engine.narration import dense_items, stamp_s, summary_parts
from cloud.data_engine.records import format_dense, format_summary

__all__ = [
    "QAParams",
    "Window",
    "Question",
    "Pools",
    "OBJECT",
    "seed_for",
    "make_pools",
    "make_windows",
    "window_questions",
    "answer_in",
    "evidence_of",
    "event_ids_of",
    "noise_of",
]

OBJECT = "object"  # AVH probe kind for scene objects (the others are graph node kinds)
PROBE_KINDS = (SOUND, ACTION, STATE, OBJECT)
DENSE_QUESTION = "narrate the clip: list the sounds and your actions in time order as '<second>s <event>'"
SUMMARY_QUESTION = "summarise the clip as '<place>; heard: <sounds>; did: <actions>'"
_TAXONOMY = {SOUND: "audio_event", ACTION: "visual_action", STATE: "object_state"}


@dataclass(frozen=True)
class QAParams:
    """How windows are cut and how many questions of each kind a window gets."""

    window_s: float = 10.0
    min_overlap_s: float = 0.5  # an event must overlap a window this much to be "in" it
    ssa_per_window: int = 2
    tr_per_window: int = 3
    avh_positives_per_window: int = 2
    negatives_ratio: float = 1.0  # AVH negatives per positive
    hard_negative_share: float = 0.5
    negative_margin_s: float = 1.0  # a negative label is absent from the window widened by this
    tr_min_gap_s: float = 1.0  # ordered events start at least this far apart
    avdn_max_items: int = 6
    avsn_max_labels: int = 4
    noisy_below_db: float = 10.0


@dataclass(frozen=True)
class Window:
    index: int
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Question:
    """A question about one window, before it is answered from a view.

    ``refs`` are the events the question or its answer names: a view that
    lacks one of them cannot pose the question. ``probe`` is ``(kind, label)``
    for AVH.
    """

    category: str
    form: str
    text: str
    answer_type: str
    refs: tuple[str, ...] = ()
    probe: tuple[str, str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Pools:
    """Where AVH negatives come from.

    ``labels[kind]``: every label of a kind (taxonomy plus labels seen in the
    dataset); ``env_labels[env][kind]``: labels seen in train recordings of an
    environment (plausible, hence hard, negatives); ``objects``: every object
    that can be seen in some recording (annotated scene objects and sources
    of on-screen events; never an unseen agent such as "neighbour").
    """

    labels: dict[str, tuple[str, ...]]
    env_labels: dict[str, dict[str, tuple[str, ...]]]
    objects: tuple[str, ...]


def seed_for(*parts: Any) -> int:
    """A 64-bit seed from the parts (stable across runs and machines)."""
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "big")


def noise_of(snr_db: float | None, noisy_below_db: float) -> str:
    return "unknown" if snr_db is None else "noisy" if snr_db < noisy_below_db else "quiet"


def _objects_of(g: ContextGraph) -> set[str]:
    """Every object or agent a recording mentions (never an object negative)."""
    return set(g.scene_objects) | {n.source for n in g.nodes if n.source}


def make_pools(train: Iterable[ContextGraph], every: Iterable[ContextGraph]) -> Pools:
    """Negative pools: environment priors from train recordings only; the
    label and object vocabularies from every recording."""
    every = list(every)
    labels = {k: set(names(t)) for k, t in _TAXONOMY.items()}
    objects: set[str] = set()
    for g in every:
        for n in g.nodes:
            labels[n.kind].add(n.label)
        objects |= set(g.scene_objects)
    env: dict[str, dict[str, set[str]]] = {}
    for g in train:
        per = env.setdefault(g.environment, {k: set() for k in KINDS})
        for n in g.nodes:
            per[n.kind].add(n.label)
    return Pools(
        labels={k: tuple(sorted(v)) for k, v in labels.items()},
        env_labels={e: {k: tuple(sorted(v)) for k, v in per.items()} for e, per in sorted(env.items())},
        objects=tuple(sorted(objects)),
    )


# --- windows -------------------------------------------------------------------


def make_windows(g: ContextGraph, n: int, window_s: float, rng: random.Random) -> list[Window]:
    """Up to ``n`` windows, sorted by start, on a 0.1 s grid.

    At most half (rounded up) are anchored on cause links whose cause is a
    sound: the window starts at or before the cause and ends at least 1 s
    after the effect starts. The rest are stratified: the possible starts
    are cut into equal bins and each window starts at random in its own bin,
    so the whole recording is covered.
    """
    if g.duration_s <= window_s:
        return [Window(0, 0.0, round(g.duration_s, 3))]
    last = g.duration_s - window_s
    starts: list[float] = []
    anchors, done = [], set()
    for l in g.links:
        cause, effect = g.node(l.cause), g.node(l.effect)
        if cause.kind != SOUND or cause.id in done:
            continue
        lo, hi = max(0.0, effect.onset_s + 1.0 - window_s), min(cause.onset_s, last)
        if lo <= hi:
            anchors.append((lo, hi))
            done.add(cause.id)
    rng.shuffle(anchors)
    for lo, hi in anchors[: (n + 1) // 2]:
        starts.append(min(max(round(rng.uniform(lo, hi), 1), round(lo + 0.05, 1)), hi))
    m = n - len(starts)
    for i in range(m):
        starts.append(round(rng.uniform(last * i / m, last * (i + 1) / m), 1))
    starts = sorted({round(min(max(s, 0.0), last), 1) for s in starts})
    return [Window(i, s, round(s + window_s, 3)) for i, s in enumerate(starts)]


# --- answering -----------------------------------------------------------------


def visible_objects(view: ContextGraph, w: Window, p: QAParams) -> set[str]:
    """Objects certainly in frame in the window: sources of events whose
    source is seen (``Node.source_seen``) in a node of ``view``."""
    return {n.source for n in view.inside(w.start_s, w.end_s, p.min_overlap_s)
            if n.source_seen and n.source and n.source != WEARER}


def _present(view: ContextGraph, w: Window, p: QAParams, kind: str, label: str) -> bool:
    if kind == OBJECT:
        return label in visible_objects(view, w, p)
    return any(n.kind == kind and n.label == label for n in view.inside(w.start_s, w.end_s, p.min_overlap_s))


def answer_in(q: Question, view: ContextGraph, w: Window, p: QAParams) -> str | None:
    """The closed-form answer to ``q`` from ``view``, or None if the view cannot pose it."""
    if not all(view.has(r) for r in q.refs):
        return None
    nodes = [view.node(r) for r in q.refs]
    f = q.form
    if q.category == "SSA":
        n = nodes[0]
        return {"source": n.source, "sound_of": n.label, "visible": "yes" if n.on_screen else "no"}[f]
    if f == "dense":
        return format_dense(dense_items(view, w.start_s, w.end_s, p.min_overlap_s, p.avdn_max_items))
    if f == "summary":
        return format_summary(*summary_parts(view, w.start_s, w.end_s, p.min_overlap_s, p.avsn_max_labels))
    if f == "cause":
        return nodes[1].label
    if f == "response":
        return nodes[1].label
    if f == "first":
        return min(nodes, key=lambda n: n.onset_s).label
    if f == "before":
        return "yes" if nodes[0].onset_s < nodes[1].onset_s else "no"
    if f == "order":
        return ", ".join(n.label for n in sorted(nodes, key=lambda n: n.onset_s))
    if q.category == "AVH":
        kind, label = q.probe
        return "yes" if _present(view, w, p, kind, label) else "no"
    raise ValueError(f"unknown question form {q.category}/{f}")


def event_ids_of(q: Question, av: ContextGraph, w: Window, p: QAParams) -> list[str]:
    """The events the av answer rests on (none for an AVH negative)."""
    if q.refs:
        return list(q.refs)
    inside = av.inside(w.start_s, w.end_s, p.min_overlap_s)
    if q.category in ("AVDN", "AVSN"):
        return [n.id for n in inside if n.kind in (SOUND, ACTION)]
    kind, label = q.probe
    if kind == OBJECT:
        return [n.id for n in inside if n.source_seen and n.source == label]
    return [n.id for n in inside if n.kind == kind and n.label == label]


def evidence_of(q: Question, av: ContextGraph) -> str:
    """What a model needs to answer ``q`` correctly, judged on the av view.

    SSA: audio, plus vision when the source is on screen. AVDN/AVSN: both
    (they list sounds and actions). TR: the modalities of the events named.
    AVH: audio for sounds, vision for actions, states and objects.
    """
    if q.category == "SSA":
        return "audiovisual" if av.node(q.refs[0]).on_screen else "audio"
    if q.category in ("AVDN", "AVSN"):
        return "audiovisual"
    if q.category == "AVH":
        return "audio" if q.probe[0] == SOUND else "visual"
    mods = {"audio" if av.node(r).kind == SOUND else "visual" for r in q.refs}
    return mods.pop() if len(mods) == 1 else "audiovisual"


# --- questions -----------------------------------------------------------------


def _unique(nodes: list[Node], key) -> set:
    seen: dict[Any, int] = {}
    for n in nodes:
        k = key(n)
        seen[k] = seen.get(k, 0) + 1
    return {k for k, c in seen.items() if c == 1}


def _ssa(av: ContextGraph, w: Window, p: QAParams, rng: random.Random) -> list[Question]:
    near = [n for n in av.touching(w.start_s, w.end_s) if n.kind == SOUND]
    one_label = _unique(near, lambda n: n.label)
    one_source = _unique(near, lambda n: n.source)
    sounds = [n for n in av.inside(w.start_s, w.end_s, p.min_overlap_s)
              if n.kind == SOUND and n.source and n.label in one_label]
    rng.shuffle(sounds)
    out = []
    for n in sounds[: p.ssa_per_window]:
        forms = ["source", "visible"] + (["sound_of"] if n.source in one_source else [])
        form = rng.choice(forms)
        text = {
            "source": f"what made the {n.label} sound?",
            "visible": f"was the source of the {n.label} sound in view?",
            "sound_of": f"what sound did the {n.source} make?",
        }[form]
        meta = {"source_visible": n.on_screen, "offscreen": n.on_screen is not True, "foreground": n.foreground}
        if n.location:
            meta["location"] = n.location
        if n.snr_db is not None:
            meta["event_snr_db"] = n.snr_db
        out.append(Question("SSA", form, text, "yes_no" if form == "visible" else "label", (n.id,), meta=meta))
    return out


def _tr(av: ContextGraph, w: Window, p: QAParams, rng: random.Random) -> list[Question]:
    near = av.touching(w.start_s, w.end_s)
    one_label = _unique(near, lambda n: n.label)
    begun = [n for n in av.inside(w.start_s, w.end_s, p.min_overlap_s) if w.start_s <= n.onset_s < w.end_s]
    ids = {n.id for n in begun}
    starts = [n for n in begun if n.label in one_label]  # ordering questions: labels alone must be unambiguous

    def name(n: Node) -> str | None:
        """The label, or "label at <s>s" when the label recurs near the window (None if still ambiguous)."""
        if n.label in one_label:
            return n.label
        st = stamp_s(n.onset_s, w.start_s)
        same = [m for m in near if m.label == n.label and stamp_s(m.onset_s, w.start_s) == st]
        return f"{n.label} at {st}s" if len(same) == 1 else None

    def off(*ns: Node) -> bool:
        return any(n.kind == SOUND and n.on_screen is not True for n in ns)

    # One form per link first (cause or response, at random), links whose cause is
    # a sound ahead of the rest (audio leads vision: the case that needs both);
    # the other form of each link only after that.
    first_forms: list[tuple[bool, Question]] = []
    second_forms: list[Question] = []
    for l in av.links:
        if l.effect not in ids or l.cause not in ids:
            continue
        eff, cau = av.node(l.effect), av.node(l.cause)
        meta = {"lag_s": round(l.lag_s, 3), "offscreen": off(eff, cau)}
        pair = []
        if name(eff):
            pair.append(Question("TR", "cause", f"what caused {name(eff)}?", "label", (eff.id, cau.id), meta=meta))
        if name(cau) and len(av.effects_of(cau.id)) == 1:
            pair.append(Question("TR", "response", f"what happened because of {name(cau)}?", "label",
                                 (cau.id, eff.id), meta=dict(meta)))
        if not pair:
            continue
        rng.shuffle(pair)
        first_forms.append((cau.kind == SOUND, pair[0]))
        second_forms += pair[1:]
    rng.shuffle(first_forms)
    rng.shuffle(second_forms)
    causal = [q for s, q in first_forms if s] + [q for s, q in first_forms if not s] + second_forms

    pairs = [(a, b) for i, a in enumerate(starts) for b in starts[i + 1:]
             if a.label != b.label and abs(a.onset_s - b.onset_s) >= p.tr_min_gap_s]
    triples = [(a, b, c) for a, b in pairs for c in starts
               if c.onset_s - b.onset_s >= p.tr_min_gap_s and c.label not in (a.label, b.label)]
    other = []
    forms = ["first", "before", "order"]
    rng.shuffle(forms)
    for form in forms:
        if form == "order" and triples:
            tri = list(rng.choice(triples))
            rng.shuffle(tri)
            text = "put in time order: " + ", ".join(n.label for n in tri)
            other.append(Question("TR", "order", text, "sequence", tuple(n.id for n in tri), meta={"offscreen": off(*tri)}))
        elif form in ("first", "before") and pairs:
            a, b = rng.choice(pairs)
            if rng.random() < 0.5:
                a, b = b, a
            text = f"which came first: {a.label} or {b.label}?" if form == "first" else f"did {a.label} start before {b.label}?"
            other.append(Question("TR", form, text, "label" if form == "first" else "yes_no", (a.id, b.id),
                                  meta={"offscreen": off(a, b)}))
    mixed = [q for pair in zip(causal, other) for q in pair] + causal[len(other):] + other[len(causal):]
    return mixed[: p.tr_per_window]


def _avh(g: ContextGraph, av: ContextGraph, w: Window, p: QAParams, rng: random.Random, pools: Pools) -> list[Question]:
    inside = av.inside(w.start_s, w.end_s, p.min_overlap_s)
    present = {k: sorted({n.label for n in inside if n.kind == k}) for k in KINDS}
    present[OBJECT] = sorted(visible_objects(av, w, p))
    order = [SOUND] + rng.sample([ACTION, STATE, OBJECT], 3)  # sounds lead: they are what AVH is about here

    positives: list[tuple[str, str]] = []
    left = {k: list(v) for k, v in present.items()}
    while len(positives) < p.avh_positives_per_window and any(left.values()):
        for k in order:
            if left[k] and len(positives) < p.avh_positives_per_window:
                lbl = rng.choice(left[k])
                left[k].remove(lbl)
                positives.append((k, lbl))

    # Absent = no event of that label anywhere near the window in the *full* graph.
    near = g.touching(w.start_s - p.negative_margin_s, w.end_s + p.negative_margin_s)
    elsewhere = {k: {n.label for n in g.nodes if n.kind == k} for k in KINDS}
    prior = pools.env_labels.get(g.environment, {})
    absent, hard = {}, {}
    for k in KINDS:
        absent[k] = [l for l in pools.labels[k] if l not in {n.label for n in near if n.kind == k}]
        hard[k] = [l for l in absent[k] if l in elsewhere[k] or l in prior.get(k, ())]
    absent[OBJECT] = [o for o in pools.objects if o not in _objects_of(g)]
    hard[OBJECT] = []
    n_neg = round(p.negatives_ratio * max(len(positives), 1)) if p.negatives_ratio > 0 else 0
    negatives: list[tuple[str, str, bool]] = []
    used: set[tuple[str, str]] = set()
    while len(negatives) < n_neg and any(absent[k] for k in order):
        for k in order:
            if len(negatives) >= n_neg:
                break
            h = [l for l in hard[k] if (k, l) not in used]
            e = [l for l in absent[k] if (k, l) not in used and l not in h]
            use_hard = bool(h) and (rng.random() < p.hard_negative_share or not e)
            pool = h if use_hard else e
            if pool:
                lbl = rng.choice(pool)
                used.add((k, lbl))
                negatives.append((k, lbl, use_hard))
            absent[k] = [l for l in absent[k] if (k, l) not in used]

    def text(k: str, lbl: str) -> str:
        return {SOUND: f"did you hear {lbl}?", ACTION: f"did you {lbl} in this clip?",
                STATE: f"did you see {lbl}?", OBJECT: f"was there a {lbl} in view?"}[k]

    out = []
    for k, lbl in positives:
        meta: dict[str, Any] = {"probe_kind": k, "label": lbl, "polarity": "positive"}
        if k == SOUND:
            vis = [n.on_screen for n in inside if n.kind == SOUND and n.label == lbl]
            meta["source_visible"] = any(v is True for v in vis)
            meta["offscreen"] = not meta["source_visible"]
        out.append(Question("AVH", k, text(k, lbl), "yes_no", probe=(k, lbl), meta=meta))
    for k, lbl, is_hard in negatives:
        meta = {"probe_kind": k, "label": lbl, "polarity": "negative", "hard": is_hard}
        out.append(Question("AVH", k, text(k, lbl), "yes_no", probe=(k, lbl), meta=meta))
    return out


def window_questions(g: ContextGraph, w: Window, p: QAParams, rng: random.Random, pools: Pools) -> list[Question]:
    """Every question of one window, category by category (SSA, AVDN, AVSN, TR, AVH)."""
    av = g.view("av")
    inside = av.inside(w.start_s, w.end_s, p.min_overlap_s)
    narr_meta = {"offscreen": any(n.kind == SOUND and n.on_screen is not True for n in inside)}
    return [
        *_ssa(av, w, p, rng),
        Question("AVDN", "dense", DENSE_QUESTION, "dense", meta=dict(narr_meta)),
        Question("AVSN", "summary", SUMMARY_QUESTION, "summary", meta=dict(narr_meta)),
        *_tr(av, w, p, rng),
        *_avh(g, av, w, p, rng, pools),
    ]
