"""The one frame-resize definition: camera frame -> a student's input size.

It runs *inside* the exported AV student graph (``distill/students.py``:
``FrameResize``), as the log-mel front end does, so the Python and the native
runtimes hand the program the camera frame as it is and never resize
anything themselves. Training feeds the student frames that went through the
same module once, ahead of time (``distill/data.py``), so what the student
learned from is bit for bit what the program computes on the device.

The operation: an integer-factor block mean (area resize) rounded to the
nearest integer, halves up (``floor(x + 0.5)``: XNNPACK delegates it with
the pooling in one block, where ``torch.round`` would leave a portable op
between two delegates), on uint8 RGB NHWC.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = ["FrameResize", "resize_frames"]


class FrameResize(nn.Module):
    """uint8 (B, S, S, 3) -> float32 (B, 3, S/k, S/k) pixel values in [0, 255], NCHW.

    Args:
        factor: S / output size (an integer >= 1; 1 is a plain cast).
    """

    def __init__(self, factor: int) -> None:
        super().__init__()
        if factor < 1:
            raise ValueError(f"factor: must be >= 1, got {factor}")
        self.factor = int(factor)

    def forward(self, frame: torch.Tensor) -> torch.Tensor:
        # Cast before the permute: XNNPACK delegates the float permute, not a uint8 one.
        x = frame.to(torch.float32).permute(0, 3, 1, 2)
        if self.factor == 1:
            return x
        return torch.floor(nn.functional.avg_pool2d(x, self.factor, self.factor) + 0.5)


def resize_frames(frames: np.ndarray, size_px: int, batch: int = 256) -> np.ndarray:
    """uint8 (n, S, S, 3) -> uint8 (n, size, size, 3) with `FrameResize` (what the graph computes).

    Raises:
        ValueError: frames not square, or S not a multiple of ``size_px``.
    """
    n, h, w = frames.shape[:3]
    if h != w or h % size_px:
        raise ValueError(f"frames of {h}x{w} cannot be area-resized to {size_px}x{size_px} "
                         "(square frames whose side is a multiple of it)")
    module = FrameResize(h // size_px)
    out = [module(torch.from_numpy(np.ascontiguousarray(frames[i:i + batch]))) for i in range(0, n, batch)]
    if not out:
        return np.zeros((0, size_px, size_px, 3), np.uint8)
    return torch.cat(out).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
