"""The script of one recording, as data: what :mod:`sim.world.timeline` and
:mod:`sim.world.chains` draw and what the renderers read.

A :class:`Plan` holds the annotations-to-be (``shared.annotations.Event``;
``source_visible`` stays unknown until the renderer's object mask decides
it) and, for the signal renderers, the sounds to synthesise
(:class:`SoundSpec`), where the head looks (``motion.GazeSeg``), walks
(``motion.WalkSeg``), what the hands do (:class:`HandSeg`) and how objects
look (:class:`LookSeg`). Times are seconds on the recording clock.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from shared.annotations import Event
from shared.labels import group_of
from sim.world.motion import GazeSeg, Trajectory, WalkSeg
from sim.world.scenarios import Scenario

__all__ = [
    "OWN_SOURCE",
    "ROOMS_ELSEWHERE",
    "TURN_LEAD_S",
    "PRIORITY_ACTIVITY",
    "PRIORITY_LOOK_AROUND",
    "PRIORITY_GLANCE",
    "PRIORITY_CHAIN",
    "FOOTSTEP_DISTANCE_M",
    "POCKET_DISTANCE_M",
    "SoundSpec",
    "HandSeg",
    "LookSeg",
    "Plan",
]

OWN_SOURCE = "wearer"  # source of the wearer's own footsteps: never in frame
#: Places that are another room: heard through a wall (low-passed), never drawn.
ROOMS_ELSEWHERE = ("next room", "hallway", "upstairs", "corridor", "next office", "kitchen", "bedroom")
TURN_LEAD_S = 0.5  # the head turns towards a target this long before the hands act
# Gaze priorities: a chain's turn beats a glance at a sound, which beats looking
# around, which beats the activity's own fixation.
PRIORITY_ACTIVITY, PRIORITY_LOOK_AROUND, PRIORITY_GLANCE, PRIORITY_CHAIN = 1.0, 1.5, 2.0, 3.0
FOOTSTEP_DISTANCE_M = 1.3  # ears to feet
POCKET_DISTANCE_M = 0.5


@dataclass
class SoundSpec:
    """A sound to synthesise for event ``event_id`` (see generator.py)."""

    event_id: str
    label: str
    duration_s: float  # requested length (speech: its natural length)
    end_max_s: float | None = None  # cut here (a ring stops when the phone is answered)
    text: str | None = None  # speech only
    distance_m: float = 1.0
    occluded: bool = False  # heard through a wall
    candidates: tuple[str, ...] = ()  # ambient: drawn objects that could make it
    elsewhere: tuple[str, str] | None = None  # ambient: (agent, place) when out of the room
    ambient: bool = False


@dataclass
class HandSeg:
    """The hands during [t0_s, t1_s): ``style`` says how (video.py draws it),
    ``target`` is the object worked on, ``item`` an object held in the hand,
    ``sound_id`` the event whose transients pace the strokes (chopping)."""

    t0_s: float
    t1_s: float
    style: str
    target: str | None = None
    item: str | None = None
    sound_id: str | None = None


@dataclass
class LookSeg:
    """Object ``obj`` shows ``variant`` during [t0_s, t1_s)."""

    obj: str
    variant: str
    t0_s: float
    t1_s: float


@dataclass
class Plan:
    scn: Scenario
    duration_s: float
    fov_deg: float
    events: list[Event] = field(default_factory=list)
    sounds: dict[str, SoundSpec] = field(default_factory=dict)
    gaze: list[GazeSeg] = field(default_factory=list)
    walks: list[WalkSeg] = field(default_factory=list)
    hands: list[HandSeg] = field(default_factory=list)
    looks: list[LookSeg] = field(default_factory=list)
    busy: list[tuple[float, float, str]] = field(default_factory=list)  # (t0, t1, effect event id)
    interrupted: dict[str, str] = field(default_factory=dict)  # effect event id -> activity event id
    walk_sounds: dict[int, str | None] = field(default_factory=dict)  # walk index -> footsteps event id
    motion_seed: int = 0
    trajectory: Trajectory | None = None

    # --- building blocks -----------------------------------------------------

    def add(self, label: str, t0: float, t1: float, *, source: str | None = None, cause: str | None = None,
            **attrs) -> str:
        """Add an event (clipped to the recording); returns its id."""
        eid = f"e{len(self.events):03d}"
        t0 = float(np.clip(t0, 0.0, self.duration_s))
        t1 = float(np.clip(t1, t0, self.duration_s))
        modality = "audio" if group_of(label) == "audio_event" else "visual"
        self.events.append(Event(eid, round(t0, 4), round(t1, 4), label, modality, source=source, cause=cause,
                                 attrs=dict(attrs)))
        return eid

    def add_sound(self, label: str, onset: float, duration: float, *, source: str, distance_m: float | None = None,
                  cause: str | None = None, end_max: float | None = None, text: str | None = None, **attrs) -> str:
        """Add an audio event and the spec of its sound."""
        end = min(onset + duration, end_max if end_max is not None else np.inf)
        eid = self.add(label, onset, end, source=source, cause=cause, **attrs)
        if distance_m is None:
            distance_m = self.scn.obj(source).distance_m if self.scn.has(source) else 1.0
        self.sounds[eid] = SoundSpec(eid, label, duration, end_max, text, float(distance_m))
        return eid

    def look_at(self, obj: str, t0: float, t1: float, priority: float = PRIORITY_CHAIN, d_az: float = 0.0) -> None:
        o = self.scn.obj(obj)
        self.gaze.append(GazeSeg(t0, t1, o.az_deg + d_az, o.el_deg, priority))

    def event(self, eid: str) -> Event:
        return self.events[int(eid[1:])]
