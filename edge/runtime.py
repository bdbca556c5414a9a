"""The edge runtime's streaming loop (``earshot edge``), ARCHITECTURE.md section 7.

One step per hop (default 250 ms) of the recording clock; step ``i`` ends at
``t = (i + 1) * hop_s`` and does, in this order:

1. take the hop's audio from the source into the ring buffer;
2. run the trigger on the last second (every step: it is the always-on part);
   the card's thresholds and refractory hold (``shared/trigger.py``) decide
   which labels are held on; a label newly held is a ``trigger`` event;
3. merge the cloud results (and failures) that have arrived by ``t``;
4. build the `Observation` (trigger scores, the student's latest output, SNR
   estimate, battery, link, the user query that falls in this step) and ask
   the policy for an `Action`;
5. switch the camera, run the AV student on this step's frame if asked,
   offload if asked (frames as JPEG + audio history + the query, with a
   deadline), or answer the query on the device;
6. charge the step's energy (``shared.profiles.EnergyMeter``) and write the
   step's events, each carrying the cumulative energy at the end of the step.

Cloud results on two clocks. In a real-time replay (``realtime=True``) a
result merges at the first step after it arrived. In an as-fast-as-possible
replay the loop runs ahead of the wall clock, so each request keeps a virtual
arrival time, its send step's ``t`` plus its measured wall latency, and merges
at the first step at or after that time: the loop waits (at most the
request's deadline) when it is about to pass a request that has not
resolved yet. Either way the log shows true latencies, and the policy's
trigger- and student-driven inputs depend only on the recording and the
programs, never on wall time; only ``pending`` and ``link_up`` (used by
``context_aware``) can differ between runs.

Answers are shown when they arrive, not at the next step: the client's
callback hands each cloud result to ``display`` at once (a hop is 250 ms; a
merge-time display made the wearer wait half a hop on average). Every
``result`` event carries ``stages_ms``: where the time went from the sending
step's audio in hand to the answer shown (docs/edge.md).

Failures never stop the loop: a request that fails (deadline, server down,
busy, too many in flight, no endpoint) is logged as ``fallback`` and its
query, if any, is answered on the device (edge/local_answer.py). So is a
question the cloud answers ``unknown`` (reason ``cloud_unknown``): the wearer
sees the device's answer from what it knew when it asked, not "unknown" (an
offload carries 5 s; the device remembers the whole recording).
"""
from __future__ import annotations

import concurrent.futures
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from edge.eventlog import EventLog
from edge.jpeg import encode_jpeg
from edge.local_answer import LocalMemory, answer_locally
from shared.answering import is_unknown
from edge.policy import OFFLOAD_SPECS, Observation
from edge.snr import estimate_snr_db
from edge.source import AudioRing, RecordingSource
from shared.profiles import EnergyMeter, inference_mj
from shared.protocol import AudioWindow, Frame, InferRequest, Result, encode
from shared.queries import answer_matches  # re-exported: edge.trace scores with it too

__all__ = ["NO_ENDPOINT", "CLOUD_UNKNOWN", "RING_S", "Summary", "EdgeRuntime", "answer_matches", "build_request", "step_times"]

#: Fallback reason when there is no connection to the cloud at the moment of an offload (no
#: endpoint configured, or the client is reconnecting): nothing is sent.
NO_ENDPOINT = "link_down"
#: The fallback reason when the cloud answered a question with ``unknown``: the device's answer is shown.
CLOUD_UNKNOWN = "cloud_unknown"
#: Seconds of audio the ring keeps: the longest offload history (5 s) plus slack.
RING_S = 8.0
#: Labels listed in ``top`` of local_inference and result events.
TOP_K = 3
#: Student labels remembered for local answers: over their threshold in this many steps in a row
#: would be stricter; one step is what the trigger uses too.
_TIE_EPS = 1e-9


def step_times(duration_s: float, hop_s: float) -> list[float]:
    """End times of the steps of a recording: ``(i + 1) * hop_s`` for i < floor(duration / hop)."""
    n = int(math.floor(duration_s / hop_s + 1e-9))
    return [round((i + 1) * hop_s, 9) for i in range(n)]


def _top(scores: dict[str, float], k: int = TOP_K) -> list[list]:
    return [[lab, float(p)] for lab, p in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]


@dataclass(eq=False)
class _InFlight:
    request_id: int
    t_sent_s: float            # recording clock of the sending step
    wall_sent: float           # time.monotonic() at submit
    future: concurrent.futures.Future
    query: Any | None          # shared.annotations.Query
    wall_done: float | None = None
    wall_step: float = 0.0     # time.monotonic() when the sending step's audio was in hand
    wall_trigger: float = 0.0  # ... and when that step's trigger had answered
    wall_shown: float | None = None  # ... and when its answer was shown (on arrival, see EdgeRuntime)


@dataclass
class Summary:
    """Totals of a run (the ``end`` event plus what the summary table shows)."""

    recording_id: str
    policy: str
    steps: int = 0
    camera_steps: int = 0
    frames_captured: int = 0
    student_runs: int = 0
    offloads: int = 0
    results: int = 0
    fallbacks: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    queries: int = 0
    answers_local: int = 0
    answers_cloud: int = 0
    answers_correct: int = 0
    energy_mj: float = 0.0
    duration_s: float = 0.0
    mean_power_mw: float = 0.0
    battery_life_h: float = math.inf
    timings_ms: dict[str, list[float]] = field(default_factory=lambda: {"step": [], "trigger": [], "student": []})

    @property
    def camera_share(self) -> float:
        return self.camera_steps / self.steps if self.steps else 0.0


class EdgeRuntime:
    """The loop over one recording (see the module docstring).

    Args:
        source: a `RecordingSource` (its ``recording.annotations`` give queries and gold answers).
        trigger: the trigger `edge.programs.Program` (card ``name`` "trigger").
        student: the AV student program, or None (the student then never runs).
        policy: an ``edge.policy`` policy.
        meter: the energy meter (device + network profiles).
        log: where events go.
        client: an ``edge.client.Client``, or None for no cloud at all.
        hop_s: step length (s).
        deadline_ms: budget of each offload.
        link_rtt_ms, link_mbps: the link estimate the policy sees (from the network profile).
        run_info: extra fields of the ``start`` event (device, network, endpoint, program paths).
        display: called with each cloud `Result` (and its offload's ``request_id``) the moment it
            arrives, on the client's I/O thread (keep it short): the wearer sees an answer when it
            comes, not at the next hop. The step loop still merges it at the next step for the
            policy, the energy account and the log (``stages_ms.shown_ms`` is the display time).
    """

    def __init__(self, source: RecordingSource, trigger, student, policy, meter: EnergyMeter, log: EventLog, *,
                 client=None, hop_s: float = 0.25, deadline_ms: int = 800, link_rtt_ms: float = 40.0,
                 link_mbps: float = 80.0, run_info: dict[str, Any] | None = None,
                 display: Callable[[int, Result], None] | None = None) -> None:
        self.source, self.trigger, self.student, self.policy = source, trigger, student, policy
        self.meter, self.log, self.client = meter, log, client
        self.hop_s, self.deadline_ms = float(hop_s), int(deadline_ms)
        self.link_rtt_ms, self.link_mbps = float(link_rtt_ms), float(link_mbps)
        self.run_info = dict(run_info or {})
        self.display = display
        rate = source.sample_rate_hz
        self.rate = rate
        self.ring = AudioRing(int(RING_S * rate))
        self._trigger_n = trigger.card.inputs[0].shape[-1]
        self._trigger_mj = inference_mj(meter.device, trigger.card.macs, trigger.card.precision,
                                        trigger.card.size_bytes)
        if student is not None:
            self._student_n = next(s.shape[-1] for s in student.card.inputs if s.dtype == "int16")
            self._student_mj = inference_mj(meter.device, student.card.macs, student.card.precision,
                                            student.card.size_bytes)
        ann = source.recording.annotations
        self.summary = Summary(recording_id=ann.recording_id, policy=policy.name, duration_s=source.duration_s)
        self._queries = sorted(ann.queries, key=lambda q: q.t_s)
        self.memory = LocalMemory()
        self._events: list[tuple[str, float, dict[str, Any]]] = []  # this step's, written after charging
        self._in_flight: list[_InFlight] = []
        self._next_request_id = 1
        self._hold = trigger.card.trigger_hold()
        self._early_hold = trigger.card.early_hold()  # None: the card has no early stage
        self._early: list[str] = []  # this step's early rising edges (labels not held by the trigger itself)
        self._camera_on = False
        self._captured: list[int] = []          # indices of frames the camera captured, in time order
        self._student_scores: dict[str, float] | None = None
        self._student_conf: float | None = None
        self._student_t = -math.inf
        self._last_offload_t = -math.inf
        self._last_trigger_t = -math.inf  # the trigger's last rising edge (Observation.since_trigger_s)
        self._t = 0.0
        self._wall_step = self._wall_trigger = 0.0  # this step's audio in hand / trigger answered (monotonic)
        # per-step accumulators
        self._tx = self._rx = self._jpeg_frames = 0
        self._compute_mj = 0.0

    # --- the run ------------------------------------------------------------------------------

    def run(self) -> Summary:
        """Replay the whole recording; returns the totals (the log has the details)."""
        self.begin()
        for t in self.step_times():
            t0 = time.perf_counter()
            self.step(t)
            self.summary.timings_ms["step"].append(1000 * (time.perf_counter() - t0))
        return self.finish()

    def step_times(self) -> list[float]:
        return step_times(self.source.duration_s, self.hop_s)

    def begin(self) -> None:
        """Reset the policy, settle the link, write the ``start`` event, start the source's clock."""
        self.policy.reset(seed=0)
        if self.client is not None:
            self._connect()
        self._emit("start", 0.0, recording_id=self.summary.recording_id, policy=self.policy.name,
                   policy_params=self.policy.params(), hop_s=self.hop_s, **self.run_info)
        self._flush(0.0)
        self.source.start()

    def finish(self) -> Summary:
        """Wait for what is in flight, answer leftover queries locally, write the ``end`` event."""
        self._drain()
        return self._finish()

    def _connect(self) -> None:
        """Wait (up to the deadline) for the first round trip, so step 1 sees a settled link."""
        from edge.client import ClientError

        try:
            self.client.ping(timeout_ms=max(self.deadline_ms, 1000))
        except ClientError:
            pass  # no server: every offload will fall back, and the log will say so

    def step(self, t: float) -> None:
        """One step ending at recording time ``t`` (see the module docstring)."""
        self._t = t
        self.ring.push(self.source.read_until(t))
        self._wall_step = time.monotonic()
        scores, fired = self._run_trigger(t)
        self._wall_trigger = time.monotonic()
        self._merge(t)
        query = self._query_for(t)
        obs = Observation(
            t_s=t, trigger_scores=scores, trigger_fired=tuple(fired),
            student_scores=self._student_scores, student_confidence=self._student_conf,
            student_age_s=t - self._student_t, snr_db=estimate_snr_db(self.ring.last(self._trigger_n), self.rate),
            battery_frac=self.meter.battery_frac, link_up=self._link_up(), link_rtt_ms=self.link_rtt_ms,
            link_mbps=self.link_mbps, since_offload_s=t - self._last_offload_t, pending=len(self._in_flight),
            query=query.text if query else None, query_id=query.id if query else None, camera_on=self._camera_on,
            since_trigger_s=t - self._last_trigger_t, trigger_early=tuple(self._early))
        action = self.policy.act(obs)
        if action.camera != self._camera_on:
            self._emit("camera", t, on=action.camera)
        self._camera_on = action.camera
        if action.camera:
            self._capture(t)
        if action.student and self.student is not None:
            self._run_student(t)
        if action.offload != "none":
            self._offload(t, action.offload, scores, fired, query)
        elif query is not None:
            self._answer_locally(t, query, t)
        self._charge(action.camera)

    # --- parts of a step ------------------------------------------------------------------------

    def _run_trigger(self, t: float) -> tuple[dict[str, float], list[str]]:
        pcm = self.ring.last(self._trigger_n)[None]
        probs = self.trigger(pcm)[0].reshape(-1)
        self.summary.timings_ms["trigger"].append(self.trigger.last_ms)
        self._compute_mj += self._trigger_mj
        card = self.trigger.card
        scores = {lab: float(p) for lab, p in zip(card.labels, probs)}
        fired, new = self._hold.step(t, probs)
        if new:
            self._last_trigger_t = t
        for lab in new:
            self._emit("trigger", t, label=lab, score=scores[lab])
            self.memory.add(t, lab, scores[lab], "trigger")
        self._early = []
        if self._early_hold is not None:
            _, early_new = self._early_hold.step(t, probs)
            self._early = [lab for lab in early_new if lab not in fired]  # the trigger's own edge says it already
            for lab in self._early:
                self._emit("early", t, label=lab, score=scores[lab])
        return scores, fired

    def _query_for(self, t: float):
        """The next unasked query whose time is <= t (one per step; the rest wait a step)."""
        if self._queries and self._queries[0].t_s <= t + _TIE_EPS:
            self.summary.queries += 1
            return self._queries.pop(0)
        return None

    def _link_up(self) -> bool:
        return self.client is not None and bool(self.client.connected)

    def _capture(self, t: float) -> None:
        """Frames of (t - hop, t] exist only while the camera is on."""
        times = self.source.recording.frame_times_s
        lo = int(np.searchsorted(times, t - self.hop_s + _TIE_EPS, side="left"))
        hi = int(np.searchsorted(times, t + _TIE_EPS, side="right"))
        new = [i for i in range(lo, hi) if not self._captured or i > self._captured[-1]]
        self._captured.extend(new)
        self.summary.frames_captured += len(new)
        self.summary.camera_steps += 1

    def _run_student(self, t: float) -> None:
        if not self._captured:
            return  # nothing seen yet (the camera just turned on before the first frame)
        rec = self.source.recording
        # The camera frame as captured: the program resizes it inside its graph (shared/frames.py),
        # and its card's input shape says which size it reads (a wrong size is a ProgramError).
        frame = rec.frames[self._captured[-1]]
        pcm = self.ring.last(self._student_n)
        outs = self.student(frame[None], pcm[None])
        card = self.student.card
        probs = outs[0].reshape(-1)
        conf = float(outs[1].reshape(-1)[0]) if len(outs) > 1 else float(np.max(probs))
        scores = {lab: float(p) for lab, p in zip(card.labels, probs)}
        for lab in card.decide(probs):
            self.memory.add(t, lab, scores[lab], "student")
        self._student_scores, self._student_conf, self._student_t = scores, conf, t
        self._compute_mj += self._student_mj
        self.summary.student_runs += 1
        self.summary.timings_ms["student"].append(self.student.last_ms)
        self._emit("local_inference", t, top=_top(scores), confidence=conf, latency_ms=self.student.last_ms)

    def _request(self, t: float, kind: str, scores, fired, query) -> tuple[InferRequest, int, int]:
        if fired or self._early:
            label = max(fired or self._early, key=lambda lab: scores[lab])
        else:
            label = "query" if query is not None else f"policy:{self.policy.name}"
        return build_request(self.source.recording, self.ring, t, OFFLOAD_SPECS[kind], self._captured,
                             trigger_label=label, trigger_score=scores.get(label, max(scores.values(), default=0.0)),
                             student_scores=self._student_scores, student_confidence=self._student_conf,
                             query=query, deadline_ms=self.deadline_ms)

    def _offload(self, t: float, kind: str, scores, fired, query) -> None:
        from edge.client import ClientError

        spec = OFFLOAD_SPECS[kind]
        request_id = self._next_request_id
        self._next_request_id += 1
        req, n_bytes, n_frames = self._request(t, kind, scores, fired, query)
        self._emit("offload", t, request_id=request_id, offload=kind, frames=n_frames, jpeg_quality=spec.jpeg_quality,
                   audio_s=spec.audio_s, bytes=n_bytes, query_id=query.id if query else None)
        self.summary.offloads += 1
        self._last_offload_t = t
        self._jpeg_frames += n_frames  # the frames were encoded whatever happens next
        if not self._link_up():
            # No endpoint, or the client has no connection right now (it keeps reconnecting in the
            # background): answer at once instead of holding the wearer for the whole deadline.
            self._fallback(t, request_id, NO_ENDPOINT, query)
            return
        item = _InFlight(request_id, t, time.monotonic(), None, query,  # type: ignore[arg-type]
                         wall_step=self._wall_step, wall_trigger=self._wall_trigger)
        fut = self.client.submit(req, deadline_ms=self.deadline_ms)
        item.future = fut
        fut.add_done_callback(lambda _f, it=item: self._arrived(it))
        if fut.done() and fut.exception() is not None:
            err = fut.exception()
            self._fallback(t, request_id, err.code if isinstance(err, ClientError) else "internal", query)
            return  # refused locally (too many in flight, backing off): nothing was sent
        self._tx += n_bytes
        self.summary.bytes_sent += n_bytes
        self._in_flight.append(item)

    def _arrived(self, item: _InFlight) -> None:
        """On the client's I/O thread, when an offload resolves: show a result at once."""
        item.wall_done = time.monotonic()
        fut = item.future
        if fut.exception() is None and self.display is not None:
            try:
                self.display(item.request_id, fut.result())
            except Exception:  # a display bug must not take the client thread down
                import logging

                logging.getLogger("earshot.edge").exception("display failed")
        item.wall_shown = time.monotonic()

    def _merge(self, t: float, *, final: bool = False) -> None:
        """Merge the requests that have resolved by ``t`` (all of them when ``final``), in send order."""
        realtime = self.source.realtime
        keep = []
        for item in self._in_flight:
            fut = item.future
            budget_s = t - item.t_sent_s
            if not fut.done() and (final or not realtime):
                wait_s = 1e9 if final else budget_s - (time.monotonic() - item.wall_step)
                if wait_s > 0:
                    concurrent.futures.wait([fut], timeout=min(wait_s, self.deadline_ms / 1000 + 5.0))
            if not fut.done():
                keep.append(item)
                continue
            done = item.wall_done or time.monotonic()
            # On the virtual clock the step's own compute (trigger, student, JPEG) counts too:
            # the reply arrives at t_sent + (done - the moment the sending step began).
            if not (final or realtime) and done - item.wall_step > budget_s + 1e-3:
                keep.append(item)  # resolved, but on the virtual clock it arrives after this step
                continue
            self._resolve(t, item, done - item.wall_sent)
        self._in_flight = keep

    def _resolve(self, t: float, item: _InFlight, latency_s: float) -> None:
        from edge.client import ClientError

        err = item.future.exception()
        if err is not None:
            self._fallback(t, item.request_id, err.code if isinstance(err, ClientError) else "internal", item.query,
                           t_known=item.t_sent_s)
            return
        result: Result = item.future.result()
        n = len(encode(result))
        self._rx += n
        self.summary.bytes_received += n
        self.summary.results += 1
        latency_ms = 1000 * latency_s
        self._emit("result", t, request_id=item.request_id, latency_ms=latency_ms, answer=result.answer,
                   top=_top(result.tags), model_id=result.model_id, stages_ms=self._stages_ms(t, item, result))
        if item.query is not None:
            q = item.query
            if is_unknown(result.answer):  # the cloud could not say: show what the device knew when it asked
                self._fallback(t, item.request_id, CLOUD_UNKNOWN, q, t_known=item.t_sent_s)
                return
            self._answer(t, q, result.answer, "cloud", 1000 * (item.t_sent_s - q.t_s) + latency_ms)

    def _stages_ms(self, t: float, item: _InFlight, result: Result) -> dict[str, float]:
        """Where the time of one offload went, from its step's audio in hand to the answer shown.

        Wall intervals on the device (``trigger_ms``, ``build_ms``, ``send_ms``), the round trip
        split into the server's own ``total_ms`` and the rest (``network_ms``), and ``shown_ms``:
        reply read -> answer shown, which happens on arrival (``display``, `_arrived`), not when
        the step loop merges the result. docs/edge.md lists them.
        """
        fut = item.future
        sent = getattr(fut, "sent_at", item.wall_sent)
        replied = getattr(fut, "resolved_at", item.wall_done or time.monotonic())
        server_ms = float(result.timing_ms.get("total_ms", 0.0))
        shown_ms = 1000 * ((item.wall_shown or replied) - replied)  # the same on both clocks: a wall interval
        return {
            "trigger_ms": 1000 * (item.wall_trigger - item.wall_step),
            "build_ms": 1000 * (item.wall_sent - item.wall_trigger),
            "send_ms": 1000 * (sent - item.wall_sent),
            "network_ms": max(0.0, 1000 * (replied - sent) - server_ms),
            "server_ms": server_ms,
            "server_queue_ms": float(result.timing_ms.get("queue_ms", 0.0)),
            "server_model_ms": float(result.timing_ms.get("worker_ms", result.timing_ms.get("model_ms", 0.0))),
            "shown_ms": max(0.0, shown_ms),
        }

    def _fallback(self, t: float, request_id: int | None, reason: str, query, t_known: float | None = None) -> None:
        """Log a failed offload; its query is answered from what the device knew when it was asked
        (``t_known``, the step that offloaded it), not from sounds heard while waiting."""
        self.summary.fallbacks += 1
        self._emit("fallback", t, request_id=request_id, reason=reason, query_id=query.id if query else None)
        if query is not None:
            self._answer_locally(t, query, t if t_known is None else t_known)

    def _answer_locally(self, t: float, query, t_known: float) -> None:
        t0 = time.perf_counter()
        text = answer_locally(self.memory, query.text, t_known)
        compute_ms = 1000 * (time.perf_counter() - t0)
        self._answer(t, query, text, "local", 1000 * (t - query.t_s) + compute_ms)

    def _answer(self, t: float, query, text: str, source: str, latency_ms: float) -> None:
        correct = answer_matches(text, query.answer)
        if source == "cloud":
            self.summary.answers_cloud += 1
        else:
            self.summary.answers_local += 1
        self.summary.answers_correct += bool(correct)
        self._emit("answer", t, query_id=query.id, text=query.text, answer=text, source=source,
                   latency_ms=max(0.0, latency_ms), correct=correct)

    # --- energy and events ----------------------------------------------------------------------

    def _charge(self, camera_on: bool) -> None:
        self.meter.step(self.hop_s, camera_on=camera_on, compute_mj=self._compute_mj, jpeg_frames=self._jpeg_frames,
                        tx_bytes=self._tx, rx_bytes=self._rx)
        self.summary.steps += 1
        self._tx = self._rx = self._jpeg_frames = 0
        self._compute_mj = 0.0
        self._flush(self.meter.total_mj)

    def _emit(self, kind: str, t: float, **fields: Any) -> None:
        self._events.append((kind, t, fields))

    def _flush(self, energy_mj: float) -> None:
        for kind, t, fields in self._events:
            self.log.write(kind, t, energy_mj, **fields)
        self._events.clear()

    def _drain(self) -> None:
        """After the last step: wait for what is still in flight (each resolves by its deadline)."""
        self._merge(self._t, final=True)
        while self._queries:  # queries past the last full step: answered on the device
            q = self._queries.pop(0)
            self.summary.queries += 1
            self._answer_locally(self._t, q, self._t)
        self._flush(self.meter.total_mj)

    def _finish(self) -> Summary:
        s = self.summary
        s.energy_mj = self.meter.total_mj
        s.mean_power_mw = self.meter.mean_power_mw
        s.battery_life_h = self.meter.device.battery_life_h(s.mean_power_mw)
        self.log.write("end", self._t, s.energy_mj, steps=s.steps, offloads=s.offloads,
                       frames_captured=s.frames_captured, bytes_sent=s.bytes_sent, queries=s.queries,
                       answers_correct=s.answers_correct)
        return s


def build_request(rec, ring: AudioRing, t: float, spec, captured: list[int], *, trigger_label: str,
                  trigger_score: float, student_scores: dict[str, float] | None, student_confidence: float | None,
                  query, deadline_ms: int) -> tuple[InferRequest, int, int]:
    """The offload request of step ``t``: ``(request, its encoded size in bytes, frames sent)``.

    Frames: up to ``spec.frames`` of the ``captured`` frame indices whose time
    falls in the last ``spec.audio_s`` seconds, spread evenly over them (the
    newest always included), JPEG at ``spec.jpeg_quality``. Audio: the last
    ``spec.audio_s`` seconds from the ring (less at the start of a recording).
    """
    window = [i for i in captured if t - spec.audio_s + _TIE_EPS < rec.frame_times_s[i] <= t + _TIE_EPS]
    chosen = []
    if spec.frames and window:
        picks = np.unique(np.round(np.linspace(len(window) - 1, 0, min(spec.frames, len(window)))).astype(int))
        chosen = [window[k] for k in sorted(picks)]
    frames = [Frame(t_s=float(rec.frame_times_s[i]), jpeg=encode_jpeg(rec.frames[i], spec.jpeg_quality))
              for i in chosen]
    rate = rec.sample_rate_hz
    n = min(int(round(spec.audio_s * rate)), ring.written)
    if n == 0 and not frames:
        n = min(rate, ring.capacity)  # nothing heard or seen yet (t = 0): send a second of (zero) audio
    audio = AudioWindow.from_samples(ring.last(n), start_s=max(0.0, t - n / rate), rate_hz=rate) if n else None
    req = InferRequest(id=0, deadline_ms=deadline_ms, trigger_label=trigger_label,
                       trigger_score=min(1.0, max(0.0, float(trigger_score))),
                       student_scores=student_scores or {}, student_confidence=student_confidence or 0.0,
                       query=query.text if query is not None else None,
                       query_t_s=query.t_s if query is not None else None, audio=audio, frames=frames)
    return req, len(encode(req)), len(frames)
