"""``earshot/Offload-v0``: replay recordings under device, network and budget models.

The environment replays a :class:`sim.traces.Trace` (what every on-device
program and the cloud answered at each hop of a recording) one hop per step.
The agent picks one of :data:`edge.policy.ACTIONS`; the environment charges
the step's energy with :class:`shared.profiles.EnergyMeter` (the edge
runtime's arithmetic), draws the network's delay and loss, answers queries
from the cloud or the device, and notifies important events.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from edge.policy import ACTIONS, OFFLOAD_SPECS, Observation, observation_size
from shared.profiles import (
    DeviceProfile, EnergyMeter, NetworkProfile, inference_mj, load_device_profile, load_network_profile,
)
from sim.network import draw_link, load_bandwidth_trace, request_latency_ms
from sim.traces import KINDS, TraceSet, load_traces

__all__ = ["Budget", "RewardWeights", "OffloadEnv", "IMPORTANT_LABELS", "ENV_ID"]

ENV_ID = "earshot/Offload-v0"
#: Sounds the wearer must be told about (shared.labels audio_event names).
IMPORTANT_LABELS: tuple[str, ...] = (
    "alarm", "timer_beep", "doorbell", "car_horn", "phone_ring", "knock", "kettle_whistle", "microwave_beep",
)
#: The recording format's video rate: frames captured per second of camera on.
CAMERA_FPS = 10.0
_KIND_INDEX = {k: i for i, k in enumerate(KINDS)}


@dataclass(frozen=True)
class Budget:
    """What the device may spend.

    Attributes:
        power_cap_mw: sustained-power limit; when the moving average of power
            (``EnergyMeter.avg_power_mw``, time constant ``thermal_window_s`` of the
            device) is over it at the start of a step, the step is throttled. ``0``:
            the device profile's ``sustained_power_mw``.
        energy_budget_j: energy the episode may spend; the episode ends (terminated)
            once it is spent. ``0``: no budget (the battery still ends it when empty).
        deadline_ms: latency deadline of an answer to a query.
        compute_gmacs_per_s: on-device compute rate; a student call that does not fit
            in a hop next to the trigger is skipped. ``0``: unlimited.
        max_in_flight: cloud requests in flight; an offload beyond it is refused.
    """

    power_cap_mw: float = 0.0
    energy_budget_j: float = 0.0
    deadline_ms: float = 800.0
    compute_gmacs_per_s: float = 0.0
    max_in_flight: int = 4


@dataclass(frozen=True)
class RewardWeights:
    """Reward = successes minus costs, per step (see :class:`OffloadEnv`)."""

    query_correct: float = 1.0  # per query answered correctly (cloud in time, or local)
    event_notified: float = 1.0  # per important event detected within notify_s of its onset
    event_missed: float = 0.0  # per important event whose window closes undetected
    energy_per_j: float = 0.3  # per joule of the step
    deadline_miss: float = 0.5  # per query the cloud did not answer in time (it fell back)
    throttle: float = 0.1  # per throttled step


class OffloadEnv(gym.Env):
    """
    ## Description

    Offloading decisions for audio-visual AR glasses, replayed over traces of
    real runs. Each step is one hop (``hop_s`` of the trace, 0.25 s by default)
    of a recording. An always-on audio trigger runs on every hop; the agent
    decides whether the camera streams during the hop, whether the on-device
    audio-visual student runs on its frame, and whether (and how much) to send
    to the cloud. Users ask questions at some hops; some sounds (alarms, timers,
    doorbells, ...) must be noticed and notified within ``notify_s``.

    ## Action Space

    ``Discrete(5)``: the index into :data:`edge.policy.ACTIONS`.

    | Num | Action          | camera | student | offload                        |
    |-----|-----------------|--------|---------|--------------------------------|
    | 0   | OFF             | off    | no      | none                           |
    | 1   | LOOK            | on     | yes     | none                           |
    | 2   | OFFLOAD_LIGHT   | on     | yes     | light: 1 frame q50 + 2 s audio |
    | 3   | OFFLOAD_FULL    | on     | yes     | full: 4 frames q75 + 5 s audio |
    | 4   | OFFLOAD_AUDIO   | off    | no      | audio: 5 s audio               |

    ## Observation Space

    ``Box(-1, 1, (Nt + Ns + 13,), float32)``, built exactly as
    :func:`edge.policy.observation_vector` builds it on the glasses
    (``Nt`` trigger labels, ``Ns`` student labels of the trace's programs;
    18 and 33 for the default programs, so 64 entries).

    | Index        | Observation                                   | Min | Max |
    |--------------|-----------------------------------------------|-----|-----|
    | 0..Nt-1      | trigger probability per label                 | 0   | 1   |
    | Nt..Nt+Ns-1  | latest student probabilities (0 if none)      | 0   | 1   |
    | Nt+Ns        | a student result exists                       | 0   | 1   |
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

    ## Rewards

    Per step, with the weights of :class:`RewardWeights`::

        + query_correct  x (query of this hop answered correctly)
        + event_notified x (important events first detected at this hop)
        - event_missed   x (important events whose window closed undetected)
        - energy_per_j   x (energy of the step, J)
        - deadline_miss  x (offloaded query the cloud did not answer in time)
        - throttle       x (step throttled by the power cap)

    A query is answered by the cloud when the action offloads on its hop, the
    link is up and the simulated latency (trace server time x (1 + M/M/1
    queueing) + RTT + upload of ``bytes_up`` at the hop's rate + download, plus
    one more RTT and upload if the request is lost; an upload waits until the
    previous one has left the link) fits ``deadline_ms``;
    otherwise the device's answer (``local_answer`` of the trace) is used. It is
    correct when the chosen answer equals the gold answer. An important event
    is notified when, at a hop ending within ``(onset, onset + notify_s]``, the
    trigger fired its label, or the student ran and scored it over its card
    threshold, or an offload's tags scored it over ``cloud_tag_threshold`` and
    the result arrived before ``onset + notify_s``.

    ## Power cap (thermal throttle)

    If the moving-average power is over ``budget.power_cap_mw`` when a step
    starts, the step is throttled: camera and student are forced off and a
    light or full offload is downgraded to an audio offload (LOOK becomes OFF);
    the throttle penalty is charged. A compute budget that cannot fit the
    student skips it (the camera stays as chosen); more than
    ``max_in_flight`` requests refuses the offload.

    ## Starting State

    A recording drawn uniformly from the trace set (or ``options["recording"]``,
    an id or index), a battery at a level drawn from ``battery_start_frac``,
    camera off, no student result, and the episode's link: rates, RTTs,
    losses, queueing and outages are drawn for every hop at reset from
    ``self.np_random`` (``sim/network.py``). The same seed gives the same episode.

    ## Episode End

    Terminated at the recording's last hop, when the battery is empty or when
    ``budget.energy_budget_j`` is spent. No truncation (recordings are finite).

    ## Arguments

    ```python
    gymnasium.make("earshot/Offload-v0", traces="traces/", device="glasses_2025", network="wifi",
                   budget=Budget(deadline_ms=800), reward=RewardWeights(), notify_s=3.0)
    ```

    ``traces``: a :class:`TraceSet`, or a folder / file of trace JSONL.
    ``recordings``: restrict to these recording ids. ``device`` / ``network``:
    profile names, paths or loaded profiles. ``notify_s``, ``important_labels``,
    ``cloud_tag_threshold``, ``cloud_utilization`` (M/M/1 load), ``rate_corr``
    (AR(1) of the uplink per hop), ``outage_every_s`` / ``outage_mean_s`` (0:
    no outages), ``bandwidth_trace`` (a Mbit/s-per-second file replayed
    instead of log-normal draws), ``battery_start_frac`` (low, high).

    ## Version History

    * v0: initial version.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        traces: TraceSet | str,
        *,
        recordings: Sequence[str] | None = None,
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
    ) -> None:
        self.traces = traces if isinstance(traces, TraceSet) else load_traces(traces, important_labels)
        if recordings:
            self.traces = self.traces.subset(list(recordings))
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
        self.power_cap_mw = self.budget.power_cap_mw or self.device.sustained_power_mw

        first = self.traces[0]
        self.trigger_labels, self.student_labels = first.trigger_labels, first.student_labels
        self._nt, self._ns = len(self.trigger_labels), len(self.student_labels)
        n = observation_size(self.trigger_labels, self.student_labels)
        self.observation_space = spaces.Box(-1.0, 1.0, (n,), np.float32)
        self.action_space = spaces.Discrete(len(ACTIONS))

        # Action decode tables (index -> camera, student, offload kind or -1, frames).
        self._a_camera = [a.camera for a in ACTIONS]
        self._a_student = [a.student for a in ACTIONS]
        self._a_kind = [_KIND_INDEX.get(a.offload, -1) for a in ACTIONS]
        self._kind_frames = [OFFLOAD_SPECS[k].frames for k in KINDS]
        self._audio_kind = _KIND_INDEX["audio"]
        self._meter = EnergyMeter(self.device, self.network)
        self._obs = np.zeros(n, np.float32)
        self._trace = None

    # --- reset: bind a recording and draw its link ---------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        rng = self.np_random
        rec = (options or {}).get("recording")
        if rec is None:
            k = int(rng.integers(len(self.traces)))
        else:
            k = rec if isinstance(rec, (int, np.integer)) else self.traces.index(str(rec))
        tr = self._trace = self.traces[int(k)]
        T, hop = tr.n_hops, tr.hop_s
        self._hop_s = hop
        lo, hi = self.battery_start_frac
        self.battery_start_mj = float(rng.uniform(lo, hi)) * self.device.battery_mj
        link = self._link = draw_link(
            rng, self.network, T, hop, rate_corr=self.rate_corr, cloud_utilization=self.cloud_utilization,
            outage_every_s=self.outage_every_s, outage_mean_s=self.outage_mean_s, bandwidth_trace=self._bw_trace,
        )
        # Per kind and hop: upload time (a lost request is re-sent once: twice the bytes) and the
        # rest of the latency (RTTs, server time with queueing, download). Uploads share the link:
        # step() starts one when the previous one has left (self._link_free_s).
        mbps = link.uplink_mbps[None, :]
        resend = 1 + link.lost[None, :]
        self._up_list = (tr.bytes_up * resend * 8.0 / (mbps * 1e3)).tolist()
        rest = request_latency_ms(tr.cloud_latency_ms, 0, tr.bytes_down, mbps, link.downlink_mbps[None, :],
                                  link.rtt_ms[None, :], queue_units=link.queue_units[None, :])
        self._rest_list = (rest + link.lost[None, :] * link.rtt_ms[None, :]).tolist()
        self._tx = (tr.bytes_up * resend).tolist()
        self._rx = tr.bytes_down.tolist()
        self._ok = tr.cloud_ok.tolist()
        self._t_list = tr.t_s.tolist()
        # Observed link (previous hop's measurement; the profile's means before the first hop).
        self._obs_rtt = np.concatenate([[self.network.rtt_ms], link.rtt_ms[:-1]])
        self._obs_mbps = np.concatenate([[self.network.uplink_mbps], link.uplink_mbps[:-1]])
        self._obs_up = np.concatenate([[True], link.up[:-1]])
        self._link_up = link.up.tolist()
        self._obs_rtt_f = np.minimum(1.0, self._obs_rtt / 1000.0).astype(np.float32).tolist()
        self._obs_mbps_f = np.minimum(1.0, np.log10(1.0 + self._obs_mbps) / 3.0).astype(np.float32).tolist()
        self._snr_f = np.clip(tr.snr_db / 40.0, -1.0, 1.0).astype(np.float32).tolist()
        self._any_fired = tr.trigger_fired.any(axis=1).tolist()
        # Important events: the hops where each can be notified, and who would detect it there.
        self._ev_hops = tr.event_hops(self.notify_s)
        self._ev_deadline_s = (tr.event_onset_s + self.notify_s).tolist()
        self._ev_active: list[list[int]] = [[] for _ in range(T)]
        self._ev_close: list[list[int]] = [[] for _ in range(T)]
        for e, (h0, h1) in enumerate(self._ev_hops):
            for h in range(h0, h1 + 1):
                self._ev_active[h].append(e)
            self._ev_close[h1].append(e)
        if len(tr.event_label):
            labels = [tr.important[j] for j in tr.event_label]
            ti = [tr.trigger_labels.index(l) if l in tr.trigger_labels else -1 for l in labels]
            si = [tr.student_labels.index(l) if l in tr.student_labels else -1 for l in labels]
            self._ev_trig = [(tr.trigger_fired[:, j] if j >= 0 else np.zeros(T, bool)).tolist() for j in ti]
            self._ev_stud = [(tr.student[:, j] >= tr.student_thresholds[j] if j >= 0 else np.zeros(T, bool)).tolist() for j in si]
            self._ev_cloud = (tr.cloud_tags[:, :, tr.event_label] >= self.cloud_tag_threshold).transpose(2, 0, 1).tolist()
        self._query_at = tr.query_at.tolist()
        self._local_correct = tr.local_correct.tolist()
        self._cloud_correct = tr.cloud_correct.tolist()
        self._student_ms = tr.student_ms.tolist()
        # Energy of one program call (mJ): the trace header names the programs' precision.
        self._trigger_mj = inference_mj(self.device, tr.trigger_macs, _precision(tr.header["trigger"]),
                                        int(tr.header["trigger"].get("size_bytes") or 0))
        self._student_mj = inference_mj(self.device, tr.student_macs, _precision(tr.header["student"]),
                                        int(tr.header["student"].get("size_bytes") or 0))
        gmacs = self.budget.compute_gmacs_per_s
        self._student_fits = gmacs <= 0 or (tr.trigger_macs + tr.student_macs) <= gmacs * 1e9 * hop
        # Episode state.
        self._meter.reset()
        self._i = 0
        self._battery_mj = self.battery_start_mj
        self._camera_prev = False
        self._student_hop = -1
        self._last_offload_t = -math.inf
        self._inflight: list[float] = []
        self._link_free_s = 0.0
        self._detected = [False] * len(tr.event_label)
        self.stats = _new_stats(tr)
        self.last_step_mj = 0.0
        return self._observe(), {"recording_id": tr.recording_id}

    # --- step: pure indexing and arithmetic ------------------------------------------------------

    def step(self, action):
        a = int(action)
        tr, i, w, hop = self._trace, self._i, self.reward_weights, self._hop_s
        t = self._t_list[i]
        st = self.stats
        camera, student, kind = self._a_camera[a], self._a_student[a], self._a_kind[a]
        reward = 0.0
        throttled = self._meter.avg_power_mw > self.power_cap_mw
        if throttled:
            camera = student = False
            if kind >= 0:
                kind = self._audio_kind
            st["throttled_steps"] += 1
            reward -= w.throttle
        if student and not self._student_fits:
            student = False
        inflight = self._inflight
        if inflight:
            inflight[:] = [c for c in inflight if c > t]
        if kind >= 0 and len(inflight) >= self.budget.max_in_flight:
            kind = -1
            st["refused"] += 1

        # Offload: bytes on air, latency, whether the result arrives.
        tx = rx = frames_jpeg = 0
        lat = math.inf
        ok = False
        if kind >= 0:
            self._last_offload_t = t
            st["offloads"] += 1
            if self._link_up[i]:
                tx, rx = self._tx[kind][i], self._rx[kind][i]
                frames_jpeg = self._kind_frames[kind]
                start = max(t, self._link_free_s)
                self._link_free_s = start + self._up_list[kind][i] / 1000.0
                lat = (self._link_free_s - t) * 1000.0 + self._rest_list[kind][i]
                ok = self._ok[kind][i]
                inflight.append(t + lat / 1000.0)
                st["bytes_sent"] += tx
                st["bytes_received"] += rx
            else:
                st["link_down"] += 1

        # Energy: the shared meter (the trigger always runs; a student call if it ran).
        compute = self._trigger_mj + (self._student_mj if student else 0.0)
        e = self._meter.step(hop, camera_on=camera, compute_mj=compute, jpeg_frames=frames_jpeg, tx_bytes=tx, rx_bytes=rx)
        step_mj = e.total
        self.last_step_mj = step_mj
        self._battery_mj -= step_mj
        st["energy_mj"] += step_mj
        reward -= w.energy_per_j * step_mj / 1000.0
        if camera:
            st["frames_captured"] += CAMERA_FPS * hop
            st["camera_steps"] += 1
        if student:
            self._student_hop = i
            st["student_runs"] += 1

        # A query on this hop: the cloud's answer if it arrives in time, else the device's.
        q = self._query_at[i]
        if q >= 0:
            deadline = self.budget.deadline_ms
            if kind >= 0:
                if ok and lat <= deadline:
                    correct = self._cloud_correct[kind][q]
                    latency = lat
                    st["cloud_answers"] += 1
                else:
                    correct = self._local_correct[q]
                    latency = min(lat, deadline) + self._student_ms[i]
                    st["deadline_misses"] += 1
                    reward -= w.deadline_miss
            else:
                correct = self._local_correct[q]
                latency = self._student_ms[i]
            st["latencies_ms"].append(latency)
            if correct:
                st["answers_correct"] += 1
                reward += w.query_correct

        # Important events whose notification window covers this hop.
        for ev in self._ev_active[i]:
            if self._detected[ev]:
                continue
            hit = self._ev_trig[ev][i] or (student and self._ev_stud[ev][i])
            if not hit and kind >= 0 and ok and t + lat / 1000.0 <= self._ev_deadline_s[ev] + 1e-9:
                hit = self._ev_cloud[ev][kind][i]
            if hit:
                self._detected[ev] = True
                st["events_notified"] += 1
                reward += w.event_notified
        for ev in self._ev_close[i]:
            if not self._detected[ev]:
                reward -= w.event_missed

        self._camera_prev = camera
        self._i = i + 1
        st["steps"] += 1
        st["duration_s"] += hop
        end = self._i >= tr.n_hops
        empty = self._battery_mj <= 0.0
        spent = self.budget.energy_budget_j > 0 and st["energy_mj"] >= self.budget.energy_budget_j * 1000.0
        terminated = end or empty or spent
        if terminated:
            st["ended_by"] = "recording" if end else ("battery" if empty else "energy_budget")
            self._i = min(self._i, tr.n_hops - 1)
            obs = self._obs.copy()
        else:
            obs = self._observe()
        return obs, reward, terminated, False, {}

    # --- observations ----------------------------------------------------------------------------

    def _observe(self) -> np.ndarray:
        """Fill the observation vector of hop ``self._i`` (same layout as ``edge.policy.observation_vector``)."""
        tr, i, v = self._trace, self._i, self._obs
        nt, ns = self._nt, self._ns
        v[:nt] = tr.trigger[i]
        j = self._student_hop
        k = nt + ns
        t = self._t_list[i]
        if j >= 0:
            v[nt:k] = tr.student[j]
            v[k] = 1.0
            v[k + 1] = tr.student_confidence[j]
            v[k + 2] = 1.0 if t - self._t_list[j] <= 1.0 else 0.0
        else:
            v[nt:k + 3] = 0.0
        v[k + 3] = self._snr_f[i]
        v[k + 4] = max(0.0, self._battery_mj / self.device.battery_mj)
        v[k + 5] = 1.0 if self._obs_up[i] else 0.0
        v[k + 6] = self._obs_rtt_f[i]
        v[k + 7] = self._obs_mbps_f[i]
        v[k + 8] = min(1.0, (t - self._last_offload_t) / 10.0)
        v[k + 9] = min(1.0, sum(1 for c in self._inflight if c > t) / 4.0)
        v[k + 10] = 1.0 if self._query_at[i] >= 0 else 0.0
        v[k + 11] = 1.0 if self._camera_prev else 0.0
        v[k + 12] = 1.0 if self._any_fired[i] else 0.0
        return v.copy()

    def observation(self) -> Observation:
        """The current hop as an :class:`edge.policy.Observation` (for the heuristic policies).

        Slower than the vector (dicts per call); the evaluation calls it once per step.
        """
        tr, i = self._trace, self._i
        t = self._t_list[i]
        j = self._student_hop
        q = self._query_at[i]
        fired = tr.trigger_fired[i]
        return Observation(
            t_s=t,
            trigger_scores=dict(zip(self.trigger_labels, tr.trigger[i].tolist())),
            trigger_fired=tuple(l for l, f in zip(self.trigger_labels, fired) if f),
            student_scores=dict(zip(self.student_labels, tr.student[j].tolist())) if j >= 0 else None,
            student_confidence=float(tr.student_confidence[j]) if j >= 0 else None,
            student_age_s=t - self._t_list[j] if j >= 0 else math.inf,
            snr_db=float(tr.snr_db[i]),
            battery_frac=max(0.0, self._battery_mj / self.device.battery_mj),
            link_up=bool(self._obs_up[i]),
            link_rtt_ms=float(self._obs_rtt[i]),
            link_mbps=float(self._obs_mbps[i]),
            since_offload_s=t - self._last_offload_t,
            pending=sum(1 for c in self._inflight if c > t),
            query=tr.query_texts[q] if q >= 0 else None,
            query_id=tr.query_ids[q] if q >= 0 else None,
            camera_on=self._camera_prev,
        )

    def latency_if_sent_ms(self, kind: int, i: int | None = None) -> float:
        """End-to-end latency (ms) an offload of ``kind`` (index into ``KINDS``) sent now would see."""
        i = self._i if i is None else i
        t = self._t_list[i]
        start = max(t, self._link_free_s)
        return (start - t) * 1000.0 + self._up_list[kind][i] + self._rest_list[kind][i]

    def episode_stats(self) -> dict[str, Any]:
        """Counters of the episode so far (energy, frames, bytes, queries, events, latencies)."""
        return {**self.stats, "latencies_ms": list(self.stats["latencies_ms"])}

    @property
    def battery_mj(self) -> float:
        """Energy left in the battery (mJ)."""
        return self._battery_mj


def _precision(block: dict[str, Any]) -> str:
    """int8 or fp32: the header's ``precision``, else the program's file name (``trigger_xnnpack_int8.pte``)."""
    if block.get("precision") in ("int8", "fp32"):
        return block["precision"]
    return "int8" if "int8" in str(block.get("program", "")) else "fp32"


def _new_stats(tr) -> dict[str, Any]:
    return {
        "recording_id": tr.recording_id, "steps": 0, "duration_s": 0.0, "energy_mj": 0.0,
        "frames_captured": 0.0, "camera_steps": 0, "student_runs": 0, "offloads": 0, "refused": 0, "link_down": 0,
        "bytes_sent": 0, "bytes_received": 0, "queries": len(tr.query_ids), "answers_correct": 0, "cloud_answers": 0,
        "deadline_misses": 0, "events": int(len(tr.event_label)), "events_notified": 0, "throttled_steps": 0,
        "latencies_ms": [], "ended_by": None,
    }
