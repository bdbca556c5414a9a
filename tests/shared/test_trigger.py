"""The trigger's decision rule (shared/trigger.py): thresholds plus the refractory hold."""
from __future__ import annotations

import numpy as np
import pytest

from shared.trigger import TriggerHold, hold_runs

HOP = 0.25


def _run(hold: TriggerHold, probs):
    out = []
    for i, p in enumerate(probs):
        held, new = hold.step((i + 1) * HOP, [p])
        out.append((bool(held), bool(new)))
    return out


def test_no_hold_is_plain_rising_edges():
    probs = [0.1, 0.9, 0.9, 0.2, 0.8, 0.1]
    steps = _run(TriggerHold(["x"], [0.5], 0.0), probs)
    assert [new for _, new in steps] == [False, True, False, False, True, False]
    assert [held for held, _ in steps] == [p >= 0.5 for p in probs]


def test_a_flickering_sound_gives_one_trigger_within_the_hold():
    # over, dips for 2 hops (0.5 s), over again: one sound with a 1 s hold, two without.
    probs = [0.9, 0.2, 0.2, 0.9, 0.2, 0.2, 0.2, 0.2, 0.2, 0.9]
    with_hold = _run(TriggerHold(["x"], [0.5], 1.0), probs)
    assert [i for i, (_, new) in enumerate(with_hold) if new] == [0, 9]
    # released exactly 1 s (4 hops) after the last step over the threshold
    assert [held for held, _ in with_hold] == [True] * 7 + [False, False, True]
    assert sum(new for _, new in _run(TriggerHold(["x"], [0.5], 0.0), probs)) == 3


def test_labels_are_held_independently():
    hold = TriggerHold(["a", "b"], [0.5, 0.7], 0.5)
    assert hold.step(0.25, [0.9, 0.6]) == (["a"], ["a"])
    assert hold.step(0.5, [0.1, 0.8]) == (["a", "b"], ["b"])
    assert hold.step(0.75, [0.1, 0.1]) == (["b"], [])  # a: 0.5 s below since 0.25 -> released
    assert hold.step(1.0, [0.1, 0.1]) == ([], [])


@pytest.mark.parametrize("refractory_s", [0.0, 0.25, 0.3, 1.0, 2.0])
def test_the_batch_form_matches_the_streaming_form(refractory_s):
    rng = np.random.default_rng(3)
    probs = (rng.random((200, 3)) ** 3 + (rng.random((200, 1)) > 0.9)).clip(0, 1)
    thresholds = np.array([[0.3, 0.5, 0.8], [0.6, 0.6, 0.6]])
    triggered, held = hold_runs(probs, thresholds, refractory_s, HOP)
    for k, th in enumerate(thresholds):
        hold = TriggerHold(["a", "b", "c"], th, refractory_s)
        for i, p in enumerate(probs):
            h, new = hold.step((i + 1) * HOP, p)
            assert [lab for lab, x in zip("abc", held[k, i]) if x] == h
            assert [lab for lab, x in zip("abc", triggered[k, i]) if x] == new


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="thresholds"):
        TriggerHold(["a", "b"], [0.5], 0.0)
    with pytest.raises(ValueError, match="refractory_s"):
        TriggerHold(["a"], [0.5], -1.0)


def test_a_threshold_of_one_turns_the_label_off_even_at_a_saturated_score():
    """An int8 program's probability reaches exactly 1.0; a label set to 1 (the operating point's
    "off", a camera woken by some labels only) must still never trigger."""
    from shared.trigger import over_threshold

    probs = [0.2, 1.0, 1.0, 0.3, 1.0]
    hold = TriggerHold(["off", "on"], [1.0, 0.99], 0.0)
    steps = [hold.step((i + 1) * HOP, [p, p]) for i, p in enumerate(probs)]
    assert all("off" not in held for held, _ in steps)
    assert [new for _, new in steps] == [[], ["on"], [], [], ["on"]]
    trig, held = hold_runs(np.array([[p, p] for p in probs]), np.array([[1.0, 0.99]]), 0.0, HOP)
    assert not trig[0, :, 0].any() and not held[0, :, 0].any() and trig[0, :, 1].sum() == 2
    assert over_threshold([1.0, 1.0, 0.5], [1.0, 0.999, 0.5]).tolist() == [False, True, True]
