"""One synthetic recording, end to end: script -> sounds -> video -> mix -> annotations.

:func:`generate_recording` is a pure function of ``(config, seed, index)``:
every random draw comes from generators spawned from
``SeedSequence([seed, index])``, one per stage, so a recording never depends
on which other recordings were generated, in which order, or by how many
workers. Same inputs on the same machine (same real sound files and
espeak-ng) give byte-identical recordings.

Stages, in the order they need each other:

1. plan (timeline.py): events, gaze, walks, hands, looks;
2. sounds (sounds.py): each source rendered dry; its ``active`` spans fix the
   event's onset and offset to the sample, the footsteps fix the walking bob,
   the chopping transients pace the knife;
3. head trajectory (motion.py) and video (video.py); the object mask gives
   ``source_visible`` for every event;
4. mix (acoustics.py): distance attenuation (and a wall for sources in another
   room), room reverberation per source, environment noise at an SNR drawn
   from the scenario's range, one gain to int16;
5. queries (queries.py) and annotations.

``background_only`` (the trigger's false-alarm hours): the same recording is
planned, rendered and mixed, and then only its environment noise is written,
at exactly the level it has under the scripted sounds; the audio events (and
the queries, which ask about them) leave the annotations, the video and its
visual actions stay. So a scene's background at its noise level, with no
target sound in it.
"""
from __future__ import annotations

import dataclasses
import functools
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np

from shared.annotations import Annotations, Event, FrameInfo
from shared.recording import Recording
from sim.world import acoustics, sounds
from sim.world.motion import cadence_steps
from sim.world.queries import make_queries
from sim.world.timeline import OWN_SOURCE, Plan, head_trajectory, plan_recording
from sim.world.video import VideoResult, render_video
from sim.world.world_config import WorldConfig

__all__ = ["GENERATOR_NAME", "GENERATOR_VERSION", "Details", "generate_recording", "plan_for", "recording_id_for"]

GENERATOR_NAME = "earshot.sim.world"
GENERATOR_VERSION = "1.0.0"  # bump when the same (config, seed) would give different recordings
_FADE_S = 0.01  # fade where a sound is cut short (no click)
_STAGES = ("plan", "sound", "mix", "snr", "texture", "queries")


@dataclass
class Details:
    """What tests and tools need beyond the Recording.

    Attributes:
        plan: the script (timeline.Plan), with the final trajectory.
        video: frames' ground truth (object masks, blur, occlusion).
        foreground, noise: float32 (n,) at int16 scale (x 32767 after the
            int16 gain): ``audio ~= round(foreground + noise)``.
        target_snr_db: the SNR drawn for this recording.
        sounds: final event id -> (placed start_s, float32 dry signal, SoundInfo).
        (``plan.events`` keep the planning ids; the recording's are renumbered by onset.)
        texture_seed: seeds the panorama texture (to re-render variants).
    """

    plan: Plan
    video: VideoResult
    foreground: np.ndarray
    noise: np.ndarray
    target_snr_db: float
    sounds: dict[str, tuple[float, np.ndarray, sounds.SoundInfo]]
    texture_seed: int
    render_args: dict

    def render(self, **overrides) -> VideoResult:
        """Render the video again, e.g. ``hide=("door",)``, ``force_looks={"oven": "default"}``,
        ``hands=False``; with no overrides it reproduces the recording's frames exactly."""
        return render_video(self.plan, self.plan.trajectory, **{**self.render_args, **overrides})


class _Clock:
    """Adds the seconds since the last call to ``timings[stage]`` (no-op without a dict)."""

    def __init__(self, timings: dict[str, float] | None):
        self.timings, self.t = timings, time.perf_counter()

    def __call__(self, stage: str) -> None:
        if self.timings is not None:
            now = time.perf_counter()
            self.timings[stage] = self.timings.get(stage, 0.0) + now - self.t
            self.t = now


def _stage_rngs(seed: int, index: int) -> dict[str, np.random.Generator]:
    """One independent generator per stage, from (seed, index) only."""
    children = np.random.SeedSequence([seed, index]).spawn(len(_STAGES))
    return dict(zip(_STAGES, (np.random.default_rng(c) for c in children)))


def plan_for(cfg: WorldConfig, seed: int, index: int = 0, *, scenario: str | None = None) -> Plan:
    """The script of recording ``index`` without rendering anything (milliseconds).

    Same events (labels, sources, planned times) as :func:`generate_recording`
    starts from, before sounds pin onsets and the video decides visibility:
    use it to search a seed range for situations cheaply.
    """
    scenario = scenario or cfg.scenarios[index % len(cfg.scenarios)]
    return plan_recording(scenario, cfg, _stage_rngs(seed, index)["plan"])


def recording_id_for(scenario: str, seed: int, index: int) -> str:
    return f"{scenario}_s{seed}_{index:05d}"


@functools.lru_cache(maxsize=1)
def _real_status() -> dict:
    return sounds.real_sound_status()  # runs espeak-ng --version: once per process


def _jsonable(x):
    """Plain JSON types (numpy scalars and tuples converted, floats rounded)."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return round(float(x), 4)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


# --- stage 2: sounds --------------------------------------------------------------------


def _render_sounds(plan: Plan, cfg: WorldConfig, rng: np.random.Generator):
    """Synthesise every planned sound and pin its event to the audible part.

    Returns event id -> (start_s, signal, info); events are updated in place.
    """
    sr, T = cfg.sample_rate_hz, plan.duration_s
    out = {}
    for eid, spec in plan.sounds.items():  # dict order = creation order: deterministic
        e = plan.event(eid)
        if spec.text is not None:
            x, info = sounds.speak(spec.text, rng, sample_rate_hz=sr, allow_real=cfg.allow_real_sounds)
        else:
            x, info = sounds.synth_sound(spec.label, max(spec.duration_s, 0.05), rng, sample_rate_hz=sr,
                                         allow_real=cfg.allow_real_sounds)
        spans = [s for s in info.active if s[1] > s[0]] or [(0.0, len(x) / sr)]
        start = max(0.0, e.onset_s - spans[0][0])  # audible onset lands on the planned onset
        cut = min(T, spec.end_max_s if spec.end_max_s is not None else np.inf) - start
        n_keep = int(np.clip(round(cut * sr), 1, len(x)))
        if n_keep < len(x):
            x = x[:n_keep].copy()
            fade = min(n_keep, int(_FADE_S * sr))
            x[n_keep - fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
            spans = [(a, min(b, n_keep / sr)) for a, b in spans if a < n_keep / sr] or [spans[0]]
        e.onset_s = round(start + spans[0][0], 4)
        e.offset_s = round(min(T, start + spans[-1][1]), 4)
        e.attrs.update(origin=info.origin, band_hz=list(info.band_hz), distance_m=spec.distance_m,
                       n_bursts=len(spans), sound=info.params)
        if spec.occluded:
            e.attrs["through_wall"] = True
        out[eid] = (start, x, info, [(start + a, start + b) for a, b in spans])
    return out


def _steps_and_strokes(plan: Plan, rendered, rng: np.random.Generator):
    """Foot strikes per walk (from its footsteps, else a cadence) and knife strokes per chopping sound."""
    steps = {}
    for i, w in enumerate(plan.walks):
        sid = plan.walk_sounds.get(i)
        if sid is not None and sid in rendered:
            steps[i] = [a for a, _ in rendered[sid][3]]
        else:
            steps[i] = cadence_steps(w.t0_s, w.t1_s, rng)
    strokes = {sid: [a for a, _ in r[3]] for sid, r in rendered.items() if plan.sounds[sid].label == "chopping"}
    return steps, strokes


# --- stage 3b: visibility from the mask ------------------------------------------------


def _set_visibility(plan: Plan, video: VideoResult, fps: float) -> None:
    n = len(video.frames)
    for e in plan.events:
        if e.source is None:
            continue
        k0 = int(np.ceil(e.onset_s * fps - 1e-9))
        k1 = int(np.floor(e.offset_s * fps + 1e-9))
        if k1 < k0:  # shorter than a frame period: the frame nearest its onset
            k0 = k1 = int(round(e.onset_s * fps))
        k0, k1 = max(0, min(k0, n - 1)), max(0, min(k1, n - 1))
        seen = video.in_frame(e.source)[k0:k1 + 1]
        e.source_visible = bool(seen.any())
        e.attrs["visible_fraction"] = round(float(seen.mean()), 3)
        if e.modality != "visual":
            e.modality = "audiovisual" if e.source_visible else "audio"


# --- stage 4: mix ------------------------------------------------------------------------


def _mix(plan: Plan, cfg: WorldConfig, rendered, env: str, rng_mix, snr_db: float):
    sr = cfg.sample_rate_hz
    n = int(round(plan.duration_s * sr))
    rt60 = acoustics.ROOM_RT60_S[env]
    base_drr = acoustics.ROOM_DIRECT_TO_REVERB_DB[env]
    fg = np.zeros(n, np.float64)
    parts = {}
    for eid, (start, x, _info, _spans) in rendered.items():
        spec = plan.sounds[eid]
        y = acoustics.attenuate(x, spec.distance_m, sample_rate_hz=sr, occluded=spec.occluded)
        if cfg.reverb:
            # farther sources are more reverberant: the direct path falls as 1/r, the field does not
            drr = base_drr - 20 * np.log10(max(spec.distance_m, 1.0)) - (6.0 if spec.occluded else 0.0)
            y = np.concatenate([y, np.zeros(int(rt60 * sr), np.float32)])
            y = acoustics.reverberate(y, rng_mix, rt60_s=rt60, sample_rate_hz=sr, direct_to_reverb_db=drr)
        i0 = int(round(start * sr))
        m = min(len(y), n - i0)
        if m <= 0:
            continue
        fg[i0:i0 + m] += y[:m]
        parts[eid] = (i0, y[:m])
    noise = acoustics.background_noise(env, plan.duration_s, rng_mix, sample_rate_hz=sr)[:n]
    if not np.any(fg):  # nothing sounds (a very short recording): noise alone, SNR undefined
        pcm, gain = acoustics.to_int16(noise * 0.05)
        return pcm, np.zeros(n, np.float32), noise * 0.05 * gain * 32767, None, {}
    mixture, achieved = acoustics.mix_at_snr(fg, noise, snr_db)
    fg32 = fg.astype(np.float32)
    noise_scaled = mixture - fg32
    pcm, gain = acoustics.to_int16(mixture)
    p_noise = float(np.mean(noise_scaled.astype(np.float64) ** 2))
    event_snr = {}
    for eid, (i0, y) in parts.items():
        spans = rendered[eid][3]
        mask = np.zeros(len(y), bool)
        for a, b in spans:
            mask[max(0, int(a * sr) - i0):max(0, int(b * sr) - i0)] = True
        if mask.any() and p_noise > 0:
            p = float(np.mean(y[mask].astype(np.float64) ** 2))
            event_snr[eid] = round(10 * np.log10(max(p, 1e-20) / p_noise), 2)
    scale = np.float32(gain * 32767)
    return pcm, fg32 * scale, noise_scaled * scale, achieved, event_snr


# --- annotations ---------------------------------------------------------------------------


def _final_events(plan: Plan) -> tuple[list[Event], dict[str, str]]:
    """Events sorted by onset with ids e000.. in that order; returns them and old -> new ids."""
    order = sorted(plan.events, key=lambda e: (e.onset_s, e.offset_s, e.id))
    new = {e.id: f"e{i:03d}" for i, e in enumerate(order)}
    out = []
    for e in order:
        attrs = dict(e.attrs)
        if "action_id" in attrs:
            attrs["action_id"] = new[attrs["action_id"]]
        out.append(dataclasses.replace(e, id=new[e.id], cause=new.get(e.cause) if e.cause else None,
                                       attrs=_jsonable(attrs)))
    return out, new


def _fallbacks(cfg: WorldConfig, status: dict) -> list[str]:
    """Labels that would use a real recording (or espeak-ng) but could not on this machine."""
    if not cfg.allow_real_sounds:
        return sorted(set(sounds.REAL_SOURCES) | {"speech"})
    have = status["freedesktop"]["labels"]
    out = [lab for lab in sounds.REAL_SOURCES if not have.get(lab)]
    if status["espeak_ng"]["path"] is None:
        out.append("speech")
    return sorted(out)


def generate_recording(cfg: WorldConfig, seed: int, index: int = 0, *, scenario: str | None = None,
                       recording_id: str | None = None, details: bool = False,
                       timings: dict[str, float] | None = None):
    """Generate recording ``index`` of the dataset seeded by ``seed``.

    Args:
        cfg: the world config (validated).
        seed, index: together they seed every draw.
        scenario: default ``cfg.scenarios[index % len(cfg.scenarios)]`` (balanced datasets).
        recording_id: default ``<scenario>_s<seed>_<index>``.
        details: also return :class:`Details` (signals before mixing, masks).
        timings: if given, filled with seconds spent per stage (for benchmarks).

    Returns:
        ``shared.recording.Recording`` (int16 16 kHz audio, uint8 (n, S, S, 3)
        frames at 10 fps), or ``(recording, details)``.
    """
    clock = _Clock(timings)
    scenario = scenario or cfg.scenarios[index % len(cfg.scenarios)]
    rec_id = recording_id or recording_id_for(scenario, seed, index)
    rngs = _stage_rngs(seed, index)
    plan = plan_recording(scenario, cfg, rngs["plan"])
    clock("plan")
    rendered = _render_sounds(plan, cfg, rngs["sound"])
    clock("sounds")
    steps, strokes = _steps_and_strokes(plan, rendered, rngs["plan"])
    traj = head_trajectory(plan, cfg, steps)
    plan.trajectory = traj
    texture_seed = int(rngs["texture"].integers(2**31))
    render_args = dict(size=cfg.frame_size_px, fps=cfg.fps, exposure_s=cfg.exposure_s, texture_seed=texture_seed,
                       hands=cfg.hands, strokes=strokes)
    video = render_video(plan, traj, **render_args)
    _set_visibility(plan, video, cfg.fps)
    clock("video")
    snr_target = float(rngs["snr"].uniform(*cfg.snr_db.range_for(scenario)))
    pcm, fg, noise, achieved, event_snr = _mix(plan, cfg, rendered, scenario, rngs["mix"], snr_target)
    for eid, v in event_snr.items():
        plan.event(eid).snr_db = v
    clock("mix")
    events, new_ids = _final_events(plan)
    interrupted = {new_ids[k]: new_ids[v] for k, v in plan.interrupted.items()}
    if cfg.background_only:
        pcm = np.clip(np.round(noise), -32768, 32767).astype(np.int16)
        kept = {e.id for e in events if e.modality == "visual"}
        events = [dataclasses.replace(e, cause=e.cause if e.cause in kept else None) for e in events if e.id in kept]
    queries = [] if cfg.background_only else make_queries(
        events, interrupted, plan.duration_s, cfg.queries_per_recording, rngs["queries"],
        plausible=plan.scn.plausible_sounds())
    status = _real_status()
    origins = Counter(e.attrs["origin"] for e in events if "origin" in e.attrs)
    ann = Annotations(
        recording_id=rec_id,
        duration_s=plan.duration_s,
        environment=scenario,
        snr_db=None if achieved is None else round(float(achieved), 3),
        events=events,
        queries=queries,
        frames=FrameInfo(
            camera_motion_deg_s=[round(float(v), 3) for v in video.camera_motion_deg_s],
            hand_occlusion=[round(float(v), 4) for v in video.hand_occlusion],
            blur_px=[round(float(v), 3) for v in video.blur_px],
        ),
        objects=[o.name for o in plan.scn.objects],
        provenance=_jsonable({
            "kind": "synthetic",
            "generator": GENERATOR_NAME,
            "version": GENERATOR_VERSION,
            "seed": seed,
            "index": index,
            "scenario": scenario,
            "config": dataclasses.asdict(cfg),
            "target_snr_db": snr_target,
            "rt60_s": acoustics.ROOM_RT60_S[scenario] if cfg.reverb else 0.0,
            "real_sounds": status,
            "sound_origins": dict(sorted(origins.items())),
            "fallbacks": _fallbacks(cfg, status),
            "own_source": OWN_SOURCE,
        }),
    )
    rec = Recording(pcm, cfg.sample_rate_hz, video.frames, video.times_s, ann)
    clock("annotate")
    if not details:
        return rec
    dry = {new_ids[eid]: (r[0], r[1], r[2]) for eid, r in rendered.items()}
    return rec, Details(plan, video, fg, noise, snr_target, dry, texture_seed, render_args)
