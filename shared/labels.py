"""The Earshot label taxonomy: one place, stable ids.

Four groups, each an ordered tuple of :class:`Label`:

- ``AUDIO_EVENTS``: sounds the trigger and the tag heads detect.
- ``VISUAL_ACTIONS``: what the wearer does, seen from the head camera.
- ``OBJECT_STATES``: visible states that objects change into.
- ``ENVIRONMENTS``: scene contexts (they decide noise and modality trust).

Ids are per group, dense from 0, and stable: a model's output index ``i`` is
the label with ``id == i``. Never renumber or reuse an id; append new labels at
the end of a group (``tests/shared/test_labels.py`` pins the current table so
an accidental reorder fails loudly). A retired label keeps its slot.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Label",
    "LabelError",
    "AUDIO_EVENTS",
    "VISUAL_ACTIONS",
    "OBJECT_STATES",
    "ENVIRONMENTS",
    "GROUPS",
    "TAXONOMY_VERSION",
    "label",
    "label_id",
    "names",
    "group_of",
]

#: Bumped only when a group gains labels (ids never change meaning).
TAXONOMY_VERSION = 1


class LabelError(KeyError):
    """An unknown label name or id; the message names the group and the value."""

    def __str__(self) -> str:  # KeyError quotes its message; we want plain text
        return str(self.args[0])


@dataclass(frozen=True)
class Label:
    """One label: ``id`` is its index in its group, ``name`` is snake_case."""

    id: int
    name: str
    group: str
    description: str


def _group(group: str, rows: list[tuple[str, str]]) -> tuple[Label, ...]:
    return tuple(Label(i, name, group, desc) for i, (name, desc) in enumerate(rows))


AUDIO_EVENTS = _group(
    "audio_event",
    [
        ("speech", "a person speaking (wearer or someone nearby)"),
        ("timer_beep", "kitchen timer or oven beep pattern"),
        ("microwave_beep", "microwave end-of-cycle beeps"),
        ("doorbell", "doorbell chime"),
        ("knock", "knocking on a door"),
        ("kettle_whistle", "kettle whistling as water boils"),
        ("phone_ring", "phone ringtone"),
        ("phone_notification", "short phone notification sound"),
        ("sizzle", "frying in a pan"),
        ("chopping", "knife on a cutting board"),
        ("running_water", "tap running"),
        ("footsteps", "steps on a hard floor"),
        ("keyboard_typing", "typing on a keyboard"),
        ("dishes", "plates and cutlery clattering"),
        ("door_sound", "a door opening or closing"),
        ("car_horn", "a car horn in the street"),
        ("alarm", "an alarm clock or alert tone"),
        ("pouring", "liquid poured into a cup"),
    ],
)

VISUAL_ACTIONS = _group(
    "visual_action",
    [
        ("idle", "looking around, no manual action"),
        ("walk", "walking; the view bobs and translates"),
        ("chop", "chopping on a cutting board"),
        ("stir", "stirring a pan or pot"),
        ("wash", "washing hands or dishes at the sink"),
        ("type", "typing at a keyboard"),
        ("open_oven", "opening the oven door"),
        ("open_microwave", "opening the microwave door"),
        ("open_door", "opening a room or front door"),
        ("walk_to_door", "walking towards a door"),
        ("pour", "pouring from a kettle or bottle"),
        ("pick_up_phone", "picking up a phone"),
        ("reach_for_object", "reaching for an object on a surface"),
        ("drink", "drinking from a cup"),
        ("read", "reading a screen or a page"),
    ],
)

OBJECT_STATES = _group(
    "object_state",
    [
        ("oven_door_open", "the oven door is open"),
        ("microwave_door_open", "the microwave door is open"),
        ("door_open", "a room or front door is open"),
        ("phone_screen_lit", "the phone screen is lit"),
        ("pan_steaming", "steam rises from a pan"),
        ("kettle_steaming", "steam rises from the kettle"),
        ("tap_running", "water runs from the tap"),
        ("screen_on", "a computer screen shows content"),
    ],
)

ENVIRONMENTS = _group(
    "environment",
    [
        ("kitchen", "home kitchen: loud appliances, frying, water"),
        ("office", "quiet office: typing, ventilation hum"),
        ("living_room", "living room: TV, doorbell, conversation"),
        ("street", "outdoors: traffic, wind, footsteps"),
    ],
)

#: Group name -> labels, in a fixed order.
GROUPS: dict[str, tuple[Label, ...]] = {
    "audio_event": AUDIO_EVENTS,
    "visual_action": VISUAL_ACTIONS,
    "object_state": OBJECT_STATES,
    "environment": ENVIRONMENTS,
}

_BY_NAME: dict[str, dict[str, Label]] = {g: {l.name: l for l in ls} for g, ls in GROUPS.items()}


def _check_group(group: str) -> tuple[Label, ...]:
    try:
        return GROUPS[group]
    except KeyError:
        raise LabelError(f"unknown label group {group!r}; groups are {sorted(GROUPS)}") from None


def label(group: str, name_or_id: str | int) -> Label:
    """Look up a label by name or id within ``group``.

    Raises:
        LabelError: the group, name or id does not exist (the message lists the
            valid names so a typo in a config is easy to fix).
    """
    labels = _check_group(group)
    if isinstance(name_or_id, bool):  # bool is an int; never a valid id
        raise LabelError(f"{group}: expected a label name or id, got {name_or_id!r}")
    if isinstance(name_or_id, int):
        if 0 <= name_or_id < len(labels):
            return labels[name_or_id]
        raise LabelError(f"{group}: no label with id {name_or_id} (ids are 0..{len(labels) - 1})")
    try:
        return _BY_NAME[group][name_or_id]
    except KeyError:
        raise LabelError(
            f"{group}: unknown label {name_or_id!r}; known: {', '.join(names(group))}"
        ) from None


def label_id(group: str, name: str) -> int:
    """The stable id of ``name`` in ``group`` (raises :class:`LabelError`)."""
    return label(group, name).id


def names(group: str) -> list[str]:
    """Label names of ``group`` in id order (the order of model outputs)."""
    return [l.name for l in _check_group(group)]


def group_of(name: str) -> str:
    """The group a label name belongs to; names are unique across groups."""
    for group, by_name in _BY_NAME.items():
        if name in by_name:
            return group
    raise LabelError(f"{name!r} is not a label in any group")
