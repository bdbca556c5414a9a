"""A bounded JPEG header walk: the frame size without decoding (wire protocol v1, docs/protocol.md 6.1).

The protocol checks every ``infer.frames[i].jpeg`` with :func:`jpeg_size`
before anything decodes it: the SOI marker, a marker chain that reaches a
frame header (SOF) within ``MAX_SEGMENTS`` segments, and non-zero
dimensions. A 1 MiB JPEG may claim 65535 x 65535 pixels; knowing the size
from the header lets a receiver refuse it before a decoder allocates them.
The walk reads only segment headers (never entropy-coded data), so it costs a
few microseconds whatever the image.
"""
from __future__ import annotations

__all__ = ["JpegHeaderError", "jpeg_size", "MAX_SEGMENTS", "EXAMPLE_JPEG"]

#: Marker segments read before giving up on finding a frame header. Real
#: files put SOF after a handful of APPn/DQT/DHT segments.
MAX_SEGMENTS = 256
# Start-of-frame markers (baseline, extended, progressive, lossless, hierarchical,
# arithmetic); C4 (DHT), C8 (JPG) and CC (DAC) share the range but are not frame headers.
_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_STANDALONE = frozenset({0x01, 0xD8, *range(0xD0, 0xD8)})  # TEM, SOI, RSTn: no length field


#: The smallest honest JPEG: 8 x 8 mid-grey (128), baseline, one component, 141
#: bytes (SOI; DQT of ones; SOF0; one-code DC and AC Huffman tables; SOS; one byte
#: of scan data: DC difference 0, end of block; EOI). The frames of the worked
#: ``infer`` example in docs/protocol.md 10.3, and a frame every decoder takes.
EXAMPLE_JPEG = bytes.fromhex(
    "ffd8"
    "ffdb004300" + "01" * 64
    + "ffc0000b080008000801011100"
    "ffc4001400" "01" + "00" * 15 + "00"
    + "ffc4001410" "01" + "00" * 15 + "00"
    + "ffda0008010100003f00" "3f"
    "ffd9")


class JpegHeaderError(ValueError):
    """The bytes are not a JPEG whose frame header can be read (the message says why)."""


def jpeg_size(data: bytes | memoryview) -> tuple[int, int]:
    """(width, height) in pixels from a JPEG's frame header, without decoding.

    Raises:
        JpegHeaderError: no SOI marker (``FF D8``), a broken marker chain, no
            frame header (SOF) among the first ``MAX_SEGMENTS`` segments, or a
            header that claims zero width or height.
    """
    buf = memoryview(data).cast("B")
    n = len(buf)
    if n < 2 or buf[0] != 0xFF or buf[1] != 0xD8:
        raise JpegHeaderError("not a JPEG (missing FFD8 header)")
    pos = 2
    for _ in range(MAX_SEGMENTS):
        while pos + 1 < n and buf[pos] == 0xFF and buf[pos + 1] == 0xFF:
            pos += 1  # fill bytes before a marker
        if pos + 2 > n or buf[pos] != 0xFF:
            break
        marker = buf[pos + 1]
        if marker in _STANDALONE:
            pos += 2
            continue
        if marker in (0xD9, 0xDA):
            break  # end of image, or scan data, before any frame header
        if pos + 4 > n:
            break
        length = (buf[pos + 2] << 8) | buf[pos + 3]
        if length < 2:
            break
        if marker in _SOF_MARKERS:
            if pos + 9 > n:
                break
            height = (buf[pos + 5] << 8) | buf[pos + 6]
            width = (buf[pos + 7] << 8) | buf[pos + 8]
            if not (width and height):
                raise JpegHeaderError(f"frame header claims {width}x{height} pixels")
            return width, height
        pos += 2 + length
    raise JpegHeaderError("no frame header (SOF) found: not a decodable JPEG")
