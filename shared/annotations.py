"""Recording annotations: the versioned JSON schema and its strict validation.

An ``annotations.json`` holds everything that is known about a recording
besides its signals: events (with cause links), the scene, per-frame camera
motion and hand occlusion, user queries with gold answers, and provenance.
The full schema, field by field, is in ``docs/recording.md``.

Validation is strict and every error names the offending field by its path,
e.g. ``annotations.events[3].onset_s: expected a number, got 'abc'``, so a
hand-edited or imported file can be fixed without guessing.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "SCHEMA_VERSION",
    "MODALITIES",
    "AnnotationError",
    "Event",
    "FrameInfo",
    "Query",
    "Annotations",
]

#: Version of the annotations schema written by this code. Loading accepts
#: exactly this version; older files are upgraded by ``_UPGRADES`` (none yet).
SCHEMA_VERSION = 1

MODALITIES = ("audio", "visual", "audiovisual")


class AnnotationError(ValueError):
    """Invalid annotations; the message starts with the path of the bad field."""


# --- small typed readers: each names the field path in its error -------------


def _fail(path: str, msg: str) -> AnnotationError:
    return AnnotationError(f"{path}: {msg}")


def _req(d: dict, key: str, path: str) -> Any:
    if key not in d:
        raise _fail(f"{path}.{key}", "required field is missing")
    return d[key]


def _num(v: Any, path: str, *, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _fail(path, f"expected a number, got {v!r}")
    v = float(v)
    if not math.isfinite(v):
        raise _fail(path, f"expected a finite number, got {v!r}")
    if lo is not None and v < lo:
        raise _fail(path, f"must be >= {lo}, got {v}")
    if hi is not None and v > hi:
        raise _fail(path, f"must be <= {hi}, got {v}")
    return v


def _opt_num(v: Any, path: str, **kw: float) -> float | None:
    return None if v is None else _num(v, path, **kw)


def _str(v: Any, path: str, *, allow_empty: bool = False) -> str:
    if not isinstance(v, str):
        raise _fail(path, f"expected a string, got {v!r}")
    if not allow_empty and not v.strip():
        raise _fail(path, "must not be empty")
    return v


def _opt_str(v: Any, path: str) -> str | None:
    return None if v is None else _str(v, path)


def _bool(v: Any, path: str) -> bool:
    if not isinstance(v, bool):
        raise _fail(path, f"expected true or false, got {v!r}")
    return v


def _list(v: Any, path: str) -> list:
    if not isinstance(v, list):
        raise _fail(path, f"expected a list, got {type(v).__name__}")
    return v


def _dict(v: Any, path: str) -> dict:
    if not isinstance(v, dict):
        raise _fail(path, f"expected an object, got {type(v).__name__}")
    return v


def _no_extra(d: dict, allowed: set[str], path: str) -> None:
    extra = sorted(set(d) - allowed)
    if extra:
        raise _fail(f"{path}.{extra[0]}", f"unknown field (allowed: {', '.join(sorted(allowed))})")


# --- schema ------------------------------------------------------------------


@dataclass
class Event:
    """One annotated event on the recording clock.

    Attributes:
        id: unique within the recording (e.g. ``"e007"``).
        onset_s, offset_s: start and end in seconds, ``0 <= onset_s <= offset_s``.
        label: a name from :mod:`shared.labels` for synthetic data; imported data
            may carry its dataset's own class names.
        modality: ``audio`` (heard only), ``visual`` (seen only) or ``audiovisual``.
        source: the object or agent that makes the sound or is acted on
            (``"microwave"``, ``"door"``, ``"person"``), or None.
        source_visible: whether the sound source is in frame; None when unknown.
        cause: id of the event that caused this one (effect -> cause), or None.
        snr_db: the event's level over the background noise, if known.
        attrs: free-form extras (spoken text, object asked for, class_id ...).
    """

    id: str
    onset_s: float
    offset_s: float
    label: str
    modality: str
    source: str | None = None
    source_visible: bool | None = None
    cause: str | None = None
    snr_db: float | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Any, path: str) -> "Event":
        d = _dict(d, path)
        _no_extra(d, {f for f in cls.__dataclass_fields__}, path)
        onset = _num(_req(d, "onset_s", path), f"{path}.onset_s", lo=0.0)
        offset = _num(_req(d, "offset_s", path), f"{path}.offset_s", lo=0.0)
        if offset < onset:
            raise _fail(f"{path}.offset_s", f"ends before onset_s ({offset} < {onset})")
        modality = _str(_req(d, "modality", path), f"{path}.modality")
        if modality not in MODALITIES:
            raise _fail(f"{path}.modality", f"must be one of {MODALITIES}, got {modality!r}")
        sv = d.get("source_visible")
        return cls(
            id=_str(_req(d, "id", path), f"{path}.id"),
            onset_s=onset,
            offset_s=offset,
            label=_str(_req(d, "label", path), f"{path}.label"),
            modality=modality,
            source=_opt_str(d.get("source"), f"{path}.source"),
            source_visible=None if sv is None else _bool(sv, f"{path}.source_visible"),
            cause=_opt_str(d.get("cause"), f"{path}.cause"),
            snr_db=_opt_num(d.get("snr_db"), f"{path}.snr_db"),
            attrs=dict(_dict(d.get("attrs", {}), f"{path}.attrs")),
        )


@dataclass
class Query:
    """A question the wearer asks at ``t_s``, with its gold answer.

    ``event_ids`` name the events the answer rests on (for scoring and for the
    simulator's task: answering needs evidence from those events).
    """

    id: str
    t_s: float
    text: str
    answer: str
    kind: str = "open"
    event_ids: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: Any, path: str) -> "Query":
        d = _dict(d, path)
        _no_extra(d, {f for f in cls.__dataclass_fields__}, path)
        ev = _list(d.get("event_ids", []), f"{path}.event_ids")
        return cls(
            id=_str(_req(d, "id", path), f"{path}.id"),
            t_s=_num(_req(d, "t_s", path), f"{path}.t_s", lo=0.0),
            text=_str(_req(d, "text", path), f"{path}.text"),
            answer=_str(_req(d, "answer", path), f"{path}.answer"),
            kind=_str(d.get("kind", "open"), f"{path}.kind"),
            event_ids=[_str(e, f"{path}.event_ids[{i}]") for i, e in enumerate(ev)],
        )


@dataclass
class FrameInfo:
    """Per-frame ground truth, one entry per video frame (parallel lists).

    Attributes:
        camera_motion_deg_s: head rotation speed in degrees per second.
        hand_occlusion: share of the frame covered by the wearer's hands, 0..1.
        blur: motion-blur length in pixels (0 = sharp); None entries = unknown.
    """

    camera_motion_deg_s: list[float] = field(default_factory=list)
    hand_occlusion: list[float] = field(default_factory=list)
    blur_px: list[float] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: Any, path: str) -> "FrameInfo":
        d = _dict(d, path)
        _no_extra(d, {f for f in cls.__dataclass_fields__}, path)
        out = {}
        for key, hi in (("camera_motion_deg_s", None), ("hand_occlusion", 1.0), ("blur_px", None)):
            vals = _list(d.get(key, []), f"{path}.{key}")
            out[key] = [_num(v, f"{path}.{key}[{i}]", lo=0.0, hi=hi) for i, v in enumerate(vals)]
        return cls(**out)

    def __len__(self) -> int:
        return max(len(self.camera_motion_deg_s), len(self.hand_occlusion), len(self.blur_px))


@dataclass
class Annotations:
    """Everything known about one recording besides its signals.

    Attributes:
        recording_id: stable name of the recording.
        duration_s: length of the recording in seconds.
        environment: scene context (a name from ``labels.ENVIRONMENTS`` for
            synthetic data; ``"unknown"`` is allowed for imports).
        snr_db: environment noise level as signal-to-noise ratio of the
            foreground sounds over the background, if known.
        events, queries: see :class:`Event`, :class:`Query`.
        frames: per-frame ground truth (:class:`FrameInfo`); empty when unknown.
        objects: names of the objects present in the scene.
        provenance: where the recording came from (generator, seed, importer,
            which real or fallback sounds were used ...).
    """

    recording_id: str
    duration_s: float
    environment: str = "unknown"
    snr_db: float | None = None
    events: list[Event] = field(default_factory=list)
    queries: list[Query] = field(default_factory=list)
    frames: FrameInfo = field(default_factory=FrameInfo)
    objects: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    # --- (de)serialisation --------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (key order fixed, so files are byte-reproducible)."""
        d = asdict(self)
        return {"schema_version": d.pop("schema_version"), **d}

    @classmethod
    def from_dict(cls, d: Any, path: str = "annotations") -> "Annotations":
        """Validate and build; raises :class:`AnnotationError` naming the field."""
        d = _dict(d, path)
        version = _req(d, "schema_version", path)
        if version != SCHEMA_VERSION:
            raise _fail(
                f"{path}.schema_version",
                f"unsupported version {version!r} (this Earshot reads version {SCHEMA_VERSION})",
            )
        _no_extra(d, {f for f in cls.__dataclass_fields__}, path)
        ann = cls(
            recording_id=_str(_req(d, "recording_id", path), f"{path}.recording_id"),
            duration_s=_num(_req(d, "duration_s", path), f"{path}.duration_s", lo=0.0),
            environment=_str(d.get("environment", "unknown"), f"{path}.environment"),
            snr_db=_opt_num(d.get("snr_db"), f"{path}.snr_db"),
            events=[
                Event.from_dict(e, f"{path}.events[{i}]")
                for i, e in enumerate(_list(d.get("events", []), f"{path}.events"))
            ],
            queries=[
                Query.from_dict(q, f"{path}.queries[{i}]")
                for i, q in enumerate(_list(d.get("queries", []), f"{path}.queries"))
            ],
            frames=FrameInfo.from_dict(d.get("frames", {}), f"{path}.frames"),
            objects=[
                _str(o, f"{path}.objects[{i}]")
                for i, o in enumerate(_list(d.get("objects", []), f"{path}.objects"))
            ],
            provenance=dict(_dict(d.get("provenance", {}), f"{path}.provenance")),
        )
        ann.check(path)
        return ann

    # --- cross-field checks -------------------------------------------------

    def check(self, path: str = "annotations") -> None:
        """Checks that span fields: unique ids, cause links resolve and point
        back in time, events and queries lie inside the recording.

        Raises:
            AnnotationError: naming the first offending field.
        """
        ids: dict[str, int] = {}
        slack = 1e-6  # float round-off from JSON
        for i, e in enumerate(self.events):
            if e.id in ids:
                raise _fail(f"{path}.events[{i}].id", f"duplicate id {e.id!r} (also events[{ids[e.id]}])")
            ids[e.id] = i
            if e.offset_s > self.duration_s + slack:
                raise _fail(
                    f"{path}.events[{i}].offset_s",
                    f"{e.offset_s} is past the end of the recording ({self.duration_s} s)",
                )
        for i, e in enumerate(self.events):
            if e.cause is None:
                continue
            if e.cause not in ids:
                raise _fail(f"{path}.events[{i}].cause", f"no event with id {e.cause!r}")
            if e.cause == e.id:
                raise _fail(f"{path}.events[{i}].cause", "an event cannot cause itself")
            cause = self.events[ids[e.cause]]
            if cause.onset_s > e.onset_s + slack:
                raise _fail(
                    f"{path}.events[{i}].cause",
                    f"cause {e.cause!r} starts after its effect ({cause.onset_s} > {e.onset_s})",
                )
        qids: set[str] = set()
        for i, q in enumerate(self.queries):
            if q.id in qids:
                raise _fail(f"{path}.queries[{i}].id", f"duplicate id {q.id!r}")
            qids.add(q.id)
            if q.t_s > self.duration_s + slack:
                raise _fail(f"{path}.queries[{i}].t_s", f"{q.t_s} is past the end ({self.duration_s} s)")
            for j, eid in enumerate(q.event_ids):
                if eid not in ids:
                    raise _fail(f"{path}.queries[{i}].event_ids[{j}]", f"no event with id {eid!r}")
        lens = {k: len(getattr(self.frames, k)) for k in ("camera_motion_deg_s", "hand_occlusion", "blur_px")}
        nonzero = {n for n in lens.values() if n}
        if len(nonzero) > 1:
            raise _fail(f"{path}.frames", f"per-frame lists differ in length: {lens}")

    # --- conveniences -------------------------------------------------------

    def event(self, event_id: str) -> Event:
        """The event with ``event_id`` (raises KeyError naming it)."""
        for e in self.events:
            if e.id == event_id:
                return e
        raise KeyError(f"no event with id {event_id!r}")

    def cause_links(self) -> list[tuple[Event, Event, float]]:
        """``(effect, cause, lag_s)`` for every cause link, lag = onset difference."""
        by_id = {e.id: e for e in self.events}
        return [
            (e, by_id[e.cause], e.onset_s - by_id[e.cause].onset_s)
            for e in self.events
            if e.cause is not None
        ]
