"""Script one recording: causal chains, the wearer's activities, ambient sounds,
where the head looks, what the hands do and how objects change.

:func:`plan_recording` draws a :class:`Plan` in this order, each step using
what the previous ones fixed:

1. **Chains** (audio leads vision; chains.py), placed one after another: the cause sound
   starts at ``t_c``, the wearer's response at ``t_c + lag`` with ``lag`` drawn
   from ``cause_lag_s``; the response and its consequences (door opens, oven
   door open) are annotated as cause links. While the wearer responds, the
   plan marks them busy.
2. **Activities** fill the time the wearer is not busy (chop, type, walk...).
   An activity cut short by a chain is remembered, so a query can ask
   "why did I stop chopping?".
3. **Ambient sounds and visibility**: a first head trajectory says which
   sources the wearer already looks at; ambient sounds (others, appliances)
   and scripted sources out of view are then put on- or off-screen so the
   share of off-screen sound events approaches ``offscreen_share``: on-screen
   ones get a glance at a drawn source, off-screen ones get a source out of
   view, or one in another room ("elsewhere", farther, never drawn).

The plan holds annotations-to-be (``shared.annotations.Event``, with
``source_visible`` still unknown: the renderer's object mask decides it) and
what the signal renderers need (sound specs, gaze, walks, hands, looks).
"""
from __future__ import annotations

import numpy as np

from sim.world.chains import place_chains
from sim.world.motion import GazeSeg, Trajectory, WalkSeg, build_trajectory, wrap_deg
from sim.world.plan import (
    FOOTSTEP_DISTANCE_M,
    OWN_SOURCE,
    PRIORITY_ACTIVITY,
    PRIORITY_GLANCE,
    PRIORITY_LOOK_AROUND,
    ROOMS_ELSEWHERE,
    HandSeg,
    LookSeg,
    Plan,
    SoundSpec,
)
from sim.world.scenarios import Activity, get_scenario, jitter_layout
from sim.world.world_config import WorldConfig

__all__ = ["SoundSpec", "HandSeg", "LookSeg", "Plan", "plan_recording", "head_trajectory", "predicted_visible", "OWN_SOURCE",
           "ROOMS_ELSEWHERE"]

_MIN_ACTIVITY_S = 1.5  # shorter leftovers extend the previous activity
_VIEW_MARGIN_DEG = 4.0  # off-screen choices keep sources this far outside the view (blur, drift)


# --- activities -----------------------------------------------------------------------


def _free_intervals(p: Plan) -> list[tuple[float, float, str | None]]:
    """Gaps between busy stretches; the third item is the chain response that ends the gap."""
    out, t = [], 0.0
    for b0, b1, eid in sorted(p.busy):
        if b0 > t:
            out.append((t, b0, eid))
        t = max(t, b1)
    if t < p.duration_s:
        out.append((t, p.duration_s, None))
    return out


def _activity(p: Plan, a: Activity, t0: float, t1: float, rng, silent_share: float) -> str:
    eid = p.add(a.action, t0, t1, source=a.location)
    loc = p.scn.obj(a.location)
    if a.action == "walk":  # street: look ahead, swaying, glancing at shop windows
        p.gaze.append(GazeSeg(t0, t1, float(rng.uniform(-12, 12)), -6.0, PRIORITY_ACTIVITY))
        p.walks.append(WalkSeg(t0, t1, 0.0, 0.0, 0.0))
        steps = None
        if a.sound and not (a.sound_optional and rng.random() < silent_share):
            steps = p.add_sound(a.sound, t0 + 0.1, t1 - t0 - 0.2, source=OWN_SOURCE,
                                distance_m=FOOTSTEP_DISTANCE_M, action_id=eid)
        p.walk_sounds[len(p.walks) - 1] = steps
        p.hands.append(HandSeg(t0, t1, "swing"))
    else:
        p.look_at(a.location, t0, t1, PRIORITY_ACTIVITY, d_az=float(rng.uniform(-3, 3)))
        sid = None
        if a.sound and not (a.sound_optional and rng.random() < silent_share) and t1 - t0 > 1.0:
            sid = p.add_sound(a.sound, t0 + 0.4, t1 - t0 - 0.6, source=a.location, action_id=eid)
        if a.state:
            p.add(a.state, t0 + 0.3, t1 - 0.2, source=a.location, cause=eid)
            p.looks.append(LookSeg(a.location, {"tap_running": "running"}.get(a.state, "on"), t0 + 0.3, t1 - 0.2))
        if a.hands in ("drink", "hold_book"):  # the object leaves the table while it is held
            p.looks.append(LookSeg(a.location, "absent", t0 + 0.7, t1 - 0.7))
        if a.hands != "none":
            item = a.location if a.hands in ("drink", "hold_book") else None
            p.hands.append(HandSeg(t0, t1, a.hands, target=a.location, item=item, sound_id=sid))
    # look around now and then (idle: several fixations; otherwise one glance)
    n_glances = int(rng.integers(2, 4)) if a.action == "idle" else int(rng.random() < 0.35)
    others = [o for o in p.scn.objects if o.name != loc.name and (o.layer == 0 or o.kind == "person")]
    for _ in range(n_glances):
        if t1 - t0 < 2.5 or not others:
            break
        g0 = float(rng.uniform(t0 + 0.5, t1 - 1.5))
        o = others[int(rng.integers(len(others)))]
        p.gaze.append(GazeSeg(g0, g0 + float(rng.uniform(0.8, 1.6)), o.az_deg, o.el_deg, PRIORITY_LOOK_AROUND))
    return eid


def _fill_activities(p: Plan, rng: np.random.Generator, silent_share: float) -> None:
    acts = p.scn.activities
    w = np.array([a.weight for a in acts], float)
    prev = None
    for a0, a1, next_effect in _free_intervals(p):
        t, last = a0, None
        # after a chain, not the action the chain ended with (stopped to look: then walk on, not idle again)
        ended = [eid for b0, b1, eid in p.busy if abs(b1 - a0) < 1e-6]
        if ended:
            prev = next((a for a in acts if a.action == p.event(ended[0]).label), prev)
        while a1 - t > 1e-6:
            probs = w.copy()
            if prev is not None and len(acts) > 1:
                probs[acts.index(prev)] = 0.0  # a new activity each time (the same one would just be longer)
            a = acts[int(rng.choice(len(acts), p=probs / probs.sum()))]
            d = float(rng.uniform(*a.duration_s))
            end = t + d
            if a1 - end < _MIN_ACTIVITY_S:
                end = a1
            last = _activity(p, a, t, end, rng, silent_share)
            prev, t = a, end
        if next_effect is not None and last is not None:
            p.interrupted[next_effect] = last


# --- ambient sounds and the off-screen share ----------------------------------------------


def _add_ambient(p: Plan, cfg: WorldConfig, rng: np.random.Generator, n: int, q_off: float
                 ) -> list[tuple[str, bool]]:
    """Place ``n`` ambient sounds; each is decided off-screen (probability ``q_off``)
    *before* its label is drawn, so an on-screen one gets a label some drawn
    object can make. Returns (event id, off-screen wanted)."""
    T = p.duration_s
    out = []
    for _ in range(n):
        off = bool(rng.random() < q_off)
        amb = [a for a in p.scn.ambient if off or a.sources]
        w = np.array([a.weight for a in amb], float)
        a = amb[int(rng.choice(len(amb), p=w / w.sum()))]
        d = float(rng.uniform(*a.duration_s))
        if T - d - 0.8 < 0.5:
            continue
        t0 = float(rng.uniform(0.5, T - d - 0.8))
        if any(e.label == a.label and e.onset_s < t0 + d + 0.5 and t0 < e.offset_s + 0.5 for e in p.events):
            continue  # one sizzle at a time
        text = str(rng.choice(a.texts)) if a.texts else None
        eid = p.add_sound(a.label, t0, d, source=a.sources[0] if a.sources else "elsewhere", text=text)
        spec = p.sounds[eid]
        spec.candidates, spec.elsewhere, spec.ambient = a.sources, a.elsewhere, True
        if a.state:
            p.add(a.state, t0, t0 + d, source=a.sources[0], cause=None)
            p.looks.append(LookSeg(a.sources[0], "steam", t0, t0 + d))
        out.append((eid, off or not a.sources))
    return out


def head_trajectory(p: Plan, cfg: WorldConfig, steps: dict[int, list[float]] | None = None) -> Trajectory:
    """The head trajectory of the plan so far (``steps``: foot strikes per walk index).

    Always seeded by ``p.motion_seed``, so rebuilding after a glance is added
    changes only what the glance changes.
    """
    home = p.scn.obj(p.scn.home)
    walks = [WalkSeg(w.t0_s, w.t1_s, w.az_deg, w.d0, w.d1, (steps or {}).get(i, [])) for i, w in enumerate(p.walks)]
    return build_trajectory(p.duration_s, p.gaze, walks, default_gaze=(home.az_deg, home.el_deg),
                            speed_range_deg_s=tuple(cfg.head_turn_speed_deg_s), bob_deg=cfg.walk_bob_deg,
                            rng=np.random.default_rng(p.motion_seed))


def predicted_visible(p: Plan, traj: Trajectory, source: str | None, t0: float, t1: float,
                      margin_deg: float = 0.0) -> bool:
    """Geometric guess: is drawn object ``source`` in view at some time in [t0, t1]?"""
    if source is None or not p.scn.has(source):
        return False
    o = p.scn.obj(source)
    t = np.arange(t0, max(t1, t0 + 0.05), 0.05)
    return bool(np.any(traj.in_view(t, o.az_deg, o.el_deg, o.w_deg, o.h_deg, p.fov_deg, margin_deg)))


def _glance(p: Plan, src: str, t0: float, t1: float, rng: np.random.Generator, traj: Trajectory,
            speed_deg_s: float) -> GazeSeg | None:
    """Look at ``src`` around [t0, t1) unless a chain needs the head elsewhere then.

    The turn starts early enough to arrive by ``t0`` (a short sound is over
    before a late turn gets there): the wearer was looking that way already.
    Returns the gaze segment added, or None.
    """
    o = p.scn.obj(src)
    away = abs(float(wrap_deg(o.az_deg - traj.at(np.array([t0])).yaw_deg[0])))
    turn_s = float(np.clip(away / (speed_deg_s / 1.875), 0.12, 1.2))  # minimum-jerk mean speed
    g0 = t0 - turn_s - float(rng.uniform(0.1, 0.4))
    g1 = t0 + min(t1 - t0, float(rng.uniform(1.2, 2.5))) + 0.3
    for g in sorted(p.gaze, key=lambda g: g.t0_s):
        if g.priority >= PRIORITY_GLANCE and g.t0_s < g1 and g0 < g.t1_s and abs(g.az_deg - o.az_deg) > 1.0:
            if g.t0_s <= t0 + 0.3:
                return None  # the head is busy (a chain, or another sound) when this one starts
            g1 = g.t0_s  # look, then turn to what comes next
    seg = GazeSeg(g0, g1, o.az_deg, o.el_deg, PRIORITY_GLANCE)
    p.gaze.append(seg)
    return seg


_CORRECTION_STEPS = 24  # at most this many glances tried (added or dropped) to meet the target share


def _ambient_and_visibility(p: Plan, cfg: WorldConfig, rng: np.random.Generator) -> None:
    """Add ambient sounds and steer sources into or out of view so the
    off-screen share approaches ``offscreen_share``.

    Scripted sound events fall in three groups: sources that cannot be seen
    (the wearer's feet, a phone in a pocket), sources the head already looks
    at, and sources the head may or may not turn to (a beeping oven, a knock
    on the door). The last group and the ambient sounds go off-screen with
    the probability ``q`` that makes the expected share equal the target,
    ``unseeable + q * (steerable + ambient) = share * all``: on-screen ones get
    a glance (the wearer turns to the sound), off-screen ambient ones a
    source out of view or out of the room. Glances interact (one may turn the
    head away from another source), so a correction pass then adds or drops
    glances while the predicted count is off target. What cannot be steered
    (the wearer's own feet, the board being chopped on) bounds the reachable
    share; the annotations always report what the renderer drew.
    """
    traj = head_trajectory(p, cfg)
    speed = float(np.mean(cfg.head_turn_speed_deg_s))
    scripted = list(p.sounds)
    # never in frame: the wearer's feet, a pocket, agents only ever heard (the visitor is seen at the door)
    unseeable = {eid for eid in scripted if not p.scn.has(p.event(eid).source) and p.event(eid).source != "visitor"}
    steerable = [eid for eid in scripted if p.scn.has(p.event(eid).source) and not predicted_visible(
        p, traj, p.event(eid).source, p.event(eid).onset_s, p.event(eid).offset_s)]
    n_amb = int(rng.poisson(cfg.ambient_per_min * p.duration_s / 60.0))
    n_all = len(scripted) + n_amb
    q_off = float(np.clip((cfg.offscreen_share * n_all - len(unseeable)) / max(len(steerable) + n_amb, 1), 0.0, 1.0))
    ambient = _add_ambient(p, cfg, rng, n_amb, q_off)
    deferred = {eid for eid, off in ambient if off}  # get a hidden or elsewhere source at the end
    unseeable |= {eid for eid in deferred if not p.sounds[eid].candidates}
    glances: dict[str, GazeSeg] = {}

    def look(eid: str) -> None:
        e, spec = p.event(eid), p.sounds[eid]
        if spec.ambient:
            e.source = str(rng.choice(spec.candidates))
            spec.distance_m = p.scn.obj(e.source).distance_m
        if not predicted_visible(p, traj, e.source, e.onset_s, e.offset_s):
            seg = _glance(p, e.source, e.onset_s, e.offset_s, rng, traj, speed)
            if seg is not None:
                glances[eid] = seg

    for eid in steerable:
        if rng.random() >= q_off:
            look(eid)
    for eid, off in ambient:
        if not off:
            look(eid)
    traj = head_trajectory(p, cfg)

    # correction: move the predicted off-screen count towards the target, one glance at a
    # time, keeping a change only if it helps (a glance can turn the head away from another source)
    target = cfg.offscreen_share * len(p.sounds)

    def n_off(tr: Trajectory) -> int:
        return sum(1 for eid in p.sounds if eid in unseeable or eid in deferred or not predicted_visible(
            p, tr, p.event(eid).source, p.event(eid).onset_s, p.event(eid).offset_s))

    tried: set[str] = set()
    current = n_off(traj)
    for _ in range(_CORRECTION_STEPS):
        if abs(current - target) <= 0.5:
            break
        too_many = current > target
        if too_many:  # turn to a hidden source that can be seen
            options = [eid for eid in p.sounds if eid not in unseeable and eid not in tried and eid not in glances
                       and (p.sounds[eid].ambient or p.scn.has(p.event(eid).source))
                       and (eid in deferred or not predicted_visible(p, traj, p.event(eid).source,
                                                                     p.event(eid).onset_s, p.event(eid).offset_s))]
        else:  # an ambient sound moves out of view, or the wearer does not turn to a scripted one
            options = [eid for eid, _ in ambient if eid not in deferred and eid not in tried]
            options += [eid for eid in glances if not p.sounds[eid].ambient and eid not in tried]
        if not options:
            break
        eid = options[int(rng.integers(len(options)))]
        tried.add(eid)
        saved = (p.event(eid).source, p.sounds[eid].distance_m, eid in deferred)
        if too_many:
            deferred.discard(eid)
            look(eid)
        else:
            seg = glances.pop(eid, None)
            if seg is not None:
                p.gaze.remove(seg)
            if p.sounds[eid].ambient:
                deferred.add(eid)
        new_traj = head_trajectory(p, cfg)
        new = n_off(new_traj)
        if abs(new - target) < abs(current - target):
            traj, current = new_traj, new
        else:  # undo
            if too_many:
                seg = glances.pop(eid, None)
                if seg is not None:
                    p.gaze.remove(seg)
                p.event(eid).source, p.sounds[eid].distance_m = saved[0], saved[1]
                if saved[2]:
                    deferred.add(eid)
            else:
                deferred.discard(eid)
                if seg is not None:
                    p.gaze.append(seg)
                    glances[eid] = seg

    lo, hi = cfg.offscreen_distance_m
    for eid in sorted(deferred):
        e, spec = p.event(eid), p.sounds[eid]
        hidden = [s for s in spec.candidates
                  if not predicted_visible(p, traj, s, e.onset_s - 0.3, e.offset_s + 0.3, _VIEW_MARGIN_DEG)]
        if hidden and (spec.elsewhere is None or rng.random() < 0.5):
            e.source = str(rng.choice(hidden))
            spec.distance_m = p.scn.obj(e.source).distance_m
        elif spec.elsewhere is not None:
            agent, place = spec.elsewhere
            e.source = agent
            e.attrs["location"] = place
            spec.distance_m = float(rng.uniform(lo, hi))
            spec.occluded = place in ROOMS_ELSEWHERE
        else:
            e.source = str(rng.choice(spec.candidates))  # nowhere to hide it: the mask will say visible
            spec.distance_m = p.scn.obj(e.source).distance_m
    p.trajectory = traj


def _screens(p: Plan, rng: np.random.Generator) -> None:
    """Screens (monitor, TV) are on from the start, or switch on at some point."""
    for o in p.scn.objects:
        if "on" in o.variants:
            t_on = 0.0 if rng.random() < 0.7 else float(rng.uniform(2.0, p.duration_s / 2))
            p.add("screen_on", t_on, p.duration_s, source=o.name)
            p.looks.append(LookSeg(o.name, "on", t_on, p.duration_s + 1.0))


def plan_recording(scenario: str, cfg: WorldConfig, rng: np.random.Generator) -> Plan:
    """Draw the script of one recording of ``scenario`` (see the module docstring)."""
    scn = jitter_layout(get_scenario(scenario), rng)
    p = Plan(scn, float(cfg.duration_s), float(cfg.fov_deg))
    p.motion_seed = int(rng.integers(2**63))
    _screens(p, rng)
    place_chains(p, cfg, rng)
    _fill_activities(p, rng, cfg.silent_action_share)
    _ambient_and_visibility(p, cfg, rng)
    return p
