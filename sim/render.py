"""The environment's ``rgb_array`` render: the current recording's timeline as an image.

One column band per hop (left to right), one row band per lane, drawn with
numpy alone (no plotting library in the hot path of a ``render()`` call)::

    trigger     grey where some trigger label fired
    events      orange over an important event's notification window
    camera      blue while the camera is on
    student     teal where the student ran
    offload     light / full_now / full_warm / audio in four colours
    queries     green (right) or red (wrong) at the hop that asked
    battery     a white line: share of the battery left (bottom 0, top 1)
    power       the power average against the cap: red above it (throttling)
"""
from __future__ import annotations

import numpy as np

__all__ = ["draw_timeline", "LANES", "COLOURS"]

LANES = ("trigger", "events", "camera", "student", "offload", "queries", "battery", "power")
COLOURS = {
    "trigger": (150, 150, 150), "events": (240, 150, 40), "camera": (60, 120, 230), "student": (40, 170, 160),
    "light": (170, 210, 250), "full_now": (120, 80, 200), "full_warm": (200, 60, 200), "audio": (250, 210, 60),
    "right": (60, 200, 90), "wrong": (220, 50, 50), "line": (245, 245, 245), "over": (220, 50, 50),
    "under": (80, 80, 80), "background": (25, 25, 30),
}
_LANE_PX = 14
_HOP_PX = 3


def draw_timeline(env) -> np.ndarray:
    """(H, W, 3) uint8 image of the hops played so far in the current recording of ``env``."""
    from sim.traces import VARIANTS

    s = env.segment
    tr = s.trace
    hist = env._hist or []
    T = tr.n_hops
    H, W = _LANE_PX * len(LANES), max(1, T) * _HOP_PX
    img = np.empty((H, W, 3), np.uint8)
    img[:] = COLOURS["background"]

    def fill(lane: str, i: int, colour, lo: float = 0.0, hi: float = 1.0) -> None:
        r = LANES.index(lane) * _LANE_PX
        y0, y1 = r + int(round((1 - hi) * (_LANE_PX - 2))) + 1, r + int(round((1 - lo) * (_LANE_PX - 2))) + 1
        img[y0:y1, i * _HOP_PX:(i + 1) * _HOP_PX] = colour

    fired = tr.trigger_fired.any(axis=1)
    for i in np.flatnonzero(fired):
        fill("trigger", int(i), COLOURS["trigger"])
    for h0, h1 in s.st.ev_hops:
        for i in range(h0, h1 + 1):
            fill("events", i, COLOURS["events"])
    cap = env.power_cap_mw
    outcomes = {}
    for row in env.stats["query_log"]:
        if row[0] == env._seg_k:
            outcomes[row[2]] = row[4]
    for i, (camera, student, v, q, battery, power, *_) in enumerate(hist):
        if camera:
            fill("camera", i, COLOURS["camera"])
        if student:
            fill("student", i, COLOURS["student"])
        if v >= 0:
            fill("offload", i, COLOURS[VARIANTS[v]])
        if q >= 0:
            fill("queries", i, COLOURS["right" if outcomes.get(tr.query_ids[q]) else "wrong"])
        b = min(1.0, max(0.0, battery))
        fill("battery", i, COLOURS["line"], b - 0.08, b)
        level = min(1.0, power / (2 * cap)) if cap > 0 else 0.0
        fill("power", i, COLOURS["over" if power > cap else "under"], 0.0, max(level, 0.08))
    return img
