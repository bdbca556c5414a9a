"""``earshot/Offload-v0``: a wearing day of recordings under device, network and budget models.

The environment replays :class:`sim.traces.Trace` files (what every on-device
program and the cloud answered at each hop, under each capture history) one
hop per step, recording after recording through a day (``sim/episode.py``).
The agent picks one of :data:`edge.policy.ACTIONS`; the environment charges
the step's energy with :class:`shared.profiles.EnergyMeter` (the edge
runtime's arithmetic), draws the network's delay and loss, answers queries
from the cloud (under what the camera actually captured) or from the device
(from the hops the student actually ran), and notifies important events.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from edge.policy import ACTIONS, Observation, observation_size
from shared.profiles import (
    DeviceProfile, EnergyMeter, NetworkProfile, inference_mj, load_device_profile, load_network_profile,
)
from sim.budget import Budget, RewardWeights
from sim.episode import DayPlan, DayTables, Segment, TraceStatic, bind_segment, day_link, draw_day, fixed_day
from sim.network import load_bandwidth_trace
from shared.trace import N_MASKS, camera_mask, labels_not_covered
from sim.traces import KINDS, VARIANTS, TraceError, TraceSet, load_traces

__all__ = ["Budget", "RewardWeights", "OffloadEnv", "IMPORTANT_LABELS", "ENV_ID", "CAMERA_FPS"]

ENV_ID = "earshot/Offload-v0"
#: Sounds the wearer must be told about (shared.labels audio_event names).
IMPORTANT_LABELS: tuple[str, ...] = (
    "alarm", "timer_beep", "doorbell", "car_horn", "phone_ring", "knock", "kettle_whistle", "microwave_beep",
)
#: The recording format's video rate (frames per second of camera on), for "share of an always-on camera".
CAMERA_FPS = 10.0
_LIGHT, _FULL_NOW, _FULL_WARM, _AUDIO = (VARIANTS.index(v) for v in ("light", "full_now", "full_warm", "audio"))
_FULL_MASK = N_MASKS - 1
_KIND_OF_ACTION = [{"none": -1, "light": 0, "full": 1, "audio": 2}[a.offload] for a in ACTIONS]


class OffloadEnv(gym.Env):
    """
    ## Description

    Offloading decisions for audio-visual AR glasses over a wearing day,
    replayed from traces of real runs. Each step is one hop (``hop_s`` of the
    trace, 0.25 s by default) of a recording; a day chains recordings with idle
    gaps between them (fast-forwarded: camera off, nothing sent, the always-on
    parts paid). An always-on audio trigger runs on every hop; the agent decides
    whether the camera streams during the hop, whether the on-device
    audio-visual student runs on its frame, and whether (and how much) to send
    to the cloud. The wearer asks questions at some hops; some sounds (alarms,
    timers, doorbells, ...) must be noticed and notified within ``notify_s``.

    **Capture decides answers.** An offload carries what the camera captured:
    OFFLOAD_FULL sends frames spread over the last 5 s only if the camera was on
    continuously since the oldest of them (trace variant ``full_warm``), else
    the frames of this hop (``full_now``); OFFLOAD_LIGHT one frame of this hop;
    OFFLOAD_AUDIO none. The cloud's answer and tags are the trace's for that
    variant. The device answers from the trigger's detections (every hop) and
    the student's on the hops it actually ran (``Trace.local_correct``).

    ## Action Space

    ``Discrete(5)``: the index into :data:`edge.policy.ACTIONS`. Anything else
    (a negative or too large index, a float, a bool) raises ``ValueError``.

    | Num | Action          | camera | student | offload                                   |
    |-----|-----------------|--------|---------|-------------------------------------------|
    | 0   | OFF             | off    | no      | none                                      |
    | 1   | LOOK            | on     | yes     | none                                      |
    | 2   | OFFLOAD_LIGHT   | on     | yes     | light: 1 frame q50 + 2 s audio            |
    | 3   | OFFLOAD_FULL    | on     | yes     | full: up to 4 frames q75 + 5 s audio      |
    | 4   | OFFLOAD_AUDIO   | off    | no      | audio: 5 s audio                          |

    ## Observation Space

    ``Box(-1, 1, (Nt + Ns + 15 + len(QUERY_KINDS),), float32)``, built exactly as
    :func:`edge.policy.observation_vector` builds it on the glasses
    (``Nt`` trigger labels, ``Ns`` student labels of the trace's programs).

    | Index        | Observation                                   | Min | Max |
    |--------------|-----------------------------------------------|-----|-----|
    | 0..Nt-1      | trigger probability per label                 | 0   | 1   |
    | Nt..Nt+Ns-1  | latest student probabilities (0 if none)      | 0   | 1   |
    | Nt+Ns        | a student result exists (this recording)      | 0   | 1   |
    | +1           | student confidence                            | 0   | 1   |
    | +2           | student result at most 1 s old                | 0   | 1   |
    | +3           | SNR estimate, dB / 40                         | -1  | 1   |
    | +4           | battery left (share)                          | 0   | 1   |
    | +5           | link up (as of the previous hop)              | 0   | 1   |
    | +6           | RTT of the previous hop, ms / 1000            | 0   | 1   |
    | +7           | uplink of the previous hop, log10(1+Mbit/s)/3 | 0   | 1   |
    | +8           | seconds since the last offload / 10           | 0   | 1   |
    | +9           | requests in flight / 4                        | 0   | 1   |
    | +10          | a user query falls in this hop                | 0   | 1   |
    | +11          | camera was on during the previous hop         | 0   | 1   |
    | +12          | some trigger label is over its threshold      | 0   | 1   |
    | +13          | share of the day still ahead                  | 0   | 1   |
    | +14          | share of the uplink token bucket left         | 0   | 1   |
    | +15..        | the query's kind, one-hot (edge.policy.QUERY_KINDS, from shared/queries.py) | 0 | 1 |

    ## Rewards

    Per step, with the weights of :class:`RewardWeights`::

        + query_correct  x (query of this hop answered correctly)
        + event_notified x (important events the trigger alone misses, first detected at this hop)
        - event_missed   x (important events whose window closed undetected)
        - energy_per_j   x (energy of the step and of the idle gap before the next recording, J)
        - deadline_miss  x (offloaded query the cloud did not answer in time)
        - throttle       x (step throttled by the power cap)
        - battery_empty  x (queries of the day left unasked when the battery or energy budget runs out)

    A query is answered by the cloud when the action offloads on its hop, the
    request is not refused (``max_in_flight``, the uplink token bucket), the
    link is up, the cloud answered under the capture variant and the simulated
    latency fits ``deadline_ms``: upload of the variant's bytes at the hop's
    rate (after the previous upload has left the link) + RTT + a service time
    drawn from the trace's sequential measurement x (1 + M/M/1 queueing) +
    download, plus one more RTT and upload if the request is lost. Otherwise
    the device answers at the deadline (the fallback). Correct means equal to
    the gold answer. An important event is notified when, at a hop ending
    within ``(onset, onset + notify_s]``, the trigger fired its label, or the
    student ran and scored it over its card threshold, or an offload's tags
    scored it over ``cloud_tag_threshold`` and arrived in time; an event the
    trigger catches on its own is "free" and reported apart.

    ## Power cap (thermal throttle) and other budgets

    If the moving-average power is over ``budget.power_cap_mw`` when a step
    starts, the step is throttled: camera and student are forced off and a
    light or full offload is downgraded to an audio offload (LOOK becomes OFF);
    the throttle penalty is charged. A compute budget that cannot fit the
    student skips it (the camera stays as chosen); more than ``max_in_flight``
    requests, or fewer uplink tokens than the request's bytes, refuses the offload.

    ## Starting State

    A day (:func:`sim.episode.draw_day`: ``day_h`` hours, recordings filling
    ``active_share`` of it, in shuffled passes over the trace set), or the
    recordings of ``options["recordings"]`` (ids or indices) back to back, or one
    recording ``options["recording"]``; a battery at a level drawn from
    ``battery_start_frac``; a full token bucket; camera off. Each recording's
    link is drawn when it starts from ``self.np_random``: the same seed gives
    the same day.

    ## Episode End

    Terminated after the day's last recording, when the battery is empty or
    when ``budget.energy_budget_j`` is spent. No truncation. Stepping a
    terminated episode raises ``RuntimeError`` (call ``reset``).

    ## Arguments

    ```python
    gymnasium.make("earshot/Offload-v0", traces="traces/", device="glasses_2025", network="wifi",
                   budget=Budget(deadline_ms=300, power_cap_mw=500), reward=RewardWeights(), day_h=12.0,
                   render_mode="rgb_array")
    ```

    ``traces``: a :class:`TraceSet`, or a folder / file of trace JSONL.
    ``recordings``: restrict to these recording ids; ``split``: to one dataset
    split (``train``, ``val``, ``test``; ``all``). ``device`` / ``network``:
    profile names, paths or loaded profiles. ``notify_s``, ``important_labels``,
    ``cloud_tag_threshold``, ``cloud_utilization`` (M/M/1 load), ``rate_corr``
    (AR(1) of the uplink per hop), ``outage_every_s`` / ``outage_mean_s`` (0:
    no outages), ``bandwidth_trace`` (a Mbit/s-per-second file replayed
    instead of log-normal draws), ``battery_start_frac`` (low, high),
    ``day_h``, ``active_share``, ``render_mode`` (``rgb_array``: the timeline).

    ## Version History

    * v0: one recording per episode (until issue 16); days, capture variants,
      token bucket, day and token observations since.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(
        self,
        traces: TraceSet | str,
        *,
        recordings: Sequence[str] | None = None,
        split: str | None = None,
        device: DeviceProfile | str = "glasses_2025",
        network: NetworkProfile | str = "wifi",
        budget: Budget | dict | None = None,
        reward: RewardWeights | dict | None = None,
        notify_s: float = 3.0,
        important_labels: Sequence[str] = IMPORTANT_LABELS,
        cloud_tag_threshold: float = 0.5,
        cloud_utilization: float = 0.3,
        rate_corr: float = 0.9,
        outage_every_s: float = 0.0,
        outage_mean_s: float = 2.0,
        bandwidth_trace: str | None = None,
        battery_start_frac: tuple[float, float] = (1.0, 1.0),
        day_h: float = 12.0,
        active_share: float = 0.1,
        render_mode: str | None = None,
    ) -> None:
        ts = traces if isinstance(traces, TraceSet) else load_traces(traces, important_labels)
        ts = ts.split(split)
        self.traces = ts.subset(list(recordings)) if recordings else ts
        for tr in self.traces:  # a trace that asked the cloud only near some events must cover ours
            missing = labels_not_covered(tr.header, tr.important, float(notify_s))
            if missing:
                raise TraceError(f"{tr.path}: traced with cloud_hops={tr.header['cloud_hops']}, which does not cover "
                                 f"important labels {missing} for notify_s={notify_s} s; re-trace with cloud_hops=all "
                                 "or those labels")
        self.device = device if isinstance(device, DeviceProfile) else load_device_profile(device)
        self.network = network if isinstance(network, NetworkProfile) else load_network_profile(network)
        self.budget = Budget(**budget) if isinstance(budget, dict) else (budget or Budget())
        self.reward_weights = RewardWeights(**reward) if isinstance(reward, dict) else (reward or RewardWeights())
        self.notify_s = float(notify_s)
        self.cloud_tag_threshold = float(cloud_tag_threshold)
        self.cloud_utilization = float(cloud_utilization)
        self.rate_corr = float(rate_corr)
        self.outage_every_s, self.outage_mean_s = float(outage_every_s), float(outage_mean_s)
        self._bw_trace = load_bandwidth_trace(bandwidth_trace) if bandwidth_trace else None
        self.battery_start_frac = (float(battery_start_frac[0]), float(battery_start_frac[1]))
        self.day_s = float(day_h) * 3600.0
        self.active_share = float(active_share)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode: expected one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.render_mode = render_mode
        self.power_cap_mw = self.budget.power_cap_mw or self.device.sustained_power_mw
        self._bucket_bytes = self.budget.uplink_burst_kb * 1000.0
        self._refill_bytes = self.budget.uplink_kbps * 1000.0 / 8.0  # per second
        self._max_in_flight = self.budget.max_in_flight
        self._energy_budget_mj = self.budget.energy_budget_j * 1000.0

        first = self.traces[0]
        self.trigger_labels, self.student_labels = first.trigger_labels, first.student_labels
        self._nt, self._ns = len(self.trigger_labels), len(self.student_labels)
        self._k = self._nt + self._ns
        n = observation_size(self.trigger_labels, self.student_labels)
        self._obs_size = n
        self.observation_space = spaces.Box(-1.0, 1.0, (n,), np.float32)
        self.action_space = spaces.Discrete(len(ACTIONS))
        self._decode = [(a.camera, a.student, k) for a, k in zip(ACTIONS, _KIND_OF_ACTION)]  # index -> what it does
        self._reward_per_mj = self.reward_weights.energy_per_j / 1000.0
        self._meter = EnergyMeter(self.device, self.network)
        self._inv_battery_mj = 1.0 / self.device.battery_mj
        # Energy of one program call (mJ); the trace header names the programs' precision.
        hdr = first.header
        self._trigger_mj = inference_mj(self.device, first.trigger_macs, _precision(hdr["trigger"]),
                                        int(hdr["trigger"].get("size_bytes") or 0))
        self._student_mj = inference_mj(self.device, first.student_macs, _precision(hdr["student"]),
                                        int(hdr["student"].get("size_bytes") or 0))
        gmacs = self.budget.compute_gmacs_per_s
        self._student_fits = gmacs <= 0 or (first.trigger_macs + first.student_macs) <= gmacs * 1e9 * first.hop_s
        self._done = True
        self._seg: Segment | None = None
        self._hist = None
        self._statics: dict[int, TraceStatic] = {}  # per trace index, built on first use

    def _static(self, k: int) -> TraceStatic:
        st = self._statics.get(k)
        if st is None:
            st = self._statics[k] = TraceStatic(self.traces[k], notify_s=self.notify_s,
                                                cloud_tag_threshold=self.cloud_tag_threshold,
                                                obs_size=self._obs_size, tokens_in_obs=bool(self._refill_bytes))
        return st

    # --- reset: a day, its battery and its first recording ---------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        rng = self.np_random
        self.plan = self._plan(rng, options or {})
        self._inv_day_s = 1.0 / self.plan.day_s if self.plan.day_s > 0 else 0.0
        link, service, self._offsets = day_link(
            rng, self.network, self.traces, self.plan, rate_corr=self.rate_corr,
            cloud_utilization=self.cloud_utilization, outage_every_s=self.outage_every_s,
            outage_mean_s=self.outage_mean_s, bandwidth_trace=self._bw_trace)
        self._day = DayTables([self._static(k) for k in self.plan.recordings], link, service, self._offsets,
                              self.network)
        lo, hi = self.battery_start_frac
        self.battery_start_mj = float(rng.uniform(lo, hi)) * self.device.battery_mj
        self._battery_mj = self.battery_start_mj
        self._meter.reset()
        self._tokens = self._bucket_bytes
        self._tokens_t = 0.0  # day clock of the last refill (the bucket refills lazily)
        self._day_elapsed_s = 0.0
        self._seg_k = -1
        self._in_segment = False
        self._end_penalty = 0.0
        self._done = False
        self.stats = _new_stats(self)
        self.last_step_mj = 0.0
        self._hist = [] if self.render_mode == "rgb_array" else None
        self._next_segment()  # charges the first gap (the day may start idle)
        if self._done:  # a battery so low that the first gap empties it
            return self._obs_row(), {"plan": self._plan_info()}
        return self._observe(), {"plan": self._plan_info()}

    def _plan(self, rng: np.random.Generator, options: dict[str, Any]) -> DayPlan:
        def index(r) -> int:
            return int(r) if isinstance(r, (int, np.integer)) else self.traces.index(str(r))

        if options.get("recording") is not None:
            return fixed_day(self.traces, [index(options["recording"])])
        if options.get("recordings") is not None:
            return fixed_day(self.traces, [index(r) for r in options["recordings"]])
        return draw_day(rng, self.traces, self.day_s, self.active_share)

    def _plan_info(self) -> dict[str, Any]:
        return {"recordings": [self.traces[k].recording_id for k in self.plan.recordings], "day_s": self.plan.day_s}

    def _next_segment(self) -> None:
        """Close the current recording, pay the idle gap before the next, and bind it (or end the day)."""
        plan = self.plan
        if self._in_segment:
            self._close_segment(answer_late=True)
        self._seg_k += 1
        k = self._seg_k
        gap = plan.gaps_s[k] if k < len(plan.recordings) else plan.tail_gap_s
        if gap > 0:
            self._idle(gap)
            if self._done:
                return
        if k >= len(plan.recordings):
            self._end("day")
            return
        ts = self._static(plan.recordings[k])
        tr = ts.trace
        self._seg = bind_segment(ts, self._day, self._offsets[k])
        self._t_list, self._student_rows, self._conf_list = ts.t, tr.student, ts.student_conf
        self._in_segment = True
        self._hop_s = tr.hop_s
        self._i = 0
        self._student_hop = -1
        self._student_ran = [False] * tr.n_hops
        self._camera_prev = False
        self._cam_since = tr.n_hops  # the hop since which the camera has been on (none yet)
        self._cam_hist = [False] * tr.n_hops  # the camera's state per hop (frames the glasses hold)
        self._last_offload_t = -math.inf
        self._inflight: list[float] = []
        self._link_free_s = 0.0
        self._detected = [False] * len(tr.event_label)
        self._seg_start = {"energy_mj": self._meter.total_mj, "frames": self.stats["frames_captured"],
                           "sent": self.stats["frames_sent"], "bytes": self.stats["bytes_sent"]}
        if self._hist is not None:
            self._hist = []

    def _idle(self, gap_s: float) -> None:
        """A gap of the day: the always-on parts and the trigger, nothing else."""
        trig_mw = self._trigger_mj / self.traces[0].hop_s
        e = self._meter.idle(gap_s, compute_mw=trig_mw)
        self._battery_mj -= e
        self._day_elapsed_s += gap_s
        self.stats["energy_mj"] += e
        self.stats["idle_energy_mj"] += e
        self.stats["idle_s"] += gap_s
        self._gap_reward = -self.reward_weights.energy_per_j * e / 1000.0
        if self._battery_mj <= 0.0:
            self._end("battery")
        elif self._energy_budget_mj and self.stats["energy_mj"] >= self._energy_budget_mj:
            self._end("energy_budget")

    def _close_segment(self, answer_late: bool) -> None:
        """The recording's totals; its late queries answered on the device (or lost with the battery)."""
        s, st = self._seg, self.stats
        tr = s.trace
        for q in s.st.late_queries:
            if answer_late:
                self._log_query(q, tr.local_correct(q, self._student_ran), "local", -1, float(s.st.student_ms[-1]))
            else:
                self._log_query(q, False, "unasked", -1, math.nan)
        a = self._seg_start
        st["segments"].append({
            "k": self._seg_k, "recording_id": tr.recording_id, "duration_s": self._i * tr.hop_s,
            "energy_mj": self._meter.total_mj - a["energy_mj"], "frames_captured": st["frames_captured"] - a["frames"],
            "frames_sent": st["frames_sent"] - a["sent"], "bytes_sent": st["bytes_sent"] - a["bytes"]})
        self._in_segment = False

    def _end(self, why: str) -> None:
        """Terminate the day; queries not yet asked are lost (logged as ``unasked``, charged
        ``battery_empty`` each when the battery or the energy budget ran out)."""
        st = self.stats
        before = st["unasked"]
        if why != "day":
            first = self._seg_k
            if self._in_segment:
                s, tr = self._seg, self._seg.trace
                for q in range(len(tr.query_ids)):
                    if q not in s.st.late_queries and tr.query_hop[q] >= self._i:
                        self._log_query(q, False, "unasked", -1, math.nan)
                self._close_segment(answer_late=False)
                first += 1
            for k in range(max(0, first), len(self.plan.recordings)):
                tr = self.traces[self.plan.recordings[k]]
                for q in range(len(tr.query_ids)):
                    self._log_query(q, False, "unasked", -1, math.nan, seg=(k, tr))
        self._end_penalty = self.reward_weights.battery_empty * (st["unasked"] - before)
        st["ended_by"] = why
        st["battery_end_frac"] = max(0.0, self._battery_mj / self.device.battery_mj)
        self._done = True

    # --- step: indexing and arithmetic -----------------------------------------------------------

    def step(self, action):
        if self._done:
            raise RuntimeError("step() on a terminated episode: call reset() first")
        if action.__class__ is not int:
            action = self._check_action(action)
        elif not 0 <= action < 5:
            raise ValueError(f"action {action!r} is not in Discrete(5): expected an int index into edge.policy.ACTIONS")
        s, c, w = self._seg, self.stats, self.reward_weights
        ts = s.st
        i = self._i
        hop = self._hop_s
        t = ts.t[i]
        camera, student, kind = self._decode[action]
        reward = 0.0
        meter = self._meter
        if meter.avg_power_mw > self.power_cap_mw:  # throttled: no camera, frames become audio
            camera = student = False
            if kind >= 0:
                kind = 2
            c["throttled_steps"] += 1
            reward -= w.throttle
        if student and not self._student_fits:
            student = False
        if camera:
            if not self._camera_prev:
                self._cam_since = i
            self._cam_hist[i] = True
        else:
            self._cam_since = s.T
        tx = rx = jpeg = 0
        air = None
        lat = math.inf
        ok = False
        v = -1
        q = ts.query_at[i]
        mask = -1
        if kind >= 0:
            # The capture variant: frames over the window only if the camera has been on since the oldest.
            v = (_FULL_WARM if self._cam_since <= ts.warm_from[i] else _FULL_NOW) if kind == 1 else (
                _LIGHT if kind == 0 else _AUDIO)
            if kind == 1 and q >= 0:
                # A question: the offload carries the frames the camera captured in the window,
                # whether or not it stayed on in between (shared/trace.py, "Window masks").
                mask = _FULL_MASK if v == _FULL_WARM else camera_mask(self._cam_hist, i, ts.window_hops)
                if ts.mask_frames[q][mask] > ts.frames[_FULL_NOW][i]:
                    v = _FULL_WARM  # its size and link time: the window's frames, not this hop's
            v = self._send(s, ts, i, t, hop, v, c, ts.mask_frames[q][mask] if mask >= 0 else None)
            if v >= 0:
                tx, rx, air = s.tx[v][i], s.rx[v][i], s.air_s[v][i]
                lat, ok = self._lat, s.ok[v][i]
            jpeg = self._jpeg

        e = meter.step_mj(hop, camera, self._trigger_mj + self._student_mj if student else self._trigger_mj,
                          jpeg, tx, rx, air)
        self.last_step_mj = e
        self._battery_mj -= e
        c["energy_mj"] += e
        reward -= self._reward_per_mj * e
        if camera:
            c["frames_captured"] += ts.frames_per_hop[i]
            c["camera_steps"] += 1
        if student:
            self._student_hop = i
            self._student_ran[i] = True
            c["student_runs"] += 1
        if q >= 0:
            reward += self._answer(q, v, ok, lat, mask)
        if ts.ev_active[i]:
            reward += self._notify(i, t, student, v, ok, lat)

        self._camera_prev = camera
        if self._hist is not None:
            self._hist.append((camera, student, v, q, self._battery_mj / self.device.battery_mj, meter.avg_power_mw,
                               mask))
        self._i = i + 1
        self._day_elapsed_s += hop
        c["steps"] += 1
        if self._battery_mj <= 0.0:
            self._end("battery")
        elif self._energy_budget_mj and c["energy_mj"] >= self._energy_budget_mj:
            self._end("energy_budget")
        elif self._i >= s.T:
            self._gap_reward = 0.0
            self._next_segment()
            reward += self._gap_reward
        if self._done:
            reward -= self._end_penalty
            return self._obs_row(), reward, True, False, {}
        return self._observe(), reward, False, False, {}

    def _send(self, s: Segment, ts: TraceStatic, i: int, t: float, hop: float, v: int, c: dict,
              frames: int | None = None) -> int:
        """Try to send variant ``v`` at hop ``i``; returns ``v``, or -1 when refused or the link is down.

        ``frames``: the frames it carries when not the variant's (a window mask's). Sets ``self._jpeg``
        (frames encoded either way) and ``self._lat`` (end-to-end ms when sent).
        """
        self._jpeg = ts.frames[v][i] if frames is None else frames  # encoded before the request can be refused
        self._last_offload_t = t
        c["offloads"] += 1
        inflight = self._inflight
        if inflight:
            inflight[:] = [x for x in inflight if x > t]
        if self._refill_bytes:
            now = self._day_elapsed_s
            self._tokens = min(self._bucket_bytes, self._tokens + self._refill_bytes * (now - self._tokens_t))
            self._tokens_t = now
        if len(inflight) >= self._max_in_flight:
            c["refused_in_flight"] += 1
            return -1
        if self._refill_bytes and s.tx[v][i] > self._tokens:
            c["refused_tokens"] += 1
            return -1
        if not s.link_up[i]:
            c["link_down"] += 1
            return -1
        tx = s.tx[v][i]
        if self._refill_bytes:
            self._tokens -= tx
        start = t if t > self._link_free_s else self._link_free_s
        self._link_free_s = start + s.up_ms[v][i] / 1000.0
        self._lat = lat = (self._link_free_s - t) * 1000.0 + s.rest_ms[v][i]
        inflight.append(t + lat / 1000.0)
        c["bytes_sent"] += tx
        c["bytes_received"] += s.rx[v][i]
        c["frames_sent"] += self._jpeg
        return v

    def _check_action(self, action) -> int:
        """An int index from a numpy integer (or a 0-d integer array); anything else raises ValueError."""
        a = action
        if isinstance(a, np.ndarray) and a.shape == () and np.issubdtype(a.dtype, np.integer):
            a = a.item()
        elif isinstance(a, np.integer):
            a = int(a)
        if isinstance(a, bool) or not isinstance(a, int) or not 0 <= a < len(ACTIONS):
            raise ValueError(f"action {action!r} is not in Discrete({len(ACTIONS)}): expected an int index into "
                             "edge.policy.ACTIONS")
        return a

    def _answer(self, q: int, v: int, ok: bool, lat: float, mask: int = -1) -> float:
        """Score the hop's query: the cloud's answer under variant ``v`` (under window ``mask`` for a
        full offload) if in time and not ``unknown``, else the device's (as the runtime shows it)."""
        s, w = self._seg, self.reward_weights
        st = self.stats
        deadline = self.budget.deadline_ms
        reward = 0.0
        if v >= 0 and ok and lat <= deadline:
            if s.st.mask_unknown[q][mask] if mask >= 0 else s.st.cloud_unknown[v][q]:
                # the cloud said "unknown": the device's answer is shown (edge/runtime.py)
                correct = s.trace.local_correct(q, self._student_ran)
                source, latency = "local", lat + s.st.student_ms[self._i]
                st["cloud_unknown"] += 1
            else:
                correct = s.st.mask_correct[q][mask] if mask >= 0 else s.st.cloud_correct[v][q]
                source, latency = "cloud", lat
                st["cloud_answers"] += 1
        else:
            correct = s.trace.local_correct(q, self._student_ran)
            source = "local"
            latency = s.st.student_ms[self._i] + (min(lat, deadline) if v >= 0 else 0.0)
            if v >= 0:
                st["deadline_misses"] += 1
                reward -= w.deadline_miss
        self._log_query(q, correct, source, v, latency, mask=mask)
        if correct:
            reward += w.query_correct
        return reward

    def _log_query(self, q: int, correct: bool, source: str, v: int, latency: float, seg=None,
                   mask: int = -1) -> None:
        """One row of the query log; a full offload's variant is named by the window it carried:
        ``full_warm`` (all of it), ``full_now`` (this hop's frames) or ``full_held`` (frames held from
        part of the window)."""
        k, tr = seg if seg is not None else (self._seg_k, self._seg.trace)
        st = self.stats
        name = VARIANTS[v] if v >= 0 else None
        if v >= 0 and mask >= 0:
            name = "full_warm" if mask == _FULL_MASK else "full_now" if mask == 0 else "full_held"
        st["query_log"].append((k, tr.recording_id, tr.query_ids[q], tr.query_kinds[q], bool(correct), source,
                                name, latency))
        if correct:
            st["answers_correct"] += 1
        if source == "unasked":
            st["unasked"] += 1
        if math.isfinite(latency):
            st["latencies_ms"].append(latency)

    def _notify(self, i: int, t: float, student: bool, v: int, ok: bool, lat: float) -> float:
        """Important events whose notification window covers hop ``i``."""
        s, w, st = self._seg, self.reward_weights, self.stats
        reward = 0.0
        for ev in s.st.ev_active[i]:
            if self._detected[ev]:
                continue
            hit = s.st.ev_trig[ev][i] or (student and s.st.ev_stud[ev][i])
            if not hit and v >= 0 and ok and t + lat / 1000.0 <= s.st.ev_deadline_s[ev] + 1e-9:
                hit = s.st.ev_cloud[ev][v][i]
            if hit:
                self._detected[ev] = True
                if not s.st.ev_free[ev]:
                    reward += w.event_notified
        for ev in s.st.ev_close[i]:
            free = s.st.ev_free[ev]
            st["event_log"].append((self._seg_k, s.trace.recording_id, s.trace.event_ids[ev], free, self._detected[ev]))
            if not self._detected[ev]:
                reward -= w.event_missed
        return reward

    # --- observations ----------------------------------------------------------------------------

    def _observe(self) -> np.ndarray:
        """The observation vector of hop ``self._i`` (layout of ``edge.policy.observation_vector``)."""
        s, i, k = self._seg, self._i, self._k
        v = s.static_obs[i].copy()
        j = self._student_hop
        tl = self._t_list
        t = tl[i]
        if j >= 0:
            v[self._nt:k] = self._student_rows[j]
            v[k] = 1.0
            v[k + 1] = self._conf_list[j]
            if t - tl[j] <= 1.0:
                v[k + 2] = 1.0
        battery = self._battery_mj * self._inv_battery_mj
        if battery > 0.0:
            v[k + 4] = battery
        since = (t - self._last_offload_t) * 0.1
        v[k + 8] = since if since < 1.0 else 1.0
        if self._inflight:
            pending = 0
            for c in self._inflight:
                if c > t:
                    pending += 1
            if pending:
                v[k + 9] = pending * 0.25 if pending < 4 else 1.0
        if self._camera_prev:
            v[k + 11] = 1.0
        day = 1.0 - self._day_elapsed_s * self._inv_day_s
        if day > 0.0:
            v[k + 13] = day
        if self._refill_bytes:
            v[k + 14] = self._tokens_frac()
        return v

    def _tokens_frac(self) -> float:
        """Share of the uplink bucket that would be there now (it refills lazily at each send)."""
        if not self._refill_bytes:
            return 1.0
        now = self._tokens + self._refill_bytes * (self._day_elapsed_s - self._tokens_t)
        return min(self._bucket_bytes, now) / self._bucket_bytes

    def _obs_row(self) -> np.ndarray:
        """The last observation of a finished day (a zero vector if the day never started)."""
        return np.zeros(self._obs_size, np.float32)

    def observation(self) -> Observation:
        """The current hop as an :class:`edge.policy.Observation` (for the heuristic policies).

        Slower than the vector (dicts per call); the evaluation calls it once per step.
        """
        s, i = self._seg, self._i
        tr = s.trace
        t = s.st.t[i]
        j = self._student_hop
        q = s.st.query_at[i]
        fired = tr.trigger_fired[i]
        return Observation(
            t_s=t,
            trigger_scores=dict(zip(self.trigger_labels, tr.trigger[i].tolist())),
            trigger_fired=tuple(l for l, f in zip(self.trigger_labels, fired) if f),
            student_scores=dict(zip(self.student_labels, tr.student[j].tolist())) if j >= 0 else None,
            student_confidence=float(s.st.student_conf[j]) if j >= 0 else None,
            student_age_s=t - s.st.t[j] if j >= 0 else math.inf,
            snr_db=float(tr.snr_db[i]),
            battery_frac=max(0.0, self._battery_mj / self.device.battery_mj),
            link_up=bool(s.obs_up[i]),
            link_rtt_ms=float(s.obs_rtt[i]),
            link_mbps=float(s.obs_mbps[i]),
            since_offload_s=t - self._last_offload_t,
            pending=sum(1 for c in self._inflight if c > t),
            query=tr.query_texts[q] if q >= 0 else None,
            query_id=tr.query_ids[q] if q >= 0 else None,
            camera_on=self._camera_prev,
            day_left_frac=max(0.0, 1.0 - self._day_elapsed_s / self.plan.day_s),
            uplink_tokens_frac=self._tokens_frac(),
            since_trigger_s=float(tr.since_trigger[i]),
            trigger_early=tr.trigger_early[i] if tr.trigger_early else (),
        )

    def latency_if_sent_ms(self, v: int, i: int | None = None) -> float:
        """End-to-end latency (ms) an offload of variant ``v`` (index into ``VARIANTS``) sent now would see."""
        s = self._seg
        i = self._i if i is None else i
        t = s.st.t[i]
        start = max(t, self._link_free_s)
        return (start - t) * 1000.0 + s.up_ms[v][i] + s.rest_ms[v][i]

    def render(self):
        """``rgb_array``: the current recording's timeline as an (H, W, 3) uint8 image (``sim/render.py``)."""
        if self.render_mode != "rgb_array":
            return None
        from sim.render import draw_timeline

        return draw_timeline(self)

    def episode_stats(self) -> dict[str, Any]:
        """Counters of the day so far, and one row per query, event and recording (for intervals)."""
        st = dict(self.stats)
        st["latencies_ms"] = list(st["latencies_ms"])
        st["query_log"] = [dict(zip(_QUERY_FIELDS, row)) for row in st["query_log"]]
        st["event_log"] = [dict(zip(_EVENT_FIELDS, row)) for row in st["event_log"]]
        st["segments"] = list(st["segments"])
        st["queries"] = len(st["query_log"])
        st["events"] = len(st["event_log"])
        st["events_free"] = sum(e["free"] for e in st["event_log"])
        st["events_notified"] = sum(e["notified"] for e in st["event_log"])
        st["events_free_notified"] = sum(e["notified"] for e in st["event_log"] if e["free"])
        st["duration_s"] = st["steps"] * self.traces[0].hop_s
        return st

    @property
    def battery_mj(self) -> float:
        """Energy left in the battery (mJ)."""
        return self._battery_mj

    @property
    def hop_index(self) -> int:
        """The hop the next step plays, within the current recording."""
        return self._i

    @property
    def segment(self) -> Segment:
        """The recording being played, bound to its link."""
        return self._seg


_QUERY_FIELDS = ("segment", "recording_id", "query_id", "kind", "correct", "source", "variant", "latency_ms")
_EVENT_FIELDS = ("segment", "recording_id", "event_id", "free", "notified")


def _precision(block: dict[str, Any]) -> str:
    """int8 or fp32: the header's ``precision``, else the program's file name (``trigger_xnnpack_int8.pte``)."""
    if block.get("precision") in ("int8", "fp32"):
        return block["precision"]
    return "int8" if "int8" in str(block.get("program", "")) else "fp32"


def _new_stats(env: OffloadEnv) -> dict[str, Any]:
    return {
        "plan": [env.traces[k].recording_id for k in env.plan.recordings], "day_s": env.plan.day_s,
        "battery_start_frac": env.battery_start_mj / env.device.battery_mj, "steps": 0,
        "idle_s": 0.0, "energy_mj": 0.0, "idle_energy_mj": 0.0, "frames_captured": 0, "frames_sent": 0,
        "camera_steps": 0, "student_runs": 0, "offloads": 0, "refused_in_flight": 0, "refused_tokens": 0,
        "link_down": 0, "bytes_sent": 0, "bytes_received": 0, "answers_correct": 0, "cloud_answers": 0,
        "cloud_unknown": 0,
        "deadline_misses": 0, "unasked": 0, "throttled_steps": 0, "latencies_ms": [], "ended_by": None,
        "battery_end_frac": None, "query_log": [], "event_log": [], "segments": [],
    }
