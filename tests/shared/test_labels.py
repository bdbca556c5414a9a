"""The taxonomy: stable ids, unique names, clear errors."""
import re

import pytest

from shared import labels
from shared.labels import LabelError

# Pinned table: model outputs index labels by id, so a reorder or rename must
# fail here. Append new labels at the end of a group and extend this table.
PINNED = {
    "audio_event": [
        "speech", "timer_beep", "microwave_beep", "doorbell", "knock", "kettle_whistle",
        "phone_ring", "phone_notification", "sizzle", "chopping", "running_water",
        "footsteps", "keyboard_typing", "dishes", "door_sound", "car_horn", "alarm", "pouring",
    ],
    "visual_action": [
        "idle", "walk", "chop", "stir", "wash", "type", "open_oven", "open_microwave",
        "open_door", "walk_to_door", "pour", "pick_up_phone", "reach_for_object", "drink", "read",
    ],
    "object_state": [
        "oven_door_open", "microwave_door_open", "door_open", "phone_screen_lit",
        "pan_steaming", "kettle_steaming", "tap_running", "screen_on",
    ],
    "environment": ["kitchen", "office", "living_room", "street"],
}


def test_ids_are_pinned_and_dense():
    assert set(labels.GROUPS) == set(PINNED)
    for group, expected in PINNED.items():
        got = labels.names(group)
        assert got[: len(expected)] == expected, f"{group}: labels were reordered or renamed"
        assert [l.id for l in labels.GROUPS[group]] == list(range(len(got)))


def test_names_are_snake_case_and_unique_across_groups():
    all_names = [l.name for g in labels.GROUPS.values() for l in g]
    assert len(all_names) == len(set(all_names))
    for name in all_names:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", name), name


def test_lookup_by_name_and_id():
    assert labels.label_id("audio_event", "doorbell") == 3
    assert labels.label("visual_action", 6).name == "open_oven"
    assert labels.group_of("pan_steaming") == "object_state"


@pytest.mark.parametrize(
    "call, needle",
    [
        (lambda: labels.label("audio_event", "door_bell"), "unknown label 'door_bell'"),
        (lambda: labels.label("audio_event", 99), "no label with id 99"),
        (lambda: labels.label("audio_event", True), "expected a label name or id"),
        (lambda: labels.names("sounds"), "unknown label group 'sounds'"),
        (lambda: labels.group_of("banana"), "'banana' is not a label"),
    ],
)
def test_errors_name_the_problem(call, needle):
    with pytest.raises(LabelError) as exc:
        call()
    assert needle in str(exc.value)
