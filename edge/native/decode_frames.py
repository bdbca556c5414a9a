"""Decode a recording's video.mp4 into the raw frame file earshot-edge reads.

The glasses run no Python and no video decoder: their camera hands the
runtime raw RGB frames. For a replayed recording this script does the
decoding once, beforehand::

    python edge/native/decode_frames.py RECORDING_DIR [--out FILE]   # default RECORDING_DIR/frames.u8

Format (little-endian; edge/native/README.md, read by src/media.cpp)::

    b"ESFRAME1"  uint32 n  uint32 height  uint32 width  uint32 channels (3)
    n x float64 timestamps (s, recording clock; shared.recording.read_video's, rounded to 1 ms)
    n x height x width x 3 uint8 RGB (NHWC)

Imports ``shared`` only.
"""
from __future__ import annotations

import argparse
import struct
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from shared.recording import read_video  # noqa: E402

MAGIC = b"ESFRAME1"


def write_frames(path: str | Path, frames: np.ndarray, times_s: np.ndarray) -> Path:
    """Write uint8 (n, h, w, 3) frames with their float64 times to ``path``."""
    frames = np.ascontiguousarray(frames, np.uint8)
    if frames.ndim != 4 or frames.shape[3] != 3:
        raise ValueError(f"frames: expected (n, h, w, 3), got {frames.shape}")
    times = np.ascontiguousarray(times_s, "<f8")
    if len(times) != len(frames):
        raise ValueError("one timestamp per frame")
    n, h, w, c = frames.shape
    path = Path(path)
    with open(path, "wb") as f:
        f.write(MAGIC + struct.pack("<4I", n, h, w, c))
        f.write(times.tobytes())
        f.write(frames.tobytes())
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recording", type=Path)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    frames, times = read_video(args.recording / "video.mp4")
    out = write_frames(args.out or args.recording / "frames.u8", frames, times)
    print(f"{out}: {len(frames)} frames {frames.shape[1]}x{frames.shape[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
