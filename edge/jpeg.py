"""Edge-side JPEG encoding of camera frames (PyAV's mjpeg encoder, one thread).

The glasses send frames to the cloud as baseline JPEG (the protocol's
``Frame.jpeg``; the server decodes with PyAV too). Quality follows the
libjpeg 1..100 convention of the offload specs (``edge.policy.OFFLOAD_SPECS``:
light q50, full q75); FFmpeg's mjpeg encoder takes a quantiser scale instead
(2 = best .. 31 = worst), so `qscale_for` maps one onto the other. On a
128 x 128 frame q75 gives ~3.5 kB and q50 ~2.6 kB.
"""
from __future__ import annotations

import fractions

import numpy as np

__all__ = ["qscale_for", "encode_jpeg"]


def qscale_for(quality: int) -> int:
    """FFmpeg mjpeg quantiser scale for a libjpeg-style quality 1..100 (an approximation)."""
    if not 1 <= quality <= 100:
        raise ValueError(f"quality: must be in [1, 100], got {quality}")
    return int(min(31, max(2, round(2 + (100 - quality) / 8))))


def encode_jpeg(rgb: np.ndarray, quality: int = 75) -> bytes:
    """(h, w, 3) uint8 RGB -> baseline JPEG bytes (odd sizes are cropped to even)."""
    import av

    rgb = np.ascontiguousarray(rgb[: rgb.shape[0] // 2 * 2, : rgb.shape[1] // 2 * 2], dtype=np.uint8)
    q = str(qscale_for(quality))
    ctx = av.CodecContext.create("mjpeg", "w")
    ctx.width, ctx.height, ctx.pix_fmt = rgb.shape[1], rgb.shape[0], "yuvj420p"
    ctx.time_base = fractions.Fraction(1, 10)
    ctx.thread_count = 1
    ctx.options = {"qmin": q, "qmax": q}
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuvj420p")
    return b"".join(bytes(p) for p in ctx.encode(frame) + ctx.encode(None))
