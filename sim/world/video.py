"""Render the wearer's camera: the painted panorama seen through the head
trajectory, with motion blur, hands and held objects.

Per frame (10 fps, ``S x S`` pixels, ``S = frame_size_px``):

1. the looks of the objects at that time pick a cached panorama (panorama.py);
2. the view is sampled with index arrays: pixel ``(i, j)`` looks at azimuth
   ``yaw + du`` and elevation ``pitch - dv``, where ``(du, dv)`` are the pixel
   offsets from the centre rotated by the roll and divided by
   ``ppd * magnification`` (``ppd = S / fov_deg``);
3. motion blur integrates the poses across the shutter: ``K`` sub-poses
   evenly spread over ``exposure_s``, one per 1.5 pixels of blur path, and
   the frame is their mean (a box filter along the true motion path);
4. hands (and what they hold) are drawn on top from the plan's hand segments;
   their mask gives ``hand_occlusion`` exactly.

Ground truth comes from the same index arrays: the object-id panorama is
sampled alongside the colours (packed in the same uint32), so
``object_in_frame[k, id]`` says whether any pixel of an object is in frame
``k`` (at any sub-pose of the shutter, so a source that smears in counts). An
object not in it is not drawn, and the annotations' ``source_visible``
comes from it.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from sim.world.motion import Trajectory, wrap_deg
from sim.world.panorama import ANIMATION_PHASES, EL_MAX_DEG, EXTRA_IDS, Panorama
from sim.world.plan import HandSeg, Plan

__all__ = ["VideoResult", "render_video", "looks_at", "MAX_BLUR_SUBPOSES"]

MAX_BLUR_SUBPOSES = 10  # beyond this the blur is smooth already; caps the cost of fast turns
_BLUR_STEP_PX = 1.5  # sub-poses this far apart along the blur path (the panorama is 2x oversampled)
_PANO_OVERSAMPLE = 2.0  # panorama pixels per camera pixel at magnification 1
_HAND_RAMP_S = 0.4  # hands take this long to come up into view or drop out of it
_SKIN_RGB = np.array([224, 172, 140], np.float32)
_SLEEVE_RGB = np.array([60, 70, 110], np.float32)


@dataclass
class VideoResult:
    """Frames and per-frame ground truth.

    Attributes:
        frames: uint8 (n, S, S, 3).
        times_s: float64 (n,), frame k at k / fps.
        camera_motion_deg_s: (n,) angular speed of the view direction.
        hand_occlusion: (n,) share of pixels covered by hands and forearms, 0..1.
        blur_px: (n,) length of the motion-blur path of the centre pixel.
        object_in_frame: bool (n, n_ids + 1): whether any pixel of each object
            id is in frame k (over the whole shutter; held items included).
        ids_by_name: object name -> id (0 is background).
    """

    frames: np.ndarray
    times_s: np.ndarray
    camera_motion_deg_s: np.ndarray
    hand_occlusion: np.ndarray
    blur_px: np.ndarray
    object_in_frame: np.ndarray
    ids_by_name: dict[str, int]

    def in_frame(self, name: str | None) -> np.ndarray:
        """(n,) bool: object ``name`` is in frame (all False for unknown names)."""
        i = self.ids_by_name.get(name) if name is not None else None
        return self.object_in_frame[:, i] if i is not None else np.zeros(len(self.frames), bool)


def looks_at(plan: Plan, t_s: float) -> dict[str, str]:
    """Object -> look at time ``t_s`` (later look segments win)."""
    out: dict[str, str] = {}
    for lk in plan.looks:
        if lk.t0_s <= t_s < lk.t1_s:
            out[lk.obj] = lk.variant
    return out


def _smooth(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


class _Camera:
    """Samples panoramas for poses; holds the pixel grid and scales."""

    def __init__(self, pano: Panorama, size: int, fov_deg: float):
        self.pano, self.size = pano, size
        self.ppd = size / fov_deg
        c = (np.arange(size, dtype=np.float32) + 0.5) - size / 2
        self.U, self.V = np.meshgrid(c, c)  # U across (right), V down
        self._buf = [np.empty((size, size), np.float32) for _ in range(3)] + [
            np.empty((size, size), np.int32) for _ in range(2)]

    def indices(self, yaw, pitch, roll, mag) -> np.ndarray:
        """Flat panorama indices (S*S,) int32 for one pose; valid until the next call.

        float32 arithmetic into preallocated buffers: this runs once per
        shutter sub-pose, so allocation and modulo are worth avoiding.
        """
        bx, by, tmp, xi, yi = self._buf
        cr, sr = np.cos(np.radians(roll)), np.sin(np.radians(roll))
        pp, w = self.pano.ppd, self.pano.width_px
        a = pp / (self.ppd * mag)  # panorama pixels per camera pixel
        x0 = (yaw % 360.0) * pp
        x0 = x0 - w if x0 > w / 2 else x0  # centre in [-w/2, w/2): + w keeps x in (0, 2w), one wrap at most
        np.multiply(self.U, np.float32(a * cr), out=bx)
        np.multiply(self.V, np.float32(a * sr), out=tmp)
        np.subtract(bx, tmp, out=bx)
        bx += np.float32(x0 + w)
        np.copyto(xi, bx, casting="unsafe")  # positive, so truncation is floor
        np.subtract(xi, w, out=xi, where=xi >= w)
        np.multiply(self.U, np.float32(a * sr), out=by)
        np.multiply(self.V, np.float32(a * cr), out=tmp)
        np.add(by, tmp, out=by)
        by += np.float32((EL_MAX_DEG - pitch) * pp)
        np.clip(by, 0, self.pano.height_px - 1, out=by)
        np.copyto(yi, by, casting="unsafe")
        yi *= w
        yi += xi
        return yi.reshape(-1)

    def project(self, az, el, yaw, pitch, mag) -> tuple[float, float]:
        """Frame coordinates (u right, v down, pixels) of a point on the cylinder (roll ignored)."""
        s = self.ppd * mag
        return self.size / 2 + float(wrap_deg(az - yaw)) * s, self.size / 2 - (el - pitch) * s


# --- hands --------------------------------------------------------------------------


def _segment_mask(U, V, p0, p1, radius):
    """Pixels within ``radius`` of segment p0-p1, and their position along it (0..1)."""
    d = np.asarray(p1, np.float32) - np.asarray(p0, np.float32)
    L2 = float(d @ d) or 1.0
    t = np.clip(((U - p0[0]) * d[0] + (V - p0[1]) * d[1]) / L2, 0.0, 1.0)
    dist2 = (U - p0[0] - t * d[0]) ** 2 + (V - p0[1] - t * d[1]) ** 2
    return dist2 <= radius * radius, t


def _ellipse_mask(U, V, c, rx, ry):
    return ((U - c[0]) / rx) ** 2 + ((V - c[1]) / ry) ** 2 <= 1.0


class _HandPainter:
    """Draws hands (palm, fingers, forearm with sleeve) and held items."""

    def __init__(self, cam: _Camera, plan: Plan, skin_rgb: np.ndarray, hidden: tuple[str, ...] = ()):
        self.cam, self.plan, self.skin, self.hidden = cam, plan, skin_rgb, set(hidden)
        self.s = cam.size / 128.0
        self.U, self.V = cam.U + cam.size / 2, cam.V + cam.size / 2  # pixel centres, origin top-left
        self.strokes = {}
        self._sprites: dict[int, tuple] = {}

    def _sprite(self, side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
        """A hand and forearm drawn once: (rgb (h, w, 3), mask (h, w), offset of the palm centre)."""
        s, S = self.s, self.cam.size
        h, w = int(S + 80 * s), int(60 * s)
        cy, cx = int(18 * s), w // 2 - side * int(12 * s)  # palm centre inside the sprite
        V, U = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
        elbow = (cx + side * 0.35 * (h - cy), h + 10 * s)  # the forearm leans out towards the body
        arm, along = _segment_mask(U, V, (cx, cy), elbow, 8.5 * s)
        palm = _ellipse_mask(U, V, (cx, cy + 2 * s), 9 * s, 10 * s)
        fingers = np.zeros_like(palm)
        for k in range(4):
            fingers |= _ellipse_mask(U, V, (cx + (k - 1.5) * 4.2 * s, cy - 9 * s), 2.2 * s, 5.5 * s)
        thumb = _ellipse_mask(U, V, (cx - side * 10 * s, cy + 1 * s), 3 * s, 6 * s)
        skin = palm | fingers | thumb | (arm & (V < cy + 40 * s))
        sleeve = arm & ~skin
        axis_u = cx + (V - cy) * side * 0.35  # shade across the forearm, lighter on its axis
        shade = np.clip(1.0 - 0.35 * ((U - axis_u) / (12 * s)) ** 2, 0.6, 1.0)[..., None]
        rgb = np.where(skin[..., None], self.skin * shade, _SLEEVE_RGB * shade).astype(np.uint8)
        return rgb, skin | sleeve, (cy, cx)

    def hand(self, img, mask, center, side):
        """One hand with its palm at ``center`` (u, v); the forearm runs down out of frame."""
        if side not in self._sprites:
            self._sprites[side] = self._sprite(side)
        rgb, m, (cy, cx) = self._sprites[side]
        S = self.cam.size
        top, left = int(round(center[1])) - cy, int(round(center[0])) - cx
        y0, x0 = max(top, 0), max(left, 0)
        y1, x1 = min(top + m.shape[0], S), min(left + m.shape[1], S)
        if y1 <= y0 or x1 <= x0:
            return
        mm = m[y0 - top:y1 - top, x0 - left:x1 - left]
        sub = img[y0:y1, x0:x1]
        sub[mm] = rgb[y0 - top:y1 - top, x0 - left:x1 - left][mm]
        mask[y0:y1, x0:x1] |= mm

    def item(self, img, present, name, center, ids):
        """A held object drawn just above the hand; its pixels count for ``name``."""
        if name in self.hidden:  # an object left out of the room is not in the hand either
            return
        U, V, s = self.U, self.V, self.s
        o = self.plan.scn.obj(name) if self.plan.scn.has(name) else None
        col = np.asarray(o.color if o else (200, 200, 200), np.float32)
        kind = o.kind if o else "shaker"
        if kind == "phone":
            w, h = 15 * s, 26 * s
            body = (np.abs(U - center[0]) < w / 2) & (np.abs(V - (center[1] - 14 * s)) < h / 2)
            screen = (np.abs(U - center[0]) < w / 2 - 1.5 * s) & (np.abs(V - (center[1] - 14 * s)) < h / 2 - 3 * s)
            img[body] = (25, 25, 30)
            img[screen] = (180, 230, 255)
            m = body
        elif kind == "book":
            m = (np.abs(U - center[0]) < 30 * s) & (np.abs(V - (center[1] - 12 * s)) < 18 * s)
            pages = m & (np.abs(U - center[0]) < 27 * s) & (V < center[1] - 2 * s)
            img[m] = col
            img[pages] = (245, 242, 230)
        else:
            size = (7 * s, 8 * s) if kind in ("cup", "shaker") else (9 * s, 3 * s)
            m = (np.abs(U - center[0]) < size[0]) & (np.abs(V - (center[1] - 10 * s)) < size[1])
            img[m] = col
        if name in ids and m.any():
            present[ids[name]] = True

    def draw(self, img, t, pose, present, ids) -> np.ndarray:
        """Draw every hand segment active at ``t``; returns the hand mask (S, S)."""
        S, s = self.cam.size, self.s
        mask = np.zeros((S, S), bool)
        yaw, pitch, mag = pose
        for h in self.plan.hands:
            if not (h.t0_s <= t < h.t1_s):
                continue
            r = _smooth(min(t - h.t0_s, h.t1_s - t) / _HAND_RAMP_S)
            if h.target is not None and self.plan.scn.has(h.target):
                o = self.plan.scn.obj(h.target)
                tu, tv = self.cam.project(o.az_deg, o.el_deg, yaw, pitch, mag)
            else:
                tu, tv = S * 0.55, S * 0.7
            def at(pu, pv, side, rr=r):
                rest = (pu + side * 25 * s, S + 40 * s)
                return rest[0] + (pu - rest[0]) * rr, rest[1] + (pv - rest[1]) * rr
            hold = (S * 0.56, S * 0.78)
            tau = (t - h.t0_s) / max(h.t1_s - h.t0_s, 1e-3)
            if h.style == "chop":
                lift = self._stroke_lift(h, t) * 7 * s
                knife_hand = at(tu + 12 * s, tv + 8 * s - lift, 1)  # below the board's centre: the board stays in view
                self.hand(img, mask, at(tu - 14 * s, tv + 9 * s, -1), -1)
                k_mask, _ = _segment_mask(self.U, self.V, (knife_hand[0] - 3 * s, knife_hand[1] - 4 * s),
                                          (knife_hand[0] - 18 * s, knife_hand[1] + 4 * s - lift * 0.2), 2.2 * s)
                img[k_mask] = (170, 175, 185)
                self.hand(img, mask, knife_hand, 1)
            elif h.style == "stir":
                ph = 2 * np.pi * 1.2 * t
                self.hand(img, mask, at(tu + 5 * s * np.cos(ph), tv + 2.5 * s * np.sin(ph) - 4 * s, 1), 1)
            elif h.style in ("wash", "type"):
                amp, f = (3 * s, 3.0) if h.style == "wash" else (1.5 * s, 7.0)
                j = amp * np.sin(2 * np.pi * f * t)
                gap = 9 * s if h.style == "wash" else 13 * s
                self.hand(img, mask, at(tu - gap + j, tv + 3 * s, -1), -1)
                self.hand(img, mask, at(tu + gap - j, tv + 3 * s, 1), 1)
            elif h.style == "open":
                pull = _smooth((t - h.t0_s - 0.5) / 0.6) * 10 * s
                self.hand(img, mask, at(tu + 4 * s, tv - 2 * s + pull, 1), 1)
            elif h.style == "pour":
                self.hand(img, mask, at(tu + 6 * s - 8 * s * _smooth(tau * 2), tv - 6 * s, 1), 1)
            elif h.style == "reach":
                out = _smooth(min(tau, 1 - tau) * 2.5)  # reach out, grasp at the middle, bring back
                c = at(tu, tv + 3 * s, 1, out)
                if tau > 0.5 and h.item:
                    self.item(img, present, h.item, c, ids)
                self.hand(img, mask, c, 1)
            elif h.style in ("pick_phone", "drink"):
                grab = 0.5 if h.target else 0.0  # from the table, or straight from the pocket
                if t - h.t0_s < grab:
                    c = at(tu, tv + 3 * s, 1, _smooth((t - h.t0_s) / grab))
                    self.hand(img, mask, c, 1)
                else:
                    up = _smooth(min((t - h.t0_s - grab) / 0.5, (h.t1_s - t) / 0.5))
                    hp = hold if h.style == "pick_phone" else (S * 0.5, S * 0.86)
                    c = (hp[0], S + 40 * s + (hp[1] - S - 40 * s) * up)
                    if h.item:
                        self.item(img, present, h.item, c, ids)
                    self.hand(img, mask, c, 1)
            elif h.style == "hold_book":
                c = (S * 0.5, S + 40 * s + (S * 0.86 - S - 40 * s) * r)
                if h.item:
                    self.item(img, present, h.item, c, ids)
                self.hand(img, mask, (c[0] - 24 * s, c[1] + 4 * s), -1)
                self.hand(img, mask, (c[0] + 24 * s, c[1] + 4 * s), 1)
            elif h.style == "swing":  # walking: hands swing up into the bottom corners
                ph = np.sin(np.pi * 1.9 * t)
                for side, amount in ((-1, max(0.0, ph)), (1, max(0.0, -ph))):
                    c = (S / 2 + side * 0.36 * S, S + 30 * s - 22 * s * amount * r)
                    self.hand(img, mask, c, side)
        return mask

    def _stroke_lift(self, h: HandSeg, t: float) -> float:
        """Knife height 0..1: down on each chopping transient, up in between."""
        strokes = self.strokes.get(h.sound_id)
        if strokes is None or len(strokes) < 2:
            return 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t)
        i = np.searchsorted(strokes, t)
        if i == 0 or i >= len(strokes):
            return 1.0
        a, b = strokes[i - 1], strokes[i]
        return float(np.sin(np.pi * (t - a) / max(b - a, 1e-3)))


def _count_ids(ids: np.ndarray, remap: np.ndarray | None, n_ids: int) -> np.ndarray:
    return np.bincount(ids if remap is None else remap[ids], minlength=n_ids)


def render_video(plan: Plan, traj: Trajectory, *, size: int, fps: float, exposure_s: float, texture_seed: int,
                 hands: bool = True, hide: tuple[str, ...] = (), force_looks: dict[str, str] | None = None,
                 strokes: dict[str, list[float]] | None = None) -> VideoResult:
    """Render the recording's frames.

    Args:
        plan, traj: the script and the head trajectory.
        size: frame side in pixels; fps: frame rate; exposure_s: shutter time
            (0 = no blur).
        texture_seed: seeds the panorama texture (same seed, same room).
        hands: draw the hands (False for tests and ablations).
        hide: objects left out of the room (to test what an object contributes).
        force_looks: object -> look, overriding the plan at every frame.
        strokes: sound event id -> transient times (s), to pace the knife.
    """
    scn = plan.scn
    if hide:
        scn = replace(scn, objects=tuple(o for o in scn.objects if o.name not in hide))
    pano = Panorama(scn, _PANO_OVERSAMPLE * size / plan.fov_deg, np.random.default_rng(texture_seed))
    ids = {k: v for k, v in pano.ids_by_name.items()}
    if hide:  # keep the ids of the full room so results line up
        full = [o.name for o in plan.scn.objects]
        full += [n for n in EXTRA_IDS if n not in full]
        ids = {n: i + 1 for i, n in enumerate(full)}
    cam = _Camera(pano, size, plan.fov_deg)
    n = int(round(plan.duration_s * fps))
    times = np.arange(n) / fps
    pose = traj.at(times)
    skin = _SKIN_RGB * np.float32(np.random.default_rng(texture_seed + 1).uniform(0.8, 1.08))
    painter = _HandPainter(cam, plan, skin, hidden=hide)
    painter.strokes = {k: np.asarray(v) for k, v in (strokes or {}).items()}
    n_ids = max(ids.values()) + 1
    remap = np.zeros(256, np.uint8)
    for name, i in pano.ids_by_name.items():
        remap[i] = ids[name]
    if not hide:
        remap = None  # identity: skip the lookup
    frames = np.empty((n, size, size, 3), np.uint8)
    present = np.zeros((n, max(n_ids, 256)), bool)
    occl = np.zeros(n)
    blur = np.zeros(n)
    # the shutter's two ends for every frame at once: blur length of the centre pixel
    ends = traj.at(np.stack([np.maximum(times - exposure_s / 2, 0.0), times + exposure_s / 2]))
    blur = np.hypot(np.diff(ends.yaw_deg, axis=0)[0], np.diff(ends.pitch_deg, axis=0)[0]) * cam.ppd * pose.mag
    for k, t in enumerate(times):
        looks = looks_at(plan, t)
        if force_looks:
            looks.update(force_looks)
        # what the shutter can see: half the diagonal view plus the blur path, generously
        reach = 0.75 * plan.fov_deg / float(pose.mag[k]) + blur[k] / cam.ppd + 2.0
        packed = pano.compose(looks, k % ANIMATION_PHASES, view=(float(pose.yaw_deg[k]), float(pose.pitch_deg[k]), reach))
        n_sub = int(np.clip(np.ceil(blur[k] / _BLUR_STEP_PX), 1, MAX_BLUR_SUBPOSES)) if exposure_s > 0 else 1
        sub_t = t + exposure_s * (np.arange(n_sub) / max(n_sub - 1, 1) - 0.5) if n_sub > 1 else np.array([t])
        sp = traj.at(sub_t)
        acc = np.zeros((size, size, 4), np.uint16) if n_sub > 1 else None  # 10 x 255 fits
        for j in range(n_sub):
            px = np.take(packed, cam.indices(sp.yaw_deg[j], sp.pitch_deg[j], sp.roll_deg[j], sp.mag[j]))
            px = px.view(np.uint8).reshape(size, size, 4)
            # every sub-pose counts: whatever smears into view is in frame
            ids_here = np.ascontiguousarray(px[..., 3]).ravel()  # contiguous: bincount is 2x faster
            present[k, :256] |= np.bincount(ids_here if remap is None else remap[ids_here], minlength=256) > 0
            if acc is None:
                img = px[..., :3].copy()
            else:
                acc += px  # contiguous integer add; the id channel is summed too and ignored
        if acc is not None:
            img = ((acc[..., :3] + n_sub // 2) // n_sub).astype(np.uint8)
        if hands:
            m = painter.draw(img, t, (float(pose.yaw_deg[k]), float(pose.pitch_deg[k]), float(pose.mag[k])),
                             present[k], ids)
            occl[k] = float(m.mean())
        frames[k] = img
    present = present[:, :n_ids]
    present[:, 0] = False
    return VideoResult(frames, times, traj.speed_deg_s(times), occl, blur, present, ids)
