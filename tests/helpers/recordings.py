"""Recordings and media files the tests write: a small synthetic recording, an mp4 with a
sound track, EPIC-SOUNDS-style CSV rows."""
from __future__ import annotations

import csv

import av
import numpy as np

from shared.annotations import Annotations, Event, FrameInfo, Query
from shared.importers import EPIC_SOUNDS_COLUMNS
from shared.recording import Recording

RATE = 16_000


def make_recording(n_frames=30, seconds=3.0, seed=0) -> Recording:
    rng = np.random.default_rng(seed)
    audio = (rng.standard_normal(int(seconds * RATE)) * 4000).clip(-32768, 32767).astype(np.int16)
    audio[:3] = [-32768, 32767, 0]  # extremes must survive
    yy, xx = np.mgrid[0:128, 0:128]
    frames = np.stack(
        [np.stack([(xx * 2 + 5 * i) % 256, (yy * 2) % 256, np.full_like(xx, 40 + 4 * i)], -1) for i in range(n_frames)]
    ).astype(np.uint8)
    times = np.arange(n_frames) / 10.0
    ann = Annotations(
        recording_id="kitchen_0001",
        duration_s=seconds,
        environment="kitchen",
        snr_db=12.5,
        events=[
            Event("e0", 0.2, 0.8, "timer_beep", "audio", source="oven", source_visible=False,
                  snr_db=9.0, attrs={"pitch_hz": 2000.0, "origin": "procedural"}),
            Event("e1", 1.5, 2.5, "open_oven", "visual", source="oven", source_visible=True, cause="e0"),
            Event("e2", 1.6, 3.0, "oven_door_open", "visual", source="oven", cause="e1"),
        ],
        queries=[Query("q0", 2.8, "why did I open the oven?", "timer_beep", kind="cause", event_ids=["e0", "e1"])],
        frames=FrameInfo(
            camera_motion_deg_s=[float(i) for i in range(n_frames)],
            hand_occlusion=[0.1] * n_frames,
            blur_px=[0.0] * n_frames,
        ),
        objects=["oven", "pan"],
        provenance={"kind": "synthetic", "seed": seed},
    )
    return Recording(audio, RATE, frames, times, ann)


SRC_RATE = 44_100
SRC_FPS = 30
TONE_HZ = 440.0


def make_media(path, seconds=3.0, size=(320, 240), audio=True):
    """A 30 fps 320x240 mp4 whose red channel counts frames, with a stereo 440 Hz AAC track."""
    w, h = size
    with av.open(str(path), "w") as c:
        vs = c.add_stream("libx264", rate=SRC_FPS)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        if audio:
            aus = c.add_stream("aac", rate=SRC_RATE)
            aus.layout = "stereo"
        for i in range(int(seconds * SRC_FPS)):
            img = np.zeros((h, w, 3), np.uint8)
            img[..., 0] = 2 * i
            img[:, : w // 2, 2] = 200  # left half blue: checks the centre crop
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = i
            c.mux(vs.encode(f))
        c.mux(vs.encode(None))
        if audio:
            n = int(seconds * SRC_RATE)
            x = (0.3 * np.sin(2 * np.pi * TONE_HZ * np.arange(n) / SRC_RATE)).astype(np.float32)
            for s in range(0, n, 1024):
                chunk = np.ascontiguousarray(np.stack([x[s : s + 1024]] * 2))
                af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                af.sample_rate, af.pts = SRC_RATE, s
                c.mux(aus.encode(af))
            c.mux(aus.encode(None))
    return path


def ts(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def write_csv(path, rows):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(EPIC_SOUNDS_COLUMNS)
        w.writerows(rows)
    return path


def epic_row(aid, vid, t0, t1, cls, class_id, desc="a sound"):
    return [aid, vid.split("_")[0], vid, ts(t0), ts(t1), int(t0 * 24000), int(t1 * 24000), desc, cls, class_id]
