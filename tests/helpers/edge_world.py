"""The edge tests' world (also the simulator's and the native binary's): a small world,
programs with known behaviour, a teacher, and a way to start and kill `earshot serve`.
tests/conftest.py registers the fixtures for every test folder.

- ``edge_world``: two 6 s recordings (real folders: WAV + H.264 + annotations).
  Each holds two tones (pitch says which sound: timer_beep 2400 Hz, doorbell
  700 Hz, phone_ring 1400 Hz, knock 300 Hz) over quiet noise, a visual action
  after the first, and two queries (sound_id and order) whose gold answers a
  device that heard the tones answers right.
- ``programs``: a trigger and an AV student exported to real ``.pte`` files
  (torch.export -> XNNPACK, as `earshot export` does) with valid model cards.
  They are hand-built, not trained: each tone label's probability is a fixed
  function of the energy at that pitch over the window (a DFT projection), so
  a label fires once ~0.1 s of its tone is in the window, and the tests can
  compare trigger rising edges with annotated onsets exactly. (Training real
  students takes minutes; tests/distill covers that path.)
- ``teacher``: a tiny randomly initialised AV-LM teacher folder for the server.
- ``start_server(port)``: `earshot serve` on a fixed loopback port (so a test
  can kill it and restart it on the same endpoint), ready when this returns.
"""
from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from shared.annotations import Annotations, Event, Query
from shared.labels import names
from shared.model_card import ModelCard, TensorSpec, file_sha256, save_model_card
from shared.recording import Recording, save_recording
from tests.helpers.server_harness import EARSHOT, Proc, ping_until_ready
from tests.helpers.teacher_world import make_tiny_teacher

RATE = 16_000
FPS = 10.0
SECONDS = 6.0
FRAME_PX = 64
TONES_HZ = {"timer_beep": 2400.0, "doorbell": 700.0, "phone_ring": 1400.0, "knock": 300.0}
#: (sound, onset) pairs per recording; each tone lasts TONE_S.
SCENES = [(("timer_beep", 1.3), ("doorbell", 3.6)), (("phone_ring", 0.8), ("knock", 3.9))]
TONE_S = 1.0
ACTION_RGB = (220, 40, 40)
AUDIO_LABELS = names("audio_event")
AV_LABELS = AUDIO_LABELS + names("visual_action")
_NAMES = {"timer_beep": "the timer", "doorbell": "the doorbell", "phone_ring": "the phone ringing",
          "knock": "the knock"}


def _recording(i: int) -> Recording:
    rng = np.random.default_rng(7 + i)
    t = np.arange(int(SECONDS * RATE)) / RATE
    audio = 0.01 * rng.standard_normal(len(t))
    n = int(SECONDS * FPS)
    times = np.arange(n) / FPS
    frames = np.repeat(rng.integers(90, 130, size=(FRAME_PX, FRAME_PX, 3)).astype(np.uint8)[None], n, axis=0)
    (s1, on1), (s2, on2) = SCENES[i]
    events = []
    for k, (sound, onset) in enumerate(SCENES[i]):
        audio += np.where((t >= onset) & (t < onset + TONE_S), 0.3 * np.sin(2 * np.pi * TONES_HZ[sound] * t), 0.0)
        events.append(Event(f"e{k}", onset, onset + TONE_S, sound, "audio", source="appliance",
                            source_visible=False))
    act_on, act_off = on1 + 1.2, on1 + 2.2
    frames[(times >= act_on) & (times < act_off), 16:48, 16:48] = ACTION_RGB
    events.append(Event("e2", act_on, act_off, "open_oven", "visual", source="wearer", source_visible=True,
                        cause="e0"))
    queries = [
        Query("q000", round(on1 + TONE_S + 0.55, 3), "what was that sound?", s1, "sound_id", ["e0"]),
        Query("q001", round(on2 + TONE_S + 0.3, 3), f"which came first, {_NAMES[s2]} or {_NAMES[s1]}?", s1,
              "order", ["e0", "e1"]),
    ]
    ann = Annotations(recording_id=f"edge_{i:02d}", duration_s=SECONDS, environment="kitchen", snr_db=25.0,
                      events=events, queries=queries)
    pcm = np.clip(audio * 32767, -32768, 32767).astype(np.int16)
    return Recording(pcm, RATE, frames, times, ann)


@pytest.fixture(scope="session")
def edge_world(tmp_path_factory) -> list[Path]:
    """Folders of the two recordings."""
    root = tmp_path_factory.mktemp("edge_world") / "recordings"
    return [save_recording(_recording(i), root / f"edge_{i:02d}") for i in range(len(SCENES))]


# --- hand-built programs --------------------------------------------------------------------------


def _tone_module(n_samples: int, labels: list[str], gain: float = 2.0):
    """pcm int16 [1, n] -> per-label probability from the energy at each label's tone pitch
    (``gain`` 20: scores saturate at exactly 1.0 during a tone, as int8 programs' do)."""
    import torch

    class ToneBank(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            t = torch.arange(n_samples, dtype=torch.float64) / RATE
            freqs = torch.tensor([TONES_HZ.get(lab, 0.0) for lab in labels], dtype=torch.float64)
            arg = 2 * torch.pi * t[:, None] * freqs[None]
            scale = 2.0 / n_samples  # a full-window tone of amplitude A projects to A
            self.register_buffer("cos", (torch.cos(arg) * scale).float())
            self.register_buffer("sin", (torch.sin(arg) * scale).float())
            self.register_buffer("known", (freqs > 0).float()[None])

        def forward(self, pcm):
            x = pcm.to(torch.float32) / 32768.0
            power = (x @ self.cos) ** 2 + (x @ self.sin) ** 2  # amplitude^2 seen in the window
            # log10(power) = -3 at ~0.1 s of an amplitude-0.3 tone in a 1 s window: p = 0.5 there.
            return torch.sigmoid(gain * (torch.log10(power + 1e-12) + 3.0)) * self.known

    return ToneBank()


def _av_module():
    import torch

    audio = _tone_module(2 * RATE, AUDIO_LABELS)
    n_visual = len(AV_LABELS) - len(AUDIO_LABELS)

    class AV(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.audio = audio
            self.register_buffer("red", torch.tensor([1.0, -0.5, -0.5]))

        def forward(self, frame, pcm):
            a = self.audio(pcm)
            centre = frame[:, 16:48, 16:48, :].to(torch.float32).mean(dim=(1, 2)) / 255.0
            redness = torch.sigmoid(10.0 * ((centre * self.red).sum(dim=1, keepdim=True) - 0.3))
            # idle (index 0 of the group) unless the centre is red: open_oven (index 6).
            visual = torch.cat([1.0 - redness, torch.zeros(1, 5), redness, torch.zeros(1, n_visual - 7)], dim=1)
            probs = torch.cat([a, visual], dim=1)
            confidence = (probs.max(dim=1, keepdim=True).values - 0.5).abs() * 2.0
            return probs, confidence

    return AV()


def _card(name: str, path: Path, inputs, outputs, labels, macs: int, window_s: float, frame_px) -> ModelCard:
    return ModelCard(
        name=name, program=path.name, format="pte", backend="xnnpack", precision="fp32",
        size_bytes=path.stat().st_size, sha256=file_sha256(path),
        inputs=[TensorSpec(*x) for x in inputs], outputs=[TensorSpec(*x) for x in outputs],
        labels=list(labels), thresholds={lab: 0.5 for lab in labels},
        threshold_rule="fixed 0.5 (hand-built test program)",
        features={"sample_rate_hz": RATE, "window_ms": 25.0, "hop_ms": 10.0, "n_fft": 512, "n_mels": 32,
                  "fmin_hz": 60.0, "fmax_hz": 7600.0, "log_offset": 1e-6, "trim_bins": False},
        audio_window_s=window_s, frame_size_px=frame_px, num_parameters=1, macs=macs,
        metrics={"macro_f1": 1.0, "teacher_macro_f1": 1.0, "retention": 1.0, "agreement_f1": 1.0,
                 "n_windows": 0, "split": "none"},
        extra={"hand_built": "tests/helpers/edge_world.py"},
    )


@pytest.fixture(scope="session")
def programs(tmp_path_factory) -> dict[str, Path]:
    """{"trigger": .pte, "student": .pte}, each with its card beside it (frames of ``FRAME_PX``,
    the stored size of this module's recordings)."""
    return make_programs(tmp_path_factory.mktemp("edge_programs"), FRAME_PX)


def make_saturating_trigger(out: Path) -> Path:
    """The hand-built trigger with a steep output: its scores reach exactly 1.0 during tones."""
    import torch

    from distill.programs import lower_to_pte

    out.mkdir(parents=True, exist_ok=True)
    trig = lower_to_pte(_tone_module(RATE, AUDIO_LABELS, gain=20.0), (torch.zeros(1, RATE, dtype=torch.int16),),
                        out / "trigger_xnnpack_fp32.pte")
    save_model_card(_card("trigger", trig, [("pcm", "int16", (1, RATE))], [("event_probs", "float32", (1, 18))],
                          AUDIO_LABELS, macs=2 * RATE * 18, window_s=1.0, frame_px=None), trig.with_suffix(".json"))
    return trig


def make_programs(out: Path, frame_px: int) -> dict[str, Path]:
    """The hand-built trigger and AV student in ``out``; the student takes camera frames of
    ``frame_px`` (a world's stored size: exported students resize inside their graph)."""
    import torch

    from distill.programs import lower_to_pte

    FRAME_PX = frame_px  # noqa: N806 (the size this call builds for)
    out.mkdir(parents=True, exist_ok=True)
    trig = lower_to_pte(_tone_module(RATE, AUDIO_LABELS), (torch.zeros(1, RATE, dtype=torch.int16),),
                        out / "trigger_xnnpack_fp32.pte")
    save_model_card(_card("trigger", trig, [("pcm", "int16", (1, RATE))], [("event_probs", "float32", (1, 18))],
                          AUDIO_LABELS, macs=2 * RATE * 18, window_s=1.0, frame_px=None), trig.with_suffix(".json"))
    av = lower_to_pte(_av_module(), (torch.zeros(1, FRAME_PX, FRAME_PX, 3, dtype=torch.uint8),
                                     torch.zeros(1, 2 * RATE, dtype=torch.int16)), out / "av_xnnpack_fp32.pte")
    save_model_card(_card("av", av, [("frame", "uint8", (1, FRAME_PX, FRAME_PX, 3)), ("pcm", "int16", (1, 2 * RATE))],
                          [("tag_probs", "float32", (1, len(AV_LABELS))), ("confidence", "float32", (1, 1))],
                          AV_LABELS, macs=4 * RATE * 18 + 3 * 32 * 32, window_s=2.0, frame_px=FRAME_PX),
                    av.with_suffix(".json"))
    return {"trigger": trig, "student": av}


def with_early_stage(programs: dict[str, Path], out: Path, early: float = 0.5, sure: float = 0.9) -> dict[str, Path]:
    """``programs`` with a copy of the trigger whose card has an early stage at ``early`` for every
    label and the trigger's own thresholds at ``sure``: the tone programs' scores cross 0.5 on a
    tone's first hop and 0.9 a hop or more later, so the early stage hears it first."""
    from shared.model_card import card_path_for, copy_with_card, load_model_card

    card = load_model_card(card_path_for(programs["trigger"]))
    card.thresholds = {lab: sure for lab in card.labels}
    card.early_thresholds = {lab: early for lab in card.labels}
    return {**programs, "trigger": copy_with_card(programs["trigger"], out, card)}


# --- the cloud ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def teacher(tmp_path_factory) -> Path:
    """A tiny, freshly initialised teacher folder."""
    return make_tiny_teacher(tmp_path_factory.mktemp("edge_teacher") / "model",
                             ["timer_beep doorbell phone_ring knock", "what was that sound?"],
                             max_answer_tokens=4, frame_size_px=32)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(procs: list, teacher: Path, log_dir: Path, port: int, timeout: float = 60.0) -> Proc:
    """`earshot serve` bound to tcp://127.0.0.1:<port>; returns once it answers ready pings."""
    endpoint = f"tcp://127.0.0.1:{port}"
    proc = Proc([str(EARSHOT), "serve", f"checkpoint={teacher}", f"bind={endpoint}", "max_batch_size=4",
                 "threads=1", "hydra.run.dir=" + str(log_dir / "hydra")], log_dir / f"serve-{port}-{len(procs)}.log",
                cwd=log_dir)
    procs.append(proc)
    ping_until_ready(endpoint, timeout=timeout, proc=proc)
    return proc


@pytest.fixture(scope="module")
def server(teacher, tmp_path_factory):
    """One live server for a test module: its endpoint."""
    started: list[Proc] = []
    port = free_port()
    try:
        start_server(started, teacher, tmp_path_factory.mktemp("serve"), port)
        yield f"tcp://127.0.0.1:{port}"
    finally:
        for p in started:
            p.close()


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def wait_until(pred, timeout: float, every: float = 0.05) -> bool:
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if pred():
            return True
        time.sleep(every)
    return pred()


def make_runtime(recording: Path, programs: dict[str, Path], log_path: Path, *, policy: str = "audio_trigger",
                 endpoint: str | None = None, deadline_ms: int = 800, realtime: bool = False, **policy_params):
    """(EdgeRuntime, client or None) built the way `earshot edge` builds it; the caller closes the client."""
    from edge.eventlog import EventLog
    from edge.policy import make_policy
    from edge.programs import load_program
    from edge.runtime import EdgeRuntime
    from edge.source import RecordingSource
    from edge.edge_config import make_client
    from shared.profiles import EnergyMeter, load_device_profile, load_network_profile

    device, network = load_device_profile("glasses_2025"), load_network_profile("wifi")
    client = make_client(endpoint, None, None, 4, deadline_ms)
    runtime = EdgeRuntime(RecordingSource(recording, realtime=realtime), load_program(programs["trigger"]),
                          load_program(programs["student"]), make_policy(policy, **policy_params),
                          EnergyMeter(device, network), EventLog(log_path), client=client, deadline_ms=deadline_ms,
                          link_rtt_ms=network.rtt_ms, link_mbps=network.uplink_mbps,
                          run_info={"device": device.name, "network": network.name,
                                    "trigger_program": str(programs["trigger"]),
                                    "student_program": str(programs["student"]), "endpoint": endpoint})
    return runtime, client


def trace_recording(recording: Path, programs: dict[str, Path], teacher: Path, work: Path) -> Path:
    """``earshot trace`` of one recording with ``programs`` against a live ``earshot serve`` of
    ``teacher``; returns the folder with its one trace."""
    import subprocess

    started: list = []
    port = free_port()
    try:
        start_server(started, teacher, work, port)
        out = work / "traces"
        proc = subprocess.run(
            [str(EARSHOT), "trace", f"recording={recording}", f"trigger={programs['trigger']}",
             f"student={programs['student']}", f"endpoint=tcp://127.0.0.1:{port}", f"out={out}",
             f"hydra.run.dir={work / 'hydra'}"],
            cwd=work, capture_output=True, text=True, timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    finally:
        for p in started:
            p.close()
    assert len(list(out.glob("*.jsonl"))) == 1
    return out
