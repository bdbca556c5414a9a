"""Earshot wire protocol v1: typed messages, bounded msgpack encoding and decoding.

The normative spec is ``docs/protocol.md``; this module is its reference
implementation, and ``tests/shared/test_protocol.py`` keeps the two in step
(the doc's hex examples are decoded and re-encoded byte for byte, and its
limits table is compared with the constants). The limits, error codes and
field checks live in ``shared/protocol_fields.py`` and are re-exported here;
the JPEG header walk is ``shared/jpeg_header.py``.

Transport in one paragraph: the edge's ZeroMQ DEALER sends every message as
exactly ONE frame (no empty delimiter frame); the server's ROUTER receives
``[routing_id, payload]`` and replies ``[routing_id, payload]``; the DEALER
receives one frame. The payload is one msgpack map with str keys, ``v``,
``kind`` and ``id`` first.

API:
    encode(msg) -> bytes                    canonical bytes of a message
    decode(data, accept=None) -> Message    any bytes -> message, or ProtocolError
    peek_id(data) -> int | None             best-effort id of a message that failed
    pcm_to_bytes / pcm_from_bytes           int16 LE PCM <-> numpy, no copies when possible

Messages validate themselves on construction, so ``encode`` can only emit what
``decode`` accepts. Everything here raises :class:`ProtocolError` (with an
:class:`ErrorCode` in ``.code``) and nothing else.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Collection, Union

import msgpack
import numpy as np

from shared.jpeg_header import JpegHeaderError, jpeg_size
from shared.msgpack_scan import ScanError, is_str_head, scan
from shared.protocol_fields import (  # noqa: F401  (re-exported: callers import from shared.protocol)
    PROTOCOL_VERSION, MAX_MESSAGE_BYTES, ZMQ_MAXMSGSIZE, MAX_DEPTH, MAX_OBJECTS, MAX_ARRAY_LEN, MAX_MAP_LEN,
    MAX_STR_BYTES, MAX_BIN_BYTES, MAX_FRAMES, MAX_JPEG_BYTES, MAX_JPEG_PIXELS, MAX_AUDIO_S, MAX_TIME_S,
    AUDIO_RATES_HZ, MAX_LABELS, MAX_LABEL_BYTES, MAX_QUERY_BYTES, MAX_ANSWER_BYTES, MAX_ERROR_TEXT_BYTES,
    MAX_MODEL_ID_BYTES, MAX_DEADLINE_MS, MAX_RETRY_AFTER_MS, MAX_TIMING_STAGES, MAX_BATCH_SIZE, UINT64_MAX,
    CLIENT_SOCKET_OPTIONS, SERVER_SOCKET_OPTIONS, ErrorCode, ProtocolError, truncate_utf8, pcm_to_bytes,
    pcm_from_bytes, _CODES, _bad, _large, _wire_type, _is_int, _int, _float, _text, _binary, _bool, _opt,
    _map, _scores, _uints, _set,
)

__all__ = [
    "PROTOCOL_VERSION", "ErrorCode", "ProtocolError",
    "Frame", "AudioWindow", "InferRequest", "Result", "ResultEvidence", "EvidenceEvent", "EVIDENCE_MODALITIES",
    "ErrorReply",
    "Ping", "Pong", "StatsRequest", "Stats", "Hello", "Capabilities", "ModelInput", "AnswerFormat", "Message",
    "KINDS", "REQUEST_KINDS", "REPLY_KINDS",
    "encode", "decode", "peek_id", "pcm_to_bytes", "pcm_from_bytes", "truncate_utf8",
    "CLIENT_SOCKET_OPTIONS", "SERVER_SOCKET_OPTIONS",
]

# -------------------------------------------------------------- messages --
# Field order in each class IS the wire order (canonical encoding). A field
# with a default is optional on the wire (absent == nil); the rest are required.

def _short_bin(value: bytes | memoryview) -> str:
    return f"<{len(value)} bytes>"


def _time(value: Any, path: str) -> float:
    """A recording-clock time: finite, in [0, MAX_TIME_S] seconds."""
    return _float(value, path, 0.0, MAX_TIME_S)


@dataclass(frozen=True, kw_only=True)
class Frame:
    """One video frame: ``t_s`` (seconds, recording clock, 0 .. MAX_TIME_S) and
    ``jpeg`` (at most MAX_JPEG_BYTES: FF D8, then a marker chain that reaches
    a frame header of at most MAX_JPEG_PIXELS pixels; ``shared.jpeg_header``)."""

    t_s: float
    jpeg: bytes | memoryview

    def __post_init__(self) -> None:
        _set(self, "t_s", _time(self.t_s, "t_s"))
        jpeg = _binary(self.jpeg, "jpeg", MAX_JPEG_BYTES)
        try:
            width, height = jpeg_size(jpeg)
        except JpegHeaderError as exc:
            raise _bad("jpeg", str(exc)) from None
        if width * height > MAX_JPEG_PIXELS:
            raise _large("jpeg", f"{width}x{height} pixels exceeds the limit of {MAX_JPEG_PIXELS}")
        _set(self, "jpeg", jpeg)

    def __repr__(self) -> str:
        return f"Frame(t_s={self.t_s!r}, jpeg={_short_bin(self.jpeg)})"


@dataclass(frozen=True, kw_only=True)
class AudioWindow:
    """Mono int16 little-endian PCM: ``start_s`` (seconds, recording clock,
    0 .. MAX_TIME_S) of the first sample, ``rate_hz`` from AUDIO_RATES_HZ,
    ``pcm`` of 1 .. rate_hz * MAX_AUDIO_S samples (2 bytes each)."""

    start_s: float
    rate_hz: int
    pcm: bytes | memoryview  # a memoryview when built from a numpy array (no copy)

    def __post_init__(self) -> None:
        _set(self, "start_s", _time(self.start_s, "start_s"))
        rate = _int(self.rate_hz, "rate_hz", 0, UINT64_MAX)
        if rate not in AUDIO_RATES_HZ:
            raise _bad("rate_hz", f"must be one of {AUDIO_RATES_HZ}, got {rate}")
        _set(self, "rate_hz", rate)
        pcm = _binary(self.pcm, "pcm", MAX_BIN_BYTES)
        if len(pcm) % 2 or not pcm:
            raise _bad("pcm", f"need a non-zero even byte count (int16 samples), got {len(pcm)}")
        if len(pcm) // 2 > rate * MAX_AUDIO_S:
            raise _large("pcm", f"{len(pcm) // 2 / rate:.3f} s of audio exceeds {MAX_AUDIO_S} s")
        _set(self, "pcm", pcm)

    @classmethod
    def from_samples(cls, samples: np.ndarray, *, start_s: float, rate_hz: int) -> AudioWindow:
        """Wrap a 1-D int16 array without copying it (see :func:`pcm_to_bytes`)."""
        return cls(start_s=start_s, rate_hz=rate_hz, pcm=pcm_to_bytes(samples))

    def samples(self) -> np.ndarray:
        """The PCM as a zero-copy int16 array, shape (n_samples,)."""
        return pcm_from_bytes(self.pcm)

    @property
    def duration_s(self) -> float:
        return len(self.pcm) // 2 / self.rate_hz

    def __repr__(self) -> str:
        return (f"AudioWindow(start_s={self.start_s!r}, rate_hz={self.rate_hz!r}, "
                f"pcm={_short_bin(self.pcm)})")


@dataclass(frozen=True, kw_only=True)
class InferRequest:
    """``infer``, edge -> server: answer/tag this moment before ``deadline_ms``.

    The server's deadline is its receive time + ``deadline_ms`` (a relative
    budget, so edge and server clocks never need to agree). Times ``t_s``,
    ``start_s`` and ``query_t_s`` share the edge's recording clock. ``frames``
    are in non-decreasing ``t_s`` order; at least one of ``frames`` / ``audio``
    is present. ``query`` and ``query_t_s`` are both set or both None.
    """

    KIND: ClassVar[str] = "infer"
    id: int
    deadline_ms: int
    trigger_label: str
    trigger_score: float
    student_scores: dict[str, float]
    student_confidence: float
    query: str | None = None
    query_t_s: float | None = None
    model: str | None = None
    audio: AudioWindow | None = None
    frames: tuple[Frame, ...]

    def __post_init__(self) -> None:
        _set(self, "id", _int(self.id, "id", 0, UINT64_MAX))
        _set(self, "deadline_ms", _int(self.deadline_ms, "deadline_ms", 1, MAX_DEADLINE_MS))
        _set(self, "trigger_label", _text(self.trigger_label, "trigger_label", MAX_LABEL_BYTES, 1))
        _set(self, "trigger_score", _float(self.trigger_score, "trigger_score", 0.0, 1.0))
        _set(self, "student_scores", _scores(self.student_scores, "student_scores"))
        _set(self, "student_confidence", _float(self.student_confidence, "student_confidence", 0.0, 1.0))
        _set(self, "query", _opt(_text, self.query, "query", MAX_QUERY_BYTES, 1))
        _set(self, "query_t_s", _opt(_time, self.query_t_s, "query_t_s"))
        if (self.query is None) != (self.query_t_s is None):
            raise _bad("query_t_s", "query and query_t_s must be both set or both nil")
        _set(self, "model", _opt(_text, self.model, "model", MAX_MODEL_ID_BYTES, 1))
        if self.audio is not None and not isinstance(self.audio, AudioWindow):
            raise _bad("audio", f"expected AudioWindow or None, got {type(self.audio).__name__}")
        if not isinstance(self.frames, (list, tuple)):
            raise _bad("frames", f"expected array, got {_wire_type(self.frames)}")
        if len(self.frames) > MAX_FRAMES:
            raise _large("frames", f"{len(self.frames)} frames exceeds the limit of {MAX_FRAMES}")
        for i, frame in enumerate(self.frames):
            if not isinstance(frame, Frame):
                raise _bad(f"frames[{i}]", f"expected Frame, got {type(frame).__name__}")
            if i and frame.t_s < self.frames[i - 1].t_s:
                raise _bad(f"frames[{i}].t_s", "frames must be in non-decreasing t_s order")
        _set(self, "frames", tuple(self.frames))
        if not self.frames and self.audio is None:
            raise _bad("frames", "no frames and no audio: a request needs at least one modality")


#: ``evidence.events[].modality``: a sound heard, an action the wearer did, an object state seen.
EVIDENCE_MODALITIES = ("audio", "visual", "state")
#: Field metadata of an optional field appended to a message in revision 1.x: absent from
#: the wire when nil, so the bytes of a message that does not use it stay as they were.
_OMIT_NIL = {"omit_nil": True}


@dataclass(frozen=True, kw_only=True)
class EvidenceEvent:
    """One perceived event in ``result.evidence``: ``label`` (a taxonomy name), ``modality``
    (EVIDENCE_MODALITIES), ``onset_s`` / ``offset_s`` (seconds relative to the request's
    end, the question time: <= 0 is before it), ``p`` (the model's peak probability, 0 .. 1),
    ``seen_too`` (a sound whose visual counterpart was seen at the same time)."""

    label: str
    modality: str
    onset_s: float
    offset_s: float
    p: float
    seen_too: bool = False

    def __post_init__(self) -> None:
        _set(self, "label", _text(self.label, "label", MAX_LABEL_BYTES, 1))
        if self.modality not in EVIDENCE_MODALITIES:
            raise _bad("modality", f"must be one of {EVIDENCE_MODALITIES}, got {self.modality!r:.40}")
        _set(self, "onset_s", _float(self.onset_s, "onset_s", -MAX_TIME_S, MAX_TIME_S))
        _set(self, "offset_s", _float(self.offset_s, "offset_s", self.onset_s, MAX_TIME_S))
        _set(self, "p", _float(self.p, "p", 0.0, 1.0))
        _set(self, "seen_too", _bool(self.seen_too, "seen_too"))


@dataclass(frozen=True, kw_only=True)
class ResultEvidence:
    """``result.evidence``: what the model perceived in the window, the structured basis of
    ``result.sentence``. ``trust_audio`` / ``trust_visual``: the model's reliability gate per
    modality (0 .. 1). ``window_s``: seconds of input the events can come from. ``events``:
    by onset (:class:`EvidenceEvent`, at most MAX_ARRAY_LEN)."""

    trust_audio: float
    trust_visual: float
    window_s: float
    events: tuple[EvidenceEvent, ...]

    def __post_init__(self) -> None:
        _set(self, "trust_audio", _float(self.trust_audio, "trust_audio", 0.0, 1.0))
        _set(self, "trust_visual", _float(self.trust_visual, "trust_visual", 0.0, 1.0))
        _set(self, "window_s", _float(self.window_s, "window_s", 0.0, MAX_TIME_S))
        if not isinstance(self.events, (list, tuple)):
            raise _bad("events", f"expected array, got {_wire_type(self.events)}")
        if len(self.events) > MAX_ARRAY_LEN:
            raise _large("events", f"{len(self.events)} events exceeds the limit of {MAX_ARRAY_LEN}")
        for i, event in enumerate(self.events):
            if not isinstance(event, EvidenceEvent):
                raise _bad(f"events[{i}]", f"expected EvidenceEvent, got {type(event).__name__}")
        _set(self, "events", tuple(self.events))


@dataclass(frozen=True, kw_only=True)
class Result:
    """``result``, server -> edge: the answer to ``infer`` ``id``.

    ``tags``: label -> probability in [0, 1]. ``timing_ms``: stage -> ms >= 0,
    must include ``total_ms`` (receive to reply); conventional stages are
    ``queue_ms``, ``batch_ms``, ``model_ms``. ``batch_size``: requests in the
    model batch that served this one. Revision 1.2 (optional, absent when nil):
    ``sentence``, a one-sentence answer to ``infer.query`` written by a language
    model from ``evidence`` (:class:`ResultEvidence`), what the model perceived.
    """

    KIND: ClassVar[str] = "result"
    id: int
    model_id: str
    batch_size: int
    answer: str
    tags: dict[str, float]
    timing_ms: dict[str, float]
    sentence: str | None = dataclasses.field(default=None, metadata=_OMIT_NIL)
    evidence: ResultEvidence | None = dataclasses.field(default=None, metadata=_OMIT_NIL)

    def __post_init__(self) -> None:
        _set(self, "id", _int(self.id, "id", 0, UINT64_MAX))
        _set(self, "model_id", _text(self.model_id, "model_id", MAX_MODEL_ID_BYTES, 1))
        _set(self, "batch_size", _int(self.batch_size, "batch_size", 1, MAX_BATCH_SIZE))
        _set(self, "answer", _text(self.answer, "answer", MAX_ANSWER_BYTES))
        _set(self, "tags", _scores(self.tags, "tags"))
        timing = _scores(self.timing_ms, "timing_ms", MAX_TIMING_STAGES, math.inf)
        if "total_ms" not in timing:
            raise _bad("timing_ms", "must contain 'total_ms'")
        _set(self, "timing_ms", timing)
        _set(self, "sentence", _opt(_text, self.sentence, "sentence", MAX_ANSWER_BYTES))
        if self.evidence is not None and not isinstance(self.evidence, ResultEvidence):
            raise _bad("evidence", f"expected ResultEvidence or None, got {type(self.evidence).__name__}")


@dataclass(frozen=True, kw_only=True)
class ErrorReply:
    """``error``, server -> edge. ``id`` is None when the request's id could
    not be read. ``retry_after_ms`` is a hint sent with ``busy`` /
    ``shutting_down``. This layout is frozen across protocol versions so any
    peer can read an ``unsupported_version`` reply."""

    KIND: ClassVar[str] = "error"
    id: int | None
    code: ErrorCode
    message: str
    retry_after_ms: int | None = None

    def __post_init__(self) -> None:
        _set(self, "id", _opt(_int, self.id, "id", 0, UINT64_MAX))
        if not isinstance(self.code, str):
            raise _bad("code", f"expected str, got {_wire_type(self.code)}")
        try:
            _set(self, "code", ErrorCode(self.code))
        except ValueError:
            raise _bad("code", f"unknown error code {self.code!r:.40}") from None
        _set(self, "message", _text(self.message, "message", MAX_ERROR_TEXT_BYTES))
        _set(self, "retry_after_ms",
             _opt(_int, self.retry_after_ms, "retry_after_ms", 0, MAX_RETRY_AFTER_MS))

    @classmethod
    def from_error(cls, exc: ProtocolError, request_id: int | None = None,
                   retry_after_ms: int | None = None) -> ErrorReply:
        """The reply for ``exc``; its text is cut to MAX_ERROR_TEXT_BYTES."""
        return cls(id=request_id, code=exc.code, retry_after_ms=retry_after_ms,
                   message=truncate_utf8(str(exc), MAX_ERROR_TEXT_BYTES))

    @classmethod
    def for_bad_message(cls, data: bytes, exc: ProtocolError) -> ErrorReply:
        """The reply to raw ``data`` that ``decode`` rejected with ``exc``:
        carries the request id when :func:`peek_id` can still find it."""
        return cls.from_error(exc, peek_id(data))


@dataclass(frozen=True, kw_only=True)
class Ping:
    """``ping``, edge -> server: liveness and RTT probe. ``t_client_s`` is any
    client clock reading (seconds, >= 0), echoed verbatim in the pong."""

    KIND: ClassVar[str] = "ping"
    id: int
    t_client_s: float

    def __post_init__(self) -> None:
        _set(self, "id", _int(self.id, "id", 0, UINT64_MAX))
        _set(self, "t_client_s", _float(self.t_client_s, "t_client_s"))


@dataclass(frozen=True, kw_only=True)
class Pong:
    """``pong``, server -> edge: reply to ping ``id``. ``ready`` is False while
    the model loads or the server drains; ``model_id`` is None before a model
    is loaded; ``queue_depth`` / ``queue_capacity`` count infer requests."""

    KIND: ClassVar[str] = "pong"
    id: int
    t_client_s: float
    ready: bool
    model_id: str | None = None
    queue_depth: int
    queue_capacity: int

    def __post_init__(self) -> None:
        _set(self, "id", _int(self.id, "id", 0, UINT64_MAX))
        _set(self, "t_client_s", _float(self.t_client_s, "t_client_s"))
        _set(self, "ready", _bool(self.ready, "ready"))
        _set(self, "model_id", _opt(_text, self.model_id, "model_id", MAX_MODEL_ID_BYTES, 1))
        _set(self, "queue_depth", _int(self.queue_depth, "queue_depth", 0, UINT64_MAX))
        _set(self, "queue_capacity", _int(self.queue_capacity, "queue_capacity", 0, UINT64_MAX))

    @classmethod
    def reply_to(cls, ping: Ping, *, ready: bool, queue_depth: int, queue_capacity: int,
                 model_id: str | None = None) -> Pong:
        return cls(id=ping.id, t_client_s=ping.t_client_s, ready=ready, model_id=model_id,
                   queue_depth=queue_depth, queue_capacity=queue_capacity)


@dataclass(frozen=True, kw_only=True)
class StatsRequest:
    """``stats_request``, edge/ops -> server: ask for a :class:`Stats` snapshot."""

    KIND: ClassVar[str] = "stats_request"
    id: int

    def __post_init__(self) -> None:
        _set(self, "id", _int(self.id, "id", 0, UINT64_MAX))


@dataclass(frozen=True, kw_only=True)
class Stats:
    """``stats``, server -> edge: counters since server start.

    ``errors_by_code``: ErrorCode value -> errors sent (absent code = 0).
    ``batch_size_counts[i]``: model batches run with i + 1 requests.
    ``latency_p*_ms``: receive-to-reply percentiles over the last
    ``latency_samples`` replies; all three None (no samples) or all set with
    p50 <= p95 <= p99.
    """

    KIND: ClassVar[str] = "stats"
    id: int
    uptime_s: float
    requests_total: int
    results_total: int
    dropped_total: int
    errors_by_code: dict[str, int]
    queue_depth: int
    queue_capacity: int
    batch_size_counts: tuple[int, ...]
    latency_samples: int
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    latency_p99_ms: float | None = None

    def __post_init__(self) -> None:
        _set(self, "id", _int(self.id, "id", 0, UINT64_MAX))
        _set(self, "uptime_s", _float(self.uptime_s, "uptime_s"))
        for name in ("requests_total", "results_total", "dropped_total", "queue_depth",
                     "queue_capacity", "latency_samples"):
            _set(self, name, _int(getattr(self, name), name, 0, UINT64_MAX))
        errors = {}
        for code, count in _map(self.errors_by_code, "errors_by_code", len(ErrorCode)).items():
            path = f"errors_by_code[{code!r:.40}]"
            if not isinstance(code, str) or code not in _CODES:
                raise _bad(path, "not an error code")
            errors[str(code)] = _int(count, path, 0, UINT64_MAX)
        _set(self, "errors_by_code", errors)
        _set(self, "batch_size_counts", _uints(self.batch_size_counts, "batch_size_counts", MAX_BATCH_SIZE))
        names = ("latency_p50_ms", "latency_p95_ms", "latency_p99_ms")
        values = [_opt(_float, getattr(self, n), n) for n in names]
        for name, value in zip(names, values):
            _set(self, name, value)
        if None in values and values != [None] * 3:
            raise _bad(names[values.index(None)], "latency percentiles must be all set or all nil")
        for i in (1, 2):
            if values[0] is not None and values[i] < values[i - 1]:
                raise _bad(names[i], f"must be >= {names[i - 1]} (p50 <= p95 <= p99)")


@dataclass(frozen=True, kw_only=True)
class Hello:
    """``hello``, client -> server: ask what the server and its model take
    (answered by :class:`Capabilities`). ``client`` is an optional name and
    version for the server's log, e.g. ``"earshot-edge/1.0"``."""

    KIND: ClassVar[str] = "hello"
    id: int
    client: str | None = None

    def __post_init__(self) -> None:
        _set(self, "id", _int(self.id, "id", 0, UINT64_MAX))
        _set(self, "client", _opt(_text, self.client, "client", MAX_MODEL_ID_BYTES, 1))


@dataclass(frozen=True, kw_only=True)
class ModelInput:
    """What the model reads of an ``infer`` (docs/protocol.md 6.9).

    The window ends at the request's latest time (audio end, last frame,
    ``query_t_s``). ``audio_s``: seconds of audio the model reads, ending
    there (earlier samples are unused, missing ones are silence).
    ``sample_rate_hz``: the model's rate (other AUDIO_RATES_HZ are resampled).
    ``frame_hz`` and ``frames``: one frame slot every ``1 / frame_hz`` s
    counted back from the end, ``frames`` slots; each takes the newest frame
    at or before it (frames older than ``frames / frame_hz`` s are unused).
    ``frame_size_px``: frames are centre-cropped to a square and resized to it.
    """

    audio_s: float
    sample_rate_hz: int
    frame_hz: float
    frames: int
    frame_size_px: int

    def __post_init__(self) -> None:
        _set(self, "audio_s", _float(self.audio_s, "audio_s", 0.0, MAX_AUDIO_S))
        rate = _int(self.sample_rate_hz, "sample_rate_hz", 0, UINT64_MAX)
        if rate not in AUDIO_RATES_HZ:
            raise _bad("sample_rate_hz", f"must be one of {AUDIO_RATES_HZ}, got {rate}")
        _set(self, "sample_rate_hz", rate)
        _set(self, "frame_hz", _float(self.frame_hz, "frame_hz", 0.0, 1000.0))
        _set(self, "frames", _int(self.frames, "frames", 0, MAX_FRAMES))
        _set(self, "frame_size_px", _int(self.frame_size_px, "frame_size_px", 1, 65535))


@dataclass(frozen=True, kw_only=True)
class AnswerFormat:
    """One form ``result.answer`` can take: ``kind`` (a name such as
    ``summary`` or ``yes_no``), ``when`` (which requests get it), ``format``
    (its grammar) and an ``example``."""

    kind: str
    when: str
    format: str
    example: str

    def __post_init__(self) -> None:
        _set(self, "kind", _text(self.kind, "kind", MAX_LABEL_BYTES, 1))
        for name in ("when", "format", "example"):
            _set(self, name, _text(getattr(self, name), name, MAX_QUERY_BYTES))


def _names(value: Any, path: str) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)):
        raise _bad(path, f"expected array, got {_wire_type(value)}")
    if len(value) > MAX_LABELS:
        raise _large(path, f"{len(value)} entries exceeds the limit of {MAX_LABELS}")
    return tuple(_text(x, f"{path}[{i}]", MAX_LABEL_BYTES, 1) for i, x in enumerate(value))


@dataclass(frozen=True, kw_only=True)
class Capabilities:
    """``capabilities``, server -> client: the reply to :class:`Hello`.

    ``server``: software name and version. ``versions``: protocol versions
    spoken. ``kinds``: request kinds taken. ``ready`` as in :class:`Pong`.
    ``model_id`` and ``input`` (:class:`ModelInput`) are None until a model
    is loaded. ``labels``: taxonomy group -> label names the model knows
    (``trigger_label`` and ``student_scores`` keys; other labels are
    accepted and ignored). ``tags``: the labels of ``result.tags``.
    ``answers``: the forms ``result.answer`` takes (:class:`AnswerFormat`).
    """

    KIND: ClassVar[str] = "capabilities"
    id: int
    server: str
    versions: tuple[int, ...]
    kinds: tuple[str, ...]
    ready: bool
    model_id: str | None = None
    input: ModelInput | None = None
    labels: dict[str, tuple[str, ...]]
    tags: tuple[str, ...]
    answers: tuple[AnswerFormat, ...]

    def __post_init__(self) -> None:
        _set(self, "id", _int(self.id, "id", 0, UINT64_MAX))
        _set(self, "server", _text(self.server, "server", MAX_MODEL_ID_BYTES, 1))
        _set(self, "versions", _uints(self.versions, "versions", 64))
        _set(self, "kinds", _names(self.kinds, "kinds"))
        _set(self, "ready", _bool(self.ready, "ready"))
        _set(self, "model_id", _opt(_text, self.model_id, "model_id", MAX_MODEL_ID_BYTES, 1))
        if self.input is not None and not isinstance(self.input, ModelInput):
            raise _bad("input", f"expected ModelInput or None, got {type(self.input).__name__}")
        groups = {}
        for group, members in _map(self.labels, "labels", 64).items():
            group = _text(group, f"labels[{group!r:.40}]", MAX_LABEL_BYTES, 1)
            groups[group] = _names(members, f"labels[{group!r:.40}]")
        _set(self, "labels", groups)
        _set(self, "tags", _names(self.tags, "tags"))
        if not isinstance(self.answers, (list, tuple)):
            raise _bad("answers", f"expected array, got {_wire_type(self.answers)}")
        if len(self.answers) > 64:
            raise _large("answers", f"{len(self.answers)} entries exceeds the limit of 64")
        for i, fmt in enumerate(self.answers):
            if not isinstance(fmt, AnswerFormat):
                raise _bad(f"answers[{i}]", f"expected AnswerFormat, got {type(fmt).__name__}")
        _set(self, "answers", tuple(self.answers))


Message = Union[InferRequest, Result, ErrorReply, Ping, Pong, StatsRequest, Stats, Hello, Capabilities]
KINDS: dict[str, type] = {cls.KIND: cls for cls in Message.__args__}
REQUEST_KINDS = frozenset({"infer", "ping", "stats_request", "hello"})
REPLY_KINDS = frozenset({"result", "error", "pong", "stats", "capabilities"})


# -------------------------------------------------------------- encoding --

def _to_wire(value: Any) -> Any:
    if isinstance(value, (Frame, AudioWindow, ModelInput, AnswerFormat, EvidenceEvent, ResultEvidence)):
        return {f.name: _to_wire(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_to_wire(v) for v in value]
    if isinstance(value, dict):
        # Data-keyed maps (labels, stages, codes) sort by key so bytes are reproducible;
        # str order is code point order, which equals UTF-8 byte order.
        return {str(k): _to_wire(value[k]) for k in sorted(value)}
    if isinstance(value, ErrorCode):
        return value.value
    return value


def encode(msg: Message) -> bytes:
    """The canonical msgpack bytes of ``msg`` (docs/protocol.md section 3).

    Raises ProtocolError: bad_request if ``msg`` is not a message or holds an
    unpackable value, too_large if the bytes exceed MAX_MESSAGE_BYTES.
    """
    if type(msg) not in KINDS.values():
        raise _bad("", f"not a protocol message: {type(msg).__name__}")
    wire = {"v": PROTOCOL_VERSION, "kind": msg.KIND}
    for f in dataclasses.fields(msg):
        value = getattr(msg, f.name)
        if value is None and f.metadata.get("omit_nil"):
            continue
        wire[f.name] = _to_wire(value)
    try:
        data = msgpack.packb(wire, use_bin_type=True, use_single_float=False, datetime=False)
    except (TypeError, ValueError, OverflowError) as exc:
        raise _bad(msg.KIND, f"cannot encode: {exc}") from None
    if len(data) > MAX_MESSAGE_BYTES:
        raise _large(msg.KIND, f"encoded size {len(data)} bytes exceeds MAX_MESSAGE_BYTES={MAX_MESSAGE_BYTES}")
    return data


# -------------------------------------------------- bounded pre-scan ------
# shared/msgpack_scan.py walks the headers before msgpack.unpackb runs (which
# then applies the same limits as a second line of defence).

_LIMIT = {"bin": MAX_BIN_BYTES, "str": MAX_STR_BYTES, "array": MAX_ARRAY_LEN, "map": MAX_MAP_LEN}


def _skip(buf: memoryview, pos: int, max_objects: int) -> tuple[int, int]:
    """Check one msgpack value at ``buf[pos]``; return (end offset, values seen)."""
    try:
        return scan(buf, pos, max_objects, limits=_LIMIT, max_depth=MAX_DEPTH)
    except ScanError as exc:
        raise (_large if exc.too_large else _bad)("", str(exc)) from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = {}
    for key, value in pairs:
        if key in out:
            raise _bad("", f"duplicate map key {key!r:.40}")
        out[key] = value
    return out


_UNPACK_LIMITS = dict(
    raw=False, strict_map_key=True, use_list=True, object_pairs_hook=_no_duplicates,
    max_str_len=MAX_STR_BYTES, max_bin_len=MAX_BIN_BYTES, max_array_len=MAX_ARRAY_LEN,
    max_map_len=MAX_MAP_LEN, max_ext_len=0,
)
_MALFORMED = (msgpack.exceptions.UnpackException, ValueError, TypeError, OverflowError,
              RecursionError)


# -------------------------------------------------------------- decoding --

def decode(data: bytes, *, accept: Collection[str] | None = None) -> Message:
    """Any bytes-like ``data`` -> a validated message.

    ``accept``: kinds this receiver takes (e.g. REQUEST_KINDS on a server);
    another known kind is bad_request. Unknown keys are ignored (section 4).
    Raises ProtocolError and nothing else; checks run in the documented order:
    size (too_large) -> msgpack structure and limits (bad_request / too_large)
    -> v (unsupported_version) -> kind (unsupported_kind) -> fields.
    """
    try:
        return _decode(data, accept)
    except ProtocolError:
        raise
    except _MALFORMED as exc:
        # The pre-scan catches every defect we know of first, with a message in msgpack's
        # terms; this is the second line, and its text must not leak host-language details.
        raise _bad("", "malformed msgpack") from exc
    except Exception as exc:  # a decoder bug must not take a server down; 'internal' says whose fault
        raise ProtocolError(ErrorCode.INTERNAL, "decoder failure") from exc


def _decode(data: bytes, accept: Collection[str] | None) -> Message:
    try:
        buf = memoryview(data).cast("B")
    except TypeError:
        raise _bad("", f"expected bytes, got {type(data).__name__}") from None
    if len(buf) > MAX_MESSAGE_BYTES:
        raise _large("", f"message of {len(buf)} bytes exceeds MAX_MESSAGE_BYTES={MAX_MESSAGE_BYTES}")
    if not buf:
        raise _bad("", "empty message")
    head = buf[0]
    if not (0x80 <= head <= 0x8F or head in (0xDE, 0xDF)):
        raise _bad("", "message is not a msgpack map")
    end, _ = _skip(buf, 0, MAX_OBJECTS)
    if end != len(buf):
        raise _bad("", f"{len(buf) - end} trailing bytes after the message map")
    raw = msgpack.unpackb(buf, **_UNPACK_LIMITS)

    if "v" not in raw:
        raise _bad("v", "required field missing")
    if not _is_int(raw["v"]):
        raise _bad("v", f"expected int, got {_wire_type(raw['v'])}")
    if raw["v"] != PROTOCOL_VERSION:
        raise ProtocolError(ErrorCode.UNSUPPORTED_VERSION,
                            f"version {raw['v']} is not supported (this peer speaks {PROTOCOL_VERSION})", "v")
    kind = raw.get("kind")
    if not isinstance(kind, str):
        raise _bad("kind", "required field missing" if kind is None else f"expected str, got {_wire_type(kind)}")
    if kind not in KINDS:
        raise ProtocolError(ErrorCode.UNSUPPORTED_KIND, f"unknown kind {kind!r:.40}", "kind")
    if accept is not None and kind not in accept:
        raise _bad("kind", f"{kind!r} is not accepted here (expected one of {sorted(accept)})")
    if kind == InferRequest.KIND:
        return _infer_from_wire(raw)
    if kind == Capabilities.KIND:
        return _capabilities_from_wire(raw)
    if kind == Result.KIND and raw.get("evidence") is not None:
        return _result_from_wire(raw)
    return _build(KINDS[kind], raw, kind)


def _build(cls: type, raw: Any, path: str) -> Any:
    """``cls`` from a wire map: known keys only (unknown ones are ignored),
    every field without a default required; errors get ``path`` prefixed."""
    if not isinstance(raw, dict):
        raise _bad(path, f"expected map, got {_wire_type(raw)}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in raw:
            kwargs[f.name] = raw[f.name]
        elif f.default is dataclasses.MISSING:
            raise _bad(f"{path}.{f.name}", "required field missing")
    try:
        return cls(**kwargs)
    except ProtocolError as exc:
        raise exc.under(path) from None


def _infer_from_wire(raw: dict) -> InferRequest:
    if "frames" not in raw:
        raise _bad("infer.frames", "required field missing")
    frames = raw["frames"]
    if not isinstance(frames, list):
        raise _bad("infer.frames", f"expected array, got {_wire_type(frames)}")
    if len(frames) > MAX_FRAMES:  # before building: no work for frames we would refuse
        raise _large("infer.frames", f"{len(frames)} frames exceeds the limit of {MAX_FRAMES}")
    frames = [_build(Frame, f, f"infer.frames[{i}]") for i, f in enumerate(frames)]
    audio = raw.get("audio")
    if audio is not None:
        audio = _build(AudioWindow, audio, "infer.audio")
    return _build(InferRequest, {**raw, "frames": frames, "audio": audio}, "infer")


def _capabilities_from_wire(raw: dict) -> Capabilities:
    nested = {}
    if raw.get("input") is not None:
        nested["input"] = _build(ModelInput, raw["input"], "capabilities.input")
    answers = raw.get("answers")
    if isinstance(answers, list):
        if len(answers) > 64:
            raise _large("capabilities.answers", f"{len(answers)} entries exceeds the limit of 64")
        nested["answers"] = [_build(AnswerFormat, a, f"capabilities.answers[{i}]") for i, a in enumerate(answers)]
    return _build(Capabilities, {**raw, **nested}, "capabilities")


def _result_from_wire(raw: dict) -> Result:
    evidence = raw["evidence"]
    if not isinstance(evidence, dict):
        raise _bad("result.evidence", f"expected map, got {_wire_type(evidence)}")
    events = evidence.get("events")
    if isinstance(events, list):
        if len(events) > MAX_ARRAY_LEN:
            raise _large("result.evidence.events", f"{len(events)} events exceeds the limit of {MAX_ARRAY_LEN}")
        events = [_build(EvidenceEvent, e, f"result.evidence.events[{i}]") for i, e in enumerate(events)]
        evidence = {**evidence, "events": events}
    return _build(Result, {**raw, "evidence": _build(ResultEvidence, evidence, "result.evidence")}, "result")


def peek_id(data: bytes) -> int | None:
    """Best-effort request ``id`` of a message that ``decode`` refused.

    Reads only the top-level map's keys up to ``"id"`` (bounded by
    MAX_OBJECTS values, no object building), so a server can put the id into
    its error reply even when other fields, the version or the size are bad.
    Returns None when no uint64 id can be found. Never raises.
    """
    try:
        buf = memoryview(data).cast("B")
        head = buf[0]
        if 0x80 <= head <= 0x8F:
            pairs, pos = head & 0x0F, 1
        elif head in (0xDE, 0xDF):
            width = 2 if head == 0xDE else 4
            pairs, pos = int.from_bytes(buf[1:1 + width], "big"), 1 + width
        else:
            return None
        budget = MAX_OBJECTS
        for _ in range(min(pairs, MAX_MAP_LEN)):
            if not is_str_head(buf[pos]):
                return None
            key_end, _ = _skip(buf, pos, 1)
            header = 1 if buf[pos] <= 0xBF else {0xD9: 2, 0xDA: 3, 0xDB: 5}[buf[pos]]
            if bytes(buf[pos + header:key_end]) == b"id":
                return _read_uint(buf, key_end)
            pos, used = _skip(buf, key_end, budget)
            budget -= used + 1
            if budget <= 0:
                return None
    except Exception:  # best effort by contract: any failure means "no id"
        return None
    return None


def _read_uint(buf: memoryview, pos: int) -> int | None:
    head = buf[pos]
    if head <= 0x7F:
        return head
    if 0xCC <= head <= 0xD3:
        width = 1 << ((head - 0xCC) % 4)
        if pos + 1 + width > len(buf):
            return None
        value = int.from_bytes(buf[pos + 1:pos + 1 + width], "big", signed=head >= 0xD0)
        return value if value >= 0 else None
    return None
