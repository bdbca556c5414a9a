"""Wire protocol v1, part one: the limits, the error codes and the field checks every message uses.

``shared/protocol.py`` (the messages, ``encode``, ``decode``) builds on this
and re-exports its public names, so callers import everything from
``shared.protocol``. The limits table is mirrored in docs/protocol.md section
8 and the error codes in section 7 (tests/shared/test_protocol.py compares
them). Field validators take a value and its path and return the normalised
value or raise :class:`ProtocolError` naming the path.
"""
from __future__ import annotations

import enum
import math
from typing import Any

import numpy as np

__all__ = [
    "PROTOCOL_VERSION", "ErrorCode", "ProtocolError", "CLIENT_SOCKET_OPTIONS", "SERVER_SOCKET_OPTIONS",
    "truncate_utf8", "pcm_to_bytes", "pcm_from_bytes",
]

PROTOCOL_VERSION = 1

# ---------------------------------------------------------------- limits --
# One table, mirrored in docs/protocol.md section 8 (a test compares them).
# Sizes are bytes, counts are msgpack elements, text limits are UTF-8 bytes
# (not characters: a C++ receiver can check them from the str header alone).
MAX_MESSAGE_BYTES = 8 * 1024 * 1024   # one whole ZeroMQ frame
ZMQ_MAXMSGSIZE = MAX_MESSAGE_BYTES    # socket option: larger frames drop the peer
MAX_DEPTH = 8                         # nested containers; the root map is depth 1
MAX_OBJECTS = 8192                    # msgpack values in one message, keys included
MAX_ARRAY_LEN = 1024
MAX_MAP_LEN = 1024                    # key/value pairs in one map
MAX_STR_BYTES = 16384                 # any str, including unknown keys' values
MAX_BIN_BYTES = 4 * 1024 * 1024       # any bin; >= 30 s of 48 kHz PCM (2.88 MB)
MAX_FRAMES = 64                       # 6.4 s of video at 10 fps
MAX_JPEG_BYTES = 1024 * 1024
MAX_JPEG_PIXELS = 4096 * 4096         # width x height in a frame header; more is refused before decoding
MAX_AUDIO_S = 30.0
MAX_TIME_S = 1e10                     # any recording-clock time (s); admits Unix time, and float64
                                      # still resolves 2 us there (a 48 kHz sample is 21 us)
AUDIO_RATES_HZ = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
MAX_LABELS = 1024                     # entries in a label -> score map
MAX_LABEL_BYTES = 128
MAX_QUERY_BYTES = 4096
MAX_ANSWER_BYTES = 16384
MAX_ERROR_TEXT_BYTES = 1024
MAX_MODEL_ID_BYTES = 128
MAX_DEADLINE_MS = 60_000
MAX_RETRY_AFTER_MS = 60_000
MAX_TIMING_STAGES = 32
MAX_BATCH_SIZE = 1024
UINT64_MAX = 2**64 - 1

# Socket options by pyzmq/libzmq name (zmq.<NAME> / ZMQ_<NAME>), kept as plain
# data so this module does not import zmq. Heartbeats follow the architecture
# (1 s interval, liveness 3); see docs/protocol.md section 2 for the reasons.
CLIENT_SOCKET_OPTIONS = {
    "MAXMSGSIZE": ZMQ_MAXMSGSIZE,
    "LINGER": 0,              # never block exit on requests nobody will answer
    "IMMEDIATE": 1,           # no queueing while disconnected: send fails, edge falls back
    "SNDTIMEO": 0,            # ... at once: with IMMEDIATE and no peer, a blocking send would wait forever
    "SNDHWM": 64,
    "RCVHWM": 64,
    "RECONNECT_IVL": 100,
    "RECONNECT_IVL_MAX": 5000,
    "HEARTBEAT_IVL": 1000,
    "HEARTBEAT_TIMEOUT": 3000,
}
SERVER_SOCKET_OPTIONS = {
    "MAXMSGSIZE": ZMQ_MAXMSGSIZE,
    "LINGER": 1000,           # let drained replies leave on shutdown
    "ROUTER_MANDATORY": 1,    # reply to a vanished client raises (counted) instead of vanishing
    "SNDHWM": 1000,
    "RCVHWM": 1000,
    "HEARTBEAT_IVL": 1000,
    "HEARTBEAT_TIMEOUT": 3000,
}


class ErrorCode(enum.StrEnum):
    """Machine-readable error codes (the ``code`` of an ``error`` message).

    The set is fixed for protocol v1; adding a code is a version change.
    """

    BAD_REQUEST = "bad_request"                  # malformed or invalid message
    UNSUPPORTED_VERSION = "unsupported_version"  # v is not 1
    UNSUPPORTED_KIND = "unsupported_kind"        # well-formed but unknown kind
    TOO_LARGE = "too_large"                      # a limit of section 8 exceeded
    BUSY = "busy"                                # queue full, request shed
    DEADLINE_EXCEEDED = "deadline_exceeded"      # budget ran out before a result
    UNAUTHORIZED = "unauthorized"                # client may not make this request
    INTERNAL = "internal"                        # server (or decoder) bug
    SHUTTING_DOWN = "shutting_down"              # draining, no new work


_CODES = frozenset(code.value for code in ErrorCode)


class ProtocolError(Exception):
    """The only exception this module raises.

    ``code`` is an :class:`ErrorCode`; ``path`` names the offending field
    (``"infer.frames[2].jpeg"``, empty when the message as a whole is bad);
    ``str(err)`` is ``"<path>: <reason>"``, ready for an error reply.
    """

    def __init__(self, code: ErrorCode | str, reason: str, path: str = "") -> None:
        self.code = ErrorCode(code)
        self.reason = reason
        self.path = path
        super().__init__(f"{path}: {reason}" if path else reason)

    def under(self, prefix: str) -> ProtocolError:
        """The same error with ``prefix`` prepended to its field path."""
        if not prefix:
            return self
        if not self.path:
            path = prefix
        elif self.path.startswith("["):
            path = prefix + self.path
        else:
            path = f"{prefix}.{self.path}"
        return ProtocolError(self.code, self.reason, path)


def _bad(path: str, reason: str) -> ProtocolError:
    return ProtocolError(ErrorCode.BAD_REQUEST, reason, path)


def _large(path: str, reason: str) -> ProtocolError:
    return ProtocolError(ErrorCode.TOO_LARGE, reason, path)


# ------------------------------------------------------- field validators --
# Each takes the value and its path, returns the normalised value or raises.
# Python types map one to one onto msgpack types after unpacking, so these
# checks are also the wire type checks.

_WIRE_NAMES = {bool: "bool", int: "int", float: "float", str: "str", bytes: "bin",
               list: "array", tuple: "array", dict: "map", type(None): "nil"}


def _wire_type(value: Any) -> str:
    return _WIRE_NAMES.get(type(value), type(value).__name__)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _int(value: Any, path: str, lo: int, hi: int) -> int:
    if not _is_int(value):
        raise _bad(path, f"expected int, got {_wire_type(value)}")
    if not lo <= value <= hi:
        raise _bad(path, f"must be in [{lo}, {hi}], got {int(value)}")
    return int(value)


def _float(value: Any, path: str, lo: float = 0.0, hi: float = math.inf) -> float:
    # ints are accepted too: encoders in some languages (JavaScript) cannot tell
    # 1.0 from 1 and pack it as an int.
    if not (_is_int(value) or isinstance(value, (float, np.floating))):
        raise _bad(path, f"expected float, got {_wire_type(value)}")
    value = float(value)
    if not math.isfinite(value):
        raise _bad(path, f"must be finite, got {value}")
    if not lo <= value <= hi:
        raise _bad(path, f"must be in [{lo}, {hi}], got {value}")
    return value


def _text(value: Any, path: str, max_bytes: int, min_bytes: int = 0) -> str:
    if not isinstance(value, str):
        raise _bad(path, f"expected str, got {_wire_type(value)}")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise _bad(path, "not encodable as UTF-8 (lone surrogate)") from None
    if size > max_bytes:
        raise _large(path, f"{size} UTF-8 bytes exceeds the limit of {max_bytes}")
    if size < min_bytes:
        raise _bad(path, "must not be empty")
    return str(value)


def _binary(value: Any, path: str, max_bytes: int) -> bytes | memoryview:
    # A memoryview is kept as is so PCM from a numpy array travels without a copy.
    if isinstance(value, memoryview):
        if not value.c_contiguous:
            raise _bad(path, "memoryview must be C-contiguous")
        value = value.cast("B")
    elif isinstance(value, bytearray):
        value = bytes(value)
    elif not isinstance(value, bytes):
        raise _bad(path, f"expected bin, got {_wire_type(value)}")
    if len(value) > max_bytes:
        raise _large(path, f"{len(value)} bytes exceeds the limit of {max_bytes}")
    return value


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise _bad(path, f"expected bool, got {_wire_type(value)}")
    return bool(value)


def _opt(check, value: Any, path: str, *args: Any) -> Any:
    return None if value is None else check(value, path, *args)


def _map(value: Any, path: str, max_len: int) -> dict:
    if not isinstance(value, dict):
        raise _bad(path, f"expected map, got {_wire_type(value)}")
    if len(value) > max_len:
        raise _large(path, f"{len(value)} entries exceeds the limit of {max_len}")
    return value


def _scores(value: Any, path: str, max_len: int = MAX_LABELS, hi: float = 1.0) -> dict[str, float]:
    """label -> float in [0, hi]; labels are non-empty str of at most MAX_LABEL_BYTES."""
    out = {}
    for key, score in _map(value, path, max_len).items():
        key = _text(key, f"{path}[{key!r:.40}]", MAX_LABEL_BYTES, 1)
        out[key] = _float(score, f"{path}[{key!r:.40}]", 0.0, hi)
    return out


def _uints(value: Any, path: str, max_len: int) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)):
        raise _bad(path, f"expected array, got {_wire_type(value)}")
    if len(value) > max_len:
        raise _large(path, f"{len(value)} entries exceeds the limit of {max_len}")
    return tuple(_int(x, f"{path}[{i}]", 0, UINT64_MAX) for i, x in enumerate(value))


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)  # frozen dataclass: normalise in __post_init__


def truncate_utf8(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` UTF-8 bytes, never mid-character."""
    raw = text.encode("utf-8", "replace")[:max_bytes]
    return raw.decode("utf-8", "ignore")


# ------------------------------------------------------------------- PCM --

def pcm_to_bytes(samples: np.ndarray) -> memoryview:
    """1-D int16 samples -> little-endian bytes for ``AudioWindow.pcm``.

    Returns a memoryview over ``samples`` itself (no copy) when it is already
    C-contiguous little-endian int16; otherwise over a converted copy. Do not
    modify ``samples`` while the message is alive. Raises ProtocolError
    (bad_request) for any other dtype or shape: converting floats silently
    would hide a scaling bug.
    """
    arr = np.asarray(samples)
    if arr.ndim != 1 or arr.dtype.kind != "i" or arr.dtype.itemsize != 2:
        raise _bad("pcm", f"expected a 1-D int16 array, got {arr.dtype} with shape {arr.shape}")
    return memoryview(np.ascontiguousarray(arr, dtype="<i2")).cast("B")


def pcm_from_bytes(pcm: bytes | memoryview) -> np.ndarray:
    """int16 little-endian bytes -> 1-D int16 array of shape (len(pcm) // 2,).

    A zero-copy view: read-only when ``pcm`` is ``bytes``. Raises
    ProtocolError (bad_request) for an odd byte count.
    """
    if len(pcm) % 2:
        raise _bad("pcm", f"odd byte count {len(pcm)}; int16 samples are 2 bytes")
    return np.frombuffer(pcm, dtype="<i2")


