"""Network and cloud models of the simulator: one recording's link, drawn when it starts.

Everything random about the path to the cloud is drawn once per recording
of an episode, as arrays over its hops, from the episode's generator
(``env.np_random``), so a step only indexes them and the same seed gives the
same link:

- **uplink rate** (Mbit/s): log-normal around the profile's ``uplink_mbps``
  with coefficient of variation ``uplink_cv``, correlated over hops as an AR(1)
  in log space (``rate_corr`` per hop: the edge's last measurement predicts the
  next one). Or replayed from a bandwidth trace (one Mbit/s value per line,
  ``trace_step_s`` apart) from a random start.
- **RTT** (ms), heavy-tailed: a log-normal body with the profile's mean
  ``rtt_ms`` and standard deviation ``rtt_jitter_ms``; with probability
  ``rtt_tail_share`` a round trip is multiplied by a Pareto(``rtt_tail_alpha``)
  draw (>= 1; alpha < 2 has infinite variance), the spikes that retransmissions
  and scheduling cause.
- **loss**: with probability ``loss_rate`` a request is lost and re-sent once
  (the profile's definition): one more RTT and upload, and the bytes twice.
- **outages**: optional two-state link (up/down) with a mean time between
  outages and a mean outage length; offloads on a down link fail at once.
- **cloud service time**: drawn from the distribution the tracer measured
  (``service_ms`` in the trace header: one request at a time on an idle
  server), per hop and offload kind. **Queueing** on a shared server: at
  utilisation ``rho`` the M/M/1 wait is 0 with probability ``1 - rho`` and
  otherwise exponential with mean ``service / (1 - rho)``; we draw a unit
  exponential per hop and scale it by that hop's service time.

:func:`request_latency_ms` is the latency arithmetic, shared by the env and
the deadline test.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from shared.profiles import NetworkProfile

__all__ = ["LinkDraw", "draw_link", "draw_service_ms", "load_bandwidth_trace", "request_latency_ms", "upload_ms",
           "rtt_draws"]


@dataclass
class LinkDraw:
    """One recording's link, per hop (``T`` hops)."""

    up: np.ndarray  # [T] bool: link up during the hop
    uplink_mbps: np.ndarray  # [T]
    downlink_mbps: np.ndarray  # [T]
    rtt_ms: np.ndarray  # [T]
    lost: np.ndarray  # [T] bool: a request sent on this hop is lost once
    queue_units: np.ndarray  # [T] M/M/1 waiting time in units of the service time


def load_bandwidth_trace(path: str | Path) -> np.ndarray:
    """Mbit/s values, one per line (``#`` comments and blank lines skipped).

    Raises:
        ValueError: the file holds no positive numbers.
    """
    vals = [float(l.split("#")[0]) for l in Path(path).read_text().splitlines() if l.split("#")[0].strip()]
    arr = np.asarray(vals, float)
    if arr.size == 0 or (arr <= 0).any():
        raise ValueError(f"{path}: a bandwidth trace needs positive Mbit/s values, one per line")
    return arr


def rtt_draws(rng: np.random.Generator, net: NetworkProfile, n: int) -> np.ndarray:
    """``n`` round trips (ms): log-normal body (mean ``rtt_ms``, sd ``rtt_jitter_ms``) x Pareto spikes."""
    mean, sd = net.rtt_ms, net.rtt_jitter_ms
    sigma2 = np.log1p((sd / mean) ** 2) if mean > 0 else 0.0
    body = mean * np.exp(np.sqrt(sigma2) * rng.standard_normal(n) - 0.5 * sigma2)
    spike = rng.random(n) < net.rtt_tail_share
    pareto = (1.0 - rng.random(n)) ** (-1.0 / net.rtt_tail_alpha)  # >= 1, P(X > x) = x^-alpha
    return np.where(spike, body * pareto, body)


def draw_link(
    rng: np.random.Generator,
    net: NetworkProfile,
    n_hops: int,
    hop_s: float,
    *,
    rate_corr: float = 0.9,
    cloud_utilization: float = 0.3,
    outage_every_s: float = 0.0,
    outage_mean_s: float = 2.0,
    bandwidth_trace: np.ndarray | None = None,
    trace_step_s: float = 1.0,
    starts: np.ndarray | None = None,
) -> LinkDraw:
    """Draw the link of ``n_hops`` hops (see the module docstring for the models).

    ``starts``: hop indices where a new recording begins (a day draws all its
    recordings at once); the uplink's AR(1), the bandwidth trace's position
    and the outage state start afresh there (an idle gap lies between).
    ``outage_every_s`` = 0 turns outages off. The draws happen in a fixed
    order so a seed reproduces the whole link.
    """
    T = n_hops
    # Uplink: AR(1) in log space with the log-normal's mean equal to the profile's mean.
    sigma = np.sqrt(np.log1p(net.uplink_cv**2))
    z = rng.standard_normal(T)
    c = float(np.clip(rate_corr, 0.0, 0.999))
    s = np.sqrt(1.0 - c * c)
    # eps[0] = z[0]; eps[i] = c eps[i-1] + s z[i]: stationary with unit variance.
    fresh = np.zeros(T, bool)
    fresh[0] = True
    if starts is not None:
        fresh[np.asarray(starts, int)] = True
    eps = np.empty(T)
    e = 0.0
    for i, (zi, zs, f) in enumerate(zip(z.tolist(), (s * z).tolist(), fresh.tolist())):
        e = zi if f else c * e + zs
        eps[i] = e
    scale = np.exp(sigma * eps - 0.5 * sigma**2)
    if bandwidth_trace is not None:
        seg = np.cumsum(fresh) - 1  # recording index of each hop
        offset = rng.uniform(0.0, len(bandwidth_trace) * trace_step_s, int(seg[-1]) + 1)[seg]
        since = np.arange(T) - np.flatnonzero(fresh)[seg]
        idx = ((offset + since * hop_s) / trace_step_s).astype(int) % len(bandwidth_trace)
        uplink = bandwidth_trace[idx].astype(float)
        scale = uplink / float(np.mean(bandwidth_trace))
    else:
        uplink = net.uplink_mbps * scale
    downlink = net.downlink_mbps * scale
    rtt = rtt_draws(rng, net, T)
    lost = rng.random(T) < net.loss_rate
    rho = float(np.clip(cloud_utilization, 0.0, 0.95))
    waits = rng.random(T) < rho
    queue = np.where(waits, rng.exponential(1.0, T) / (1.0 - rho), 0.0)
    up = np.ones(T, bool)
    if outage_every_s > 0:
        p_down = min(1.0, hop_s / outage_every_s)
        p_recover = min(1.0, hop_s / max(outage_mean_s, hop_s))
        u = rng.random(T)
        state = True
        for i in range(T):
            if fresh[i]:
                state = True
            state = (u[i] >= p_down) if state else (u[i] < p_recover)
            up[i] = state
    return LinkDraw(up=up, uplink_mbps=uplink, downlink_mbps=downlink, rtt_ms=rtt, lost=lost, queue_units=queue)


def draw_service_ms(rng: np.random.Generator, samples: Mapping[str, np.ndarray], kinds: Sequence[str],
                    n_hops: int) -> np.ndarray:
    """[len(kinds), n_hops] service times (ms) drawn from each kind's measured samples (NaN: none measured)."""
    out = np.full((len(kinds), n_hops), np.nan)
    u = rng.random((len(kinds), n_hops))
    for k, kind in enumerate(kinds):
        s = np.asarray(samples.get(kind, ()), float)
        if s.size:
            out[k] = np.sort(s)[np.minimum((u[k] * s.size).astype(int), s.size - 1)]
    return out


def upload_ms(n_bytes: float, mbps: float) -> float:
    """Time on the wire for ``n_bytes`` at ``mbps`` Mbit/s (ms)."""
    return n_bytes * 8.0 / (mbps * 1e3)


def request_latency_ms(
    server_ms: float, bytes_up: float, bytes_down: float, uplink_mbps: float, downlink_mbps: float,
    rtt_ms: float, lost: bool = False, queue_units: float = 0.0,
) -> float:
    """End-to-end latency of one offload (ms), from the edge's send to the result.

    ``rtt + upload + server * (1 + queue_units) + download``, and a lost request
    costs one more ``rtt + upload`` (it is re-sent once).
    """
    up = upload_ms(bytes_up, uplink_mbps)
    total = rtt_ms + up + server_ms * (1.0 + queue_units) + upload_ms(bytes_down, downlink_mbps)
    if lost:
        total += rtt_ms + up
    return total
