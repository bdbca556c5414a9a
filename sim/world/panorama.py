"""Paint a scenario as a cylindrical panorama (the 2.5-D room around the wearer).

The panorama is an RGB image plus an object-id image on a cylinder: column
``x`` is azimuth ``x / ppd`` degrees (wrapping at 360), row ``y`` is elevation
``EL_MAX_DEG - y / ppd``. The camera in video.py samples it through index
arrays, so one painted panorama serves every frame of a recording.

Objects whose look changes (doors, steam, lit screens, absent objects once
taken) are kept out of the static base and painted per combination of looks
(:meth:`Panorama.compose`): a recording has a handful of still combinations
(cached) and a few animated objects painted per frame.

Shapes are simple (rectangles, ellipses, trapezoids) but each kind has the
details that make it recognisable at 128 px: an oven has a glass door and a
handle, a door a frame and a knob, a person a head and shoulders.
"""
from __future__ import annotations

import zlib
from collections import OrderedDict

import numpy as np

from sim.world.scenarios import Scenario, SceneObject

__all__ = ["EL_MAX_DEG", "ANIMATION_PHASES", "ANIMATED_LOOKS", "EXTRA_IDS", "Panorama"]

EL_MAX_DEG = 55.0  # panorama covers elevations -55..+55 deg: 70 deg FOV + 20 deg pitch fits
ANIMATION_PHASES = 4  # steam, water and ringing screens cycle through this many looks
ANIMATED_LOOKS = ("steam", "running", "lit")  # looks that change from frame to frame
_STILL_CACHE = 6  # still-look panoramas kept (~2 MB each at 128 px frames)
EXTRA_IDS = ("visitor", "phone")  # drawn things that may not be scene objects: the person at the
# door, a phone taken out of a pocket (held items are drawn by the hands, with their own id)
_SKIN = (224, 172, 140)
_NOISE_AMPLITUDE = 7.0  # texture on walls and floors, 0..255 units: makes blur and motion visible


def _seed_of(text: str) -> int:
    return zlib.crc32(text.encode())  # stable across runs (hash() is salted per process)


class _Canvas:
    """RGB + id arrays with painting in degrees (regions may wrap at 360)."""

    def __init__(self, rgba: np.ndarray, ppd: float):
        # one (H, W, 4) array: colour in channels 0-2, object id in channel 3
        self.rgba, self.rgb, self.ids, self.ppd = rgba, rgba[..., :3], rgba[..., 3], ppd
        self.h, self.w = self.ids.shape

    def region(self, az: float, el: float, w: float, h: float):
        """Rows slice, wrapped column indices and local coords in [-1, 1] of a box."""
        x0 = int(np.floor(((az - w / 2) % 360.0) * self.ppd))
        nx = max(1, int(round(w * self.ppd)))
        y0 = int(np.floor((EL_MAX_DEG - (el + h / 2)) * self.ppd))
        ny = max(1, int(round(h * self.ppd)))
        y1 = min(self.h, y0 + ny)
        y0c = max(0, y0)
        # A slice when the box does not wrap: basic indexing is a view, much faster.
        cols = slice(x0, x0 + nx) if x0 + nx <= self.w else (x0 + np.arange(nx)) % self.w
        u = (np.arange(nx, dtype=np.float32) + 0.5) / nx * 2 - 1
        v = (np.arange(y0c - y0, y1 - y0, dtype=np.float32) + 0.5) / ny * 2 - 1
        return slice(y0c, y1), cols, u[None, :], v[:, None]

    def paint(self, az, el, w, h, color, oid=None, alpha=1.0, shape="rect", shade=0.0):
        """Fill a box (``rect``), an ``ellipse`` or a ``trap`` (narrow top) with
        ``color``; ``shade`` darkens towards the bottom (0..1, negative lightens)."""
        rows, cols, u, v = self.region(az, el, w, h)
        if rows.stop <= rows.start:
            return
        if shape == "rect" and alpha == 1.0 and shade == 0.0:
            self.rgb[rows, cols] = np.asarray(color, np.uint8)
            if oid is not None:
                self.ids[rows, cols] = oid
            return
        if shape == "ellipse":
            mask = (u**2 + v**2) <= 1.0
        elif shape == "trap":
            mask = np.abs(u) <= 0.6 + 0.4 * (v + 1) / 2
        else:
            mask = np.ones((v.shape[0], u.shape[1]), bool)
        col = np.clip(np.asarray(color, np.float32) * (1.0 - shade * (v + 1) / 2)[..., None], 0, 255)
        weight = (alpha * mask)[..., None].astype(np.float32)
        sub = self.rgb[rows, cols].astype(np.float32)
        self.rgb[rows, cols] = (sub + weight * (col - sub)).astype(np.uint8)
        if oid is not None and alpha >= 0.5:
            ids = self.ids[rows, cols]
            self.ids[rows, cols] = np.where(mask, np.uint8(oid), ids)


def _darker(c, f=0.7):
    return tuple(int(x * f) for x in c)


def _lighter(c, f=0.4):
    return tuple(int(x + (255 - x) * f) for x in c)


# --- one painter per kind: (canvas, object, variant, phase, id, ids by name) --------------


def _person(c, az, el, w, h, col, oid):
    c.paint(az, el - h * 0.3, w * 0.7, h * 0.4, (50, 50, 70), oid)  # legs
    c.paint(az, el + h * 0.08, w, h * 0.45, col, oid, shape="trap", shade=0.3)  # torso
    c.paint(az, el + h * 0.38, w * 0.42, h * 0.2, _SKIN, oid, shape="ellipse")  # head
    c.paint(az, el + h * 0.46, w * 0.46, h * 0.08, (60, 40, 30), oid, shape="ellipse")  # hair


def _paint_object(c: _Canvas, o: SceneObject, variant: str, phase: int, oid: int, extra: dict[str, int]):
    az, el, w, h, col = o.az_deg, o.el_deg, o.w_deg, o.h_deg, o.color
    k = o.kind
    if variant == "absent":
        return
    if k == "counter":
        c.paint(az, el, w, h, _lighter(col, 0.3), oid)
        c.paint(az, el - h / 2 - 12, w, 24, _darker(col, 0.8), oid, shade=0.3)
        for i in range(int(w // 15)):
            c.paint(az - w / 2 + 7.5 + 15 * i, el - h / 2 - 8, 1.0, 6, (200, 200, 200), oid)
    elif k == "cupboards":
        c.paint(az, el, w, h, col, oid, shade=0.2)
        for i in range(int(w // 20)):
            x = az - w / 2 + 20 * i
            c.paint(x, el, 0.8, h, _darker(col), oid)
            c.paint(x + 17, el - h * 0.3, 1.0, 3, (220, 220, 220), oid)
    elif k == "window":
        c.paint(az, el, w + 3, h + 3, (240, 240, 240), oid)
        c.paint(az, el, w, h, col, oid, shade=-0.3)
        c.paint(az, el - h * 0.25, w, h * 0.3, _darker((110, 160, 100), 0.9), oid)  # trees outside
        c.paint(az, el, 1.2, h, (240, 240, 240), oid)
        c.paint(az, el, w, 1.2, (240, 240, 240), oid)
    elif k == "table":
        c.paint(az, el, w, h * 0.4, col, oid)
        for s in (-1, 1):
            c.paint(az + s * w * 0.42, el - h * 1.5, 2.0, h * 2.4, _darker(col), oid)
    elif k == "fridge":
        c.paint(az, el, w, h, col, oid, shade=0.15)
        c.paint(az, el + h * 0.2, w, 0.8, _darker(col, 0.6), oid)
        c.paint(az + w * 0.38, el + h * 0.05, 1.2, h * 0.25, (120, 120, 120), oid)
    elif k == "door":
        c.paint(az, el, w + 3, h + 2, _darker(col, 0.6), oid)  # frame
        if variant in ("open", "visitor"):
            c.paint(az, el, w, h, (40, 36, 34), oid, shade=-0.8)  # dark hallway
            c.paint(az - w * 0.42, el, w * 0.2, h, col, oid, shade=0.2)  # door edge-on at the hinge
            if variant == "visitor":
                _person(c, az + w * 0.05, el - h * 0.05, w * 0.6, h * 0.85, (60, 130, 90), extra["visitor"])
        else:
            c.paint(az, el, w, h, col, oid, shade=0.2)
            c.paint(az, el + h * 0.22, w * 0.7, h * 0.3, _darker(col, 0.85), oid)  # panels
            c.paint(az, el - h * 0.2, w * 0.7, h * 0.3, _darker(col, 0.85), oid)
            c.paint(az + w * 0.36, el, 2.2, 2.2, (230, 200, 90), oid, shape="ellipse")  # knob
    elif k == "board":
        c.paint(az, el, w, h, col, oid)
        c.paint(az - w * 0.15, el + h * 0.3, w * 0.3, h * 0.8, (230, 120, 40), oid, shape="ellipse")  # carrot
    elif k == "shaker":
        c.paint(az, el, w, h, col, oid)
        c.paint(az, el + h * 0.45, w * 0.8, h * 0.2, (170, 170, 175), oid)
    elif k == "sink":
        c.paint(az, el, w, h, col, oid)
        c.paint(az, el + 0.5, w * 0.8, h * 0.6, _darker(col, 0.6), oid, shape="ellipse")
        c.paint(az, el + h * 0.5 + 5, 1.5, 10, (200, 200, 205), oid)  # tap pillar
        c.paint(az + 2, el + h * 0.5 + 9.5, 5, 1.2, (200, 200, 205), oid)  # spout
        if variant == "running":
            for i in range(6):
                y = el + h * 0.5 + 9 - 1.6 * i - 0.4 * phase
                c.paint(az + 4, y, 1.2, 1.6, (200, 225, 255) if i % 2 else (150, 190, 240), oid, alpha=0.9)
    elif k == "stove":
        c.paint(az, el, w, h, col, oid)
        for dx in (-w * 0.25, w * 0.25):
            c.paint(az + dx, el, w * 0.3, h * 0.6, (30, 30, 30), oid, shape="ellipse")
    elif k in ("pan", "kettle"):
        if k == "pan":
            c.paint(az, el, w, h, col, oid, shape="ellipse")
            c.paint(az + w * 0.75, el, w * 0.5, 1.0, (30, 30, 30), oid)
            top = el + h / 2
        else:
            c.paint(az, el, w, h, col, oid, shape="trap", shade=0.3)
            c.paint(az + w * 0.6, el + h * 0.15, w * 0.45, 1.2, col, oid)
            c.paint(az, el + h * 0.55, w * 0.5, 1.2, (30, 30, 30), oid)
            top = el + h / 2
        if variant == "steam":
            for i in range(4):
                rise = ((i + phase / ANIMATION_PHASES) % 4) * 3.0
                sway = 1.5 * np.sin(0.9 * i + phase)
                c.paint(az + sway + (w * 0.6 if k == "kettle" else 0), top + 2 + rise, 4 + rise * 0.5, 3 + rise * 0.3,
                        (245, 245, 245), oid, alpha=0.75 - 0.12 * rise / 3, shape="ellipse")
    elif k == "oven":
        c.paint(az, el, w, h, col, oid, shade=0.2)
        if variant == "open":
            c.paint(az, el - 1, w * 0.85, h * 0.7, (40, 20, 10), oid, shade=-0.6)  # interior
            c.paint(az, el - 1, w * 0.7, 1.0, (150, 150, 150), oid)  # rack
            c.paint(az, el + h * 0.1, w * 0.5, 2, (240, 120, 40), oid, alpha=0.7)  # glowing element
            c.paint(az, el - h * 0.5 - 3, w * 0.95, 6, _lighter(col, 0.3), oid, shape="trap")  # door folded down
        else:
            c.paint(az, el - 1, w * 0.8, h * 0.55, (25, 25, 30), oid)  # glass
            c.paint(az, el + h * 0.35, w * 0.8, 1.5, (200, 200, 205), oid)  # handle
    elif k == "microwave":
        c.paint(az, el, w, h, col, oid, shade=0.1)
        c.paint(az + w * 0.35, el, w * 0.2, h * 0.8, (60, 60, 66), oid)  # keypad
        if variant == "open":
            c.paint(az - w * 0.12, el, w * 0.68, h * 0.8, (250, 230, 150), oid)  # lit interior
            c.paint(az - w * 0.12, el - h * 0.25, w * 0.5, h * 0.2, (200, 200, 200), oid, shape="ellipse")
            c.paint(az - w * 0.58, el, w * 0.16, h, _darker(col, 0.9), oid)  # door swung open
        else:
            c.paint(az - w * 0.12, el, w * 0.62, h * 0.7, (30, 30, 34), oid)
    elif k == "cup":
        c.paint(az, el, w, h, col, oid, shade=0.2)
        c.paint(az + w * 0.7, el, w * 0.4, h * 0.5, col, oid, shape="ellipse")
    elif k == "spoon":
        c.paint(az, el, w, h, col, oid, shape="ellipse")
    elif k == "book":
        c.paint(az, el, w, h, col, oid)
        c.paint(az, el + h * 0.4, w * 0.9, h * 0.15, (245, 245, 235), oid)
    elif k == "phone":
        c.paint(az, el, w, h, col, oid)
        if variant == "lit":
            glow = 1.0 - 0.15 * (phase % 2)
            c.paint(az, el, w * 0.85, h * 0.75, tuple(int(x * glow) for x in (180, 230, 255)), oid)
    elif k == "person":
        _person(c, az, el, w, h, col, oid)
    elif k == "monitor":
        c.paint(az, el - h * 0.65, w * 0.12, h * 0.35, (40, 40, 44), oid)  # stand
        c.paint(az, el, w, h, col, oid)
        if variant == "on":
            c.paint(az, el, w * 0.92, h * 0.86, (40, 90, 160), oid)
            for i in range(4):
                c.paint(az - w * 0.1, el + h * 0.28 - i * h * 0.17, w * 0.6, h * 0.06, (230, 230, 240), oid)
        else:
            c.paint(az, el, w * 0.92, h * 0.86, (12, 12, 16), oid)
    elif k == "keyboard":
        c.paint(az, el, w, h, col, oid)
        for i in range(8):
            c.paint(az - w * 0.44 + i * w / 8 + w / 16, el, w / 8 * 0.6, h * 0.6, (110, 110, 118), oid)
    elif k == "shelf":
        c.paint(az, el, w, h, col, oid, shade=0.2)
        rng = np.random.default_rng(_seed_of(o.name))
        for r in range(4):
            y = el + h / 2 - (r + 0.5) * h / 4
            c.paint(az, y - h / 8 + 0.5, w * 0.95, 1.0, _darker(col), oid)
            x = az - w * 0.44
            while x < az + w * 0.4:
                bw = float(rng.uniform(1.5, 3.5))
                c.paint(x + bw / 2, y, bw * 0.9, h / 4 * 0.7, tuple(int(v) for v in rng.integers(40, 220, 3)), oid)
                x += bw
    elif k == "plant":
        c.paint(az, el - h * 0.38, w * 0.5, h * 0.24, (150, 80, 50), oid, shape="trap")
        for dx, dy, s in ((0, 0.1, 0.7), (-0.25, -0.05, 0.5), (0.25, 0.0, 0.5), (0, 0.3, 0.5)):
            c.paint(az + dx * w, el + dy * h, w * s * 1.2, h * s * 0.6, col, oid, shape="ellipse", shade=0.3)
    elif k == "sofa":
        c.paint(az, el + h * 0.25, w, h * 0.5, _darker(col, 0.85), oid)  # back
        c.paint(az, el - h * 0.2, w, h * 0.5, col, oid, shade=0.3)  # seat
        for s in (-1, 1):
            c.paint(az + s * w * 0.47, el, w * 0.08, h * 0.8, _darker(col, 0.7), oid)
    elif k == "lamp":
        c.paint(az, el - h * 0.1, 1.0, h * 0.8, (60, 60, 60), oid)
        c.paint(az, el + h * 0.35, w, h * 0.25, col, oid, shape="trap")
    elif k == "clock":
        c.paint(az, el, w, h, col, oid)
        c.paint(az, el, w * 0.8, h * 0.6, (20, 20, 20), oid)
        c.paint(az, el, w * 0.6, h * 0.2, (255, 80, 60), oid)
    elif k == "shopfront":
        c.paint(az, el, w, h, col, oid, shade=0.2)
        c.paint(az, el + h * 0.4, w * 0.9, h * 0.14, (240, 200, 60), oid)  # sign
        for s in (-1, 1):
            c.paint(az + s * w * 0.3, el - h * 0.05, w * 0.3, h * 0.5, (180, 210, 230), oid, shade=-0.3)
    elif k == "traffic_light":
        c.paint(az, el - h * 0.25, 0.8, h * 0.75, (50, 50, 50), oid)
        c.paint(az, el + h * 0.3, w, h * 0.3, col, oid)
        for i, lc in enumerate(((220, 40, 40), (230, 190, 40), (50, 200, 80))):
            c.paint(az, el + h * 0.4 - i * h * 0.1, w * 0.6, h * 0.07, lc, oid, shape="ellipse")
    elif k == "car":
        c.paint(az, el + h * 0.25, w * 0.6, h * 0.45, _darker(col, 0.9), oid, shape="trap")  # cabin
        c.paint(az, el + h * 0.28, w * 0.5, h * 0.3, (140, 180, 210), oid, shape="trap")  # windows
        c.paint(az, el - h * 0.1, w, h * 0.45, col, oid, shade=0.3)  # body
        for s in (-1, 1):
            c.paint(az + s * w * 0.3, el - h * 0.35, w * 0.16, h * 0.3, (20, 20, 20), oid, shape="ellipse")
    else:
        c.paint(az, el, w, h, col, oid)


class Panorama:
    """The painted world of one recording.

    Args:
        scn: the (jittered) scenario.
        ppd: panorama pixels per degree (2x the camera's, so zoomed views stay sharp).
        rng: draws the wall and floor texture.

    Attributes:
        width_px, height_px: panorama size; ``ids_by_name``: object name -> id
        (0 is background; ids fit uint8).

    Looks are composed in two levels so that memory stays small and frames
    stay cheap: still looks (open, absent, on ...) give a cached panorama per
    combination (a handful per recording, LRU); animated looks (steam,
    running water, a ringing screen) are painted into it for one frame and
    undone at the next call (a few small regions).
    """

    def __init__(self, scn: Scenario, ppd: float, rng: np.random.Generator):
        self.scn, self.ppd = scn, float(ppd)
        self.width_px = int(round(360.0 * ppd))
        self.height_px = int(round(2 * EL_MAX_DEG * ppd))
        names = [o.name for o in scn.objects]
        names += [n for n in EXTRA_IDS if n not in names]
        self.ids_by_name = {n: i + 1 for i, n in enumerate(names)}
        assert len(names) < 255
        c = _Canvas(np.zeros((self.height_px, self.width_px, 4), np.uint8), self.ppd)
        self._paint_backdrop(c, rng)
        self._dynamic = [o for o in scn.objects if o.variants]
        for o in sorted((o for o in scn.objects if not o.variants), key=lambda o: o.layer):
            _paint_object(c, o, "default", 0, self.ids_by_name[o.name], self.ids_by_name)
        self._base = c
        self._still: OrderedDict[tuple, _Canvas] = OrderedDict()
        self._undo: list[tuple[_Canvas, slice, slice | np.ndarray, np.ndarray]] = []
        self._patches: dict[tuple, np.ndarray] = {}  # (still canvas, object, look, phase) -> painted box

    def _paint_backdrop(self, c: _Canvas, rng: np.random.Generator) -> None:
        pal = self.scn.palette
        h, w = c.h, c.w
        el = EL_MAX_DEG - (np.arange(h) + 0.5) / self.ppd
        if self.scn.style == "street":
            sky = np.asarray(pal["sky"], np.float32)
            c.rgb[:] = (sky * (0.85 + 0.25 * np.clip(el / EL_MAX_DEG, 0, 1))[:, None])[:, None, :].clip(0, 255)
            rng_b = np.random.default_rng(_seed_of("street"))
            az = 0.0
            while az < 360.0:  # facades: near ones (right side) tall, far ones (left, across the road) low
                bw = float(rng_b.uniform(14, 30))
                centre = az + bw / 2
                gap = min(abs(((centre - a + 180) % 360) - 180) for a in (0.0, 180.0)) < 16
                if not gap:
                    near = 0 < centre < 180
                    top = float(rng_b.uniform(25, 45)) if near else float(rng_b.uniform(6, 16))
                    base = -12.0 if near else -3.0
                    colr = np.clip(np.asarray(pal["building"]) + rng_b.integers(-40, 41, 3), 0, 255)
                    c.paint(centre, (top + base) / 2, bw - 0.5, top - base, tuple(int(v) for v in colr), shade=0.15)
                    for wy in np.arange(base + 6, top - 2, 7 if near else 4):
                        for wx in np.arange(az + 3, az + bw - 2, 5 if near else 3):
                            c.paint(wx, wy, 2.4 if near else 1.2, 3 if near else 1.6, (70, 90, 120))
                az += bw
            c.paint(270, -14, 180, 22, pal["road"])  # the road on the left
            for a in np.arange(190, 350, 12):
                c.paint(a, -12, 5, 1.0, (230, 230, 230))  # lane dashes
            for a in (0.0, 180.0):  # the street running to the horizon
                c.paint(a, -12, 30, 24, pal["road"], shape="trap")
            c.paint(180, -40, 360, 30, pal["walk"], shade=0.2)  # sidewalk underfoot
            c.paint(90, -25, 180, 1.0, (120, 120, 120))  # kerb
        else:
            floor_el, ceil_el = -42.0, 36.0
            wall = np.asarray(pal["wall"], np.float32)
            c.rgb[:] = wall.astype(np.uint8)
            c.paint(180, (EL_MAX_DEG + ceil_el) / 2, 360, EL_MAX_DEG - ceil_el, pal["ceiling"])
            c.paint(180, (-EL_MAX_DEG + floor_el) / 2, 360, EL_MAX_DEG + floor_el, pal["floor"], shade=-0.3)
            c.paint(180, floor_el + 1, 360, 2.0, _darker(pal["wall"], 0.6))  # skirting
            az_px = (np.arange(w) + 0.5) / self.ppd
            floor = el < floor_el
            boards = floor[:, None] & ((az_px % 6.0) < 0.4)[None, :]  # floor boards every 6 deg
            grout = ((el > -20) & (el < 6) & ((el % 4.0) < 0.35))[:, None] | (
                ((el > -20) & (el < 6))[:, None] & ((az_px % 4.0) < 0.35)[None, :]
            )  # tiled band above the worktops
            c.rgb[boards] = _darker(pal["floor"], 0.8)
            c.rgb[grout] = pal["tile"]
        noise = rng.normal(0.0, _NOISE_AMPLITUDE, (h // 2 + 1, w // 2 + 1)).astype(np.float32)
        noise = np.repeat(np.repeat(noise, 2, 0), 2, 1)[:h, :w, None]  # 2-px grain: survives downsampling
        c.rgb[:] = np.clip(c.rgb.astype(np.float32) + noise, 0, 255).astype(np.uint8)

    def _still_canvas(self, looks: tuple[str, ...]) -> _Canvas:
        key = tuple("default" if v in ANIMATED_LOOKS else v for v in looks)
        c = self._still.get(key)
        if c is None:
            c = _Canvas(self._base.rgba.copy(), self.ppd)
            for o, look in sorted(zip(self._dynamic, key), key=lambda p: p[0].layer):
                _paint_object(c, o, look, 0, self.ids_by_name[o.name], self.ids_by_name)
            self._still[key] = c
            if len(self._still) > _STILL_CACHE:
                _, old = self._still.popitem(last=False)
                self._patches = {k: v for k, v in self._patches.items() if k[0] != id(old)}
        self._still.move_to_end(key)
        return c

    def compose(self, variants: dict[str, str], phase: int,
                view: tuple[float, float, float] | None = None) -> np.ndarray:
        """The world with objects in ``variants`` (object -> look; missing
        objects use their default look) at animation ``phase``.

        Returns a flat uint32 array (H*W,) packing ``R | G << 8 | B << 16 |
        id << 24`` per pixel, so the camera gathers colour and id in one
        ``np.take``. It is valid until the next call (animated looks are
        painted in place and undone then); do not modify it.

        ``view = (yaw_deg, pitch_deg, half_extent_deg)``: animated objects
        wholly outside this box are not painted (they could not be seen).
        """
        for c, rows, cols, saved in reversed(self._undo):
            c.rgba[rows, cols] = saved
        self._undo = []
        looks = tuple(variants.get(o.name, "default") for o in self._dynamic)
        c = self._still_canvas(looks)
        for o, look in zip(self._dynamic, looks):
            if look in ANIMATED_LOOKS:
                # the animated parts stay within this box: steam rises, water falls
                box_az, box_el, box_w, box_h = o.az_deg, o.el_deg + 8.0, o.w_deg + 12.0, o.h_deg + 24.0
                if view is not None and (
                    abs((box_az - view[0] + 180.0) % 360.0 - 180.0) > view[2] + box_w / 2
                    or abs(box_el - view[1]) > view[2] + box_h / 2
                ):
                    continue
                rows, cols, _, _ = c.region(box_az, box_el, box_w, box_h)
                self._undo.append((c, rows, cols, c.rgba[rows, cols].copy()))
                patch_key = (id(c), o.name, look, phase % ANIMATION_PHASES)
                patch = self._patches.get(patch_key)
                if patch is None:  # paint once per still panorama, look and phase; then copy
                    _paint_object(c, o, look, phase % ANIMATION_PHASES, self.ids_by_name[o.name], self.ids_by_name)
                    self._patches[patch_key] = c.rgba[rows, cols].copy()
                else:
                    c.rgba[rows, cols] = patch
        return c.rgba.view("<u4").reshape(-1)

    def image(self, variants: dict[str, str], phase: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``(rgb (H, W, 3), ids (H, W))`` copies, for inspection and tests."""
        packed = self.compose(variants, phase).view(np.uint8).reshape(self.height_px, self.width_px, 4)
        return packed[..., :3].copy(), packed[..., 3].copy()
