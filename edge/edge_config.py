"""Schemas of ``earshot edge`` and ``earshot trace`` (``configs/edge.yaml``, ``configs/trace.yaml``),
and the builders that turn their values into objects.

Every value is checked before any work starts (``shared.config``); a bad one
exits with status 2 naming the key. The verbs are in ``edge/verbs.py``, the
guide and file formats in docs/edge.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING

from shared.config import ConfigError, check, check_choice, check_range
from shared.protocol import MAX_DEADLINE_MS

__all__ = ["EdgeConfig", "TraceConfig", "load_profile", "recording_folders", "make_client"]

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
    check_range("deadline_ms", cfg.deadline_ms, 1, MAX_DEADLINE_MS)
    check_range("hop_s", cfg.hop_s, 0.01, 10.0, unit="s")
    check_range("max_in_flight", cfg.max_in_flight, 1, 1000)


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
    cloud_hops: str = "all"                # all | needed: only hops that ask a query or lie in an event's window
    important_labels: list[str] = field(default_factory=lambda: ["alarm", "timer_beep", "doorbell", "car_horn",
                                                                  "phone_ring", "knock", "kettle_whistle",
                                                                  "microwave_beep"])
    event_window_s: float = 5.0            # cloud_hops=needed: seconds after an important event's onset

    def __post_init__(self) -> None:
        check_choice("cloud_hops", self.cloud_hops, ("all", "needed"))
        check_range("event_window_s", self.event_window_s, 0.0, 60.0, lo_open=True, unit="s")
        from shared.labels import names

        bad = sorted(set(self.important_labels) - set(names("audio_event")))
        check(not bad, "important_labels", f"unknown audio_event labels {bad}")
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
