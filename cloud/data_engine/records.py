"""The instruction QA record and its answer formats: the contract of ``earshot instruct``.

This module is the single source of truth for what the data engine writes and
what the AV-LM recipe, ``earshot eval`` and :mod:`cloud.data_engine.scoring`
read. Change it only together with ``docs/data_engine.md``.

Output folder of ``earshot instruct dataset=<world dir> out=<qa dir>``
-----------------------------------------------------------------------
=========================  ==================================================
``train_av.jsonl``         QA from the joint audio-visual narration, train recordings
``train_visual.jsonl``     the same questions answered from the vision-only narration
``val_av.jsonl``           as train_av, val recordings
``val_visual.jsonl``       as train_visual, val recordings
``bench.jsonl``            held-out benchmark: test recordings only, AV gold,
                           a fixed count per category
``info.json``              counts per split x category, config, dataset path,
                           answer vocabulary, shortfalls
``narrations/<id>.json``   per recording: context graph summary, both narrations
=========================  ==================================================

One :class:`QARecord` per JSONL line (UTF-8, keys in field order).

QARecord fields
---------------
``id``            str, unique across all files: ``<recording>.w<NN>.<cat><NN>.<av|vis>``;
                  an AV record and its visual twin differ only in the suffix.
``recording_id``  str.
``category``      ``SSA`` | ``AVDN`` | ``AVSN`` | ``TR`` | ``AVH`` (:data:`CATEGORIES`).
``window_s``      ``[start, end]`` seconds on the recording clock: the audio and
                  frames the model is given; ``0 <= start < end``, at most
                  :data:`MAX_WINDOW_S` long.
``t_query_s``     when the question is asked (= window end), ``>= start``.
``question``      str (fixed templates, label names verbatim).
``answer``        the closed-form gold answer, already normalised
                  (``normalize_answer(answer, answer_type) == answer``).
``answer_type``   :data:`ANSWER_TYPES`, decides how it is scored:
                  ``label``    one name: ``timer_beep``, ``oven``, ``open_oven``
                  ``yes_no``   ``yes`` | ``no``
                  ``sequence`` names in time order: ``doorbell, walk_to_door, open_door``
                  ``dense``    AVDN: ``0s chop; 0s chopping; 4s timer_beep`` (whole
                               seconds from the window start; ``none`` if empty)
                  ``summary``  AVSN: ``kitchen; heard: timer_beep, chopping; did: chop``
                               (``none`` for an empty list)
``evidence``      ``audio`` | ``visual`` | ``audiovisual``: what a model needs to
                  answer the question correctly (judged on the AV ground truth,
                  the same for a record and its visual twin).
``narration``     ``av`` | ``visual``: which narration the answer comes from.
``meta``          dict: ``form`` (template), ``window`` (index), ``event_ids``,
                  ``environment``, ``snr_db`` (recording), ``noise``
                  (``noisy`` | ``quiet`` | ``unknown``), plus per category:
                  ``lag_s`` (TR cause/response), ``source_visible`` (SSA, AVH
                  sounds), ``offscreen``, ``probe_kind`` / ``polarity`` / ``hard``
                  (AVH), ``agrees_with_av`` (visual records).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable

__all__ = [
    "CATEGORIES",
    "ANSWER_TYPES",
    "EVIDENCE",
    "NARRATIONS",
    "MAX_WINDOW_S",
    "SPLIT_FILES",
    "INFO_FILE",
    "NARRATIONS_DIR",
    "NONE_ANSWER",
    "RecordError",
    "QARecord",
    "read_jsonl",
    "write_jsonl",
    "normalize_label",
    "normalize_answer",
    "format_dense",
    "parse_dense",
    "format_summary",
    "parse_summary",
]

CATEGORIES = ("SSA", "AVDN", "AVSN", "TR", "AVH")
ANSWER_TYPES = ("label", "yes_no", "sequence", "dense", "summary")
EVIDENCE = ("audio", "visual", "audiovisual")
NARRATIONS = ("av", "visual")
#: Longest window a record may give the model, in seconds.
MAX_WINDOW_S = 10.0
#: Output file of each split (the keys are the split names used in info.json).
SPLIT_FILES = {
    "train_av": "train_av.jsonl",
    "train_visual": "train_visual.jsonl",
    "val_av": "val_av.jsonl",
    "val_visual": "val_visual.jsonl",
    "bench": "bench.jsonl",
}
INFO_FILE = "info.json"
NARRATIONS_DIR = "narrations"
#: The word for an empty list in dense and summary answers.
NONE_ANSWER = "none"

_SLACK = 1e-6


class RecordError(ValueError):
    """An invalid record; the message starts with the offending field."""


# --- answer formats ----------------------------------------------------------


def _clean(text: str) -> str:
    """Lower-case, trim, drop surrounding quotes and a trailing full stop, collapse spaces."""
    t = " ".join(str(text).lower().split())
    t = t.strip("\"'`")
    t = t.rstrip(".!").strip()
    return t


def normalize_label(text: str) -> str:
    """One name: lower-case, spaces and hyphens -> ``_`` (``"Timer beep"`` -> ``timer_beep``)."""
    return re.sub(r"[\s\-]+", "_", _clean(text)).strip("_")


def _items(text: str, sep: str) -> list[str]:
    return [p.strip() for p in text.split(sep) if p.strip()]


def format_dense(items: Iterable[tuple[int, str]]) -> str:
    """``[(0, "chop"), (4, "timer_beep")]`` -> ``"0s chop; 4s timer_beep"`` (``none`` if empty)."""
    parts = [f"{int(t)}s {normalize_label(lbl)}" for t, lbl in items]
    return "; ".join(parts) if parts else NONE_ANSWER


_DENSE_ITEM = re.compile(r"^(\d+)\s*s\s+(.+)$")


def parse_dense(text: str) -> tuple[list[tuple[int, str]], int]:
    """Parse a dense narration; returns ``(items, n_unparseable)``.

    Items are ``(whole_second, label)``; an item that does not read as
    ``<int>s <label>`` is counted in ``n_unparseable`` (scoring treats it as a
    wrong prediction).
    """
    t = _clean(text)
    if t in ("", NONE_ANSWER):
        return [], 0
    items, bad = [], 0
    for part in _items(t, ";"):
        m = _DENSE_ITEM.match(part)
        if m:
            items.append((int(m.group(1)), normalize_label(m.group(2))))
        else:
            bad += 1
    return items, bad


def format_summary(environment: str, heard: Iterable[str], did: Iterable[str]) -> str:
    """``("kitchen", ["timer_beep"], ["open_oven"])`` -> ``"kitchen; heard: timer_beep; did: open_oven"``."""

    def lst(xs: Iterable[str]) -> str:
        xs = [normalize_label(x) for x in xs]
        return ", ".join(xs) if xs else NONE_ANSWER

    return f"{normalize_label(environment)}; heard: {lst(heard)}; did: {lst(did)}"


def parse_summary(text: str) -> dict[str, Any]:
    """Parse a summary into ``{"environment": str|None, "heard": list|None, "did": list|None}``.

    A part that is missing comes back as None (scored as wrong).
    """
    out: dict[str, Any] = {"environment": None, "heard": None, "did": None}
    parts = _items(_clean(text), ";")
    if parts and ":" not in parts[0]:
        out["environment"] = normalize_label(parts[0])
    for part in parts:
        key, sep, rest = part.partition(":")
        key = key.strip()
        if sep and key in ("heard", "did"):
            vals = [normalize_label(v) for v in _items(rest, ",")]
            out[key] = [] if vals in ([], [NONE_ANSWER]) else vals
    return out


def normalize_answer(text: str, answer_type: str) -> str:
    """The canonical form of an answer (gold answers are stored in it; scoring
    compares predictions after this).

    Raises:
        RecordError: unknown ``answer_type``.
    """
    if answer_type == "label":
        return normalize_label(text)
    if answer_type == "yes_no":
        t = _clean(text)
        first = re.split(r"[\s,;]+", t)[0] if t else ""
        return first if first in ("yes", "no") else t
    if answer_type == "sequence":
        return ", ".join(normalize_label(x) for x in _items(_clean(text), ","))
    if answer_type == "dense":
        items, bad = parse_dense(text)
        return format_dense(items) if not bad else _clean(text)
    if answer_type == "summary":
        p = parse_summary(text)
        if None in p.values():
            return _clean(text)
        return format_summary(p["environment"], p["heard"], p["did"])
    raise RecordError(f"answer_type: must be one of {ANSWER_TYPES}, got {answer_type!r}")


# --- the record --------------------------------------------------------------


def _str(d: dict, key: str) -> str:
    v = d[key]
    if not isinstance(v, str) or not v.strip():
        raise RecordError(f"{key}: expected a non-empty string, got {v!r}")
    return v


def _num(v: Any, key: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise RecordError(f"{key}: expected a finite number, got {v!r}")
    return float(v)


def _one_of(d: dict, key: str, allowed: tuple[str, ...]) -> str:
    v = d[key]
    if v not in allowed:
        raise RecordError(f"{key}: must be one of {allowed}, got {v!r}")
    return v


@dataclass
class QARecord:
    """One instruction QA item (fields: see the module docstring)."""

    id: str
    recording_id: str
    category: str
    window_s: list[float]
    t_query_s: float
    question: str
    answer: str
    answer_type: str
    evidence: str
    narration: str
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Validate every field; raises :class:`RecordError` naming the field."""
        d = self.__dict__
        for key in ("id", "recording_id", "question"):
            _str(d, key)
        _one_of(d, "category", CATEGORIES)
        _one_of(d, "answer_type", ANSWER_TYPES)
        _one_of(d, "evidence", EVIDENCE)
        _one_of(d, "narration", NARRATIONS)
        w = self.window_s
        if not isinstance(w, (list, tuple)) or len(w) != 2:
            raise RecordError(f"window_s: expected [start, end], got {w!r}")
        start, end = _num(w[0], "window_s[0]"), _num(w[1], "window_s[1]")
        if not 0.0 <= start < end:
            raise RecordError(f"window_s: expected 0 <= start < end, got {list(w)}")
        if end - start > MAX_WINDOW_S + _SLACK:
            raise RecordError(f"window_s: {end - start:g} s is longer than {MAX_WINDOW_S:g} s")
        self.window_s = [start, end]
        self.t_query_s = _num(self.t_query_s, "t_query_s")
        if self.t_query_s < start - _SLACK:
            raise RecordError(f"t_query_s: {self.t_query_s} is before the window start {start}")
        if not isinstance(self.answer, str) or not self.answer.strip():
            raise RecordError(f"answer: expected a non-empty string, got {self.answer!r}")
        canon = normalize_answer(self.answer, self.answer_type)
        if canon != self.answer:
            raise RecordError(f"answer: {self.answer!r} is not normalised for {self.answer_type} (expected {canon!r})")
        if not isinstance(self.meta, dict) or not all(isinstance(k, str) for k in self.meta):
            raise RecordError(f"meta: expected an object with string keys, got {self.meta!r}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, keys in field order (so files are byte-reproducible)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Any) -> "QARecord":
        """Build and validate; unknown or missing keys raise :class:`RecordError` naming them."""
        if not isinstance(d, dict):
            raise RecordError(f"record: expected an object, got {type(d).__name__}")
        names = [f.name for f in fields(cls)]
        extra = sorted(set(d) - set(names))
        if extra:
            raise RecordError(f"{extra[0]}: unknown field (fields: {', '.join(names)})")
        missing = [n for n in names if n not in d]
        if missing:
            raise RecordError(f"{missing[0]}: required field is missing")
        return cls(**{n: d[n] for n in names})


def write_jsonl(path: str | Path, records: Iterable[QARecord]) -> int:
    """Write one record per line (UTF-8, ``\\n``); returns the count."""
    n = 0
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for r in records:
            f.write(json.dumps(r.to_dict(), ensure_ascii=False) + "\n")
            n += 1
    return n


def read_jsonl(path: str | Path) -> list[QARecord]:
    """Read and validate a JSONL file of records.

    Raises:
        RecordError: ``<path>:<line>: <field>: <problem>`` for the first bad line,
            or a duplicate id.
        FileNotFoundError: no such file.
    """
    out, seen = [], {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = QARecord.from_dict(json.loads(line))
            except json.JSONDecodeError as exc:
                raise RecordError(f"{path}:{n}: not valid JSON ({exc})") from exc
            except RecordError as exc:
                raise RecordError(f"{path}:{n}: {exc}") from exc
            if rec.id in seen:
                raise RecordError(f"{path}:{n}: id: duplicate {rec.id!r} (also line {seen[rec.id]})")
            seen[rec.id] = n
            out.append(rec)
    return out
