"""The four scenarios of the synthetic world, as data.

A scenario is a room (or a street) around the wearer, seen on a cylinder:
every object has a centre azimuth (0 = straight ahead at the start, growing
to the right), an elevation (0 = eye level, negative = below) and an angular
size, all in degrees. On top of the layout a scenario lists

- ``activities``: what the wearer does between events (chop at the board,
  type at the keyboard ...), with the sound the action makes, if any;
- ``ambient``: sounds made by others or by appliances, with the drawn objects
  that can make them and an "elsewhere" agent for when the source is out of
  the room (heard, never drawn, farther away);
- ``chains``: which causal chains (audio leads vision) can happen here, with
  weights; ``sim/world/timeline.py`` knows how each chain unfolds.

Nothing here draws random numbers except :func:`jitter_layout`, which moves
and recolours objects a little per recording so no two rooms are identical.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from shared.labels import names

__all__ = [
    "SceneObject",
    "Activity",
    "Ambient",
    "Scenario",
    "SCENARIOS",
    "CHAIN_KINDS",
    "CHAIN_CAUSES",
    "get_scenario",
    "jitter_layout",
]

#: The sounds that can start each chain (chains.py), each with the object that
#: makes it (None: the chain's own object, e.g. the scene's door). A response
#: with two causes drawn at equal odds cannot be answered from the question.
CHAIN_CAUSES: dict[str, tuple[tuple[str, str | None], ...]] = {
    "oven_timer": (("timer_beep", "oven"), ("alarm", "phone")),
    "microwave": (("microwave_beep", "microwave"), ("timer_beep", "microwave")),
    "kettle": (("kettle_whistle", "kettle"), ("timer_beep", "kettle")),
    "door": (("doorbell", None), ("knock", None)),
    "phone": (("phone_ring", "phone"), ("phone_notification", "phone")),
    "request": (("speech", None),),
    "horn": (("car_horn", None),),
}
#: Chains the timeline knows how to script, with every sound each can make
#: (its causes, then what the response sounds like).
_RESPONSE_SOUNDS = {"kettle": ("pouring",), "door": ("footsteps", "door_sound", "speech")}
CHAIN_SOUNDS = {
    kind: tuple(dict.fromkeys([c for c, _ in causes] + list(_RESPONSE_SOUNDS.get(kind, ()))))
    for kind, causes in CHAIN_CAUSES.items()
}
CHAIN_KINDS = tuple(CHAIN_SOUNDS)

_LAYOUT_JITTER_DEG = 3.0  # objects move this much at most between recordings
_COLOUR_JITTER = 18  # per-channel colour change at most, in 0..255 units


@dataclass(frozen=True)
class SceneObject:
    """One drawn object. ``variants`` are its non-default looks (``open``,
    ``lit``, ``steam``, ``running``, ``absent``, ``visitor``, ``on``); the
    painter in panorama.py knows how each ``kind`` draws each variant."""

    name: str
    kind: str
    az_deg: float
    el_deg: float
    w_deg: float
    h_deg: float
    distance_m: float
    color: tuple[int, int, int]
    variants: tuple[str, ...] = ()
    layer: int = 1  # 0: furniture drawn first; 1: things standing on it


@dataclass(frozen=True)
class Activity:
    """A stretch of the wearer's own work between events."""

    action: str  # labels.VISUAL_ACTIONS
    location: str  # object looked at and worked on
    duration_s: tuple[float, float]
    hands: str  # hand style in video.py: chop, stir, wash, type, drink, hold_book, swing, none
    sound: str | None = None  # labels.AUDIO_EVENTS made by the action
    sound_optional: bool = False  # may be silent (carpet, light touch): silent_action_share
    state: str | None = None  # labels.OBJECT_STATES held while the action lasts
    weight: float = 1.0


@dataclass(frozen=True)
class Ambient:
    """A sound made by someone or something other than the wearer's hands."""

    label: str  # labels.AUDIO_EVENTS
    duration_s: tuple[float, float]
    sources: tuple[str, ...]  # drawn objects that can make it (may be empty)
    elsewhere: tuple[str, str] | None  # (agent, place) heard from out of the room
    weight: float = 1.0
    state: str | None = None  # object state while it sounds (pan_steaming with sizzle)
    texts: tuple[str, ...] = ()  # for speech


@dataclass(frozen=True)
class Scenario:
    name: str  # also the environment label and the background-noise name
    style: str  # "room" or "street" (panorama backdrop)
    palette: dict
    objects: tuple[SceneObject, ...]
    activities: tuple[Activity, ...]
    ambient: tuple[Ambient, ...]
    chains: tuple[tuple[str, float], ...]
    home: str  # object the wearer faces at the start
    door: str | None = None  # the door walked to in the door chain
    speaker: str | None = None  # the person who asks for things
    request_objects: tuple[str, ...] = ()
    phone_in_pocket: bool = False
    walk_displaces: bool = True  # walking moves the wearer in the room (zoom)

    def plausible_sounds(self) -> set[str]:
        """Sound labels this scene can produce (its activities, ambient sounds and chains)."""
        out = {a.sound for a in self.activities if a.sound} | {a.label for a in self.ambient}
        for kind, _ in self.chains:
            out |= set(CHAIN_SOUNDS[kind])
        return out

    def obj(self, name: str) -> SceneObject:
        for o in self.objects:
            if o.name == name:
                return o
        raise KeyError(f"scenario {self.name!r} has no object {name!r}")

    def has(self, name: str | None) -> bool:
        return name is not None and any(o.name == name for o in self.objects)


O = SceneObject  # short alias for the tables below

KITCHEN = Scenario(
    name="kitchen",
    style="room",
    palette={"wall": (214, 204, 180), "floor": (150, 120, 95), "ceiling": (236, 234, 228), "tile": (196, 190, 172)},
    objects=(
        O("counter", "counter", 0, -33, 150, 12, 0.8, (120, 112, 104), layer=0),
        O("cupboards", "cupboards", 0, 18, 120, 18, 1.2, (168, 120, 80), layer=0),
        O("window", "window", 95, 12, 34, 26, 3.0, (150, 190, 225), layer=0),
        O("table", "table", 140, -34, 44, 10, 2.0, (140, 98, 62), layer=0),
        O("fridge", "fridge", 248, -6, 26, 64, 2.0, (226, 228, 232), layer=0),
        O("door", "door", 195, -8, 22, 56, 4.0, (150, 105, 70), ("open", "visitor"), layer=0),
        O("cutting_board", "board", 0, -27, 20, 5, 0.6, (200, 160, 110)),
        O("salt", "shaker", 14, -23, 3, 7, 0.7, (240, 240, 240), ("absent",)),
        O("pepper", "shaker", 19, -23, 3, 7, 0.7, (70, 60, 55), ("absent",)),
        O("sink", "sink", 42, -28, 24, 7, 0.8, (175, 180, 188), ("running",)),
        O("stove", "stove", -44, -28, 26, 6, 0.8, (60, 60, 64)),
        O("pan", "pan", -50, -24, 12, 4, 0.8, (50, 50, 55), ("steam",)),
        O("kettle", "kettle", -37, -19, 8, 10, 0.8, (190, 60, 50), ("steam",)),
        O("oven", "oven", -44, -46, 24, 14, 0.9, (80, 80, 86), ("open",)),
        O("microwave", "microwave", -18, -12, 18, 11, 0.9, (210, 210, 214), ("open",)),
        O("cup", "cup", -28, -24, 4, 5, 0.8, (240, 220, 120), ("absent",)),
        O("spoon", "spoon", 8, -28, 6, 2, 0.6, (190, 190, 196), ("absent",)),
        O("phone", "phone", 62, -29, 6, 3, 0.8, (25, 25, 30), ("lit", "absent")),
        O("housemate", "person", 140, -8, 12, 40, 2.2, (70, 110, 170)),
    ),
    activities=(
        Activity("chop", "cutting_board", (6.0, 14.0), "chop", sound="chopping", weight=3.0),
        Activity("wash", "sink", (4.0, 9.0), "wash", sound="running_water", state="tap_running", weight=1.5),
        Activity("stir", "pan", (4.0, 9.0), "stir", weight=1.0),
        Activity("idle", "window", (2.0, 5.0), "none", weight=0.6),
        Activity("drink", "cup", (2.0, 4.0), "drink", weight=0.4),
    ),
    ambient=(
        Ambient("sizzle", (6.0, 14.0), ("pan",), None, weight=1.5, state="pan_steaming"),
        Ambient("dishes", (1.0, 3.0), ("sink",), ("someone", "next room"), weight=1.5),
        Ambient("footsteps", (2.0, 4.0), (), ("someone", "hallway"), weight=1.0),
        Ambient("speech", (1.0, 3.0), ("housemate",), ("someone", "next room"), weight=1.0,
                texts=("dinner is almost ready", "did you buy milk", "the oven is hot")),
        Ambient("door_sound", (0.5, 1.2), ("door",), ("neighbour", "upstairs"), weight=0.5),
        # someone else's reheated plate: a beep nobody here answers
        Ambient("microwave_beep", (0.8, 2.0), ("microwave",), ("someone", "next room"), weight=0.4),
        Ambient("kettle_whistle", (1.5, 3.0), ("kettle",), None, weight=0.4, state="kettle_steaming"),
    ),
    chains=(("oven_timer", 1.8), ("microwave", 2.0), ("kettle", 2.0), ("request", 0.8), ("phone", 0.4), ("door", 0.3)),
    home="cutting_board",
    door="door",
    speaker="housemate",
    request_objects=("salt", "pepper", "cup", "spoon"),
)

OFFICE = Scenario(
    name="office",
    style="room",
    palette={"wall": (200, 206, 212), "floor": (96, 104, 118), "ceiling": (240, 240, 240), "tile": (188, 194, 200)},
    objects=(
        O("desk", "table", 0, -34, 70, 10, 0.7, (170, 150, 120), layer=0),
        O("window", "window", 75, 10, 36, 30, 3.0, (160, 200, 235), layer=0),
        O("bookshelf", "shelf", 125, -4, 34, 50, 2.5, (120, 90, 60), layer=0),
        O("door", "door", 180, -8, 22, 56, 4.0, (130, 130, 140), ("open", "visitor"), layer=0),
        O("colleague_desk", "table", 250, -30, 40, 9, 3.0, (170, 150, 120), layer=0),
        O("plant", "plant", 305, -14, 14, 34, 2.0, (60, 140, 70), layer=0),
        O("monitor", "monitor", 0, -8, 32, 19, 0.7, (30, 30, 34), ("on",)),
        O("keyboard", "keyboard", 0, -30, 26, 4, 0.5, (50, 50, 56)),
        O("mug", "cup", 22, -26, 4, 5, 0.6, (200, 70, 60), ("absent",)),
        O("stapler", "shaker", 29, -27, 5, 3, 0.6, (40, 40, 140), ("absent",)),
        O("pen", "spoon", -22, -29, 6, 2, 0.6, (20, 20, 160), ("absent",)),
        O("notebook", "book", -30, -28, 9, 4, 0.6, (220, 60, 60), ("absent",)),
        O("phone", "phone", 15, -31, 6, 3, 0.6, (25, 25, 30), ("lit", "absent")),
        O("colleague", "person", 250, -6, 12, 40, 3.0, (120, 70, 130)),
        O("colleague_monitor", "monitor", 267, -10, 18, 12, 3.0, (30, 30, 34), ("on",)),
    ),
    activities=(
        Activity("type", "keyboard", (6.0, 14.0), "type", sound="keyboard_typing", weight=3.0),
        Activity("read", "monitor", (3.0, 7.0), "none", weight=1.5),
        Activity("drink", "mug", (2.0, 4.0), "drink", weight=0.5),
        Activity("idle", "window", (2.0, 5.0), "none", weight=0.6),
    ),
    ambient=(
        Ambient("keyboard_typing", (2.0, 6.0), ("colleague",), ("someone", "next office"), weight=1.5),
        Ambient("speech", (1.0, 3.0), ("colleague",), ("someone", "corridor"), weight=1.2,
                texts=("the meeting moved to three", "coffee anyone", "it is on the shared drive")),
        Ambient("phone_notification", (0.3, 0.8), ("colleague_desk",), ("someone", "next office"), weight=1.0),
        Ambient("footsteps", (2.0, 4.0), (), ("someone", "corridor"), weight=1.0),
        Ambient("door_sound", (0.5, 1.2), ("door",), ("someone", "corridor"), weight=0.6),
    ),
    chains=(("phone", 1.0), ("request", 1.0), ("door", 1.0)),
    home="keyboard",
    door="door",
    speaker="colleague",
    request_objects=("stapler", "pen", "notebook", "mug"),
)

LIVING_ROOM = Scenario(
    name="living_room",
    style="room",
    palette={"wall": (222, 206, 190), "floor": (130, 96, 70), "ceiling": (240, 236, 230), "tile": (210, 196, 180)},
    objects=(
        O("coffee_table", "table", 0, -38, 56, 10, 0.9, (110, 80, 55), layer=0),
        O("tv", "monitor", 0, -4, 40, 24, 2.5, (20, 20, 24), ("on",), layer=0),
        O("window", "window", 110, 10, 40, 30, 3.0, (170, 205, 235), layer=0),
        O("door", "door", 200, -8, 22, 56, 4.5, (160, 120, 80), ("open", "visitor"), layer=0),
        O("bookshelf", "shelf", 270, -4, 34, 50, 2.5, (110, 80, 55), layer=0),
        O("sofa", "sofa", 70, -26, 36, 18, 2.0, (90, 120, 100), layer=0),
        O("lamp", "lamp", 320, -6, 8, 50, 2.0, (240, 220, 160), layer=0),
        O("friend", "person", 70, -10, 12, 38, 2.0, (180, 90, 70)),
        O("alarm_clock", "clock", 270, 2, 8, 7, 2.5, (200, 60, 60)),
        O("remote", "spoon", -10, -34, 7, 2, 0.9, (30, 30, 30), ("absent",)),
        O("book", "book", 12, -34, 10, 4, 0.9, (60, 90, 170), ("absent",)),
        O("cup", "cup", 22, -33, 4, 5, 0.9, (230, 230, 230), ("absent",)),
        O("cushion", "shaker", 58, -22, 8, 6, 2.0, (200, 160, 60), ("absent",)),
        O("phone", "phone", -20, -35, 6, 3, 0.9, (25, 25, 30), ("lit", "absent")),
    ),
    activities=(
        Activity("idle", "tv", (3.0, 8.0), "none", weight=2.0),
        Activity("read", "book", (4.0, 9.0), "hold_book", weight=1.5),
        Activity("drink", "cup", (2.0, 4.0), "drink", weight=0.8),
    ),
    ambient=(
        Ambient("speech", (1.0, 3.0), ("friend",), ("someone", "kitchen"), weight=1.5,
                texts=("this film is great", "shall we order food", "turn it up a bit")),
        Ambient("footsteps", (2.0, 4.0), (), ("neighbour", "upstairs"), weight=1.0),
        Ambient("dishes", (1.0, 3.0), (), ("someone", "kitchen"), weight=0.8),
        Ambient("door_sound", (0.5, 1.2), ("door",), ("someone", "hallway"), weight=0.6),
        Ambient("alarm", (1.5, 3.0), ("alarm_clock",), ("someone", "bedroom"), weight=0.5),
    ),
    chains=(("door", 1.2), ("phone", 1.0), ("request", 1.0)),
    home="tv",
    door="door",
    speaker="friend",
    request_objects=("remote", "book", "cup", "cushion"),
)

STREET = Scenario(
    name="street",
    style="street",
    palette={"sky": (150, 190, 230), "building": (170, 150, 130), "road": (70, 70, 75), "walk": (160, 156, 150)},
    objects=(
        O("shop", "shopfront", 80, -4, 40, 32, 6.0, (90, 130, 160), layer=0),
        O("shop_door", "door", 80, -10, 12, 28, 6.0, (60, 60, 70), ("open",), layer=0),
        O("tree", "plant", 330, -2, 16, 50, 5.0, (60, 130, 60), layer=0),
        O("bench", "table", 125, -26, 26, 8, 4.0, (120, 90, 60), layer=0),
        O("traffic_light", "traffic_light", 25, 6, 4, 40, 8.0, (40, 40, 40), layer=0),
        O("car", "car", 300, -22, 34, 14, 6.0, (170, 40, 40)),
        O("van", "car", 235, -20, 38, 16, 9.0, (220, 220, 225)),
        O("passer_by", "person", 55, -8, 10, 34, 5.0, (60, 80, 120)),
    ),
    activities=(
        Activity("walk", "traffic_light", (6.0, 14.0), "swing", sound="footsteps", sound_optional=True, weight=3.0),
        Activity("idle", "shop", (2.0, 5.0), "none", weight=1.0),
    ),
    ambient=(
        Ambient("car_horn", (0.4, 1.2), ("car", "van"), ("driver", "next street"), weight=1.5),
        Ambient("footsteps", (2.0, 4.0), ("passer_by",), ("someone", "behind"), weight=1.0),
        Ambient("speech", (1.0, 3.0), ("passer_by",), ("someone", "behind"), weight=1.0,
                texts=("excuse me", "is this the way to the station", "see you tomorrow")),
        Ambient("door_sound", (0.5, 1.2), ("shop_door",), ("someone", "across the street"), weight=0.7),
    ),
    chains=(("phone", 1.0), ("horn", 1.0)),
    home="traffic_light",
    phone_in_pocket=True,
    walk_displaces=False,
)

SCENARIOS: dict[str, Scenario] = {s.name: s for s in (KITCHEN, OFFICE, LIVING_ROOM, STREET)}


def get_scenario(name: str) -> Scenario:
    """The scenario called ``name`` (raises KeyError listing the known ones)."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise KeyError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}") from None


def jitter_layout(scn: Scenario, rng: np.random.Generator) -> Scenario:
    """A copy of ``scn`` with objects moved by up to a few degrees and their
    colours changed a little, so recordings of one scenario differ."""
    objs = []
    for o in scn.objects:
        d_az, d_el = rng.uniform(-_LAYOUT_JITTER_DEG, _LAYOUT_JITTER_DEG, 2) * (0.3 if o.layer == 0 else 1.0)
        col = np.clip(np.asarray(o.color) + rng.integers(-_COLOUR_JITTER, _COLOUR_JITTER + 1, 3), 0, 255)
        objs.append(replace(o, az_deg=(o.az_deg + d_az) % 360.0, el_deg=o.el_deg + 0.3 * d_el, color=tuple(int(c) for c in col)))
    pal = {k: tuple(int(c) for c in np.clip(np.asarray(v) + rng.integers(-12, 13, 3), 0, 255)) for k, v in scn.palette.items()}
    return replace(scn, objects=tuple(objs), palette=pal)


def _validate() -> None:
    """Import-time check that the tables use real labels and real objects."""
    audio, actions, states = set(names("audio_event")), set(names("visual_action")), set(names("object_state"))
    for s in SCENARIOS.values():
        assert s.name in names("environment"), s.name
        objs = {o.name for o in s.objects}
        assert len(objs) == len(s.objects), f"{s.name}: duplicate object names"
        assert s.home in objs and (s.door is None or s.door in objs) and (s.speaker is None or s.speaker in objs)
        assert all(r in objs for r in s.request_objects), s.name
        for a in s.activities:
            assert a.action in actions and a.location in objs, (s.name, a)
            assert a.sound is None or a.sound in audio, a
            assert a.state is None or a.state in states, a
        for a in s.ambient:
            assert a.label in audio and all(src in objs for src in a.sources), (s.name, a)
            assert a.sources or a.elsewhere, a
            # an agent heard from elsewhere must not share a name with a drawn object: the
            # object mask decides source_visible by name
            assert a.elsewhere is None or a.elsewhere[0] not in objs, (s.name, a.elsewhere)
        for kind, _ in s.chains:
            assert kind in CHAIN_KINDS, kind


_validate()
