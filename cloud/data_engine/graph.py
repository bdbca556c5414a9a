"""The multimodal context graph of one recording, and its two narration views.

Built from annotations only (``shared.annotations.Annotations``); signals are
never read. Nodes are events of three kinds:

=========  =========================================================  =========================
kind       what                                                       ``on_screen``
=========  =========================================================  =========================
``sound``  an audio event (``labels.AUDIO_EVENTS``, or modality        the annotated
           ``audio``/``audiovisual`` for imported class names)        ``source_visible``
``action`` what the wearer does (``labels.VISUAL_ACTIONS``)           ``source_visible``
``state``  a visible object state (``labels.OBJECT_STATES``)          ``source_visible``
=========  =========================================================  =========================

Edges: sound -> source (the ``source`` object or agent, marked on- or
off-screen), effect -> cause (annotated ``cause`` links, with the onset lag).

Rules (documented in docs/data_engine.md, tested in tests/cloud):

- A sound is **on-screen** when ``source_visible`` is true (or unknown with
  modality ``audiovisual``); off-screen when false; unseen when unknown.
- A sound is **foreground** when it is part of what the wearer does or reacts
  to: it causes another event, is caused by one, is made by the wearer's
  action (``attrs.action_id``, source ``wearer``) or is a spoken request
  (``attrs.request``). Every other sound is **background**.
- The wearer's **actions** are always observable (hands and ego-motion show
  them even when the object acted on is out of frame). A **state** is
  observable unless ``source_visible`` is false (an object state out of frame
  makes no sound and cannot be seen).
- An object is **seen** in an event when ``source_visible`` is true, or
  unknown for an action or state.
- A sound is **audible** when its own SNR over the background (``snr_db``,
  its power over the noise power during its active spans) is at least
  :data:`AUDIBLE_SNR_DB`, or unknown. Below it, nobody can be said to have
  heard it: it is never a "heard" answer, and a window that holds it is never
  used to say it was *not* heard either (the QA generators skip such windows).
- The **av view** keeps every audible sound and every observable action and
  state: what a listener who also watches can know.
- The **visual view** keeps the observable actions and states and only
  on-screen sounds: what a vision-only narrator can see. Off-screen and
  unseen sounds, and the cause links that end on them, are not in it.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from shared.annotations import Annotations, Event
from shared.labels import LabelError, group_of

from cloud.data_engine.records import normalize_label

__all__ = ["SOUND", "ACTION", "STATE", "KINDS", "VIEWS", "AUDIBLE_SNR_DB", "Node", "CauseLink", "ContextGraph",
           "build_graph"]

SOUND, ACTION, STATE = "sound", "action", "state"
KINDS = (SOUND, ACTION, STATE)
VIEWS = ("av", "visual")
WEARER = "wearer"  # the source of the wearer's own sounds (footsteps)
#: Event SNR (dB) below which a sound counts as not heard. Tonal alarms are
#: still detectable a little below 0 dB broadband SNR; at -5 dB the world's
#: sizzles and distant dishes sink into the kitchen noise (median sizzle
#: -5.4 dB). The per-token perception targets use the same threshold.
AUDIBLE_SNR_DB = -5.0

_GROUP_KIND = {"audio_event": SOUND, "visual_action": ACTION, "object_state": STATE}


@dataclass(frozen=True)
class Node:
    """One event of the graph; times in seconds on the recording clock."""

    id: str
    label: str
    kind: str
    onset_s: float
    offset_s: float
    source: str | None
    on_screen: bool | None
    foreground: bool  # sounds only; False for actions and states
    cause: str | None
    location: str | None = None  # where an off-screen source is ("next room")
    text: str | None = None  # speech
    snr_db: float | None = None

    @property
    def audible(self) -> bool:
        """Loud enough over the background to have been heard (sounds only; True otherwise)."""
        return self.kind != SOUND or self.snr_db is None or self.snr_db >= AUDIBLE_SNR_DB

    @property
    def observable(self) -> bool:
        """Can anyone with ears and eyes on the wearer's head know it happened?"""
        if self.kind == SOUND:
            return self.audible
        return self.kind != STATE or self.on_screen is not False

    @property
    def in_visual(self) -> bool:
        """Is it in the vision-only narration?"""
        return self.on_screen is True if self.kind == SOUND else self.observable

    @property
    def source_seen(self) -> bool:
        """Is the source object in frame during the event?"""
        return self.on_screen is True or (self.kind != SOUND and self.on_screen is None)

    def overlap_s(self, t0: float, t1: float) -> float:
        return min(self.offset_s, t1) - max(self.onset_s, t0)


@dataclass(frozen=True)
class CauseLink:
    effect: str
    cause: str
    lag_s: float  # effect onset - cause onset


def _kind(e: Event) -> str:
    try:
        return _GROUP_KIND.get(group_of(e.label), ACTION)
    except LabelError:  # imported class names: trust the modality
        return ACTION if e.modality == "visual" else SOUND


def _on_screen(e: Event) -> bool | None:
    if e.source_visible is not None:
        return e.source_visible
    return True if e.modality == "audiovisual" else None


@dataclass(frozen=True)
class ContextGraph:
    """Everything the QA generators need to know about one recording.

    ``nodes`` are sorted by (onset, id). A view (:meth:`view`) is again a
    ContextGraph, with a subset of the nodes and links.
    """

    recording_id: str
    environment: str
    snr_db: float | None
    duration_s: float
    nodes: tuple[Node, ...]
    links: tuple[CauseLink, ...]
    scene_objects: tuple[str, ...]  # sorted: annotated objects and every source seen
    view_name: str = "full"

    # --- lookups -------------------------------------------------------------

    @cached_property
    def _by_id(self) -> dict[str, Node]:
        return {n.id: n for n in self.nodes}

    def node(self, node_id: str) -> Node:
        try:
            return self._by_id[node_id]
        except KeyError:
            raise KeyError(f"{self.recording_id}: no node {node_id!r} in the {self.view_name} graph") from None

    def has(self, node_id: str) -> bool:
        return node_id in self._by_id

    def of_kind(self, kind: str) -> list[Node]:
        return [n for n in self.nodes if n.kind == kind]

    def cause_of(self, node_id: str) -> Node | None:
        for l in self.links:
            if l.effect == node_id:
                return self.node(l.cause)
        return None

    def effects_of(self, node_id: str) -> list[Node]:
        return [self.node(l.effect) for l in self.links if l.cause == node_id]

    def sound_sources(self) -> dict[str, tuple[str | None, bool | None]]:
        """Sound event id -> (source, on_screen)."""
        return {n.id: (n.source, n.on_screen) for n in self.of_kind(SOUND)}

    # --- windows ---------------------------------------------------------------

    def inside(self, t0: float, t1: float, min_overlap_s: float) -> list[Node]:
        """Nodes clearly in ``[t0, t1]``: they overlap it by at least
        ``min_overlap_s`` (or by their whole length, if shorter; an instant
        event must lie in ``[t0, t1)``)."""
        out = []
        for n in self.nodes:
            dur = n.offset_s - n.onset_s
            if dur <= 0:
                ok = t0 <= n.onset_s < t1
            else:
                ok = n.overlap_s(t0, t1) >= min(min_overlap_s, dur) - 1e-9 and n.overlap_s(t0, t1) > 0
            if ok:
                out.append(n)
        return out

    def touching(self, t0: float, t1: float) -> list[Node]:
        """Nodes that overlap ``[t0, t1]`` at all (including instants on its edges)."""
        return [n for n in self.nodes if n.onset_s <= t1 and n.offset_s >= t0]

    # --- views -----------------------------------------------------------------

    def view(self, name: str) -> "ContextGraph":
        """The ``av`` or ``visual`` view (see the module docstring)."""
        if name not in VIEWS:
            raise ValueError(f"view: must be one of {VIEWS}, got {name!r}")
        keep = [n for n in self.nodes if (n.in_visual if name == "visual" else n.observable)]
        ids = {n.id for n in keep}
        links = tuple(l for l in self.links if l.effect in ids and l.cause in ids)
        return replace(self, nodes=tuple(keep), links=links, view_name=name)

    # --- for people ---------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary: sounds with their sources, actions, states, links."""

        def row(n: Node) -> dict[str, Any]:
            d: dict[str, Any] = {"id": n.id, "label": n.label, "onset_s": n.onset_s, "offset_s": n.offset_s,
                                 "source": n.source}
            if n.kind == SOUND:
                d["on_screen"] = n.on_screen
                d["ground"] = "foreground" if n.foreground else "background"
                if n.location:
                    d["location"] = n.location
                if n.text:
                    d["text"] = n.text
            else:
                d["observable"] = n.observable
            return d

        return {
            "recording_id": self.recording_id,
            "environment": self.environment,
            "snr_db": self.snr_db,
            "duration_s": self.duration_s,
            "objects": list(self.scene_objects),
            "sounds": [row(n) for n in self.of_kind(SOUND)],
            "actions": [row(n) for n in self.of_kind(ACTION)],
            "states": [row(n) for n in self.of_kind(STATE)],
            "cause_links": [{"effect": l.effect, "cause": l.cause, "lag_s": round(l.lag_s, 3)} for l in self.links],
        }


def build_graph(ann: Annotations) -> ContextGraph:
    """The context graph of one recording (see the module docstring for the rules)."""
    kinds = {e.id: _kind(e) for e in ann.events}
    causes = {e.cause for e in ann.events if e.cause is not None}
    nodes = []
    for e in ann.events:
        kind = kinds[e.id]
        source = normalize_label(e.source) if e.source else None
        foreground = kind == SOUND and (
            e.id in causes
            or e.cause is not None
            or "action_id" in e.attrs
            or source == WEARER
            or bool(e.attrs.get("request"))
        )
        sound = e.attrs.get("sound")  # sim/world keeps the spoken text with the sound's parameters
        text = e.attrs.get("text") or (sound.get("text") if isinstance(sound, dict) else None)
        loc = e.attrs.get("location")
        nodes.append(
            Node(
                id=e.id,
                label=normalize_label(e.label),
                kind=kind,
                onset_s=float(e.onset_s),
                offset_s=float(e.offset_s),
                source=source,
                on_screen=_on_screen(e),
                foreground=foreground,
                cause=e.cause,
                location=str(loc) if isinstance(loc, str) and loc else None,
                text=str(text) if isinstance(text, str) and text else None,
                snr_db=e.snr_db,
            )
        )
    nodes.sort(key=lambda n: (n.onset_s, n.id))
    links = tuple(CauseLink(eff.id, cau.id, float(lag)) for eff, cau, lag in ann.cause_links())
    seen = {n.source for n in nodes if n.source and n.source_seen and n.source != WEARER}
    objects = tuple(sorted({normalize_label(o) for o in ann.objects} | seen))
    return ContextGraph(
        recording_id=ann.recording_id,
        environment=normalize_label(ann.environment),
        snr_db=ann.snr_db,
        duration_s=float(ann.duration_s),
        nodes=tuple(nodes),
        links=links,
        scene_objects=objects,
    )
