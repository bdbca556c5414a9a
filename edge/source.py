"""Where the edge runtime's audio and frames come from, and the audio ring buffer.

A source delivers audio in hops and the newest camera frame on demand, on the
recording clock (seconds; audio sample ``i`` is at ``i / rate``). Today the
one source is `RecordingSource`, a recording folder replayed either in real
time (``realtime=True``: each hop is released when the wall clock reaches it,
as a microphone would) or as fast as possible (``realtime=False``: the loop
never waits; decisions then depend only on the recording and the programs).
A live device source would implement the same three methods.

`AudioRing` keeps the last ``capacity_s`` seconds of PCM so the trigger (1 s),
the student (2 s) and offloads (up to 5 s of history) read fixed windows
without copying the whole recording.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from shared.recording import Recording, load_recording

__all__ = ["AudioRing", "RecordingSource"]


class AudioRing:
    """A fixed-size ring of int16 mono PCM.

    Args:
        capacity: samples kept (older ones are overwritten).
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity: must be >= 1 sample, got {capacity}")
        self._buf = np.zeros(capacity, np.int16)
        self._written = 0  # samples pushed since the start (the recording clock, in samples)

    @property
    def capacity(self) -> int:
        return len(self._buf)

    @property
    def written(self) -> int:
        return self._written

    def push(self, samples: np.ndarray) -> None:
        """Append int16 samples (only the last ``capacity`` matter)."""
        samples = np.asarray(samples, np.int16)
        n, cap = len(samples), len(self._buf)
        if n >= cap:
            self._buf[:] = samples[-cap:]
            self._written += n
            # Keep the invariant: the newest sample sits just before position written % cap.
            self._buf = np.roll(self._buf, self._written % cap)
            return
        start = self._written % cap
        first = min(n, cap - start)
        self._buf[start:start + first] = samples[:first]
        self._buf[:n - first] = samples[first:]
        self._written += n

    def last(self, n: int) -> np.ndarray:
        """The newest ``n`` samples, oldest first, int16 (zeros before the first sample).

        Raises:
            ValueError: ``n`` exceeds the capacity.
        """
        cap = len(self._buf)
        if n > cap:
            raise ValueError(f"asked for {n} samples, the ring holds {cap}")
        out = np.zeros(n, np.int16)
        have = min(n, self._written)
        if have:
            end = self._written % cap
            idx = (np.arange(end - have, end)) % cap
            out[n - have:] = self._buf[idx]
        return out


class RecordingSource:
    """Replay a recording folder (or a loaded `Recording`) hop by hop.

    Args:
        recording: folder or `Recording`.
        realtime: release hop ``t`` at wall time ``start + t`` (sleeping), or at once.
        video: decode the frames (False: an audio-only replay, ``frame_at`` is None).
    """

    def __init__(self, recording: str | Path | Recording, *, realtime: bool = False, video: bool = True) -> None:
        self.recording = recording if isinstance(recording, Recording) else load_recording(recording, video=video)
        self.realtime = realtime
        self._pos = 0  # next audio sample to deliver
        self._t0: float | None = None

    @property
    def sample_rate_hz(self) -> int:
        return self.recording.sample_rate_hz

    @property
    def duration_s(self) -> float:
        return self.recording.duration_s

    def start(self) -> None:
        """Start the wall clock of a real-time replay (the first ``read_until`` does it too)."""
        self._t0 = time.monotonic()

    def read_until(self, t_s: float) -> np.ndarray:
        """The audio from the previous call up to ``t_s`` (int16), waiting for it in real time."""
        if self._t0 is None:
            self.start()
        if self.realtime:
            delay = self._t0 + t_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        stop = min(int(round(t_s * self.sample_rate_hz)), len(self.recording.audio))
        out = self.recording.audio[self._pos:stop]
        self._pos = max(self._pos, stop)
        return out

    def frame_at(self, t_s: float) -> tuple[np.ndarray, float] | None:
        """The newest frame at or before ``t_s`` and its time, or None (no video yet or at all)."""
        i = self.recording.frame_index_at(t_s) if len(self.recording.frames) else -1
        if i < 0:
            return None
        return self.recording.frames[i], float(self.recording.frame_times_s[i])

    def frames_between(self, t_from_s: float, t_s: float, n: int) -> list[tuple[np.ndarray, float]]:
        """Up to ``n`` frames spread evenly over (t_from_s, t_s], newest last."""
        rec = self.recording
        if n <= 0 or not len(rec.frames):
            return []
        lo = int(np.searchsorted(rec.frame_times_s, t_from_s + 1e-9, side="right"))
        hi = rec.frame_index_at(t_s) + 1
        if hi <= lo:
            got = self.frame_at(t_s)
            return [got] if got is not None else []
        picks = np.unique(np.round(np.linspace(hi - 1, lo, min(n, hi - lo))).astype(int))
        return [(rec.frames[i], float(rec.frame_times_s[i])) for i in sorted(picks)]
