"""The edge event log: one JSON object per line (JSONL), schema v1 in docs/edge.md.

Both edge runtimes (this Python one and ``edge/native``) write the same lines,
so parity tests can diff them. Every line starts with the common keys, in
this order::

    {"v": 1, "seq": n, "t_s": <recording clock of the step>, "kind": ..., "energy_mj": <cumulative>, ...}

followed by the keys of its kind (`KINDS`). Floats are rounded to 6
significant digits; the file is flushed after every line so a crash loses at
most the line being written, and ``tail -f`` shows the run live.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import IO, Any, Iterator

__all__ = ["LOG_VERSION", "KINDS", "EventLog", "read_events", "round_floats"]

LOG_VERSION = 1
#: kind -> its keys after the common part, in order (docs/edge.md describes each).
KINDS: dict[str, tuple[str, ...]] = {
    "start": ("recording_id", "policy", "policy_params", "device", "network", "trigger_program",
              "student_program", "endpoint", "hop_s"),
    "trigger": ("label", "score"),
    "early": ("label", "score"),
    "camera": ("on",),
    "local_inference": ("top", "confidence", "latency_ms"),
    "offload": ("request_id", "offload", "frames", "jpeg_quality", "audio_s", "bytes", "query_id"),
    "result": ("request_id", "latency_ms", "answer", "top", "model_id", "stages_ms"),
    "fallback": ("request_id", "reason", "query_id"),
    "answer": ("query_id", "text", "answer", "source", "latency_ms", "correct"),
    # The run's total energy is the common energy_mj key of the end line.
    "end": ("steps", "offloads", "frames_captured", "bytes_sent", "queries", "answers_correct"),
}


def round_floats(x: Any, digits: int = 6) -> Any:
    """``x`` with every float rounded to ``digits`` significant digits (recursively)."""
    if isinstance(x, float):
        if not math.isfinite(x) or x == 0.0:
            return x
        return float(f"{x:.{digits}g}")
    if isinstance(x, dict):
        return {k: round_floats(v, digits) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [round_floats(v, digits) for v in x]
    return x


class EventLog:
    """Writes event lines to ``path`` (or any text stream); also keeps them in ``events``.

    Args:
        path: the JSONL file (parent folders are created), or None to keep
            events in memory only.
        keep: also keep every event in ``self.events`` (tests, the summary).
    """

    def __init__(self, path: str | Path | None, *, keep: bool = True) -> None:
        self.path = Path(path) if path is not None else None
        self._f: IO[str] | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = open(self.path, "w", encoding="utf-8")
        self.keep = keep
        self.events: list[dict[str, Any]] = []
        self._seq = 0

    def write(self, kind: str, t_s: float, energy_mj: float, **fields: Any) -> dict[str, Any]:
        """Append one event; ``fields`` must be exactly the keys of ``kind`` (raises ValueError)."""
        keys = KINDS.get(kind)
        if keys is None:
            raise ValueError(f"unknown event kind {kind!r}; kinds are {sorted(KINDS)}")
        if set(fields) != set(keys):
            raise ValueError(f"{kind}: expected keys {keys}, got {sorted(fields)}")
        event = {"v": LOG_VERSION, "seq": self._seq, "t_s": float(t_s), "kind": kind, "energy_mj": float(energy_mj)}
        event.update((k, fields[k]) for k in keys)
        event = round_floats(event)
        self._seq += 1
        if self._f is not None:
            self._f.write(json.dumps(event, ensure_ascii=False) + "\n")
            self._f.flush()
        if self.keep:
            self.events.append(event)
        return event

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_events(path: str | Path) -> Iterator[dict[str, Any]]:
    """The events of a log file, in order (raises ValueError naming a bad line)."""
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: not JSON ({exc})") from None
            if event.get("v") != LOG_VERSION or event.get("kind") not in KINDS:
                raise ValueError(f"{path}:{n}: not an event log v{LOG_VERSION} line")
            yield event
