"""Parity: the native binary reads and answers wearer questions exactly as the Python edge does.

`earshot-edge query-check` reads one question per line (text, time, a memory of detections,
a gold answer) and prints how the device reads it (kind, answer type, the labels it names),
its local answer and whether that matches gold, and the text after Python's lower() and
strip(). The same lines go through shared/queries.py and edge/local_answer.py here and every
field must be equal: every kind and phrasing of the contract (shared/queries.py), awkward
texts (case, Unicode white space and letters, punctuation, overlapping phrases), every
Unicode code point, the questions a small generated world asks (sim/world), and the visual
kinds ("what did I just do?", "what am I doing?") on memories of sounds and seen actions
built to sit on each edge of their rules (look-backs, the latest moment, ties).
"""
from __future__ import annotations

import itertools
import json
import subprocess

import numpy as np
import pytest

from edge.local_answer import (ACTION_LOOKBACK_S, ACTIVITY_LOOKBACK_S, LOOKBACK_S, SAME_MOMENT_S, LocalMemory,
                               answer_locally)
from shared import queries
from shared.labels import names

AUDIO = names("audio_event")
VISUAL = names("visual_action")


def native_check(binary, lines: list[dict]) -> list[dict]:
    """The binary's reading of each line (earshot-edge query-check)."""
    stdin = "".join(json.dumps(line) + "\n" for line in lines)
    proc = subprocess.run([str(binary), "query-check"], input=stdin.encode(), capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    # split on "\n" only: splitlines() would also split inside a text at U+2028, U+0085, ...
    out = [json.loads(x) for x in proc.stdout.decode().split("\n")[:-1]]
    assert len(out) == len(lines)
    return out


def python_check(line: dict) -> dict:
    """The same fields from the Python edge."""
    memory = LocalMemory()
    for t_s, label, score in line.get("memory", []):
        memory.add(t_s, label, score, "trigger")
    text = line["text"]
    kind = queries.query_kind(text)
    answer = answer_locally(memory, text, line["t_s"])
    return {"kind": kind, "answer_type": queries.KINDS[kind], "labels": queries.labels_named(text), "answer": answer,
            "correct": queries.answer_matches(answer, line.get("gold")), "lower": text.lower(), "strip": text.strip()}


def assert_same(binary, lines: list[dict]) -> list[dict]:
    native = native_check(binary, lines)
    for line, got in zip(lines, native):
        assert got == python_check(line), line
    return native


def contract_texts() -> list[str]:
    """Every phrasing of shared/queries.py, filled in every way the contract allows."""
    texts = [queries.SOUND_ID_TEXT, queries.OBJECT_TEXT, queries.ACTION_TEXT, queries.ACTIVITY_TEXT,
             *(t for t, _ in queries.YES_NO)]
    texts += [t.format(object=o) for t in queries.WHY.values() for o in ("salt", "it", "kettle", "phone")]
    texts += [queries.why_stop_text(a) for a in queries.GERUNDS]
    texts += [queries.count_text(label) for label in queries.COUNTABLE]
    texts += [queries.order_text(a, b) for a, b in itertools.permutations(queries.SOUND_NAMES, 2)]
    return texts


def memories(rng: np.random.Generator, text: str, t_s: float) -> list[list]:
    """Memories that make the answer depend on the rules: empty, the named sounds in either
    order or alone, bursts (episodes), ties, detections after the question or out of look-back,
    labels that are not sounds (actions and activities seen, an object state)."""
    named = queries.labels_named(text) or ["knock"]
    pool = (named * 3 + list(rng.choice(AUDIO, 3)) + ["open_oven", "oven_door_open"] + list(rng.choice(VISUAL, 3))
            + [str(rng.choice(queries.ACTIONS)), str(rng.choice(queries.ACTIVITIES))])
    out = [[], [[t_s - 2.0, lab, 0.8] for lab in named], [[t_s - 2.0 - i, lab, 0.8] for i, lab in enumerate(named)],
           [[t_s - 1.0, named[-1], 0.9]], [[t_s - 1.0, named[0], 0.5], [t_s - 1.0, "dishes", 0.5]],
           [[t_s - LOOKBACK_S - 1.0, named[0], 0.9], [t_s + 0.5, named[-1], 0.9]],
           [[t_s - 3.0, "pour", 0.7], [t_s - 0.5, "stir", 0.6], [t_s - 0.25, named[0], 0.5]]]
    for _ in range(4):
        times = np.sort(rng.uniform(t_s - 15.0, t_s + 1.0, rng.integers(1, 9)))
        times = np.round(times * 4) / 4  # on hops, so ties and 1 s gaps happen
        out.append([[float(t), str(rng.choice(pool)), float(rng.choice([0.5, 0.7, 0.9]))] for t in times])
    return out


def golds(rng: np.random.Generator, text: str) -> list:
    named = queries.labels_named(text)
    return [None, "", queries.YES, " No ", "2", "unknown", *(lab.upper() for lab in named)]


def test_every_kind_and_phrasing_reads_and_answers_alike(native_bin):
    rng = np.random.default_rng(18)
    texts = contract_texts() + ["tell me a joke", ""]
    lines = []
    for text in texts:
        t_s = float(rng.uniform(12.0, 40.0))
        g = golds(rng, text)
        for i, memory in enumerate(memories(rng, text, t_s)):
            lines.append({"text": text, "t_s": t_s, "memory": memory, "gold": g[i % len(g)]})
    native = assert_same(native_bin, lines)
    # The comparison has teeth: every kind, both yes and no, counts above one, both sounds of
    # an order question, wrong and right answers all occur.
    assert {n["kind"] for n in native} == set(queries.KINDS)
    answers = {n["kind"]: set() for n in native}
    for n in native:
        answers[n["kind"]].add(n["answer"])
    assert {"yes", "no"} <= answers["yes_no"] and max(int(a) for a in answers["count"]) >= 2
    assert len(answers["order"]) >= len(queries.DISTINCT_SOUNDS) and "unknown" in answers["sound_id"]
    # the visual kinds answered both with something seen and with unknown
    assert {"pour", "unknown"} <= answers["action"] and {"stir", "unknown"} <= answers["activity"]
    assert {n["correct"] for n in native} == {None, True, False}


def test_order_questions_find_both_sounds_even_when_one_names_a_part_of_the_other(native_bin):
    # "the door" also occurs inside "the doorbell": Python matches every occurrence, so the
    # second sound is found at its own place (the binary used to look only at the first).
    text = "which came first, the doorbell or the door?"
    memory = [[3.0, "door_sound", 0.9], [5.0, "doorbell", 0.9]]
    [got] = assert_same(native_bin, [{"text": text, "t_s": 8.0, "memory": memory, "gold": "door_sound"}])
    assert got["labels"] == ["doorbell", "door_sound"] and got["answer"] == "door_sound" and got["correct"] is True


# (question, memory, the answer at t = 20 s): each edge of the visual kinds' rules (shared/answering.py)
# and the wall between sounds and sights.
_T = 20.0
_SOUND, _ACTION, _ACTIVITY = queries.SOUND_ID_TEXT, queries.ACTION_TEXT, queries.ACTIVITY_TEXT
VISUAL_CASES = [
    (_ACTION, [[_T - 3.0, "open_oven", 0.8]], "open_oven"),  # seen 3 s before
    (_ACTION, [[_T - 6.0, "open_oven", 0.8]], "unknown"),  # 6 s: out of the 5 s look-back
    (_ACTION, [[_T - ACTION_LOOKBACK_S, "pour", 0.8]], "pour"),  # exactly at the look-back's edge
    (_ACTION, [[_T + 0.25, "pour", 0.8]], "unknown"),  # after the question
    (_ACTION, [[_T - 2.0, "open_oven", 0.6], [_T - 2.0, "pour", 0.9]], "pour"),  # same moment: the more confident
    (_ACTION, [[_T - 2.0, "pour", 0.9], [_T - 2.0, "open_oven", 0.6]], "pour"),  # ... in either order
    (_ACTION, [[_T - 2.0, "open_door", 0.7], [_T - 2.0, "pour", 0.7]], "open_door"),  # equal scores: the first
    (_ACTION, [[_T - 2.0, "pour", 0.7], [_T - 2.0, "open_door", 0.7]], "pour"),
    (_ACTION, [[_T - 2.0, "pour", 0.9], [_T - 2.0 + SAME_MOMENT_S, "open_door", 0.6]], "pour"),  # one moment
    (_ACTION, [[_T - 2.0, "pour", 0.9], [_T - 1.25, "open_door", 0.6]], "open_door"),  # 0.75 s apart: the latest
    (_ACTION, [[_T - 3.0, "pick_up_phone", 0.6], [_T - 1.0, "chop", 0.99], [_T - 1.0, "idle", 0.99]],
     "pick_up_phone"),  # activities and idle are not actions, however recent and confident
    (_ACTION, [[_T - 1.0, "walk_to_door", 0.9], [_T - 1.0, "oven_door_open", 0.9]], "unknown"),
    (_ACTIVITY, [[_T - 0.5, "chop", 0.8]], "chop"),  # seen 0.5 s before
    (_ACTIVITY, [[_T - 1.5, "chop", 0.8]], "unknown"),  # 1.5 s: out of the 1 s look-back
    (_ACTIVITY, [[_T - ACTIVITY_LOOKBACK_S, "stir", 0.8]], "stir"),
    (_ACTIVITY, [[_T - 0.75, "stir", 0.5], [_T - 0.5, "chop", 0.9], [_T - 0.25, "wash", 0.6]], "chop"),
    (_ACTIVITY, [[_T - 0.5, "open_oven", 0.9], [_T - 0.5, "idle", 0.9]], "unknown"),  # not activities
    (_ACTIVITY, [[_T - 0.5, "read", 0.4], [_T - 0.5, "open_oven", 0.9]], "read"),
]
# A memory of sounds only: the visual kinds have nothing seen.
_SOUNDS = [[_T - 3.0, "knock", 0.9], [_T - 0.5, "chopping", 0.8], [_T - 0.25, "pouring", 0.7]]
VISUAL_CASES += [(_ACTION, _SOUNDS, "unknown"), (_ACTIVITY, _SOUNDS, "unknown")]
# Sights never change the sound questions' answers.
_SEEN = [[_T - 3.0, "open_oven", 0.95], [_T - 0.5, "chop", 0.99], [_T - 0.25, "pour", 0.99]]
VISUAL_CASES += [
    (_SOUND, _SEEN, "unknown"), (_SOUND, [[_T - 4.0, "knock", 0.5], *_SEEN], "knock"),
    (_SOUND, [*_SEEN, [_T - 4.0, "doorbell", 0.5]], "doorbell"),
    ("why did I open the oven?", [[_T - 6.0, "timer_beep", 0.6], *_SEEN], "timer_beep"),
    ("did someone knock?", _SEEN, "no"), ("how many times did they knock?", _SEEN, "0"),
    ("which came first, the knock or the kettle?", _SEEN, "knock"),
    ("what did they ask me for?", _SEEN, "unknown"), ("tell me a joke", _SEEN, "unknown"),
]


@pytest.mark.parametrize("text,memory,expected", VISUAL_CASES)
def test_actions_and_activities_are_answered_alike_and_apart_from_sounds(native_bin, text, memory, expected):
    [got] = assert_same(native_bin, [{"text": text, "t_s": _T, "memory": memory, "gold": expected}])
    assert got["answer"] == expected and got["correct"] is True


def test_every_action_and_activity_is_an_answer(native_bin):
    # every label of the contract's lists comes back (the binary's lists are the contract's), and
    # the ones of the other list do not
    lines = [{"text": text, "t_s": _T, "memory": [[_T - 0.5, label, 0.9]]}
             for text in (_ACTION, _ACTIVITY) for label in VISUAL]
    native = assert_same(native_bin, lines)
    answers = [(line["text"], n["answer"]) for line, n in zip(lines, native) if n["answer"] != "unknown"]
    want = [(_ACTION, a) for a in queries.ACTIONS] + [(_ACTIVITY, a) for a in queries.ACTIVITIES]
    assert sorted(answers) == sorted(want)


AWKWARD = [
    "WHICH CAME FIRST, THE KNOCK OR THE ALARM?", "  \t why did I stop typing?\n", "\x1cdid someone knock?\x1f",
    "\u3000how many times did they knock?\u00a0", "\u2028what was that\u2029", "so, which one first, the bell or tap?",
    "which came first,the kettle or the alarm", "did the microwave beep? beep beep", "the oven timer beep",
    "phone-ring or phone\u00a0rang?", "doorbells, abell, bellows", "did \u212aNOCK happen?", "\u0130s there water?",
    "did the caf\u00e9 kettle whistle?", "\U0001f514 doorbell?", "did 3 phones ring (phone ringing)?",
    "what did they ask me for? the salt", "Why?", "why did i stop", "how many", "was there speech?",
    "is there someone talking? someone talk", "say say say", "what was that sound??!!", "did\tthe\tphone\tring?",
    "\u00c9T\u00c9 DOORBELL", "what did they \u212aSK", "did someone ring the doorbell or the bell?",
    "WHAT DID I JUST DO", "\u3000what am I doing?\u00a0", "what did I just do? the kettle?",
    "what am i doing, chopping?",
    "so what did I just do?", "what did i just", "What am I doing there with the phone ringing",
]


def test_awkward_texts_read_alike(native_bin):
    rng = np.random.default_rng(7)
    lines = [{"text": text, "t_s": 20.0, "memory": memory, "gold": gold}
             for text in AWKWARD for memory, gold in zip(memories(rng, text, 20.0), golds(rng, text))]
    lines += [{"text": "x", "t_s": 1.0, "gold": g} for g in ("X", "\u00a0x\u3000", "\u212a", "\u0130", "x\u0307")]
    lines += [{"text": "\u212a", "t_s": 1.0, "gold": "k"}, {"text": "\u00c9T\u00c9", "t_s": 1.0, "gold": "\u00e9t\u00e9"}]
    assert_same(native_bin, lines)


def test_every_code_point_lowers_and_strips_as_in_python(native_bin):
    # One code point per word: Python lowers a Greek capital sigma at a word's end to the final
    # sigma, the one context rule the binary does not model (queries.h); a space before each
    # keeps every code point out of that context.
    lines = []
    for start in range(0, 0x110000, 0x8000):
        cps = [c for c in range(start, start + 0x8000) if not 0xD800 <= c < 0xE000]
        lines.append({"text": "".join(" " + chr(c) for c in cps), "t_s": 0.0})
    for got, line in zip(native_check(native_bin, lines), lines):
        assert got["lower"] == line["text"].lower() and got["strip"] == line["text"].strip()


def test_the_final_sigma_is_the_one_difference_and_reads_alike(native_bin):
    [got] = native_check(native_bin, [{"text": "\u039f\u0394\u039f\u03a3 doorbell", "t_s": 0.0}])
    assert "\u039f\u0394\u039f\u03a3 doorbell".lower() == "\u03bf\u03b4\u03bf\u03c2 doorbell"
    assert got["lower"] == "\u03bf\u03b4\u03bf\u03c3 doorbell"  # sigma, not final sigma
    assert got["labels"] == ["doorbell"] and got["kind"] == "other"


def test_a_bad_line_is_an_error_line_and_the_next_still_reads(native_bin):
    proc = subprocess.run([str(native_bin), "query-check"], input=b'{"t_s": 1}\nnot json\n{"text": "why?", "t_s": 1}\n',
                          capture_output=True, timeout=30)
    out = [json.loads(x) for x in proc.stdout.decode().splitlines()]
    assert proc.returncode == 0 and "error" in out[0] and "error" in out[1] and out[2]["kind"] == "why"


@pytest.fixture(scope="module")
def world_queries():
    """The questions a small generated world asks (one 30 s recording per scenario, up to 20
    questions each), with its sound events."""
    from sim.world.generator import generate_recording
    from sim.world.world_config import WorldConfig

    cfg = WorldConfig(duration_s=30.0, queries_per_recording=20)
    return [generate_recording(cfg, seed=18, index=i).annotations for i in range(4)]


@pytest.mark.slow  # generating the world takes ~6 s
def test_the_worlds_questions_read_and_answer_alike(native_bin, world_queries):
    rng = np.random.default_rng(3)
    lines = []
    for ann in world_queries:
        heard = [[e.onset_s, e.label, 0.9] for e in ann.events if e.label in AUDIO]
        # what a perfect device heard, and a worse one (missed a third, confused a tenth)
        worse = [[t, str(rng.choice(AUDIO)) if rng.random() < 0.1 else lab, float(rng.uniform(0.5, 1.0))]
                 for t, lab, _ in heard if rng.random() > 1 / 3]
        # and one that also saw every visual event on each 0.25 s hop while it lasted (camera always on)
        seen = [[float(t), e.label, float(rng.choice([0.6, 0.8]))] for e in ann.events if e.label in VISUAL
                for t in np.arange(np.ceil(e.onset_s * 4) / 4, e.offset_s, 0.25)]
        looked = sorted(heard + seen, key=lambda d: d[0])
        for q in ann.queries:
            lines += [{"text": q.text, "t_s": q.t_s, "memory": m, "gold": q.answer} for m in (heard, worse, looked)]
    native = assert_same(native_bin, lines)
    # the visual questions: unknown (never right) from sounds alone, mostly right when seen
    visual = [(line, n) for line, n in zip(lines, native) if n["kind"] in ("action", "activity")]
    saw = lambda line: any(d[1] in VISUAL for d in line["memory"])  # noqa: E731
    assert visual and all(n["answer"] == "unknown" for line, n in visual if not saw(line))
    right = [n["correct"] for line, n in visual if saw(line)]
    assert right and sum(right) > len(right) / 2, right
    asked = {q.kind for ann in world_queries for q in ann.queries}
    assert len(asked) >= 5, asked  # the world asks most kinds
    # read as the kind asked, or one with the same answer type ("why did I stop walking?" is a why)
    kinds = [(n["kind"], q.kind) for n, q in zip(native[::3], (q for ann in world_queries for q in ann.queries))]
    assert all(queries.KINDS[read] == queries.KINDS[asked] for read, asked in kinds), kinds
    assert {n["correct"] for n in native} == {True, False}
