"""Instruction data for the answerer: (notes, wearer's question) -> one faithful sentence.

A 135M-parameter model, prompted, copies the notes back or invents sounds
(measured: "Sounds heard: chopping (9 to 6 ..." echoed, "I heard a voice saying
'chopping'", a doorbell that no note named). So the answerer is instruction-tuned
(LoRA, ``cloud/lm/tune.py``) on sentences that say exactly what the notes say,
the EgoAVU idea at the answerer's end.

Examples are drawn at random, with no recording needed: a window's events (0-6
sounds, some heard twice, 0-4 actions, 0-3 object states at random times in the last 10 s,
labels from ``shared.labels``) and the gate's trust, written by
``evidence.evidence_text``; a question of one of the wearer-query kinds
(``shared/queries.py`` phrasings, plus "what did you hear?" and "what did I
just do?"); and the sentence a faithful answer gives (`target_sentence`).
The sentence names a sound only if the notes list it. Deterministic per seed.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from cloud.lm.evidence import Event, Evidence, label_words, _ago
from cloud.model.perception import FRAME_LABELS, N_ACTIONS, SOUND_LABELS
from shared.queries import COUNTABLE, SOUND_NAMES, WHY, YES_NO, count_text, order_text

__all__ = ["HEARD_QUESTIONS", "DID_QUESTIONS", "Example", "random_evidence", "target_sentence", "make_examples"]

HEARD_QUESTIONS = ("what did you hear?", "what sounds did you hear?", "what did you just hear?")
DID_QUESTIONS = ("what did I just do?", "what was I doing?")
_ACTIONS = FRAME_LABELS[:N_ACTIONS]
_STATES = FRAME_LABELS[N_ACTIONS:]


@dataclass(frozen=True)
class Example:
    question: str
    evidence: Evidence
    sentence: str


def _event(rng: random.Random, label: str, modality: str) -> Event:
    dur = rng.choice([0.5, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0])
    end = -rng.choice([0.0, 0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0])
    return Event(label, modality, max(end - dur, -10.0), end, round(rng.uniform(0.55, 1.0), 2))


def _second_run(rng: random.Random, first: Event) -> Event | None:
    """Another run of ``first``'s label that does not touch it (a sound heard twice), or None."""
    for _ in range(4):
        e = _event(rng, first.label, first.modality)
        if e.offset_s < first.onset_s - 0.5 or e.onset_s > first.offset_s + 0.5:
            return e
    return None


def random_evidence(rng: random.Random) -> Evidence:
    """A window's notes drawn as the teacher's real ones look (measured on the paired bench:
    up to 8 items, several sights among the sounds, a sound heard twice in a window)."""
    sounds = rng.sample(SOUND_LABELS, rng.choice([0, 1, 1, 2, 2, 3, 3, 4, 5, 6]))
    actions = rng.sample(_ACTIONS, rng.choice([0, 1, 1, 2, 2, 3, 4]))
    states = rng.sample(_STATES, rng.choice([0, 1, 1, 2, 3]))
    events = [_event(rng, l, "audio") for l in sounds] + [_event(rng, l, "visual") for l in actions]
    events += [_event(rng, l, "state") for l in states]
    events += [x for x in (_second_run(rng, e) for e in events if rng.random() < 0.2) if x is not None]
    events.sort(key=lambda e: (e.onset_s, e.label))
    return Evidence(events, round(rng.uniform(0.1, 1.0), 2), round(rng.uniform(0.1, 1.0), 2), 10.0)


def _list(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _when(e: Event) -> str:
    a = _ago(e.offset_s)
    return "just now" if a == "just now" else a


def target_sentence(question: str, ev: Evidence, kind: str, label: str | None = None) -> str:
    """The faithful one-sentence answer of ``kind`` (heard, sound_id, yes_no, why, count, order, did)."""
    sounds = [e for e in ev.events if e.modality == "audio"]
    actions = [e for e in ev.events if e.modality == "visual"]
    if kind == "heard":
        if not sounds:
            return "I did not hear anything."
        heard = list(dict.fromkeys(e.label for e in sounds))  # once each, by first onset (as the notes list them)
        return f"I heard {_list([label_words(l) for l in heard])}."
    if kind == "sound_id":
        if not sounds:
            return "I did not hear any sound."
        last = max(sounds, key=lambda e: (e.offset_s, e.onset_s))
        return f"That was {label_words(last.label)}, {_when(last)}."
    if kind == "yes_no":
        hit = [e for e in sounds if e.label == label]
        w = label_words(label)
        return f"Yes, I heard {w} {_when(hit[-1])}." if hit else f"No, I did not hear {w}."
    if kind == "why":
        act = [e for e in actions if e.label == label]
        if not act:
            return f"I did not see you {label_words(label)}."
        before = [e for e in sounds if e.onset_s <= act[-1].onset_s]
        if not before:
            return "I did not hear anything that caused it."
        cause = max(before, key=lambda e: e.onset_s)
        return f"Because of {label_words(cause.label)}, {_when(cause)}."
    if kind == "count":
        n = sum(e.label == label for e in sounds)
        w = label_words(label)
        return f"I did not hear {w}." if n == 0 else f"I heard {w} {({1: 'once', 2: 'twice'}).get(n, f'{n} times')}."
    if kind == "order":
        a, b = label.split("|")
        first = {e.label: e.onset_s for e in sounds}
        have = [l for l in (a, b) if l in first]
        if not have:
            return f"I heard neither {label_words(a)} nor {label_words(b)}."
        if len(have) == 1:
            return f"I only heard {label_words(have[0])}."
        return f"{label_words(min(have, key=lambda l: first[l])).capitalize()} came first."
    if kind == "did":
        if not actions:
            return "I did not see you do anything."
        last = max(actions, key=lambda e: (e.offset_s, e.onset_s))
        return f"You {label_words(last.label)}, {_when(last)}."
    raise ValueError(f"unknown question kind {kind!r}")


def _question(rng: random.Random, ev: Evidence) -> tuple[str, str, str | None]:
    """(question, kind, label): half the label questions ask about something in the notes."""
    heard = [e.label for e in ev.events if e.modality == "audio"]
    seen = [e.label for e in ev.events if e.modality == "visual"]
    kind = rng.choice(["heard", "heard", "heard", "sound_id", "sound_id", "yes_no", "yes_no", "yes_no", "why",
                       "count", "order", "did"])
    if kind == "heard":
        return rng.choice(HEARD_QUESTIONS), kind, None
    if kind == "sound_id":
        return "what was that sound?", kind, None
    if kind == "did":
        return rng.choice(DID_QUESTIONS), kind, None
    if kind == "yes_no":
        if rng.random() < 0.5:
            text, labels = rng.choice(YES_NO)
            return text, kind, labels[0]
        label = rng.choice(heard) if heard and rng.random() < 0.5 else rng.choice(SOUND_LABELS)
        return f"did you hear {label_words(label)}?", kind, label
    if kind == "why":
        pool = [l for l in seen if l in WHY and "{" not in WHY[l]] or [l for l in WHY if "{" not in WHY[l]]
        label = rng.choice(pool)
        return WHY[label], kind, label
    if kind == "count":
        label = rng.choice(sorted(COUNTABLE))
        return count_text(label), kind, label
    a, b = rng.sample(sorted(SOUND_NAMES), 2)
    return order_text(a, b), kind, f"{a}|{b}"


def make_examples(n: int, seed: int = 0) -> list[Example]:
    """``n`` examples; count questions get repeated sounds so "3 times" occurs."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        ev = random_evidence(rng)
        q, kind, label = _question(rng, ev)
        if kind == "count" and rng.random() < 0.6:
            extra = [_event(rng, label, "audio") for _ in range(rng.choice([1, 2, 3]))]
            ev = Evidence(sorted(ev.events + extra, key=lambda e: (e.onset_s, e.label)), ev.trust_audio,
                          ev.trust_visual, ev.window_s)
        out.append(Example(q[0].upper() + q[1:], ev, target_sentence(q, ev, kind, label)))
    return out
