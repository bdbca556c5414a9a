"""An episode of the simulator: a wearing day of recordings, each bound to its link.

A day (:func:`draw_day`) is ``day_s`` seconds of wearing the glasses:
recordings, chained in a random order (a shuffled pass over the trace set,
then another), fill ``active_share`` of it, and idle gaps fill the rest
(nothing heard, nothing asked; the device pays its always-on power, see
``shared.profiles.EnergyMeter.idle``). Days make budgets bind: a battery that
starts low cannot keep a camera on until evening, and what a policy spends in
the morning is missing at night.

A :class:`Segment` is one recording of the day bound to the link drawn for
it (``sim/network.py``; the whole day's link is drawn at reset, one call per
model): every per-hop number the environment's ``step`` reads, as plain
lists (indexing a list in Python is faster than a numpy scalar). What does not
depend on the link is built once per trace (:class:`TraceStatic`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from edge.policy import query_kind_index
from shared.profiles import NetworkProfile
from sim.network import LinkDraw, draw_service_ms
from sim.traces import KINDS, VARIANTS, Trace, TraceSet

__all__ = ["DayPlan", "draw_day", "fixed_day", "TraceStatic", "DayTables", "Segment", "bind_segment", "day_link",
           "VARIANT_KIND"]

#: The offload kind of each capture variant (index into KINDS), in VARIANTS order.
VARIANT_KIND = tuple(KINDS.index({"light": "light", "full_now": "full", "full_warm": "full", "audio": "audio"}[v])
                     for v in VARIANTS)


@dataclass(frozen=True)
class DayPlan:
    """The recordings of a day (indices into the trace set) and the idle gap before each.

    ``gaps_s[k]`` precedes recording ``k``; ``tail_gap_s`` follows the last one.
    ``day_s`` = sum of gaps + the recordings' durations.
    """

    recordings: tuple[int, ...]
    gaps_s: tuple[float, ...]
    tail_gap_s: float
    day_s: float


def draw_day(rng: np.random.Generator, traces: TraceSet, day_s: float, active_share: float) -> DayPlan:
    """A day of ``day_s`` seconds whose recordings fill about ``active_share`` of it.

    Recordings come in shuffled passes over the set (each recording once per
    pass); the idle time is split over the gaps uniformly at random (a flat
    Dirichlet), so some stretches of the day are busy and some quiet.
    """
    durations = [t.n_hops * t.hop_s for t in traces]
    target = max(min(durations), day_s * active_share)
    order: list[int] = []
    active = 0.0
    while active < target - 1e-9:
        for k in rng.permutation(len(traces)).tolist():
            if active >= target - 1e-9:
                break
            order.append(k)
            active += durations[k]
    idle = max(0.0, day_s - active)
    shares = rng.dirichlet(np.ones(len(order) + 1))
    gaps = (idle * shares).tolist()
    return DayPlan(tuple(order), tuple(gaps[:-1]), gaps[-1], active + idle)


def fixed_day(traces: TraceSet, recordings: Sequence[int], gap_s: float = 0.0) -> DayPlan:
    """These recordings in this order, ``gap_s`` of idle before each (0: back to back)."""
    active = sum(traces[k].n_hops * traces[k].hop_s for k in recordings)
    return DayPlan(tuple(recordings), tuple(gap_s for _ in recordings), 0.0, active + gap_s * len(recordings))


class TraceStatic:
    """What the environment reads of one trace that no link draw changes, built once per trace."""

    def __init__(self, tr: Trace, *, notify_s: float, cloud_tag_threshold: float, obs_size: int,
                 tokens_in_obs: bool) -> None:
        T = tr.n_hops
        self.trace, self.T = tr, T
        self.t = tr.t_s.tolist()
        self.frames = tr.frames_sent.tolist()
        self.warm_from = tr.warm_from_hop.tolist()
        self.frames_per_hop = tr.frames_per_hop.tolist()
        self.query_at = tr.query_at.tolist()
        self.cloud_correct = tr.cloud_correct.tolist()
        self.mask_correct = tr.mask_correct.tolist()
        self.cloud_unknown = tr.cloud_unknown.tolist()
        self.mask_unknown = tr.mask_unknown.tolist()
        self.mask_frames = tr.mask_frames.tolist()
        self.window_hops = tr.window_hops
        self.late_queries = list(tr.late_queries)
        self.student_ms = tr.student_ms.tolist()
        self.student_conf = tr.student_confidence.tolist()
        # The observation entries that depend neither on the policy nor on the link
        # (edge.policy.observation_vector layout); the link's three columns are set per draw.
        nt, ns = len(tr.trigger_labels), len(tr.student_labels)
        k = nt + ns
        obs = np.zeros((T, obs_size), np.float32)
        obs[:, :nt] = tr.trigger
        obs[:, k + 3] = np.clip(tr.snr_db / 40.0, -1.0, 1.0)
        obs[:, k + 10] = tr.query_at >= 0
        obs[:, k + 12] = tr.trigger_fired.any(axis=1)
        obs[:, k + 15] = np.minimum(1.0, tr.since_trigger / 10.0)
        for i, q in enumerate(self.query_at):
            if q >= 0:  # the question's kind, from its wording, as the glasses read it
                obs[i, k + query_kind_index(tr.query_texts[q])] = 1.0
        if not tokens_in_obs:
            obs[:, k + 14] = 1.0  # no bucket: always full
        self.obs = obs
        self.obs_link_cols = (k + 5, k + 6, k + 7)
        _bind_events(self, tr, notify_s, cloud_tag_threshold)


class Segment:
    """One recording of the day bound to its link: the per-hop lists ``OffloadEnv.step`` reads.

    ``st`` is the trace's :class:`TraceStatic` (``st.t``, ``st.frames``, ``st.query_at``,
    events, ...). Per variant ``v`` (VARIANTS order) and hop ``i``: ``tx[v][i]`` bytes on
    air (a lost request is sent twice), ``ok`` (the cloud answered and a service time
    was measured), ``up_ms`` (upload), ``rest_ms`` (RTTs, service with queueing,
    download), ``air_s`` (radio airtime).
    """

    __slots__ = ("st", "trace", "T", "link_up", "tx", "rx", "ok", "up_ms", "rest_ms", "air_s", "static_obs",
                 "obs_rtt", "obs_mbps", "obs_up")


class DayTables:
    """Every link-dependent number of a day, computed at reset in one pass over all its hops
    (numpy over the whole day, then one ``tolist`` per table); recordings take slices of it."""

    def __init__(self, statics: Sequence[TraceStatic], link: LinkDraw, service_ms: np.ndarray,
                 offsets: Sequence[int], net: NetworkProfile) -> None:
        cat = (lambda f: np.concatenate([f(st.trace) for st in statics], axis=-1)) if statics else None
        if statics:
            bytes_up, bytes_down = cat(lambda t: t.bytes_up), cat(lambda t: t.bytes_down)
            cloud_ok = cat(lambda t: t.cloud_ok)
            obs = np.concatenate([st.obs for st in statics])
        else:  # a day without recordings (never played)
            bytes_up = bytes_down = np.zeros((len(VARIANTS), 0), np.int64)
            cloud_ok = np.zeros((len(VARIANTS), 0), bool)
            obs = np.zeros((0, 1), np.float32)
        n = bytes_up.shape[1]
        up, mbps, down = link.up[:n], link.uplink_mbps[None, :n], link.downlink_mbps[None, :n]
        lost, rtt, queue = link.lost[None, :n], link.rtt_ms[:n], link.queue_units[None, :n]
        up_bytes = bytes_up * (1 + lost)
        down_ms = bytes_down * 8.0 / (down * 1e3)
        self.tx = up_bytes.tolist()
        self.rx = bytes_down.tolist()
        self.ok = (cloud_ok & np.isfinite(service_ms[:, :n])).tolist()
        self.up_ms = (up_bytes * 8.0 / (mbps * 1e3)).tolist()
        self.rest_ms = (rtt[None, :] * (1 + lost) + np.nan_to_num(service_ms[:, :n]) * (1.0 + queue)
                        + down_ms).tolist()
        self.air_s = (up_bytes * 8.0 / (mbps * 1e6) + down_ms / 1000.0).tolist()
        self.link_up = up.tolist()
        # What the link looked like at the previous hop; a recording's first hop sees the profile's means.
        first = np.zeros(n, bool)
        first[np.asarray(offsets[:-1], int)[np.asarray(offsets[:-1], int) < n]] = True
        rtt_prev = np.where(first, net.rtt_ms, np.roll(rtt, 1))
        mbps_prev = np.where(first, net.uplink_mbps, np.roll(link.uplink_mbps[:n], 1))
        up_prev = np.where(first, True, np.roll(up, 1))
        self.obs_rtt, self.obs_mbps, self.obs_up = rtt_prev.tolist(), mbps_prev.tolist(), up_prev.tolist()
        if statics:
            c_up, c_rtt, c_mbps = statics[0].obs_link_cols
            obs[:, c_up] = up_prev
            obs[:, c_rtt] = np.minimum(1.0, rtt_prev / 1000.0)
            obs[:, c_mbps] = np.minimum(1.0, np.log10(1.0 + mbps_prev) / 3.0)
        self.obs = obs


def bind_segment(st: TraceStatic, day: DayTables, a: int) -> Segment:
    """The recording of ``st`` starting at hop ``a`` of the day: slices of the day's tables."""
    b = a + st.T
    s = Segment()
    s.st, s.trace, s.T = st, st.trace, st.T
    s.link_up = day.link_up[a:b]
    s.tx = [row[a:b] for row in day.tx]
    s.rx = [row[a:b] for row in day.rx]
    s.ok = [row[a:b] for row in day.ok]
    s.up_ms = [row[a:b] for row in day.up_ms]
    s.rest_ms = [row[a:b] for row in day.rest_ms]
    s.air_s = [row[a:b] for row in day.air_s]
    s.obs_rtt, s.obs_mbps, s.obs_up = day.obs_rtt[a:b], day.obs_mbps[a:b], day.obs_up[a:b]
    s.static_obs = day.obs[a:b]
    return s


def day_link(rng: np.random.Generator, net: NetworkProfile, traces: TraceSet, plan: DayPlan, **link_kw):
    """The whole day's link and service draws at once: ``(LinkDraw over every hop, [V, hops] service ms,
    offsets)``; recording ``k`` of the plan owns hops ``offsets[k]:offsets[k+1]``."""
    from sim.network import draw_link

    lengths = [traces[k].n_hops for k in plan.recordings]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(int)
    total = int(offsets[-1])
    hop_s = traces[0].hop_s
    link = draw_link(rng, net, max(total, 1), hop_s, starts=offsets[:-1], **link_kw)
    service = np.full((len(VARIANTS), max(total, 1)), np.nan)
    kinds = np.asarray(VARIANT_KIND)
    for n, k in enumerate(plan.recordings):
        a, b = offsets[n], offsets[n + 1]
        service[:, a:b] = draw_service_ms(rng, traces[k].service_ms, KINDS, b - a)[kinds]
    return link, service, offsets.tolist()


def _bind_events(s: TraceStatic, tr: Trace, notify_s: float, cloud_tag_threshold: float) -> None:
    """Important events: the hops where each can be notified, and who would catch it there."""
    T = tr.n_hops
    s.ev_hops = tr.event_hops(notify_s)
    s.ev_deadline_s = (tr.event_onset_s + notify_s).tolist()
    s.ev_active = [[] for _ in range(T)]
    s.ev_close = [[] for _ in range(T)]
    for e, (h0, h1) in enumerate(s.ev_hops):
        for h in range(h0, h1 + 1):
            s.ev_active[h].append(e)
        s.ev_close[h1].append(e)
    s.ev_trig, s.ev_stud, s.ev_cloud, s.ev_free = [], [], [], []
    for e, j in enumerate(tr.event_label.tolist()):
        label = tr.important[j]
        ti = tr.trigger_labels.index(label) if label in tr.trigger_labels else -1
        si = tr.student_labels.index(label) if label in tr.student_labels else -1
        trig = tr.trigger_fired[:, ti] if ti >= 0 else np.zeros(T, bool)
        s.ev_trig.append(trig.tolist())
        s.ev_stud.append((tr.student[:, si] >= tr.student_thresholds[si]).tolist() if si >= 0 else [False] * T)
        s.ev_cloud.append((tr.cloud_tags[:, :, j] >= cloud_tag_threshold).tolist())
        h0, h1 = s.ev_hops[e]
        s.ev_free.append(bool(trig[h0:h1 + 1].any()))  # the always-on trigger catches it whatever the policy does
