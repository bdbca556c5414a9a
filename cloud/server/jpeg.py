"""JPEG frames in and out of the server: decode straight to the model's input size, encode for tests and warm-up.

The teacher sees frames as ``frame_size_px`` squares (32 px by default) while
clients send what their camera gives (128 px and up). Decoding the full image
and then averaging it down cost ~1 ms a frame, a tenth of a request's whole
batch cost; libjpeg (Pillow) can instead decode at 1/2, 1/4 or 1/8 scale from
the DCT coefficients (``Image.draft``), which is an area average computed in
the frequency domain. The rest of the way (a crop to the centre square and an
area resize to the exact size) is the training pipeline's (``cloud.data``).
On the reference request (128 x 128 frames) the result differs from a full
decode + area resize by at most 3 grey levels (mean 0.8): the same as the
difference between two JPEG decoders.

Pillow spends ~100 of its ~146 us per 128 px frame around the decoder, so the
frame goes first through libjpeg-turbo's own API (``simplejpeg``) at the scale
Pillow's ``draft`` would pick: the same pixels in ~45 us. What that path does
not take (CMYK, a stream its strict mode rejects) goes through Pillow as
before, which decodes it or names the problem.
"""
from __future__ import annotations

import fractions
import io
import math
import warnings

import numpy as np

from shared.jpeg_header import JpegHeaderError, jpeg_size
from shared.protocol import MAX_JPEG_PIXELS

__all__ = ["decode_frame", "encode_jpeg", "square"]


def square(rgb: np.ndarray) -> np.ndarray:
    """Centre crop (h, w, 3) to a square, as the importer does before resizing."""
    h, w = rgb.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return rgb[top : top + s, left : left + s]


def decode_frame(data: bytes | memoryview, size_px: int, max_pixels: int = MAX_JPEG_PIXELS) -> np.ndarray:
    """JPEG -> (size_px, size_px, 3) uint8 RGB: centre square, area-resized (module docstring).

    Raises:
        ValueError: no readable frame header, more than ``max_pixels`` pixels,
            or data that does not decode (truncated or corrupt scan data).
    """
    from PIL import Image

    from cloud.data import resize_frames

    try:
        width, height = jpeg_size(data)
    except JpegHeaderError as exc:
        raise ValueError(str(exc)) from None
    if width * height > max_pixels:
        raise ValueError(f"{width}x{height} pixels exceeds the server's limit of {max_pixels}")
    scale = min(width, height) / size_px  # keep the short side >= size_px after the DCT scaling
    want = (math.ceil(width / scale), math.ceil(height / scale)) if scale > 1 else None
    rgb = _turbo(data, width, height, want)
    if rgb is None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Pillow's decompression-bomb warning: the size is checked above
                image = Image.open(io.BytesIO(bytes(data)))
                if want is not None:
                    image.draft("RGB", want)
                rgb = np.asarray(image.convert("RGB"))
        except (OSError, ValueError, SyntaxError) as exc:  # Pillow's ways of saying "corrupt"
            raise ValueError(f"cannot decode JPEG ({exc})") from None
    rgb = square(rgb)
    if rgb.shape[0] != size_px:
        rgb = np.array(rgb)  # Pillow's array is read-only; torch (resize_frames) wants a writable one
    return resize_frames(rgb[None], size_px)[0]


def draft_factor(width: int, height: int, want: tuple[int, int]) -> int:
    """The DCT scale divisor Pillow's ``draft`` picks for ``want`` (w, h): the largest of
    8, 4, 2, 1 that keeps both sides at least as large as asked."""
    scale = min(width // want[0], height // want[1])
    return next(a for a in (8, 4, 2, 1) if scale >= a)


def _turbo(data: bytes | memoryview, width: int, height: int, want: tuple[int, int] | None) -> np.ndarray | None:
    """Decode with libjpeg-turbo's own API (``simplejpeg``) at the scale Pillow's draft would
    use: the same pixels (``tests/cloud/test_server_backend.py``) at a third of the time
    (45 vs 146 us for a 128 px frame), as Pillow spends most of it around the decoder.
    None when it cannot (CMYK, a recoverable error under its strict mode, a corrupt
    stream): Pillow then decodes it, or names what is wrong, as before."""
    try:
        import simplejpeg
    except ImportError:  # pragma: no cover - a dependency; Pillow alone stays correct
        return None
    a = draft_factor(width, height, want) if want is not None else 1
    try:
        # the smallest libjpeg-turbo scaling with both sides >= these is exactly 1/a
        return simplejpeg.decode_jpeg(bytes(data), colorspace="RGB", min_width=math.ceil(width / a),
                                      min_height=math.ceil(height / a), strict=True)
    except (ValueError, RuntimeError):
        return None


def encode_jpeg(rgb: np.ndarray) -> bytes:
    """(h, w, 3) uint8 RGB -> baseline JPEG bytes (PyAV mjpeg; odd sizes are cropped to even)."""
    import av

    rgb = np.ascontiguousarray(rgb[: rgb.shape[0] // 2 * 2, : rgb.shape[1] // 2 * 2], dtype=np.uint8)
    ctx = av.CodecContext.create("mjpeg", "w")
    ctx.width, ctx.height, ctx.pix_fmt = rgb.shape[1], rgb.shape[0], "yuvj420p"
    ctx.time_base = fractions.Fraction(1, 10)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuvj420p")
    return b"".join(bytes(p) for p in ctx.encode(frame) + ctx.encode(None))
