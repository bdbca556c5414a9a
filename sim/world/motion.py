"""Head motion of the wearer: gaze targets -> a continuous camera trajectory.

The timeline asks for *where to look* as prioritised segments (work on the
cutting board, glance at the door, turn to the oven); this module turns them
into what a head does: minimum-jerk turns with peak speeds drawn per turn,
fixational drift while holding, a walking bob synchronised with the foot
strikes, and forward displacement while walking to a door (seen as
magnification of what lies ahead).

Angles are degrees; yaw is unwrapped (it may leave [0, 360) after many turns),
pitch is positive up, roll positive clockwise as seen by the wearer. The
trajectory is sampled at ``CONTROL_RATE_HZ`` and linearly interpolated, so
the video can integrate poses across the shutter (motion blur).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "CONTROL_RATE_HZ",
    "ZOOM_PER_DISPLACEMENT",
    "GazeSeg",
    "WalkSeg",
    "Pose",
    "Trajectory",
    "build_trajectory",
    "cadence_steps",
    "wrap_deg",
]

CONTROL_RATE_HZ = 100.0  # 10 ms steps: fine enough for a 30 ms shutter
ZOOM_PER_DISPLACEMENT = 0.8  # magnification gained straight ahead after walking the whole way
_MAG_RANGE = (0.75, 2.0)  # the panorama covers this much zoom out / in
_PITCH_RANGE_DEG = (-35.0, 15.0)  # the head does not look further up or down here
_MIN_TURN_S, _MAX_TURN_S = 0.12, 1.2
_MIN_JERK_PEAK_OVER_MEAN = 1.875  # peak / mean speed of a minimum-jerk profile
_DRIFT_DEG = 0.6  # fixational drift amplitude
_DRIFT_TAU_S = 0.8  # drift correlation time
_DEFAULT_CADENCE_HZ = 1.9  # steps per second when no footstep sound sets the strikes
_BOB_FADE_S = 0.3


def wrap_deg(a):
    """Angle difference wrapped to [-180, 180)."""
    return (np.asarray(a) + 180.0) % 360.0 - 180.0


@dataclass
class GazeSeg:
    """Look at (az_deg, el_deg) during [t0_s, t1_s); higher ``priority`` wins."""

    t0_s: float
    t1_s: float
    az_deg: float
    el_deg: float
    priority: float


@dataclass
class WalkSeg:
    """Walk during [t0_s, t1_s) towards ``az_deg``; displacement goes from
    ``d0`` to ``d1`` (0 = home, 1 = at the door). ``steps_s`` are the foot
    strikes (from the footstep sound when there is one)."""

    t0_s: float
    t1_s: float
    az_deg: float
    d0: float
    d1: float
    steps_s: list[float] = field(default_factory=list)


@dataclass
class Pose:
    """Camera poses, arrays of equal shape: yaw/pitch/roll in degrees,
    ``mag`` the magnification of the view (1 = at home)."""

    yaw_deg: np.ndarray
    pitch_deg: np.ndarray
    roll_deg: np.ndarray
    mag: np.ndarray


@dataclass
class Trajectory:
    """The head pose at ``CONTROL_RATE_HZ``; arrays of shape (n,)."""

    yaw_deg: np.ndarray
    pitch_deg: np.ndarray
    roll_deg: np.ndarray
    disp: np.ndarray
    walk_az_deg: np.ndarray

    def _interp(self, arr: np.ndarray, t_s: np.ndarray) -> np.ndarray:
        x = np.clip(np.asarray(t_s, np.float64) * CONTROL_RATE_HZ, 0, len(arr) - 1)
        i = np.minimum(x.astype(np.int64), len(arr) - 2)
        f = x - i
        return arr[i] * (1 - f) + arr[i + 1] * f

    def at(self, t_s) -> Pose:
        """Poses at times ``t_s`` (any shape), interpolated."""
        yaw = self._interp(self.yaw_deg, t_s)
        disp = self._interp(self.disp, t_s)
        walk_az = self._interp(self.walk_az_deg, t_s)
        mag = np.clip(1.0 + ZOOM_PER_DISPLACEMENT * disp * np.cos(np.radians(wrap_deg(yaw - walk_az))), *_MAG_RANGE)
        return Pose(yaw, self._interp(self.pitch_deg, t_s), self._interp(self.roll_deg, t_s), mag)

    def speed_deg_s(self, t_s) -> np.ndarray:
        """Angular speed of the view direction (yaw and pitch) at ``t_s``."""
        vy = np.gradient(self.yaw_deg) * CONTROL_RATE_HZ
        vp = np.gradient(self.pitch_deg) * CONTROL_RATE_HZ
        return self._interp(np.hypot(vy, vp), t_s)

    def in_view(self, t_s, az_deg: float, el_deg: float, w_deg: float, h_deg: float, fov_deg: float,
                margin_deg: float = 0.0) -> np.ndarray:
        """Whether a box on the cylinder overlaps the view at times ``t_s``
        (geometry only; the renderer's object mask is the ground truth)."""
        p = self.at(t_s)
        half = fov_deg / 2 / p.mag + margin_deg
        dx = np.abs(wrap_deg(az_deg - p.yaw_deg))
        dy = np.abs(el_deg - p.pitch_deg)
        return (dx < half + w_deg / 2) & (dy < half + h_deg / 2)


def _min_jerk(tau: np.ndarray) -> np.ndarray:
    tau = np.clip(tau, 0.0, 1.0)
    return tau**3 * (10 - 15 * tau + 6 * tau**2)


def _targets(n: int, segs: list[GazeSeg], default: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    az = np.full(n, default[0])
    el = np.full(n, default[1])
    prio = np.full(n, -np.inf)
    for s in segs:  # later segments win ties: a chain's turn overrides the activity it interrupts
        i0, i1 = int(round(s.t0_s * CONTROL_RATE_HZ)), int(round(s.t1_s * CONTROL_RATE_HZ))
        i0, i1 = max(0, i0), min(n, i1)
        if i1 <= i0:
            continue
        win = s.priority >= prio[i0:i1]
        az[i0:i1][win] = s.az_deg
        el[i0:i1][win] = np.clip(s.el_deg, *_PITCH_RANGE_DEG)
        prio[i0:i1][win] = s.priority
    return az, el


def _turns(t: np.ndarray, az: np.ndarray, el: np.ndarray, speed_range: tuple[float, float],
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-jerk moves from wherever the head is to each new target."""
    n = len(t)
    yaw, pitch = np.empty(n), np.empty(n)
    change = np.flatnonzero((np.diff(az) != 0) | (np.diff(el) != 0)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [n]])
    cy, cp = az[0], el[0]
    for i0, i1 in zip(starts, ends):
        d_az = float(wrap_deg(az[i0] - cy))
        d_el = float(el[i0] - cp)
        v_peak = float(rng.uniform(*speed_range))
        dur = np.clip(max(abs(d_az), abs(d_el)) / (v_peak / _MIN_JERK_PEAK_OVER_MEAN), _MIN_TURN_S, _MAX_TURN_S)
        s = _min_jerk((t[i0:i1] - t[i0]) / dur)
        yaw[i0:i1] = cy + d_az * s
        pitch[i0:i1] = cp + d_el * s
        cy, cp = yaw[i1 - 1], pitch[i1 - 1]
    return yaw, pitch


def _drift(n: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth small random motion (an AR(1) process), amplitude ~_DRIFT_DEG."""
    a = np.exp(-1.0 / (_DRIFT_TAU_S * CONTROL_RATE_HZ))
    w = rng.standard_normal(n) * _DRIFT_DEG * np.sqrt(1 - a * a)
    from scipy.signal import lfilter  # one C call instead of a Python loop

    return lfilter([1.0], [1.0, -a], w)


def cadence_steps(t0_s: float, t1_s: float, rng: np.random.Generator) -> list[float]:
    """Foot strikes at a natural cadence, for walks without a footstep sound."""
    period = 1.0 / (_DEFAULT_CADENCE_HZ * rng.uniform(0.9, 1.1))
    return list(np.arange(t0_s + 0.5 * period, t1_s, period))


def build_trajectory(duration_s: float, gaze: list[GazeSeg], walks: list[WalkSeg], *,
                     default_gaze: tuple[float, float], speed_range_deg_s: tuple[float, float],
                     bob_deg: float, rng: np.random.Generator) -> Trajectory:
    """The head trajectory for a recording of ``duration_s``.

    Args:
        gaze: where to look when (later and higher-priority segments win).
        walks: walking stretches (bob, and displacement for room walks).
        default_gaze: (az, el) where no segment says anything.
        speed_range_deg_s: peak speed of each head turn, drawn uniformly.
        bob_deg: pitch amplitude of the walking bob (roll and yaw sway follow).
    """
    n = int(np.ceil(duration_s * CONTROL_RATE_HZ)) + 2
    t = np.arange(n) / CONTROL_RATE_HZ
    az, el = _targets(n, gaze, default_gaze)
    yaw, pitch = _turns(t, az, el, speed_range_deg_s, rng)
    yaw = yaw + _drift(n, rng)
    pitch = pitch + 0.6 * _drift(n, rng)
    roll = 0.3 * _drift(n, rng)
    disp = np.zeros(n)
    walk_az = np.zeros(n)
    for w in sorted(walks, key=lambda w: w.t0_s):
        i0, i1 = int(round(w.t0_s * CONTROL_RATE_HZ)), min(n, int(round(w.t1_s * CONTROL_RATE_HZ)))
        if i1 <= i0:
            continue
        tau = (t[i0:i1] - w.t0_s) / max(w.t1_s - w.t0_s, 1e-3)
        disp[i0:i1] = w.d0 + (w.d1 - w.d0) * (3 * tau**2 - 2 * tau**3)
        disp[i1:] = w.d1
        walk_az[i0:] = w.az_deg
        steps = np.asarray(sorted(w.steps_s), float)
        if len(steps) >= 2 and bob_deg > 0:
            # phase counts steps: integer at each strike, where the head is lowest
            period = float(np.median(np.diff(steps)))
            knots = np.concatenate([[steps[0] - period], steps, [steps[-1] + period]])
            phase = np.interp(t[i0:i1], knots, np.arange(len(knots), dtype=float))
            # fade in and out over _BOB_FADE_S so starting to walk is not a jump
            env = np.clip(np.minimum(t[i0:i1] - w.t0_s, w.t1_s - t[i0:i1]) / _BOB_FADE_S, 0.0, 1.0)
            pitch[i0:i1] += -bob_deg * 0.5 * np.cos(2 * np.pi * phase) * env
            roll[i0:i1] += 0.5 * bob_deg * np.sin(np.pi * phase) * env
            yaw[i0:i1] += 0.4 * bob_deg * np.sin(np.pi * phase) * env
    return Trajectory(yaw, pitch, roll, disp, walk_az)
