"""Causal chains in which audio leads vision, and where they go in a recording.

Each builder scripts one chain into a :class:`~sim.world.plan.Plan`: the
cause sound at ``t_c``, the wearer's response ``lag`` seconds later (``lag``
drawn from ``cause_lag_s`` by :func:`place_chains`), and the consequences,
every step linked to the one before by ``cause`` (effect -> cause):

=============  ===========================================================
oven_timer     timer_beep (oven) | alarm (phone) -> open_oven -> oven_door_open
microwave      microwave_beep | timer_beep (microwave) -> open_microwave
               -> microwave_door_open
kettle         (kettle_steaming) kettle_whistle | timer_beep (kettle) -> pour
               (+ pouring sound)
door           doorbell | knock -> walk_to_door -> open_door -> door_open
               (+ footsteps, door sounds, the visitor speaks; walk back)
phone          phone_ring | phone_notification -> pick_up_phone, and
               -> phone_screen_lit; then read
request        speech "could you pass the salt" -> reach_for_object (salt)
horn           car_horn -> idle (the wearer stops walking and looks)
=============  ===========================================================

Ambiguity is part of the world, so that neither a question nor the scene gives
its answer (ARCHITECTURE.md section 10): most responses have two plausible
causes (``scenarios.CHAIN_CAUSES``, drawn with equal odds), a beep's source
depends on the chain (a ``timer_beep`` may come from the oven, the microwave or
the kettle), a cause is sometimes ignored (``WorldConfig.ignored_cause_share``:
the sound plays and nobody responds), and a chain sometimes recurs later in the
same recording with its other cause (``WorldConfig.repeat_chain_share``), so a
recording holds windows whose answers to the same question differ.

A builder returns when the wearer is free again and marks the busy stretch
(the head turn before the response to the end), which interrupts whatever
activity was going on; an ignored cause returns when its sound ends.
"""
from __future__ import annotations

import numpy as np

from sim.world.motion import GazeSeg, WalkSeg
from sim.world.plan import (
    FOOTSTEP_DISTANCE_M,
    OWN_SOURCE,
    POCKET_DISTANCE_M,
    PRIORITY_CHAIN,
    TURN_LEAD_S,
    HandSeg,
    LookSeg,
    Plan,
)
from sim.world.scenarios import CHAIN_CAUSES
from sim.world.world_config import WorldConfig

__all__ = ["CHAIN_GAP_S", "place_chains"]

CHAIN_GAP_S = (1.5, 4.0)  # quiet time between chains


def _oven_like(p: Plan, t_c: float, lag: float, rng, cause: tuple[str, str | None], respond: bool, *,
               appliance: str, action: str, state: str) -> float:
    beep, source = cause
    t_e = t_c + lag
    end_max = t_e + 0.3 if respond else None
    cause_id = p.add_sound(beep, t_c, float(rng.uniform(1.5, 3.5)), source=source or appliance, end_max=end_max,
                           **({} if respond else {"ignored": True}))
    if not respond:
        return p.event(cause_id).offset_s
    act = p.add(action, t_e, t_e + 1.2, source=appliance, cause=cause_id, lag_s=round(lag, 3))
    t_open = t_e + 0.7
    t_close = t_open + float(rng.uniform(2.5, 5.0))
    p.add(state, t_open, t_close, source=appliance, cause=act)
    p.looks.append(LookSeg(appliance, "open", t_open, t_close))
    p.look_at(appliance, t_e - TURN_LEAD_S, t_close + 0.4)
    p.hands.append(HandSeg(t_e, t_close + 0.3, "open", target=appliance))
    p.busy.append((t_e - TURN_LEAD_S, t_close + 0.4, act))
    return t_close + 0.4


def _oven_timer(p, t_c, lag, rng, cause, respond):
    return _oven_like(p, t_c, lag, rng, cause, respond, appliance="oven", action="open_oven", state="oven_door_open")


def _microwave(p, t_c, lag, rng, cause, respond):
    return _oven_like(p, t_c, lag, rng, cause, respond, appliance="microwave", action="open_microwave",
                      state="microwave_door_open")


def _kettle(p: Plan, t_c, lag, rng, cause, respond):
    t_e = t_c + lag
    t_steam = max(0.0, t_c - float(rng.uniform(2.0, 4.0)))
    label, _ = cause
    # a whistle goes on until someone lifts the kettle; an electric kettle beeps once
    dur = lag + 1.0 if label == "kettle_whistle" else float(rng.uniform(1.5, 3.0))
    if not respond:
        cause_id = p.add_sound(label, t_c, dur if label != "kettle_whistle" else float(rng.uniform(2.0, 4.0)),
                               source="kettle", ignored=True)
        t_end = p.event(cause_id).offset_s
        p.add("kettle_steaming", t_steam, t_end + 1.0, source="kettle")
        p.looks.append(LookSeg("kettle", "steam", t_steam, t_end + 1.0))
        return t_end
    cause_id = p.add_sound(label, t_c, dur, source="kettle", end_max=t_e + 0.4)
    pour_s = float(rng.uniform(2.5, 4.0))
    act = p.add("pour", t_e, t_e + pour_s, source="kettle", cause=cause_id, lag_s=round(lag, 3))
    p.add_sound("pouring", t_e + 0.6, pour_s - 0.9, source="cup", action_id=act)
    t_end_steam = t_e + pour_s + 2.0
    p.add("kettle_steaming", t_steam, t_end_steam, source="kettle")
    p.looks.append(LookSeg("kettle", "steam", t_steam, t_end_steam))
    p.look_at("kettle", t_e - TURN_LEAD_S, t_e + pour_s)
    p.hands.append(HandSeg(t_e, t_e + pour_s, "pour", target="kettle"))
    p.busy.append((t_e - TURN_LEAD_S, t_e + pour_s + 0.3, act))
    return t_e + pour_s + 0.3


def _door(p: Plan, t_c, lag, rng, cause, respond, silent_share: float):
    door = p.scn.door
    o = p.scn.obj(door)
    t_e = t_c + lag
    ring, _ = cause
    if not respond:
        cause_id = p.add_sound(ring, t_c, float(rng.uniform(1.0, 2.0)), source=door, ignored=True)
        return p.event(cause_id).offset_s
    cause = p.add_sound(ring, t_c, float(rng.uniform(1.0, 2.0)), source=door)
    walk_s = float(rng.uniform(2.0, 3.0))
    walk = p.add("walk_to_door", t_e, t_e + walk_s, source=door, cause=cause, lag_s=round(lag, 3))
    steps_id = None
    if rng.random() >= silent_share:
        steps_id = p.add_sound("footsteps", t_e + 0.1, walk_s - 0.1, source=OWN_SOURCE,
                               distance_m=FOOTSTEP_DISTANCE_M, action_id=walk)
    p.walks.append(WalkSeg(t_e, t_e + walk_s, o.az_deg, 0.0, 1.0))
    p.walk_sounds[len(p.walks) - 1] = steps_id
    t_o = t_e + walk_s
    opening = p.add("open_door", t_o, t_o + 1.0, source=door, cause=walk)
    t_open = t_o + 0.6
    t_close = t_open + float(rng.uniform(3.0, 5.0))
    p.add("door_open", t_open, t_close, source=door, cause=opening)
    p.looks.append(LookSeg(door, "visitor", t_open, t_close))
    if rng.random() >= silent_share:
        p.add_sound("door_sound", t_open - 0.1, 0.8, source=door, action_id=opening)
    p.add_sound("speech", t_open + 0.8, 2.0, source="visitor", distance_m=o.distance_m * 0.3,
                text=str(rng.choice(["hello, a parcel for you", "hi, is this your parcel", "good morning"])))
    p.hands.append(HandSeg(t_o, t_o + 1.2, "open", target=door))
    p.look_at(door, t_e - TURN_LEAD_S, t_close + 0.3)
    if rng.random() >= silent_share:
        p.add_sound("door_sound", t_close - 0.2, 0.8, source=door)
    # turn round and walk back to where the work is
    t_b = t_close + 0.6
    back = p.add("walk", t_b, t_b + walk_s, source=None)
    steps_back = None
    if rng.random() >= silent_share:
        steps_back = p.add_sound("footsteps", t_b + 0.1, walk_s - 0.1, source=OWN_SOURCE,
                                 distance_m=FOOTSTEP_DISTANCE_M, action_id=back)
    p.walks.append(WalkSeg(t_b, t_b + walk_s, o.az_deg, 1.0, 0.0))
    p.walk_sounds[len(p.walks) - 1] = steps_back
    p.look_at(p.scn.home, t_close + 0.3, t_b + walk_s)
    p.busy.append((t_e - TURN_LEAD_S, t_b + walk_s, walk))
    return t_b + walk_s


def _phone(p: Plan, t_c, lag, rng, cause, respond):
    t_e = t_c + lag
    ring, _ = cause
    pocket = p.scn.phone_in_pocket
    dur = float(rng.uniform(3.0, 6.0)) if ring == "phone_ring" else 0.8
    extra = {"location": "pocket"} if pocket else {}
    if not respond:
        cause_id = p.add_sound(ring, t_c, dur, source="phone", distance_m=POCKET_DISTANCE_M if pocket else None,
                               ignored=True, **extra)
        t_end = p.event(cause_id).offset_s
        p.add("phone_screen_lit", t_c, t_end + 1.0, source="phone", cause=cause_id)
        if not pocket:
            p.looks.append(LookSeg("phone", "lit", t_c, t_end + 1.0))
        return t_end
    cause = p.add_sound(ring, t_c, dur, source="phone", end_max=t_e + 0.8,
                        distance_m=POCKET_DISTANCE_M if pocket else None, **extra)
    act = p.add("pick_up_phone", t_e, t_e + 1.2, source="phone", cause=cause, lag_s=round(lag, 3))
    read_s = float(rng.uniform(2.0, 4.0))
    t_put = t_e + 1.2 + read_s
    p.add("read", t_e + 1.2, t_put, source="phone")
    p.add("phone_screen_lit", t_c, t_put, source="phone", cause=cause)
    if not pocket:
        p.looks.append(LookSeg("phone", "lit", t_c, t_e + 0.6))
        p.looks.append(LookSeg("phone", "absent", t_e + 0.6, t_put + 0.5))
        p.look_at("phone", t_e - TURN_LEAD_S, t_e + 0.8)
    p.hands.append(HandSeg(t_e, t_put + 0.5, "pick_phone", target=None if pocket else "phone", item="phone"))
    # hold the phone up and look down at it: the head pitches to the hand, yaw stays
    p.gaze.append(GazeSeg(t_e + 0.8, t_put, _hold_az(p, t_e), -22.0, PRIORITY_CHAIN))
    p.busy.append((t_e - TURN_LEAD_S, t_put + 0.5, act))
    return t_put + 0.5


def _hold_az(p: Plan, t: float) -> float:
    """Azimuth the wearer faces at ``t`` (for holding things up in front)."""
    best = None
    for g in p.gaze:
        if g.t0_s <= t < g.t1_s and (best is None or g.priority >= best.priority):
            best = g
    return best.az_deg if best is not None else p.scn.obj(p.scn.home).az_deg


def _request(p: Plan, t_c, lag, rng, cause, respond):
    taken = {lk.obj for lk in p.looks if lk.variant == "absent"}
    options = [o for o in p.scn.request_objects if o not in taken]
    if not options or p.scn.speaker is None:
        return None
    obj = str(rng.choice(options))
    t_e = t_c + lag
    text = f"could you pass the {obj}"
    if not respond:
        cause_id = p.add_sound("speech", t_c, 2.0, source=p.scn.speaker, text=text, request=True, object=obj,
                               ignored=True)
        return p.event(cause_id).offset_s
    cause = p.add_sound("speech", t_c, 2.0, source=p.scn.speaker, text=text, request=True, object=obj)
    act = p.add("reach_for_object", t_e, t_e + 1.6, source=obj, cause=cause, object=obj, lag_s=round(lag, 3))
    p.looks.append(LookSeg(obj, "absent", t_e + 0.9, p.duration_s + 1.0))
    p.look_at(obj, t_e - TURN_LEAD_S, t_e + 1.4)
    p.hands.append(HandSeg(t_e, t_e + 1.8, "reach", target=obj, item=obj))
    p.busy.append((t_e - TURN_LEAD_S, t_e + 1.8, act))
    return t_e + 1.8


def _horn(p: Plan, t_c, lag, rng, cause, respond):
    t_e = t_c + lag
    src = str(rng.choice(["car", "van", "elsewhere"]))
    ignored = {} if respond else {"ignored": True}
    if src == "elsewhere":
        cause = p.add_sound("car_horn", t_c, float(rng.uniform(0.4, 1.2)), source="driver", location="next street",
                            distance_m=float(rng.uniform(8.0, 20.0)), **ignored)
        look_az = 270.0 + float(rng.uniform(-30, 30))
    else:
        cause = p.add_sound("car_horn", t_c, float(rng.uniform(0.4, 1.2)), source=src, **ignored)
        look_az = p.scn.obj(src).az_deg
    if not respond:
        return p.event(cause).offset_s
    stop_s = float(rng.uniform(2.0, 4.0))
    act = p.add("idle", t_e, t_e + stop_s, source=None, cause=cause, lag_s=round(lag, 3), stopped="walk")
    p.gaze.append(GazeSeg(t_e - 0.2, t_e + stop_s, look_az, -10.0, PRIORITY_CHAIN))
    p.busy.append((t_e - 0.2, t_e + stop_s, act))
    return t_e + stop_s


_CHAIN_MAX_SPAN_S = {"oven_timer": 7.0, "microwave": 7.0, "kettle": 5.0, "door": 16.0, "phone": 7.5,
                     "request": 2.5, "horn": 4.5}
_CHAIN_PRE_S = {"kettle": 4.0}  # the kettle steams before it whistles
_CHAIN_NEEDS = {"oven_timer": ("oven",), "microwave": ("microwave",), "kettle": ("kettle", "cup")}


_BUILDERS = {"oven_timer": _oven_timer, "microwave": _microwave, "kettle": _kettle, "phone": _phone,
             "request": _request, "horn": _horn}
_MAX_PER_RECORDING = {"door": 1}  # a door visit fills half a 30 s recording
_DEFAULT_MAX_PER_RECORDING = 2


def place_chains(p: Plan, cfg: WorldConfig, rng: np.random.Generator) -> None:
    """Chains one after another; each draw takes its lag first, then a kind that fits before the end.

    Each chain draws its cause among ``CHAIN_CAUSES[kind]`` and whether the
    wearer responds (``1 - ignored_cause_share``). After a chain with several
    causes, the next chain is, with probability ``repeat_chain_share``, the same
    kind with another cause (when it fits), so the recording holds both.
    """
    T = p.duration_s
    kinds = [k for k, _ in p.scn.chains if all(p.scn.has(o) for o in _CHAIN_NEEDS.get(k, ()))]
    weights = dict(p.scn.chains)
    n = max(1, int(rng.poisson(cfg.chains_per_min * T / 60.0)))
    lag_lo, lag_hi = cfg.cause_lag_s
    t = float(rng.uniform(0.5, 2.0))
    used: dict[str, int] = {}
    repeat: tuple[str, int] | None = None  # (kind, cause index to avoid)
    for _ in range(n):
        lag = float(rng.uniform(lag_lo, lag_hi))
        fits = [k for k in kinds
                if t + _CHAIN_PRE_S.get(k, 0.0) + lag + _CHAIN_MAX_SPAN_S[k] <= T - 0.3
                and used.get(k, 0) < _MAX_PER_RECORDING.get(k, _DEFAULT_MAX_PER_RECORDING)]
        if not fits:
            continue  # this lag does not fit any more: a later draw may be shorter
        causes = None
        if repeat is not None and repeat[0] in fits:
            kind = repeat[0]
            others = [i for i in range(len(CHAIN_CAUSES[kind])) if i != repeat[1]]
            ci = others[int(rng.integers(len(others)))]
        else:
            w = np.array([weights[k] for k in fits], float)
            kind = fits[int(rng.choice(len(fits), p=w / w.sum()))]
            causes = CHAIN_CAUSES[kind]
            ci = int(rng.integers(len(causes)))
        cause = CHAIN_CAUSES[kind][ci]
        respond = bool(rng.random() >= cfg.ignored_cause_share)
        t_c = t + _CHAIN_PRE_S.get(kind, 0.0)
        if kind == "door":
            end = _door(p, t_c, lag, rng, cause, respond, cfg.silent_action_share)
        else:
            end = _BUILDERS[kind](p, t_c, lag, rng, cause, respond)
        if end is None:
            continue
        used[kind] = used.get(kind, 0) + 1
        multi = len(CHAIN_CAUSES[kind]) > 1
        repeat = (kind, ci) if multi and causes is not None and rng.random() < cfg.repeat_chain_share else None
        t = end + float(rng.uniform(*CHAIN_GAP_S))
