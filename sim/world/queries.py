"""Questions the wearer asks, with exact gold answers from the annotations.

The kinds, their phrasings and answer types are the wearer-query contract in
``shared/queries.py`` (the edge recognises the same phrasings); this module
decides when each question is asked and what its gold answer is.

Every answer is closed-form and short so scoring is exact: a label name
(``microwave_beep``), ``yes`` / ``no``, an object name (``salt``) or a number
(``3``). Each query names the events its answer rests on (``event_ids``), so
the simulator can tell whether the evidence was sensed.

Kinds:

- ``sound_id``  "what was that sound?" shortly after a distinct sound, with no
  other distinct sound in between;
- ``yes_no``    "did someone ring?" about everything heard so far (yes and no
  answers both occur: the no's are hallucination probes);
- ``why``       "why did I open the oven?" -> the sound that caused it;
- ``why_stop``  "why did I stop chopping?" -> the sound that interrupted it;
- ``object``    "what did they ask me for?" -> the requested object;
- ``count``     "how many times did the microwave beep?" -> number of beeps;
- ``order``     "which came first, the knock or the kettle whistle?";
- ``action``    "what did I just do?" 0.5-2 s after a short action (``ACTIONS``:
  open the oven, pick up the phone, ...) with no other one since -> its label;
- ``activity``  "what am I doing?" while an activity (``ACTIVITIES``: chop, read,
  ...) of at least 2.5 s goes on, 1.5 s after it began -> its label.

The last two are about what the wearer did, which only frames show: a policy
that kept the camera off cannot answer them.
"""
from __future__ import annotations

import numpy as np

from shared.annotations import Event, Query
from shared.queries import (ACTION_TEXT, ACTIONS, ACTIVITIES, ACTIVITY_TEXT, COUNTABLE, DISTINCT_SOUNDS, GERUNDS, NO,
                            OBJECT_TEXT, SOUND_ID_TEXT, WHY, YES, YES_NO, count_text, order_text, why_stop_text)

__all__ = ["DISTINCT_SOUNDS", "make_queries"]


def _candidates(events: list[Event], interrupted: dict[str, str], T: float, rng: np.random.Generator,
                plausible: set[str] | None):
    by_id = {e.id: e for e in events}
    distinct = [e for e in events if e.label in DISTINCT_SOUNDS]
    out: list[Query] = []

    def q(kind, t, text, answer, ids):
        if t <= T:
            out.append(Query("", round(float(t), 3), text, str(answer), kind, list(ids)))

    for e in distinct:
        t = e.offset_s + float(rng.uniform(0.5, 2.0))
        clash = [o for o in distinct if o is not e and o.onset_s < t and o.offset_s > e.onset_s - 0.5]
        if not clash:
            q("sound_id", t, SOUND_ID_TEXT, e.label, [e.id])
    t_late = float(rng.uniform(0.7, 1.0)) * T
    for text, labels in YES_NO:
        if plausible is not None and not set(labels) & plausible:
            continue  # "did a car honk?" in an office is too easy a "no"
        hits = [e.id for e in events if e.label in labels and e.onset_s < t_late]
        present_later = any(e.label in labels for e in events)
        if hits or not present_later:  # a "no" only if it never happens at all
            q("yes_no", t_late, text, YES if hits else NO, hits)
    for e in events:
        cause = by_id.get(e.cause) if e.cause else None
        if e.label in WHY and cause is not None and cause.modality in ("audio", "audiovisual"):
            text = WHY[e.label].format(object=e.attrs.get("object", "it"))
            q("why", e.offset_s + float(rng.uniform(0.5, 3.0)), text, cause.label, [e.id, cause.id])
        if e.label == "speech" and e.attrs.get("request"):
            effects = [x for x in events if x.cause == e.id]
            t = (effects[0].offset_s if effects else e.offset_s) + float(rng.uniform(0.5, 2.0))
            q("object", t, OBJECT_TEXT, e.attrs["object"], [e.id] + [x.id for x in effects])
        if e.label in COUNTABLE and e.attrs.get("n_bursts") and e.attrs.get("origin") == "procedural":
            q("count", e.offset_s + float(rng.uniform(0.5, 2.0)), count_text(e.label),
              int(e.attrs["n_bursts"]), [e.id])
    for effect_id, act_id in interrupted.items():
        effect, act = by_id.get(effect_id), by_id.get(act_id)
        cause = by_id.get(effect.cause) if effect is not None and effect.cause else None
        if act is None or cause is None or act.label not in GERUNDS:
            continue
        q("why_stop", effect.onset_s + float(rng.uniform(1.0, 3.0)), why_stop_text(act.label),
          cause.label, [act.id, effect.id, cause.id])
    short = [e for e in events if e.label in ACTIONS]
    for e in short:
        t = e.offset_s + float(rng.uniform(0.5, 2.0))
        if not any(o is not e and e.onset_s < o.onset_s <= t for o in short):  # the last one before t
            q("action", t, ACTION_TEXT, e.label, [e.id])
    for e in events:
        if e.label in ACTIVITIES and e.offset_s - e.onset_s >= 2.5:
            q("activity", float(rng.uniform(e.onset_s + 1.5, e.offset_s - 0.5)), ACTIVITY_TEXT, e.label, [e.id])
    labels_once = {}
    for e in distinct:
        labels_once.setdefault(e.label, []).append(e)
    singles = [v[0] for v in labels_once.values() if len(v) == 1]
    if len(singles) >= 2:
        i, j = sorted(rng.choice(len(singles), 2, replace=False))
        a, b = sorted((singles[i], singles[j]), key=lambda e: e.onset_s)
        if b.onset_s - a.onset_s > 0.5:
            first, second = (a, b) if rng.random() < 0.5 else (b, a)
            q("order", max(a.offset_s, b.offset_s) + float(rng.uniform(0.5, 2.0)),
              order_text(first.label, second.label), a.label, [a.id, b.id])
    return out


def make_queries(events: list[Event], interrupted: dict[str, str], duration_s: float, n: int,
                 rng: np.random.Generator, plausible: set[str] | None = None) -> list[Query]:
    """Up to ``n`` queries over ``events`` (final ids), kinds spread out, sorted by time.

    Args:
        interrupted: chain response id -> id of the activity it cut short.
        plausible: sound labels this scene can produce; yes/no questions are
            asked only about those, so a "no" is a hard negative.
    """
    cands = _candidates(events, interrupted, duration_s, rng, plausible)
    by_kind: dict[str, list[Query]] = {}
    for c in cands:
        by_kind.setdefault(c.kind, []).append(c)
    for qs in by_kind.values():
        order = rng.permutation(len(qs))
        qs[:] = [qs[i] for i in order]
    kinds = sorted(by_kind)
    kinds = [kinds[i] for i in rng.permutation(len(kinds))]
    chosen: list[Query] = []
    while len(chosen) < n and any(by_kind[k] for k in kinds):
        for k in kinds:  # round-robin over kinds: variety before volume
            if by_kind[k] and len(chosen) < n:
                chosen.append(by_kind[k].pop())
    chosen.sort(key=lambda q: (q.t_s, q.kind))
    for i, q in enumerate(chosen):
        q.id = f"q{i:03d}"
    return chosen
