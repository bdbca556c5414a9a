"""Edge verbs: ``earshot edge`` (the runtime over a recording) and ``earshot trace``.

    earshot edge recording=data/world/recordings/kitchen_s0_00000 \\
        trigger=runs/kd/export/trigger_xnnpack_int8.pte student=runs/kd_av/export/av_xnnpack_int8.pte
    earshot trace recording=data/world trigger=... student=... out=traces

Guide and file formats: docs/edge.md. The schemas below are the whole
configuration surface (configs/edge.yaml and configs/trace.yaml carry the
defaults with comments); every value is checked before any work starts, and
a bad one exits with status 2 naming the key.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING

from shared.config import ConfigError, check, verb
from shared.protocol import MAX_DEADLINE_MS

__all__ = ["EdgeConfig", "TraceConfig", "edge_main", "trace_main", "run_edge", "make_client", "recording_folders",
           "load_profile", "print_summary"]

_PROGRAM_SUFFIXES = (".pte", ".tflite")


def _check_program(path: str | None, key: str, required: bool) -> None:
    if path is None:
        check(not required, key, "required: a .pte (or .tflite) program with its .json card beside it")
        return
    check(Path(path).suffix in _PROGRAM_SUFFIXES, key, f"expected a .pte or .tflite file, got {path!r}")
    check(Path(path).is_file(), key, f"no such file: {path}")
    check(Path(path).with_suffix(".json").is_file(), key, f"no model card beside it ({Path(path).with_suffix('.json')})")


def load_profile(node: Any, kind: str):
    """A device or network profile from a config value: the Hydra group's composed mapping
    (``device=glasses_2025`` selects configs/device/glasses_2025.yaml), a name, a path, or None
    (the default profile). Raises ``ProfileError`` naming the field."""
    import tempfile

    import yaml

    from shared.profiles import load_device_profile, load_network_profile

    load = load_device_profile if kind == "device" else load_network_profile
    if node is None:
        return load()
    if isinstance(node, (str, Path)):
        return load(node)
    from omegaconf import DictConfig, OmegaConf

    data = OmegaConf.to_container(node) if isinstance(node, DictConfig) else dict(node)
    with tempfile.TemporaryDirectory() as tmp:  # the loader validates files; hand it one
        path = Path(tmp) / f"{data.get('name', kind)}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return load(path)


def _check_link(cfg) -> None:
    from shared.profiles import ProfileError

    for key in ("device", "network"):
        try:
            load_profile(getattr(cfg, key), key)
        except ProfileError as exc:
            raise ConfigError(f"{key}: {exc}") from None
    if cfg.endpoint is not None:
        check(cfg.endpoint.startswith(("tcp://", "ipc://")), "endpoint",
              f"must be a tcp:// or ipc:// endpoint (or null for no cloud), got {cfg.endpoint!r}")
    check((cfg.server_public_key is None) == (cfg.client_keys is None), "server_public_key",
          "give both server_public_key and client_keys for CurveZMQ, or neither")
    for key in ("server_public_key", "client_keys"):
        value = getattr(cfg, key)
        check(value is None or Path(value).is_file(), key, f"no such file: {value}")
    check(1 <= cfg.deadline_ms <= MAX_DEADLINE_MS, "deadline_ms", f"must be in [1, {MAX_DEADLINE_MS}], got {cfg.deadline_ms}")
    check(math.isfinite(cfg.hop_s) and 0.01 <= cfg.hop_s <= 10.0, "hop_s", f"must be in [0.01, 10] s, got {cfg.hop_s}")
    check(1 <= cfg.max_in_flight <= 1000, "max_in_flight", f"must be in [1, 1000], got {cfg.max_in_flight}")


@dataclass
class EdgeConfig:
    """``earshot edge``: the runtime over one recording (configs/edge.yaml)."""

    recording: str = MISSING               # a recording folder (audio.wav, video.mp4, annotations.json)
    trigger: str = MISSING                 # trigger program (.pte / .tflite), card beside it
    student: str | None = None             # AV student program; null: the student never runs
    policy: str = "audio_trigger"
    policy_params: dict[str, Any] = field(default_factory=dict)
    device: Any = None                     # Hydra group configs/device/ (the profile itself); None: glasses_2025
    network: Any = None                    # Hydra group configs/network/ (the policy's link estimate); None: wifi
    endpoint: str | None = "tcp://127.0.0.1:5555"  # null: no cloud (every offload falls back)
    server_public_key: str | None = None
    client_keys: str | None = None
    deadline_ms: int = 800
    hop_s: float = 0.25
    realtime: bool = False
    max_in_flight: int = 4
    log: str | None = None                 # null: runs/edge/<recording_id>.jsonl
    summary: bool = True                   # print the summary table

    def __post_init__(self) -> None:
        from edge.policy import POLICIES, make_policy

        check(Path(self.recording).is_dir() and (Path(self.recording) / "annotations.json").is_file(), "recording",
              f"not a recording folder (no annotations.json): {self.recording}")
        _check_program(self.trigger, "trigger", required=True)
        _check_program(self.student, "student", required=False)
        check(self.policy in POLICIES, "policy", f"unknown {self.policy!r}; expected one of {sorted(POLICIES)}")
        try:
            make_policy(self.policy, **dict(self.policy_params))
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"policy_params: {exc}") from None
        _check_link(self)


@dataclass
class TraceConfig:
    """``earshot trace``: what every program and the cloud would say at every step (configs/trace.yaml)."""

    recording: str = MISSING               # a recording folder, or a dataset folder (traces every recording)
    trigger: str = MISSING
    student: str = MISSING
    endpoint: str | None = "tcp://127.0.0.1:5555"  # null: cloud entries say error=link_down
    server_public_key: str | None = None
    client_keys: str | None = None
    device: Any = None                     # unused by the trace itself; checked so a sweep fails early
    network: Any = None
    deadline_ms: int = 5000                # per cloud request: generous, the trace measures, it does not race
    hop_s: float = 0.25
    max_in_flight: int = 8
    out: str = "traces"                    # writes <out>/<recording_id>.jsonl

    def __post_init__(self) -> None:
        check(Path(self.recording).is_dir(), "recording", f"no such folder: {self.recording}")
        check(bool(recording_folders(self.recording)), "recording",
              f"no recording folders (with annotations.json) in {self.recording}")
        _check_program(self.trigger, "trigger", required=True)
        _check_program(self.student, "student", required=True)
        _check_link(self)


def recording_folders(path: str | Path) -> list[Path]:
    """``path`` itself if it is a recording, else the recordings under it (``recordings/*`` or ``*``)."""
    path = Path(path)
    if (path / "annotations.json").is_file():
        return [path]
    base = path / "recordings" if (path / "recordings").is_dir() else path
    return sorted(p for p in base.iterdir() if (p / "annotations.json").is_file()) if base.is_dir() else []


def make_client(endpoint: str | None, server_public_key: str | None, client_keys: str | None, max_in_flight: int,
                deadline_ms: int):
    """An ``edge.client.Client`` for ``endpoint`` (None for no cloud)."""
    if endpoint is None:
        return None
    from edge.client import Client

    return Client(endpoint, server_public_key=server_public_key, client_keys=client_keys,
                  max_in_flight=max_in_flight, default_deadline_ms=deadline_ms)


def run_edge(cfg: EdgeConfig):
    """Build the runtime from a validated config, run it, return the `Summary` (and print the table)."""
    from edge.eventlog import EventLog
    from edge.policy import make_policy
    from edge.programs import load_program
    from edge.runtime import EdgeRuntime
    from edge.source import RecordingSource
    from shared.profiles import EnergyMeter

    # Programs first: a corrupt program should fail before a recording is decoded or a socket opened.
    trigger = load_program(cfg.trigger, expect="trigger")
    student = load_program(cfg.student, expect="av") if cfg.student else None
    device, network = load_profile(cfg.device, "device"), load_profile(cfg.network, "network")
    source = RecordingSource(cfg.recording, realtime=cfg.realtime)
    rid = source.recording.annotations.recording_id
    log_path = Path(cfg.log) if cfg.log else Path("runs/edge") / f"{rid}.jsonl"
    client = make_client(cfg.endpoint, cfg.server_public_key, cfg.client_keys, cfg.max_in_flight, cfg.deadline_ms)
    run_info = {"device": device.name, "network": network.name, "trigger_program": str(cfg.trigger),
                "student_program": str(cfg.student) if cfg.student else None, "endpoint": cfg.endpoint}
    try:
        with EventLog(log_path) as log:
            runtime = EdgeRuntime(source, trigger, student, make_policy(cfg.policy, **dict(cfg.policy_params)),
                                  EnergyMeter(device, network), log, client=client, hop_s=cfg.hop_s,
                                  deadline_ms=cfg.deadline_ms, link_rtt_ms=network.rtt_ms,
                                  link_mbps=network.uplink_mbps, run_info=run_info)
            summary = runtime.run()
    finally:
        if client is not None:
            client.close()
    if cfg.summary:
        print_summary(summary, log_path)
    return summary


def print_summary(s, log_path: Path | None = None) -> None:
    """The end-of-run table (rich)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"earshot edge: {s.recording_id} ({s.policy}, {s.duration_s:.1f} s)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("steps", f"{s.steps}"),
        ("camera on", f"{100 * s.camera_share:.1f} % of steps"),
        ("frames captured", f"{s.frames_captured}"),
        ("student runs", f"{s.student_runs}"),
        ("offloads (results / fallbacks)", f"{s.offloads} ({s.results} / {s.fallbacks})"),
        ("bytes sent / received", f"{s.bytes_sent} / {s.bytes_received}"),
        ("queries", f"{s.queries}"),
        ("answers local / cloud", f"{s.answers_local} / {s.answers_cloud}"),
        ("answers correct", f"{s.answers_correct} / {s.queries}"),
        ("energy", f"{s.energy_mj:.1f} mJ"),
        ("mean power", f"{s.mean_power_mw:.1f} mW"),
        ("projected battery life", f"{s.battery_life_h:.1f} h"),
    ]
    for k, v in rows:
        table.add_row(k, v)
    Console().print(table)
    if log_path is not None:
        print(f"event log: {log_path}")


@verb("edge", EdgeConfig)
def edge_main(cfg: EdgeConfig) -> None:
    """Run the on-device loop over a recording (trigger, policy, student, offload) with an event log."""
    run_edge(cfg)


@verb("trace", TraceConfig)
def trace_main(cfg: TraceConfig) -> None:
    """Record what the trigger, student and cloud say at every step of recordings (for the simulator)."""
    from edge.trace import run_trace

    run_trace(cfg)
