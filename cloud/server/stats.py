"""Counters behind the ``stats`` message (docs/protocol.md section 6.7).

One object, owned by the broker's poll loop thread (no locks): every client
message, every reply by kind and error code, every dropped reply, the size of
every model batch and the receive-to-reply latency of recent results.
"""
from __future__ import annotations

import math
import time
from collections import Counter, deque

import numpy as np

from shared.protocol import MAX_BATCH_SIZE, ErrorCode, Stats

__all__ = ["ServerStats"]


class ServerStats:
    """Counters since start.

    ``latency_window``: how many recent ``result`` replies the latency
    percentiles cover. Only results count: a ``busy`` answered in 50 us would
    otherwise make an overloaded server's p50 look excellent.
    """

    def __init__(self, latency_window: int = 1024) -> None:
        self.t_start = time.monotonic()
        self.requests_total = 0
        self.results_total = 0
        self.dropped_total = 0
        self.late_results = 0  # model answers that came after the request was already answered
        self.errors_by_code: Counter[str] = Counter()
        self.batch_size_counts: list[int] = []
        self.latencies_ms: deque[float] = deque(maxlen=latency_window)

    def error(self, code: ErrorCode | str) -> None:
        self.errors_by_code[str(code)] += 1

    def result(self, latency_ms: float) -> None:
        self.results_total += 1
        self.latencies_ms.append(latency_ms)

    def batch(self, size: int) -> None:
        size = min(size, MAX_BATCH_SIZE)
        if len(self.batch_size_counts) < size:
            self.batch_size_counts.extend([0] * (size - len(self.batch_size_counts)))
        self.batch_size_counts[size - 1] += 1

    def snapshot(self, request_id: int, queue_depth: int, queue_capacity: int) -> Stats:
        lat = np.asarray(self.latencies_ms, dtype=np.float64)
        if lat.size:
            p50, p95, p99 = (float(x) for x in np.percentile(lat, [50, 95, 99]))
            p95, p99 = max(p95, p50), max(p99, p95, p50)  # guard float noise: p50 <= p95 <= p99
        else:
            p50 = p95 = p99 = None
        return Stats(
            id=request_id,
            uptime_s=time.monotonic() - self.t_start,
            requests_total=self.requests_total,
            results_total=self.results_total,
            dropped_total=self.dropped_total,
            errors_by_code=dict(self.errors_by_code),
            queue_depth=queue_depth,
            queue_capacity=queue_capacity,
            batch_size_counts=tuple(self.batch_size_counts),
            latency_samples=int(lat.size),
            latency_p50_ms=p50,
            latency_p95_ms=p95,
            latency_p99_ms=p99,
        )

    def summary(self) -> str:
        """One log line."""
        errors = ", ".join(f"{k} {v}" for k, v in sorted(self.errors_by_code.items())) or "none"
        return (f"{self.requests_total} messages, {self.results_total} results, errors: {errors}, "
                f"{self.dropped_total} replies dropped, {self.late_results} late model answers, "
                f"batches by size {self.batch_size_counts}")


class BatchTimes:
    """Moving average of batch round-trip time (dispatch -> answer, ms) per batch size.

    ``estimate(n)`` for a size not seen yet scales the nearest seen size
    ``m``: ``t(m) * n / m`` above it (linear, while batching is sublinear: an
    over-estimate) and ``t(m) * sqrt(n / m)`` below it (the teacher on a CPU
    core runs a batch of 4 in ~2.5x the time of 1, i.e. ~n^0.66: a mild
    over-estimate). Errors lean towards refusing early, which the server
    bounds with a probe (``Server._may_refuse_early``), and every batch that
    runs corrects its own size.
    """

    def __init__(self, max_batch_size: int, weight: float = 0.2) -> None:
        self.ms: list[float | None] = [None] * (max_batch_size + 1)
        self.weight = weight

    def add(self, size: int, ms: float) -> None:
        size = min(size, len(self.ms) - 1)
        old = self.ms[size]
        self.ms[size] = ms if old is None else (1 - self.weight) * old + self.weight * ms

    @property
    def known(self) -> bool:
        return any(t is not None for t in self.ms)

    def estimate(self, size: int) -> float | None:
        size = max(1, min(size, len(self.ms) - 1))
        if self.ms[size] is not None:
            return self.ms[size]
        seen = [m for m, t in enumerate(self.ms) if t is not None]
        if not seen:
            return None
        m = min(seen, key=lambda k: (abs(k - size), -k))
        return self.ms[m] * size / m if size > m else self.ms[m] * math.sqrt(size / m)
