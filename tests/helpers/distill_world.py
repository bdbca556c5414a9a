"""Session fixtures for the distillation tests, built once and shared (registered by
tests/distill/conftest.py).

- ``world``: a small dataset written with ``shared.recording`` (real recording
  folders: WAV + H.264 video + annotations) with train / val / test splits.
  Each recording holds tones (their pitch says which sound) and, two seconds
  after each, a coloured square in the frame centre (the action), so windows
  have positives of several audio events and visual actions in every split.
  Beside it a QA folder with an ``info.json`` naming it and a small
  counterfactual bench of AVH event probes on the test recordings
  (``bench.jsonl``, with ``train_av.jsonl`` for the prior controls), written
  by hand from the same annotations.
- ``teacher_dir``: a tiny `AVTeacher`, randomly initialised and saved with
  ``cloud.model.io.save_teacher`` exactly as ``earshot train`` saves one (with
  the ``data`` and ``trained_on`` entries distillation reads).
- ``trigger_run`` / ``av_run``: ``earshot distill`` (tiny preset) in process.
- ``trigger_export`` / ``av_export``: ``earshot export`` of those, in process.

Exports are the slow part (each XNNPACK lowering is ~10-30 s on two busy
cores), so every test that needs a program reads these.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from shared.annotations import Annotations, Event
from shared.config import CONFIG_DIR, to_schema
from shared.recording import Recording, save_recording

RATE = 16_000
FPS = 10.0
SECONDS = 8.0
FRAME_PX = 64
SOUNDS = {"timer_beep": 2400.0, "doorbell": 700.0, "phone_ring": 1400.0, "knock": 300.0}
ACTIONS = {"open_oven": (220, 40, 40), "open_door": (40, 200, 60), "chop": (50, 60, 220), "pour": (220, 200, 40)}
PAIRS = list(zip(SOUNDS, ACTIONS))
SPLITS = ["train", "train", "train", "train", "val", "val", "test", "test"]


def _recording(i: int, rid: str) -> Recording:
    rng = np.random.default_rng(100 + i)
    t = np.arange(int(SECONDS * RATE)) / RATE
    audio = 0.02 * rng.standard_normal(len(t))
    n = int(SECONDS * FPS)
    times = np.arange(n) / FPS
    base = rng.integers(90, 130, size=(FRAME_PX, FRAME_PX, 3)).astype(np.uint8)
    frames = np.repeat(base[None], n, axis=0)
    events = []
    for k, onset in enumerate((0.5 + 0.25 * (i % 3), 4.5 - 0.25 * (i % 2))):
        sound, action = PAIRS[(i + k) % len(PAIRS)]
        audio += np.where((t >= onset) & (t < onset + 1.2), 0.3 * np.sin(2 * np.pi * SOUNDS[sound] * t), 0.0)
        act_on, act_off = onset + 1.5, min(onset + 3.0, SECONDS)
        frames[(times >= act_on) & (times < act_off), 16:48, 16:48] = ACTIONS[action]
        events += [
            Event(f"e{2 * k}", onset, onset + 1.2, sound, "audio", source="appliance", source_visible=False),
            Event(f"e{2 * k + 1}", act_on, act_off, action, "visual", source="appliance", source_visible=True,
                  cause=f"e{2 * k}"),
        ]
    pcm = np.clip(audio * 32767, -32768, 32767).astype(np.int16)
    ann = Annotations(recording_id=rid, duration_s=SECONDS, environment="kitchen", snr_db=20.0, events=events)
    return Recording(pcm, RATE, frames, times, ann)


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> Path:
    """A dataset folder: 8 recordings of 8 s (4 train, 2 val, 2 test), plus a QA info.json naming it."""
    root = tmp_path_factory.mktemp("distill_world")
    world = root / "world"
    entries = []
    for i, split in enumerate(SPLITS):
        rid = f"kd_{i:02d}"
        save_recording(_recording(i, rid), world / "recordings" / rid)
        entries.append({"id": rid, "split": split, "environment": "kitchen", "duration_s": SECONDS,
                        "snr_db": 20.0, "path": f"recordings/{rid}"})
    (world / "manifest.json").write_text(json.dumps({"schema_version": 1, "generator": {"name": "distill_tests"},
                                                     "config": {}, "recordings": entries}))
    qa = root / "qa"
    qa.mkdir()
    (qa / "info.json").write_text(json.dumps({"schema_version": 1, "dataset": str(world)}))
    _write_probes(qa)
    return world


#: Event-probe pairs on the test recordings: (recording, form, label, yes window, no window).
#: kd_06: phone_ring 0.5-1.7 s, chop 2.0-3.5, knock 4.5-5.7, pour 6.0-7.5;
#: kd_07: knock 0.75-1.95, pour 2.25-3.75, timer_beep 4.25-5.45, open_oven 5.75-7.25.
PROBE_PAIRS = [
    ("kd_06", "sound", "phone_ring", (0.0, 2.5), (3.0, 8.0)), ("kd_06", "sound", "knock", (3.5, 8.0), (0.0, 3.0)),
    ("kd_06", "action", "chop", (1.5, 4.0), (4.5, 8.0)), ("kd_06", "action", "pour", (5.0, 8.0), (0.0, 4.0)),
    ("kd_07", "sound", "knock", (0.0, 3.0), (4.0, 8.0)), ("kd_07", "sound", "timer_beep", (3.5, 8.0), (0.0, 3.0)),
    ("kd_07", "action", "pour", (1.5, 4.5), (5.0, 8.0)), ("kd_07", "action", "open_oven", (5.0, 8.0), (0.0, 4.0)),
]


def _write_probes(qa: Path) -> None:
    from cloud.data_engine.records import QARecord, write_jsonl

    text = {"sound": "did you hear {}?", "action": "did you {} in this clip?"}
    evidence = {"sound": "audio", "action": "visual"}

    def pair(rid, form, label, yes, no, n):
        return [QARecord(f"{rid}.avh.{n:03d}{role}.av", rid, "AVH", list(w), w[1], text[form].format(label), answer,
                         "yes_no", evidence[form], "av",
                         {"form": form, "probe": [label], "options": ["yes", "no"], "environment": "kitchen",
                          "pair_id": f"{rid}.avh.{n:03d}", "pair_role": role})
                for role, w, answer in (("a", yes, "yes"), ("b", no, "no"))]

    write_jsonl(qa / "bench.jsonl", [r for n, p in enumerate(PROBE_PAIRS) for r in pair(*p, n)])
    # training answers for the prior controls: the same questions on train recordings, mostly "yes"
    train = [r for n, p in enumerate(PROBE_PAIRS) for r in pair(f"kd_0{n % 4}", *p[1:], n)]
    write_jsonl(qa / "train_av.jsonl", [r for r in train if r.answer == "yes" or r.id.endswith("0b.av")])


@pytest.fixture(scope="session")
def teacher_dir(world, tmp_path_factory) -> Path:
    """A tiny randomly initialised teacher folder, as 'earshot train' writes one."""
    import torch

    from cloud.data import WindowSpec
    from cloud.model.config import ModelConfig
    from cloud.model.io import save_teacher
    from cloud.model.teacher import AVTeacher
    from cloud.model.tokenizer import Tokenizer

    cfg = ModelConfig(audio_channels=16, frame_size_px=32, visual_channels=8, d_model=32, n_heads=2,
                      fusion_layers=1, decoder_layers=1, gate_hidden=8, dropout=0.0)
    tokenizer = Tokenizer.build(["what did you hear", "timer_beep doorbell"])
    torch.manual_seed(0)
    model = AVTeacher(cfg, len(tokenizer), tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id)
    spec = WindowSpec(frame_hz=1.0, frame_size_px=32, n_mels=64)
    folder = tmp_path_factory.mktemp("teacher") / "model"
    save_teacher(folder, model.eval(), tokenizer, {
        "data": dataclasses.asdict(spec), "step": 0,
        "trained_on": {"qa_dir": str(world.parent / "qa"), "narration": "av"}, "mlflow_run_id": None,
    })
    return folder


@pytest.fixture(scope="session")
def mlflow_env(tmp_path_factory) -> dict[str, str]:
    """One tracking store and artifact root for the session (an sqlite store costs seconds to create)."""
    root = tmp_path_factory.mktemp("mlflow")
    return {"uri": f"sqlite:///{root / 'mlflow.db'}", "artifacts": str(root / "artifacts")}


def compose_config(name: str, overrides: list[str]):
    """Compose configs/<name>.yaml with overrides into its schema, as the verb does."""
    import distill.verbs  # noqa: F401  (registers the schemas)
    from distill.distill_config import DistillConfig, ExportConfig

    schema = {"distill": DistillConfig, "export": ExportConfig}[name]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return to_schema(compose(config_name=name, overrides=overrides), schema)


def distill_overrides(student: str, teacher_dir: Path, out: Path, mlflow_env: dict[str, str], *extra: str) -> list[str]:
    return [
        f"distill/student={student}", "distill/preset=tiny", f"teacher={teacher_dir}", f"out={out}", "threads=1",
        f"mlflow.tracking_uri={mlflow_env['uri']}", f"mlflow.artifact_location={mlflow_env['artifacts']}",
        f"mlflow.experiment=kd-{student}", *extra,
    ]


def _distill(student, teacher_dir, out, mlflow_env, *extra):
    from distill.recipe import run

    return run(compose_config("distill", distill_overrides(student, teacher_dir, out, mlflow_env, *extra)))


@pytest.fixture(scope="session")
def trigger_run(teacher_dir, mlflow_env, tmp_path_factory):
    return _distill("trigger", teacher_dir, tmp_path_factory.mktemp("kd_trigger") / "out", mlflow_env)


@pytest.fixture(scope="session")
def av_run(teacher_dir, mlflow_env, tmp_path_factory):
    # Feature distillation on, so its path (adapter, checkpointed with the student) runs too.
    # The test world stores 64 px frames: the program reads them as they are (camera_px) and
    # resizes them to 32 px in its graph, so the in-graph resize runs too.
    return _distill("av", teacher_dir, tmp_path_factory.mktemp("kd_av") / "out", mlflow_env, "kd.feature_weight=0.5",
                    f"student.camera_px={FRAME_PX}", "student.frame_size_px=32")


def _export(run, mlflow_env, *extra):
    from distill.export import run as export

    cfg = compose_config("export", [
        f"checkpoint={run.out}", "threads=1", "calibration_windows=8", "max_eval_windows=16", *extra,
        f"mlflow.tracking_uri={mlflow_env['uri']}", f"mlflow.artifact_location={mlflow_env['artifacts']}",
        f"mlflow.experiment=export-{run.cfg.student.name}",
    ])
    return export(cfg), run.out / "export"


@pytest.fixture(scope="session")
def trigger_export(trigger_run, mlflow_env):
    """(cards by file name, export folder) of the tiny trigger."""
    return _export(trigger_run, mlflow_env)


@pytest.fixture(scope="session")
def av_export(av_run, mlflow_env):
    # Each lowering or conversion costs ~10-30 s on two busy cores, so the AV student gets the
    # int8 program only (the path the trigger does not cover: a quantized frame CNN); its fp32
    # .pte and .tflite go through the same code as the trigger's, and every card still records
    # the program's max |difference| from eager over the test windows.
    return _export(av_run, mlflow_env, "precisions=[int8]", "tflite=off")
