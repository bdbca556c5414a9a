"""A tiny, learnable world for the teacher's tests (not a test module itself).

Each recording holds one tone (its pitch says which sound it is) and, two
seconds later, one action (a coloured square fills the frame centre), so a
tiny teacher can overfit the QA about it in seconds. `make_world` writes a
dataset folder (manifest + recordings) and a QA folder in the layout of
``earshot instruct`` (``cloud/data_engine/records.py``), with real
`QARecord`s so the files pass the data engine's own validation.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cloud.data_engine.records import INFO_FILE, SPLIT_FILES, QARecord, write_jsonl
from shared.annotations import Annotations, Event
from shared.recording import Recording, save_recording

RATE = 16_000
FPS = 10.0
SOUNDS = {"timer_beep": 2400.0, "doorbell": 700.0, "phone_ring": 1400.0}
ACTIONS = {"open_oven": (220, 40, 40), "open_door": (40, 200, 60), "chop": (50, 60, 220)}
PAIRS = [("timer_beep", "open_oven"), ("doorbell", "open_door"), ("phone_ring", "chop")]


def make_signals(i: int, seconds: float, frame_px: int, snr_db: float = 20.0, seed: int = 0):
    """(audio int16, frames uint8, frame_times, events) of recording ``i``."""
    rng = np.random.default_rng(seed + i)
    sound, action = PAIRS[i % len(PAIRS)]
    onset = 2.0 + 0.5 * (i % 3)
    t = np.arange(int(seconds * RATE)) / RATE
    tone = np.where((t >= onset) & (t < onset + 1.5), np.sin(2 * np.pi * SOUNDS[sound] * t), 0.0)
    noise = rng.standard_normal(len(t)) * 10 ** (-snr_db / 20) * 0.7
    audio = np.clip((0.3 * tone + 0.3 * noise) * 32767, -32768, 32767).astype(np.int16)

    n = int(seconds * FPS)
    times = np.arange(n) / FPS
    base = rng.integers(90, 130, size=(frame_px, frame_px, 3)).astype(np.uint8)
    frames = np.repeat(base[None], n, axis=0)
    act_on, act_off = onset + 2.0, min(onset + 4.0, seconds)
    lo, hi = frame_px // 4, 3 * frame_px // 4
    for k, ft in enumerate(times):
        if act_on <= ft < act_off:
            frames[k, lo:hi, lo:hi] = ACTIONS[action]
    events = [
        Event("e0", onset, onset + 1.5, sound, "audio", source="appliance", source_visible=False),
        Event("e1", act_on, act_off, action, "visual", source="appliance", source_visible=True, cause="e0"),
    ]
    return audio, frames, times, events


def qa_records(rid: str, i: int, seconds: float, narration: str = "av") -> list[QARecord]:
    """Four questions about recording ``i``, one per answer type that matters."""
    sound, action = PAIRS[i % len(PAIRS)]
    other = PAIRS[(i + 1) % len(PAIRS)][0]
    onset = 2.0 + 0.5 * (i % 3)
    suffix = "av" if narration == "av" else "vis"
    common = dict(recording_id=rid, window_s=[0.0, seconds], t_query_s=seconds, narration=narration)
    meta = {"snr_db": 20.0 - 10.0 * (i % 2), "environment": "kitchen", "noise": "quiet"}
    return [
        QARecord(id=f"{rid}.ssa.{suffix}", category="SSA", question="what sound did you hear?", answer=sound,
                 answer_type="label", evidence="audio", meta=meta, **common),
        QARecord(id=f"{rid}.avh.{suffix}", category="AVH", question=f"did you hear {other}?", answer="no",
                 answer_type="yes_no", evidence="audio", meta=meta, **common),
        QARecord(id=f"{rid}.tr.{suffix}", category="TR", question="what happened, in order?",
                 answer=f"{sound}, {action}", answer_type="sequence", evidence="audiovisual", meta=meta, **common),
        QARecord(id=f"{rid}.avdn.{suffix}", category="AVDN", question="narrate the clip",
                 answer=f"{int(onset)}s {sound}; {int(onset + 2)}s {action}", answer_type="dense",
                 evidence="audiovisual", meta=meta, **common),
    ]


def make_world(root: Path, n_recordings: int = 4, seconds: float = 10.0, frame_px: int = 64) -> Path:
    """Write ``root/world`` (dataset) and ``root/qa`` (QA folder); returns the QA folder.

    Every split file holds the same records (the tests overfit and then
    score on what was trained), all recordings are in the ``train`` split.
    """
    world, qa = root / "world", root / "qa"
    entries, av, vis = [], [], []
    for i in range(n_recordings):
        rid = f"fixture_{i:02d}"
        audio, frames, times, events = make_signals(i, seconds, frame_px)
        ann = Annotations(recording_id=rid, duration_s=seconds, environment="kitchen", snr_db=20.0, events=events)
        save_recording(Recording(audio, RATE, frames, times, ann), world / "recordings" / rid)
        entries.append({"id": rid, "split": "train", "environment": "kitchen", "duration_s": seconds,
                        "snr_db": 20.0, "path": f"recordings/{rid}"})
        av += qa_records(rid, i, seconds, "av")
        vis += qa_records(rid, i, seconds, "visual")
    (world / "manifest.json").write_text(json.dumps({"schema_version": 1, "generator": {"name": "teacher_world"},
                                                     "config": {}, "recordings": entries}))
    qa.mkdir(parents=True, exist_ok=True)
    for split, name in SPLIT_FILES.items():
        write_jsonl(qa / name, vis if split.endswith("visual") else av)
    (qa / INFO_FILE).write_text(json.dumps({"schema_version": 1, "dataset": str(world)}))
    return qa


def make_tiny_teacher(folder: Path, texts: list[str], *, max_answer_tokens: int, frame_size_px: int) -> Path:
    """A tiny, freshly initialised (seed 0) teacher saved as ``earshot train`` saves one, for the
    server and edge tests: a vocabulary of ``texts`` (plus the summary question), 32-dim layers."""
    import torch

    from cloud.data import WindowSpec
    from cloud.data_engine.qa import SUMMARY_QUESTION
    from cloud.model.config import ModelConfig
    from cloud.model.io import save_teacher
    from cloud.model.teacher import AVTeacher
    from cloud.model.tokenizer import Tokenizer

    torch.manual_seed(0)
    tok = Tokenizer.build([SUMMARY_QUESTION, *texts])
    cfg = ModelConfig(d_model=32, n_heads=2, fusion_layers=1, decoder_layers=1, audio_channels=8,
                      visual_channels=4, max_answer_tokens=max_answer_tokens)
    model = AVTeacher(cfg, len(tok), tok.pad_id, tok.bos_id, tok.eos_id)
    spec = WindowSpec(audio_history_s=2.0, frame_hz=2.0, max_window_s=4.0, frame_size_px=frame_size_px, n_mels=64)
    save_teacher(folder, model, tok, extra={"data": spec.__dict__})
    return folder
