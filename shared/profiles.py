"""Device and network profiles, and the energy arithmetic every part shares.

A profile is a YAML file in ``configs/device/`` or ``configs/network/`` in
which every number is a quantity with its provenance::

    camera_mw:
      value: 250.0
      unit: mW
      source: "estimate: camera sensor + ISP while streaming; sensors alone draw > 50 mW"

``source`` either cites a fact or starts with ``estimate`` (ARCHITECTURE.md
section 8). :func:`load_device_profile` / :func:`load_network_profile` take a
name (``"glasses_2025"``, ``"wifi"``) or a path, validate every field, and
return frozen dataclasses; errors name the file and the field.

:class:`EnergyMeter` is the one energy model of the project: the Python edge
runtime puts its figures in the event log, the simulator drains its battery
with it, and ``edge/native`` ports the same arithmetic (kept short for that).
Per step of ``hop_s`` seconds, in mJ (mW x s = mJ; pJ x 1e-9 = mJ)::

    baseline   = baseline_mw * hop_s                      (always)
    audio      = audio_dsp_mw * hop_s                     (always: mic + wake DSP)
    camera     = camera_mw * hop_s  [+ camera_wake_mj on an off->on step]
    compute    = sum over calls of macs * pj_per_mac(precision) * 1e-9
                 + weight_bytes * dram_pj_per_byte * 1e-9
                 (int8 -> npu_pj_per_mac, fp32 -> cpu_pj_per_mac)
    jpeg       = jpeg_frames * jpeg_mj_per_frame
    radio      = (tx_bytes * 8 * tx_nj_per_bit + rx_bytes * 8 * rx_nj_per_bit) * 1e-6
                 + active_mw * airtime_s
    tail       = tail_mw * (seconds of this step the radio spends in its tail)

``airtime_s`` is the time the radio spends sending and receiving (the
simulator passes the drawn link's; by default the profile's mean rates give
it). This is the shape of Huang et al.'s (MobiSys 2012) model: power
``alpha * throughput + beta`` while transferring, i.e. ``alpha`` per bit
(``tx_nj_per_bit``: 1 mW per Mbit/s = 1 nJ/bit) plus ``beta`` (``active_mw``)
for the airtime.

The radio tail is per transfer: after each transfer the radio stays in a
high-power tail for ``tail_ms`` before it sleeps. A transfer is taken to start
at its step's start, so a step with traffic pays ``tail_mw`` for the rest of
the step after its airtime (up to ``tail_ms``), and the following steps pay
what is left of the tail; a new transfer ends the running tail (the radio is
busy again). ``EnergyMeter.avg_power_mw`` is an exponential moving average of
power with time constant ``thermal_window_s``; ``over_cap`` says whether it
exceeds ``sustained_power_mw``. :meth:`EnergyMeter.idle` charges a stretch of
time with the camera off and nothing sent (the trigger still runs) in one call.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.config import CONFIG_DIR, UserError

__all__ = [
    "ProfileError", "Quantity", "DeviceProfile", "NetworkProfile", "StepEnergy", "EnergyMeter",
    "load_device_profile", "load_network_profile", "profile_path", "available_profiles",
    "inference_mj",
]


class ProfileError(UserError, ValueError):
    """A profile file that is missing or does not follow the schema; names the file and field."""


@dataclass(frozen=True)
class Quantity:
    """One number with its unit and provenance."""

    value: float
    unit: str
    source: str

    @property
    def estimate(self) -> bool:
        return self.source.lower().startswith("estimate")


# field -> (unit, lower bound, upper bound); bounds are inclusive sanity limits.
_DEVICE_FIELDS: dict[str, tuple[str, float, float]] = {
    "battery_wh": ("Wh", 1e-3, 1e3),
    "baseline_mw": ("mW", 0.0, 1e5),
    "audio_dsp_mw": ("mW", 0.0, 1e5),
    "camera_mw": ("mW", 0.0, 1e5),
    "camera_wake_mj": ("mJ", 0.0, 1e5),
    "jpeg_mj_per_frame": ("mJ", 0.0, 1e5),
    "npu_pj_per_mac": ("pJ/MAC", 0.0, 1e6),
    "cpu_pj_per_mac": ("pJ/MAC", 0.0, 1e6),
    "dram_pj_per_byte": ("pJ/byte", 0.0, 1e6),
    "sustained_power_mw": ("mW", 1.0, 1e6),
    "thermal_window_s": ("s", 0.1, 1e5),
}
_NETWORK_FIELDS: dict[str, tuple[str, float, float]] = {
    "uplink_mbps": ("Mbit/s", 1e-3, 1e5),
    "uplink_cv": ("ratio", 0.0, 10.0),
    "downlink_mbps": ("Mbit/s", 1e-3, 1e5),
    "rtt_ms": ("ms", 0.0, 1e5),
    "rtt_jitter_ms": ("ms", 0.0, 1e5),
    "loss_rate": ("ratio", 0.0, 1.0),
    "tx_nj_per_bit": ("nJ/bit", 0.0, 1e5),
    "rx_nj_per_bit": ("nJ/bit", 0.0, 1e5),
    "tail_ms": ("ms", 0.0, 1e6),
    "tail_mw": ("mW", 0.0, 1e5),
    "active_mw": ("mW", 0.0, 1e5),
    "rtt_tail_share": ("ratio", 0.0, 1.0),
    "rtt_tail_alpha": ("ratio", 1.01, 100.0),
}


@dataclass(frozen=True)
class DeviceProfile:
    """Power and energy figures of the glasses (see ``configs/device/glasses_2025.yaml``)."""

    name: str
    battery_wh: float
    baseline_mw: float
    audio_dsp_mw: float
    camera_mw: float
    camera_wake_mj: float
    jpeg_mj_per_frame: float
    npu_pj_per_mac: float
    cpu_pj_per_mac: float
    dram_pj_per_byte: float
    sustained_power_mw: float
    thermal_window_s: float
    sources: dict[str, Quantity] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    @property
    def battery_mj(self) -> float:
        return self.battery_wh * 3600.0 * 1000.0

    def battery_life_h(self, avg_power_mw: float) -> float:
        """Hours a full battery lasts at ``avg_power_mw`` (inf at zero power)."""
        return math.inf if avg_power_mw <= 0 else self.battery_wh * 1000.0 / avg_power_mw


@dataclass(frozen=True)
class NetworkProfile:
    """The glasses' path to the cloud (see ``configs/network/*.yaml``)."""

    name: str
    uplink_mbps: float
    uplink_cv: float
    downlink_mbps: float
    rtt_ms: float
    rtt_jitter_ms: float
    loss_rate: float
    tx_nj_per_bit: float
    rx_nj_per_bit: float
    tail_ms: float
    tail_mw: float
    active_mw: float
    rtt_tail_share: float
    rtt_tail_alpha: float
    sources: dict[str, Quantity] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    def airtime_s(self, tx_bytes: int, rx_bytes: int = 0) -> float:
        """Seconds the radio sends and receives ``tx_bytes`` / ``rx_bytes`` at the mean rates."""
        return tx_bytes * 8 / (self.uplink_mbps * 1e6) + rx_bytes * 8 / (self.downlink_mbps * 1e6)

    def transfer_ms(self, bytes_up: int, bytes_down: int = 0) -> float:
        """Mean time on the wire for a request: one RTT plus upload and download at the mean rates."""
        return self.rtt_ms + bytes_up * 8 / (self.uplink_mbps * 1e3) + bytes_down * 8 / (self.downlink_mbps * 1e3)


def available_profiles(kind: str) -> list[str]:
    """Names of the profiles in ``configs/<kind>/`` (kind: "device" or "network")."""
    return sorted(p.stem for p in (CONFIG_DIR / kind).glob("*.yaml"))


def profile_path(kind: str, name_or_path: str | Path) -> Path:
    """``configs/<kind>/<name>.yaml`` for a bare name, else the path itself."""
    s = str(name_or_path)
    if "/" not in s and not s.endswith((".yaml", ".yml")):
        path = CONFIG_DIR / kind / f"{s}.yaml"
        if not path.is_file():
            raise ProfileError(f"{kind} profile {s!r}: no such profile; available: {available_profiles(kind)}")
        return path
    path = Path(s)
    if not path.is_file():
        raise ProfileError(f"{kind} profile {s!r}: file not found")
    return path


def _load(kind: str, name_or_path: str | Path, fields: dict[str, tuple[str, float, float]]):
    import yaml

    path = profile_path(kind, name_or_path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ProfileError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    unknown = sorted(set(data) - set(fields) - {"name"})
    if unknown:
        raise ProfileError(f"{path}: unknown fields {unknown}; expected {sorted(fields)}")
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name:
        raise ProfileError(f"{path}: name: expected a non-empty string")
    values: dict[str, Any] = {"name": name}
    sources: dict[str, Quantity] = {}
    for key, (unit, lo, hi) in fields.items():
        where = f"{path}: {key}"
        if key not in data:
            raise ProfileError(f"{where}: missing")
        q = data[key]
        if not isinstance(q, dict) or set(q) != {"value", "unit", "source"}:
            raise ProfileError(f"{where}: expected {{value, unit, source}}, got {q!r}")
        v = q["value"]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ProfileError(f"{where}.value: expected a finite number, got {v!r}")
        if not lo <= v <= hi:
            raise ProfileError(f"{where}.value: {v} is outside [{lo}, {hi}]")
        if q["unit"] != unit:
            raise ProfileError(f"{where}.unit: expected {unit!r}, got {q['unit']!r}")
        if not isinstance(q["source"], str) or len(q["source"].strip()) < 8:
            raise ProfileError(f"{where}.source: cite where the number comes from, or say 'estimate: ...'")
        values[key] = float(v)
        sources[key] = Quantity(float(v), unit, q["source"])
    values["sources"] = sources
    return values


def load_device_profile(name_or_path: str | Path = "glasses_2025") -> DeviceProfile:
    """Read and validate a device profile by name (``configs/device/<name>.yaml``) or path."""
    return DeviceProfile(**_load("device", name_or_path, _DEVICE_FIELDS))


def load_network_profile(name_or_path: str | Path = "wifi") -> NetworkProfile:
    """Read and validate a network profile by name (``configs/network/<name>.yaml``) or path."""
    return NetworkProfile(**_load("network", name_or_path, _NETWORK_FIELDS))


def inference_mj(device: DeviceProfile, macs: int, precision: str, weight_bytes: int = 0) -> float:
    """Energy (mJ) of one program call: MACs at the precision's cost plus one read of the weights."""
    if precision not in ("int8", "fp32"):
        raise ValueError(f"precision: expected 'int8' or 'fp32', got {precision!r}")
    pj = device.npu_pj_per_mac if precision == "int8" else device.cpu_pj_per_mac
    return (macs * pj + weight_bytes * device.dram_pj_per_byte) * 1e-9


@dataclass(frozen=True)
class StepEnergy:
    """Energy of one step by component, in mJ."""

    baseline: float
    audio: float
    camera: float
    compute: float
    jpeg: float
    radio: float
    tail: float

    @property
    def total(self) -> float:
        return self.baseline + self.audio + self.camera + self.compute + self.jpeg + self.radio + self.tail

    def as_dict(self) -> dict[str, float]:
        d = dataclasses.asdict(self)
        d["total"] = self.total
        return d


class EnergyMeter:
    """Accumulates the energy of a run step by step (see the module docstring for the arithmetic).

    Example::

        meter = EnergyMeter(load_device_profile(), load_network_profile("wifi"))
        e = meter.step(0.25, camera_on=True, compute_mj=inference_mj(dev, macs, "int8", size),
                       jpeg_frames=4, tx_bytes=40_000, rx_bytes=300)
        meter.total_mj, meter.battery_frac, meter.avg_power_mw, meter.over_cap
    """

    def __init__(self, device: DeviceProfile, network: NetworkProfile) -> None:
        self.device = device
        self.network = network
        self.reset()

    def reset(self) -> None:
        self._hop_s, self._alpha = 0.0, 0.0
        self._tail_s = self.network.tail_ms / 1000.0
        self.last_parts: tuple[float, ...] = ()
        self.total_mj = 0.0
        self.elapsed_s = 0.0
        self.avg_power_mw = 0.0
        self._camera_on = False
        self._tail_left_s = 0.0

    @property
    def battery_frac(self) -> float:
        """Share of a full battery left (clipped at 0)."""
        return max(0.0, 1.0 - self.total_mj / self.device.battery_mj)

    @property
    def over_cap(self) -> bool:
        return self.avg_power_mw > self.device.sustained_power_mw

    @property
    def mean_power_mw(self) -> float:
        return self.total_mj / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def step(self, hop_s: float, *, camera_on: bool, compute_mj: float = 0.0, jpeg_frames: int = 0,
             tx_bytes: int = 0, rx_bytes: int = 0, airtime_s: float | None = None) -> StepEnergy:
        """Charge one step of ``hop_s`` seconds and return its energy by component.

        ``airtime_s``: the radio's send + receive time (default: at the profile's mean rates).
        """
        self.step_mj(hop_s, camera_on, compute_mj, jpeg_frames, tx_bytes, rx_bytes, airtime_s)
        return StepEnergy(*self.last_parts)

    def step_mj(self, hop_s: float, camera_on: bool, compute_mj: float = 0.0, jpeg_frames: int = 0,
                tx_bytes: int = 0, rx_bytes: int = 0, airtime_s: float | None = None) -> float:
        """:meth:`step` returning only the total (mJ), for the simulator's hot loop; the parts are in
        ``last_parts`` (:class:`StepEnergy` order). The one arithmetic of the module docstring."""
        if hop_s != self._hop_s:
            if hop_s <= 0:
                raise ValueError(f"hop_s must be > 0, got {hop_s}")
            dev = self.device
            self._hop_s, self._alpha = hop_s, 1.0 - math.exp(-hop_s / dev.thermal_window_s)
            self._per_hop = (dev.baseline_mw * hop_s, dev.audio_dsp_mw * hop_s, dev.camera_mw * hop_s)
        baseline, audio, camera_on_mj = self._per_hop
        camera = 0.0
        if camera_on:
            camera = camera_on_mj if self._camera_on else camera_on_mj + self.device.camera_wake_mj
        self._camera_on = camera_on
        if tx_bytes or rx_bytes:
            net = self.network
            air = net.airtime_s(tx_bytes, rx_bytes) if airtime_s is None else airtime_s
            radio = (tx_bytes * 8 * net.tx_nj_per_bit + rx_bytes * 8 * net.rx_nj_per_bit) * 1e-6 + net.active_mw * air
            rest = hop_s - air
            in_tail = self._tail_s if rest > self._tail_s else (rest if rest > 0.0 else 0.0)
            self._tail_left_s = self._tail_s - in_tail
        else:
            radio = 0.0
            in_tail = self._tail_left_s if self._tail_left_s < hop_s else hop_s
            self._tail_left_s -= in_tail
        jpeg = jpeg_frames * self.device.jpeg_mj_per_frame if jpeg_frames else 0.0
        tail = self.network.tail_mw * in_tail if in_tail else 0.0
        self.last_parts = (baseline, audio, camera, compute_mj, jpeg, radio, tail)
        total = baseline + audio + camera + compute_mj + jpeg + radio + tail  # StepEnergy.total's order
        self.total_mj += total
        self.elapsed_s += hop_s
        self.avg_power_mw += self._alpha * (total / hop_s - self.avg_power_mw)
        return total

    def idle(self, duration_s: float, compute_mw: float = 0.0) -> float:
        """Charge ``duration_s`` with the camera off and no traffic (the always-on parts, what is
        left of a radio tail, ``compute_mw`` of the trigger); returns the energy (mJ).

        The same arithmetic as that many empty steps, in one call: the power
        average relaxes through the tail's stretch, then the rest.
        """
        if duration_s < 0:
            raise ValueError(f"duration_s must be >= 0, got {duration_s}")
        if duration_s == 0:
            return 0.0
        dev, net = self.device, self.network
        in_tail = min(duration_s, self._tail_left_s)
        self._tail_left_s -= in_tail
        self._camera_on = False
        base_mw = dev.baseline_mw + dev.audio_dsp_mw + compute_mw
        total = base_mw * duration_s + net.tail_mw * in_tail
        self.total_mj += total
        self.elapsed_s += duration_s
        # Two stretches of constant power (tail, then none): the average relaxes through each.
        for span_s, power_mw in ((in_tail, base_mw + net.tail_mw), (duration_s - in_tail, base_mw)):
            if span_s > 0:
                self.avg_power_mw += (1.0 - math.exp(-span_s / dev.thermal_window_s)) * (power_mw - self.avg_power_mw)
        return total
