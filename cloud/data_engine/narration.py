"""Narrations of a context-graph view: for people, and in closed form for QA.

Two narrations per recording, one per view of :mod:`cloud.data_engine.graph`:

- **visual**: what a vision-only narrator writes (actions, visible object
  states, and sounds only when their source is on screen);
- **av**: the joint audio-visual narration (every sound with its source,
  on- or off-screen, foreground or background, and the cause links).

:func:`narrate` gives the readable lines written to ``narrations/<id>.json``.
:func:`dense_items` and :func:`summary_parts` give the closed-form AVDN and
AVSN answers of one window (formatted by ``records.format_dense`` /
``records.format_summary``); QA answers are computed from the same view, so
a ``narration=visual`` answer is exactly what the visual narration says.
"""
from __future__ import annotations

import math

from cloud.data_engine.graph import ACTION, SOUND, STATE, ContextGraph, Node

__all__ = ["stamp_s", "dense_items", "summary_parts", "narrate"]


def stamp_s(t_s: float, window_start_s: float) -> int:
    """Whole seconds from the window start, rounded half up (never negative)."""
    return int(math.floor(max(0.0, t_s - window_start_s) + 0.5))


def dense_items(view: ContextGraph, t0: float, t1: float, min_overlap_s: float, max_items: int) -> list[tuple[int, str]]:
    """AVDN: the sounds and actions in the window as ``(second, label)``, in time order.

    An event that began before the window is stamped ``0``. Object states are
    left out (they are probed by AVH and TR) to keep the answer short; only
    the first ``max_items`` items are kept; a repeated ``(second, label)`` is
    listed once.
    """
    items: list[tuple[int, str]] = []
    for n in sorted(view.inside(t0, t1, min_overlap_s), key=lambda n: (max(n.onset_s, t0), n.onset_s, n.id)):
        if n.kind not in (SOUND, ACTION):
            continue
        item = (stamp_s(n.onset_s, t0), n.label)
        if item not in items:
            items.append(item)
    return items[:max_items]


def summary_parts(view: ContextGraph, t0: float, t1: float, min_overlap_s: float,
                  max_labels: int) -> tuple[str, list[str], list[str]]:
    """AVSN: ``(environment, heard, did)``; each list is distinct labels in order
    of first onset, at most ``max_labels`` long."""
    heard: list[str] = []
    did: list[str] = []
    for n in view.inside(t0, t1, min_overlap_s):  # nodes are time-sorted
        lst = heard if n.kind == SOUND else did if n.kind == ACTION else None
        if lst is not None and n.label not in lst:
            lst.append(n.label)
    return view.environment, heard[:max_labels], did[:max_labels]


def _line(view: ContextGraph, n: Node) -> str:
    t = f"{n.onset_s:6.1f}s"
    if n.kind == SOUND:
        where = {True: "in view", False: "off-screen", None: "not seen"}[n.on_screen]
        if n.location:
            where += f", {n.location}"
        ground = "" if n.foreground else ", background"
        said = f' "{n.text}"' if n.text else ""
        src = n.source or "unknown source"
        if view.view_name == "visual":  # only on-screen sounds reach this view: say what is seen
            return f"{t}  the {src} makes {n.label} ({where}{ground}){said}"
        return f"{t}  heard {n.label} from the {src} ({where}{ground}){said}"
    cause = view.cause_of(n.id)
    why = f", {n.onset_s - cause.onset_s:.1f}s after {cause.label}" if cause is not None else ""
    on = f" ({n.source})" if n.source else ""
    if n.kind == ACTION:
        return f"{t}  you {n.label}{on}{why}"
    assert n.kind == STATE
    return f"{t}  {n.label}{on}{why}"


def narrate(view: ContextGraph) -> list[str]:
    """Readable narration lines of a view, in time order."""
    return [_line(view, n) for n in view.nodes]
