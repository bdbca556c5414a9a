"""The one set of answering rules (shared/answering.py) the device and the cloud share: the
visual kinds read only what was seen, the sound kinds only what was heard."""
import pytest

from shared.answering import (ACTION_LOOKBACK_S, ACTIVITY_LOOKBACK_S, UNKNOWN, DetectionMemory,
                              answer_from_memory)
from shared.queries import ACTION_TEXT, ACTIONS, ACTIVITIES, ACTIVITY_TEXT, KINDS, SOUND_ID_TEXT, query_kind


def test_visual_kinds_are_recognised_and_answer_with_actions():
    assert query_kind(ACTION_TEXT) == "action" and query_kind(ACTIVITY_TEXT) == "activity"
    assert KINDS["action"] == KINDS["activity"] == "action"
    assert not set(ACTIONS) & set(ACTIVITIES)


def _memory(*dets):
    m = DetectionMemory()
    for t, label, score in dets:
        m.add(t, label, score, "student")
    return m


def test_what_did_i_just_do_is_the_latest_action_seen_within_the_look_back():
    m = _memory((1.0, "open_oven", 0.9), (6.0, "pick_up_phone", 0.6), (6.2, "reach_for_object", 0.8),
                (7.0, "read", 0.9))  # an activity is not an answer to "what did I just do?"
    assert answer_from_memory(m, ACTION_TEXT, 8.0) == "reach_for_object"  # same moment: the more confident
    assert answer_from_memory(m, ACTION_TEXT, 6.1) == "pick_up_phone"
    assert answer_from_memory(m, ACTION_TEXT, 6.0 + ACTION_LOOKBACK_S + 0.5) == UNKNOWN  # too long ago
    assert answer_from_memory(m, ACTION_TEXT, 0.5) == UNKNOWN  # not yet


def test_what_am_i_doing_is_the_activity_seen_just_now():
    m = _memory((2.0, "chop", 0.7), (2.0, "stir", 0.9), (5.0, "pick_up_phone", 0.9))
    assert answer_from_memory(m, ACTIVITY_TEXT, 2.5) == "stir"
    assert answer_from_memory(m, ACTIVITY_TEXT, 2.0 + ACTIVITY_LOOKBACK_S + 0.25) == UNKNOWN
    assert answer_from_memory(m, ACTIVITY_TEXT, 5.2) == UNKNOWN  # a short action is not an activity


@pytest.mark.parametrize("text", [ACTION_TEXT, ACTIVITY_TEXT])
def test_sounds_never_answer_a_visual_question(text):
    m = _memory((1.0, "chopping", 0.99), (1.5, "keyboard_typing", 0.99), (1.6, "door_sound", 0.99))
    assert answer_from_memory(m, text, 2.0) == UNKNOWN


def test_sights_never_change_a_sound_answer():
    sounds = [(1.0, "timer_beep", 0.9), (3.0, "knock", 0.8)]
    heard = _memory(*sounds)
    both = _memory(*sounds, (3.5, "open_door", 0.99), (1.2, "chop", 0.99))
    for text in (SOUND_ID_TEXT, "did someone knock?", "which came first, the knock or the timer?",
                 "how many times did they knock?", "why did I open the door?", "tell me a joke"):
        assert answer_from_memory(both, text, 4.0) == answer_from_memory(heard, text, 4.0), text
    assert answer_from_memory(both, SOUND_ID_TEXT, 4.0) == "knock"
    assert both.seen and len(both.detections) == 2


def test_object_states_are_not_remembered():
    m = _memory((1.0, "oven_door_open", 0.9), (1.0, "kitchen", 0.9))
    assert not m.detections and not m.seen


def test_a_sound_that_goes_on_does_not_hide_the_beep():
    """'what was that?' and 'why ...?' prefer the contract's distinct sounds within the look-back."""
    m = _memory((5.0, "timer_beep", 0.6), (5.5, "chopping", 0.9), (6.0, "chopping", 0.9), (6.5, "sizzle", 0.9))
    for text in (SOUND_ID_TEXT, "why did I open the oven?", "why did I stop chopping?"):
        assert answer_from_memory(m, text, 7.0) == "timer_beep", text
    # no distinct sound in the look-back: the most recent sound of any kind
    assert answer_from_memory(m, SOUND_ID_TEXT, 16.1) == "sizzle"  # the beep and the chopping are > 10 s ago
    assert answer_from_memory(_memory((1.0, "chopping", 0.9)), SOUND_ID_TEXT, 2.0) == "chopping"


def test_a_memory_of_one_window_does_not_answer_from_absence():
    """The cloud's memory covers its request's window (``covers_from_s``); the device's, the day."""
    from shared.queries import count_text, order_text

    m = _memory((7.0, "microwave_beep", 0.9), (7.6, "microwave_beep", 0.9), (8.5, "knock", 0.8))
    did_ring, did_knock = "did the doorbell ring?", "did someone knock?"
    assert query_kind(did_ring) == query_kind(did_knock) == "yes_no"
    # the day's memory: absence means "no"; a window's: it may have rung before the window
    assert answer_from_memory(m, did_ring, 10.0) == "no"
    assert answer_from_memory(m, did_ring, 10.0, covers_from_s=5.0) == UNKNOWN
    assert answer_from_memory(m, did_knock, 10.0, covers_from_s=5.0) == "yes"
    # which came first: both sounds in the window, or nothing to say (the day's memory guesses the first named)
    both, one = order_text("microwave_beep", "knock"), order_text("doorbell", "knock")
    assert answer_from_memory(m, both, 10.0, covers_from_s=5.0) == "microwave_beep"
    assert answer_from_memory(m, one, 10.0, covers_from_s=5.0) == UNKNOWN
    assert answer_from_memory(m, one, 10.0) == "knock"
    # a count: the sound in the window, its first episode clear of the window's start
    beeps = count_text("microwave_beep")
    assert answer_from_memory(m, beeps, 10.0, covers_from_s=5.0) == "1" == answer_from_memory(m, beeps, 10.0)
    assert answer_from_memory(m, beeps, 10.0, covers_from_s=6.5) == UNKNOWN  # it may have begun before 6.5
    assert answer_from_memory(m, count_text("timer_beep"), 10.0, covers_from_s=5.0) == UNKNOWN
    assert answer_from_memory(m, count_text("timer_beep"), 10.0) == "0"
    # "what was that?": a distinct sound in the window is the latest one; none in a window shorter than
    # the 10 s look-back may mean one came just before it, so not "the latest sound of any kind"
    assert answer_from_memory(m, SOUND_ID_TEXT, 10.0, covers_from_s=5.0) == "knock" == answer_from_memory(
        m, SOUND_ID_TEXT, 10.0)
    day = _memory((3.0, "doorbell", 0.9), (8.0, "running_water", 0.9))
    window = _memory((8.0, "running_water", 0.9))  # the same day's last 5 s
    assert answer_from_memory(day, SOUND_ID_TEXT, 10.0) == "doorbell"
    assert answer_from_memory(window, SOUND_ID_TEXT, 10.0, covers_from_s=5.0) == UNKNOWN
    assert answer_from_memory(day, SOUND_ID_TEXT, 10.0, covers_from_s=0.0) == "doorbell"  # covers the look-back
    assert answer_from_memory(window, SOUND_ID_TEXT, 10.0, covers_from_s=-1.0) == "running_water"
