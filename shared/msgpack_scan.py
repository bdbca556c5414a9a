"""A bounded msgpack header walk, for decoders that must not trust their input.

Walks msgpack bytes without building objects, so hostile input costs at most
``max_objects`` header reads: length headers are checked against ``limits``
(a bin32 claiming 4 GiB is refused from its 5 header bytes), nesting depth is
counted iteratively (no recursion), ext types and non-str map keys are
refused, and every str is checked to be UTF-8 (so the error names the byte
offset in words any client understands, not a host language's exception).
``shared.protocol`` runs it before ``msgpack.unpackb``.
"""
from __future__ import annotations

__all__ = ["ScanError", "is_str_head", "scan"]


class ScanError(ValueError):
    """Malformed (``too_large`` False) or over a limit (``too_large`` True)."""

    def __init__(self, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


_FIXED_WIDTH = {0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8,
                0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8}
_SIZED = {0xC4: (1, "bin"), 0xC5: (2, "bin"), 0xC6: (4, "bin"),
          0xD9: (1, "str"), 0xDA: (2, "str"), 0xDB: (4, "str"),
          0xDC: (2, "array"), 0xDD: (4, "array"), 0xDE: (2, "map"), 0xDF: (4, "map")}
_EXT = frozenset({0xC7, 0xC8, 0xC9, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8})


def _is_utf8(raw: memoryview) -> bool:
    try:
        str(raw, "utf-8")
    except UnicodeDecodeError:
        return False
    return True


def is_str_head(head: int) -> bool:
    return 0xA0 <= head <= 0xBF or 0xD9 <= head <= 0xDB


def scan(buf: memoryview, pos: int, max_objects: int, *, limits: dict[str, int], max_depth: int) -> tuple[int, int]:
    """Check one msgpack value at ``buf[pos]``; return (end offset, values seen).

    ``limits`` maps ``bin``, ``str``, ``array``, ``map`` to their largest length.

    Raises:
        ScanError: malformed bytes, or a length, depth or count over a limit.
    """
    n = len(buf)
    left = [1]          # values still to read per open container (bottom: the value itself)
    in_map = [False]
    objects = 0
    while left:
        if left[-1] == 0:
            left.pop()
            in_map.pop()
            continue
        is_key = in_map[-1] and left[-1] % 2 == 0
        left[-1] -= 1
        objects += 1
        if objects > max_objects:
            raise ScanError(f"more than {max_objects} msgpack values", too_large=True)
        if pos >= n:
            raise ScanError(f"truncated msgpack at byte {pos}")
        start, head = pos, buf[pos]
        pos += 1
        if is_key and not is_str_head(head):
            raise ScanError(f"map key at byte {start} is not a str")
        if head <= 0x7F or head >= 0xE0 or head in (0xC0, 0xC2, 0xC3):
            continue                                  # fixint, nil, bool
        if head in _FIXED_WIDTH:
            pos += _FIXED_WIDTH[head]
            if pos > n:
                raise ScanError(f"truncated msgpack at byte {start}")
            continue
        if head <= 0x8F:
            family, length = "map", head & 0x0F
        elif head <= 0x9F:
            family, length = "array", head & 0x0F
        elif head <= 0xBF:
            family, length = "str", head & 0x1F
        elif head in _SIZED:
            width, family = _SIZED[head]
            if pos + width > n:
                raise ScanError(f"truncated msgpack at byte {start}")
            length = int.from_bytes(buf[pos:pos + width], "big")
            pos += width
        elif head in _EXT:
            raise ScanError(f"msgpack ext type at byte {start} is not allowed")
        else:
            raise ScanError(f"invalid msgpack byte 0xc1 at byte {start}")
        if length > limits[family]:
            raise ScanError(f"{family} of length {length} at byte {start} exceeds the limit of {limits[family]}", too_large=True)
        if family in ("str", "bin"):
            pos += length
            if pos > n:
                raise ScanError(f"truncated msgpack: {family} at byte {start} runs past the end")
            if family == "str" and length and not _is_utf8(buf[pos - length:pos]):
                raise ScanError(f"invalid UTF-8 in the str at byte {start}")
        else:
            if len(left) > max_depth:
                raise ScanError(f"containers nested deeper than {max_depth} at byte {start}", too_large=True)
            if length:
                left.append(2 * length if family == "map" else length)
                in_map.append(family == "map")
    return pos, objects
