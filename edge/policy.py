"""Offloading policies: what to sense, run and send at each step.

A policy is a plain object with one decision method, shared by the edge
runtime (``earshot edge``), the native binary (``edge/native`` ports
``audio_trigger`` and ``confidence_threshold`` with the same parameters) and
the simulator (``sim``), so what is evaluated in simulation is what runs::

    policy = make_policy("audio_trigger", hold_s=3.0, delay_s=1.5)
    policy.reset(seed=0)
    for obs in steps:                 # one Observation per hop (default 250 ms)
        action = policy.act(obs)      # an Action from ACTIONS

Timing within a step: the runtime builds the observation from the trigger
(which always runs) and from what the student said on an earlier step; the
action then decides whether the camera is on for this step, whether the
student runs on this step's frame, and whether (and how much) to offload. A
user query that falls in the step is answered by the cloud when the action
offloads, else on the device (and on the device as a fallback when the cloud
is late or down).

Actions come from a fixed menu, :data:`ACTIONS`, so a learned policy can use a
``Discrete(len(ACTIONS))`` space; ``action.index`` is the position in it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from shared.queries import KINDS as _QUERY_CONTRACT_KINDS
from shared.queries import query_kind

__all__ = [
    "Observation", "Action", "OffloadSpec", "OFFLOADS", "OFFLOAD_SPECS", "ACTIONS",
    "OFF", "LOOK", "OFFLOAD_LIGHT", "OFFLOAD_FULL", "OFFLOAD_AUDIO",
    "Policy", "NeverOn", "QueryOnly", "AlwaysLocal", "AlwaysCloud", "Periodic", "AudioTrigger",
    "ConfidenceThreshold", "ContextAware", "POLICIES", "make_policy", "observation_vector", "observation_size",
    "QUERY_KINDS", "query_kind_index",
]


@dataclass(frozen=True)
class Observation:
    """What a policy sees at the start of a step.

    Attributes:
        t_s: end of the step's audio window on the recording clock.
        trigger_scores: the trigger program's probability per label (its card's labels).
        trigger_fired: labels whose score is over their card threshold at this step.
        student_scores: the AV student's probabilities from the latest step it ran, or None.
        student_confidence: the student's confidence output from that step, or None.
        student_age_s: seconds since that student result (inf if never).
        snr_db: the device's estimate of the audio SNR of the last second.
        battery_frac: share of the battery left, 0..1.
        link_up: whether the cloud is believed reachable (no recent connection failure).
        link_rtt_ms: smoothed round trip to the cloud.
        link_mbps: estimated uplink rate.
        since_offload_s: seconds since the last offload (inf if never).
        pending: cloud requests in flight.
        query: text of a user query that falls in this step, or None.
        query_id: its id, or None.
        camera_on: camera state during the previous step.
        day_left_frac: share of the wearing day still ahead, 0..1 (1 when the runtime does not
            know the day: ``earshot edge`` replays one recording).
        uplink_tokens_frac: share of the uplink token bucket left, 0..1 (1 without a bucket).
        since_trigger_s: seconds since the trigger's last rising edge (inf if none yet): a policy
            that must keep the camera on for a while after a sound (the wearer reacts 1-5 s
            later) needs to know how long ago it was.
        trigger_early: labels that rose over their *early* threshold at this step (the card's
            ``early_thresholds``) while not held by the trigger itself: a sound that has probably
            started, before the trigger is sure. Empty when the card has no early stage.
    """

    t_s: float
    trigger_scores: dict[str, float]
    trigger_fired: tuple[str, ...] = ()
    student_scores: dict[str, float] | None = None
    student_confidence: float | None = None
    student_age_s: float = math.inf
    snr_db: float = 20.0
    battery_frac: float = 1.0
    link_up: bool = True
    link_rtt_ms: float = 40.0
    link_mbps: float = 80.0
    since_offload_s: float = math.inf
    pending: int = 0
    query: str | None = None
    query_id: str | None = None
    camera_on: bool = False
    day_left_frac: float = 1.0
    uplink_tokens_frac: float = 1.0
    since_trigger_s: float = math.inf
    trigger_early: tuple[str, ...] = ()


@dataclass(frozen=True)
class OffloadSpec:
    """What an offload sends: the newest ``frames`` JPEG frames at ``jpeg_quality`` and ``audio_s`` of audio."""

    frames: int
    jpeg_quality: int
    audio_s: float


#: Offload kinds. "full" sends up to 4 frames from the last ``audio_s`` seconds
#: (fewer if the camera was on for less time), "light" one frame, "audio" none.
OFFLOAD_SPECS: dict[str, OffloadSpec] = {
    "light": OffloadSpec(frames=1, jpeg_quality=50, audio_s=2.0),
    "full": OffloadSpec(frames=4, jpeg_quality=75, audio_s=5.0),
    "audio": OffloadSpec(frames=0, jpeg_quality=0, audio_s=5.0),
}
OFFLOADS = ("none", *OFFLOAD_SPECS)


@dataclass(frozen=True)
class Action:
    """One step's decision: camera on, run the student, and which offload (see :data:`ACTIONS`)."""

    camera: bool
    student: bool
    offload: str = "none"

    def __post_init__(self) -> None:
        if self.offload not in OFFLOADS:
            raise ValueError(f"offload: expected one of {OFFLOADS}, got {self.offload!r}")
        if self.student and not self.camera:
            raise ValueError("student: the AV student needs the camera on")
        if self.offload in ("light", "full") and not self.camera:
            raise ValueError(f"offload {self.offload!r} sends frames: the camera must be on")

    @property
    def index(self) -> int:
        return ACTIONS.index(self)

    @property
    def spec(self) -> OffloadSpec | None:
        return OFFLOAD_SPECS.get(self.offload)


OFF = Action(camera=False, student=False, offload="none")
LOOK = Action(camera=True, student=True, offload="none")
OFFLOAD_LIGHT = Action(camera=True, student=True, offload="light")
OFFLOAD_FULL = Action(camera=True, student=True, offload="full")
OFFLOAD_AUDIO = Action(camera=False, student=False, offload="audio")
#: The action menu, in a fixed order (the simulator's Discrete space).
ACTIONS: tuple[Action, ...] = (OFF, LOOK, OFFLOAD_LIGHT, OFFLOAD_FULL, OFFLOAD_AUDIO)


@runtime_checkable
class Policy(Protocol):
    name: str

    def reset(self, seed: int | None = None) -> None: ...

    def act(self, obs: Observation) -> Action: ...

    def params(self) -> dict[str, Any]: ...


class _Base:
    """Parameters are dataclass fields; ``params()`` returns them; state lives in ``reset``."""

    name = "base"

    def __post_init__(self) -> None:
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        pass

    def params(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    def _follow_clock(self, t_s: float) -> None:
        """Reset when the clock goes back: a new recording. The simulator chains recordings into a day, each
        on its own clock; without this a hold begun at the end of one recording would cover the start of
        the next, and a wake-up would wait for the old clock."""
        if t_s < getattr(self, "_last_t", -math.inf) - 1e-9:
            self.reset()
        self._last_t = t_s


@dataclass
class NeverOn(_Base):
    """Camera off and nothing sent, ever: queries are answered from what the always-on trigger heard.

    The floor every policy is compared with: what the glasses know for free.
    """

    name = "never_on"

    def act(self, obs: Observation) -> Action:
        return OFF


@dataclass
class QueryOnly(_Base):
    """Offloads only when the wearer asks (``offload``: audio, light or full), camera off otherwise.

    ``full`` and ``light`` turn the camera on for the query's step only, so the
    cloud sees the frames of that moment; ``audio`` sends sound alone.
    """

    name = "query_only"
    offload: str = "full"

    def __post_init__(self) -> None:
        if self.offload not in OFFLOAD_SPECS:
            raise ValueError(f"query_only.offload: expected one of {sorted(OFFLOAD_SPECS)}, got {self.offload!r}")
        super().__post_init__()

    def act(self, obs: Observation) -> Action:
        if obs.query is None:
            return OFF
        return {"full": OFFLOAD_FULL, "light": OFFLOAD_LIGHT, "audio": OFFLOAD_AUDIO}[self.offload]


@dataclass
class AlwaysLocal(_Base):
    """Camera and student on at every step; never offloads (queries answered on the device)."""

    name = "always_local"

    def act(self, obs: Observation) -> Action:
        return LOOK


@dataclass
class AlwaysCloud(_Base):
    """Camera and student on at every step; offloads every step (``offload``: light or full)."""

    name = "always_cloud"
    offload: str = "full"

    def __post_init__(self) -> None:
        if self.offload not in ("light", "full"):
            raise ValueError(f"always_cloud.offload: expected 'light' or 'full', got {self.offload!r}")
        super().__post_init__()

    def act(self, obs: Observation) -> Action:
        return OFFLOAD_FULL if self.offload == "full" else OFFLOAD_LIGHT


@dataclass
class Periodic(_Base):
    """Wakes every ``period_s``: camera, student and a ``light`` offload; camera off between.

    A query is offloaded ``full`` at once.
    """

    name = "periodic"
    period_s: float = 2.0

    def __post_init__(self) -> None:
        if not self.period_s > 0:
            raise ValueError(f"periodic.period_s: must be > 0, got {self.period_s}")
        super().__post_init__()

    def reset(self, seed: int | None = None) -> None:
        self._next_s = 0.0

    def act(self, obs: Observation) -> Action:
        self._follow_clock(obs.t_s)
        if obs.query is not None:
            return OFFLOAD_FULL
        if obs.t_s + 1e-9 >= self._next_s:
            self._next_s = (math.floor(obs.t_s / self.period_s + 1e-9) + 1) * self.period_s
            return OFFLOAD_LIGHT
        return OFF


@dataclass
class AudioTrigger(_Base):
    """The always-on trigger turns the camera on (EgoTrigger-style capture).

    On a rising edge (a label newly over its threshold) the camera turns on
    for ``hold_s`` seconds with the student running, and the moment is
    offloaded ``full``; camera off otherwise. A query is offloaded ``full``.

    ``sustain_s`` lets a sound that goes on keep the camera on: while a label
    stays held (over its threshold, or inside its refractory hold) and at most
    ``sustain_s`` seconds after its own rising edge, every step pushes the end
    of the hold to ``hold_s`` past that step. So the camera covers a ringing
    phone or a whistling kettle until it stops (the moment the wearer usually
    answers it), plus ``hold_s``; a sound that never stops costs at most
    ``sustain_s + hold_s``. ``sustain_s = 0`` holds ``hold_s`` after the rising
    edge only.

    ``delay_s`` starts the hold later: the camera takes the trigger's own step
    (offloaded ``full``), is off for ``delay_s``, then on for ``hold_s``. The
    wearer answers a sound one to a few seconds after it, and the answer is
    what a later question asks about; the sound itself is heard anyway.

    With a trigger card that has an early stage (``early_thresholds``), an early
    rising edge (``Observation.trigger_early``) sends the audio in hand at once,
    ``audio`` (``light`` while the camera is on), without turning the camera on:
    the cloud hears the sound's first fraction of a second instead of waiting for
    the trigger to be sure (docs/edge.md, "The early stage").
    """

    name = "audio_trigger"
    #: hold 3 s after a 1.5 s delay: chosen on training recordings for the camera target of issue 17
    #: (docs/edge.md, "Query success with that camera"). The wearer answers a sound 1-5 s after it; a hold
    #: from the trigger itself spends the camera on the sound and misses the late answers.
    hold_s: float = 3.0
    sustain_s: float = 0.0
    delay_s: float = 1.5

    def __post_init__(self) -> None:
        for key in ("hold_s", "sustain_s", "delay_s"):
            value = getattr(self, key)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{self.name}.{key}: must be a finite number >= 0, got {value}")
        super().__post_init__()

    def reset(self, seed: int | None = None) -> None:
        self._prev_fired: frozenset[str] = frozenset()
        self._rose_s: dict[str, float] = {}  # when each held label last rose
        self._windows: list[list[float]] = []  # [start, end) of each hold still ahead or running

    def _rising(self, obs: Observation) -> bool:
        self._follow_clock(obs.t_s)
        fired = frozenset(obs.trigger_fired)
        new = fired - self._prev_fired
        for lab in self._prev_fired - fired:
            self._rose_s.pop(lab, None)
        for lab in new:
            self._rose_s[lab] = obs.t_s
        self._prev_fired = fired
        self._windows = [w for w in self._windows if w[1] > obs.t_s + 1e-9]
        end = obs.t_s + self.delay_s + self.hold_s
        if new:
            self._windows.append([obs.t_s + self.delay_s, end])
        elif self._windows and any(obs.t_s - self._rose_s[lab] <= self.sustain_s + 1e-9 for lab in fired):
            self._windows[-1][1] = max(self._windows[-1][1], end)  # a held sound extends its hold
        return bool(new)

    def _watching(self, t_s: float) -> bool:
        """Whether a hold covers the step ending at ``t_s``."""
        return any(a - 1e-9 <= t_s < b - 1e-9 for a, b in self._windows)

    def act(self, obs: Observation) -> Action:
        rising = self._rising(obs)
        if rising or obs.query is not None:
            return OFFLOAD_FULL
        watching = self._watching(obs.t_s)
        if obs.trigger_early:
            return OFFLOAD_LIGHT if watching else OFFLOAD_AUDIO
        return LOOK if watching else OFF


@dataclass
class ConfidenceThreshold(AudioTrigger):
    """Trigger-driven camera; offloads only the hard moments.

    Like ``audio_trigger``, the camera and student run for ``hold_s`` after a
    rising edge. The moment is offloaded ``full`` when the student's latest
    confidence (at most ``max_age_s`` old) is below ``threshold``, or when
    there is none. A query is offloaded under the same rule, else answered on
    the device.
    """

    name = "confidence_threshold"
    # its own defaults: the hold also spaces its offloads (``since_offload_s >= hold_s``), and the student must
    # look at the moment of the trigger to judge it
    hold_s: float = 2.0
    delay_s: float = 0.0
    threshold: float = 0.6
    max_age_s: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"confidence_threshold.threshold: must be in [0, 1], got {self.threshold}")
        super().__post_init__()

    def _unsure(self, obs: Observation) -> bool:
        conf = obs.student_confidence
        return conf is None or obs.student_age_s > self.max_age_s or conf < self.threshold

    def act(self, obs: Observation) -> Action:
        rising = self._rising(obs)
        watching = self._watching(obs.t_s)
        if obs.query is not None:
            return OFFLOAD_FULL if self._unsure(obs) else LOOK
        if rising:
            # The student has not seen this moment yet: look first, offload on the next
            # step if it is unsure (one hop later), unless it already is.
            return OFFLOAD_FULL if self._unsure(obs) and obs.camera_on else LOOK
        if watching:
            if obs.camera_on and self._unsure(obs) and obs.since_offload_s >= self.hold_s:
                return OFFLOAD_FULL
            return LOOK
        return OFF


@dataclass
class ContextAware(ConfidenceThreshold):
    """Adapts modality trust, offload size and thresholds to the context.

    - Noisy audio (``snr_db < noisy_snr_db``): the trigger is unreliable, so the
      camera also probes every ``probe_period_s`` seconds and offloads carry
      frames (``full``).
    - Quiet audio: trigger-driven as ``confidence_threshold``; an audio-only
      label firing while the camera is off is offloaded as ``audio`` (no camera).
    - Battery below ``low_battery``: the confidence threshold is scaled down by
      the battery share left (fewer offloads).
    - Link down, ``pending >= max_pending``, or a round trip over
      ``max_rtt_ms``: never offload (answer locally). A slow uplink
      (``link_mbps < slow_mbps``) sends ``light`` instead of ``full``.
    """

    name = "context_aware"
    noisy_snr_db: float = 5.0
    probe_period_s: float = 4.0
    low_battery: float = 0.2
    max_pending: int = 2
    max_rtt_ms: float = 500.0
    slow_mbps: float = 5.0

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self._next_probe_s = 0.0

    def _threshold(self, obs: Observation) -> float:
        if obs.battery_frac < self.low_battery:
            return self.threshold * obs.battery_frac / self.low_battery
        return self.threshold

    def _unsure(self, obs: Observation) -> bool:
        conf = obs.student_confidence
        return conf is None or obs.student_age_s > self.max_age_s or conf < self._threshold(obs)

    def _send(self, obs: Observation, camera: bool) -> Action:
        if not obs.link_up or obs.pending >= self.max_pending or obs.link_rtt_ms > self.max_rtt_ms:
            return LOOK if camera else OFF
        if not camera:
            return OFFLOAD_AUDIO
        return OFFLOAD_LIGHT if obs.link_mbps < self.slow_mbps else OFFLOAD_FULL

    def act(self, obs: Observation) -> Action:
        rising = self._rising(obs)
        watching = self._watching(obs.t_s)
        noisy = obs.snr_db < self.noisy_snr_db
        probe = False
        if noisy and obs.t_s + 1e-9 >= self._next_probe_s:
            self._next_probe_s = obs.t_s + self.probe_period_s
            probe = True
        if obs.query is not None:
            if not self._unsure(obs):
                return LOOK
            return self._send(obs, camera=obs.camera_on or watching or noisy)
        if rising:
            if not obs.camera_on and not noisy:
                # Quiet context: trust the ear; look, and let the student decide on the next step.
                return LOOK
            return self._send(obs, camera=True) if self._unsure(obs) else LOOK
        if watching or probe:
            if obs.camera_on and self._unsure(obs) and obs.since_offload_s >= self.hold_s:
                return self._send(obs, camera=True)
            return LOOK
        return OFF


POLICIES: dict[str, type] = {
    cls.name: cls for cls in (NeverOn, QueryOnly, AlwaysLocal, AlwaysCloud, Periodic, AudioTrigger,
                              ConfidenceThreshold, ContextAware)
}


def make_policy(name: str, **params: Any) -> Policy:
    """Build a registered policy; unknown names or parameters raise ValueError naming them."""
    if name not in POLICIES:
        raise ValueError(f"policy: unknown {name!r}; expected one of {sorted(POLICIES)}")
    cls = POLICIES[name]
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"policy {name}: unknown parameters {unknown}; it takes {sorted(known)}")
    return cls(**params)


#: The kinds a question's wording tells apart on the device (the wearer-query contract,
#: ``shared/queries.py``): which one is asked decides whether the device can answer it (a sound it
#: heard) or only the cloud can.
QUERY_KINDS: tuple[str, ...] = tuple(_QUERY_CONTRACT_KINDS)
_EXTRA_FEATURES = ("has_student", "student_confidence", "student_fresh", "snr", "battery", "link_up",
                   "rtt", "mbps", "since_offload", "pending", "has_query", "camera_on", "fired", "day_left",
                   "uplink_tokens", "since_trigger", *(f"query_{k}" for k in QUERY_KINDS))


def observation_size(trigger_labels: Sequence[str], student_labels: Sequence[str]) -> int:
    """Length of :func:`observation_vector` for these label lists."""
    return len(trigger_labels) + len(student_labels) + len(_EXTRA_FEATURES)


def observation_vector(obs: Observation, trigger_labels: Sequence[str], student_labels: Sequence[str],
                       out: np.ndarray | None = None) -> np.ndarray:
    """The learned policy's input: a float32 vector, every entry in [-1, 1] or [0, 1].

    Layout: trigger scores (label order), student scores (zeros when none), then
    has_student, student_confidence, student_fresh (age <= 1 s), snr_db / 40
    (clipped to [-1, 1]), battery_frac, link_up, rtt (ms / 1000, clipped to 1),
    mbps (log10(1 + mbps) / 3, clipped), since_offload (s / 10, clipped to 1),
    pending (/ 4, clipped), has_query, camera_on, any trigger label fired,
    day_left_frac, uplink_tokens_frac, since_trigger (s / 10, clipped to 1), then a one-hot of the query's kind
    (:data:`QUERY_KINDS`, all zero without a query).
    """
    n_t, n_s = len(trigger_labels), len(student_labels)
    v = np.zeros(n_t + n_s + len(_EXTRA_FEATURES), np.float32) if out is None else out
    v[:] = 0.0
    for i, lab in enumerate(trigger_labels):
        v[i] = obs.trigger_scores.get(lab, 0.0)
    if obs.student_scores is not None:
        for i, lab in enumerate(student_labels):
            v[n_t + i] = obs.student_scores.get(lab, 0.0)
    k = n_t + n_s
    conf = obs.student_confidence
    v[k:] = (
        float(obs.student_scores is not None),
        0.0 if conf is None else conf,
        float(obs.student_age_s <= 1.0),
        min(1.0, max(-1.0, obs.snr_db / 40.0)),
        obs.battery_frac,
        float(obs.link_up),
        min(1.0, obs.link_rtt_ms / 1000.0),
        min(1.0, math.log10(1.0 + max(0.0, obs.link_mbps)) / 3.0),
        min(1.0, obs.since_offload_s / 10.0),
        min(1.0, obs.pending / 4.0),
        float(obs.query is not None),
        float(obs.camera_on),
        float(bool(obs.trigger_fired)),
        min(1.0, max(0.0, obs.day_left_frac)),
        min(1.0, max(0.0, obs.uplink_tokens_frac)),
        min(1.0, obs.since_trigger_s / 10.0),
        *(0.0 for _ in QUERY_KINDS),
    )
    if obs.query is not None:
        v[k + query_kind_index(obs.query)] = 1.0
    return v


def query_kind_index(text: str) -> int:
    """Position of the question's kind feature after the student block (see :func:`observation_vector`)."""
    return len(_EXTRA_FEATURES) - len(QUERY_KINDS) + QUERY_KINDS.index(query_kind(text))
