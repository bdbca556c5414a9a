"""`earshot distill`: knowledge distillation of the per-token teacher, top to bottom.

    earshot distill teacher=runs/teacher/model
    earshot distill distill/student=av teacher=runs/teacher/model
    earshot distill distill/preset=tiny teacher=/tmp/teacher/model out=/tmp/kd

One class in the torchtune style (``recipes/knowledge_distillation_single_device.py``):
``__init__`` reads scalars, ``setup()`` builds everything in dependency order,
``_loss_step`` is the maths of one batch, ``train()`` an explicit loop,
``cleanup()`` releases. Copy and modify; no trainer framework.

The loss (``distill/losses.py``), per batch of windows::

    (1 - kd_weight) * BCE(student, labels | label mask)
      + kd_weight * T^2 * mean KL(Bernoulli(sigmoid(teacher / T)) || Bernoulli(sigmoid(student / T)))
      + feature_weight * (1 - cos(adapter(student embedding), teacher per-token features))
      + confidence_weight * BCE(confidence, student agrees with the teacher on every tag)   [av]

The teacher is the per-token one (``distill/teacher_tokens.py``): the
trigger's window is compared with the teacher's sound probabilities of the
0.5 s tokens that tile that window's audio (max over them), the AV student's
frame outputs with the teacher's action and state probabilities of that very
frame. The hard labels are the world's exact ones, defined as the teacher's
perception targets (``distill/data.py``), masked where they are unsure. The
trigger learns the 18 sound events, the AV student those and the 23 frame
labels (``distill.students.STUDENT_LABELS``). ``data.pos_weight`` weighs the positive labels of the
hard term (a trigger that misses a sound costs more than one that fires
twice: the hold and the operating point trim the rest).

Without a teacher (``teacher=null``, ``kd.kd_weight=0``; ``distill/preset=trigger``)
the student learns the world's exact labels alone: no teacher targets, no KD
term, and the val metrics against the teacher are left out. Pointing
``teacher=`` at a teacher and raising ``kd.kd_weight`` adds its soft targets
back; nothing else changes.

Teacher targets are computed once per run: the teacher's per-token logits and
features pooled for every train and val window go to
``<out>/teacher_targets.safetensors`` (with a JSON key naming the teacher
weights' hash and the window parameters); a resumed run reads them back.

Exact resume, as ``earshot train``: the batch of step k is a pure function of
(seed, k); the torch RNG is re-seeded from (seed, k) every step; weights,
BatchNorm statistics and AdamW moments are saved exactly (safetensors), the
rest as JSON. A killed run started again with the same ``out`` ends where an
uninterrupted run ends (``tests/distill/test_recipe.py``). Nothing is pickled.

Outputs: ``<out>/checkpoints/step_<k>/`` (written under a temporary name and
renamed) and the final ``<out>/student/`` (``distill/io.py``), which
``earshot export`` reads. MLflow (``shared/tracking.py``): params, ``train/*``
losses every step, ``val/*`` metrics at each evaluation, the student folder as
an artifact; a resumed run continues its MLflow run.

Checkpoints, the optimizer state, the resume rule, the LR schedule and the
batch order are ``shared/training.py``'s, shared with ``cloud/train.py``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
from torch import nn

from cloud.model.io import WEIGHTS_FILE as TEACHER_WEIGHTS
from cloud.model.io import load_teacher
from distill.data import TeacherView, WindowSet, dataset_root_of, load_split
from distill.io import save_student
from distill.losses import binary_kd_loss, confidence_loss, confidence_targets, feature_loss, hard_loss
from distill.macs import count_macs
from distill.metrics import auroc, macro_f1
from distill.students import EVENT_NAMES, example_inputs, labels_of, make_student, num_parameters
from distill.teacher_tokens import teacher_window_targets
from distill.distill_config import DistillConfig
from shared.config import UserError
from shared.dataset import load_dataset
from shared.tracking import flatten, make_tracker
from shared.training import (batch_indices, check_resume_config, latest_checkpoint, load_optimizer, lr_at,
                             make_adamw, read_state, replace_folder, save_checkpoint, save_optimizer, seed_step,
                             set_lr)

__all__ = ["STUDENT_DIR", "TARGETS_FILE", "DistillRecipe", "run", "student_outputs"]

STUDENT_DIR = "student"
TARGETS_FILE = "teacher_targets.safetensors"
TARGETS_KEY_FILE = "teacher_targets.json"
WEIGHTS_FILE = "weights.safetensors"
# Config keys a resumed run may change: they steer logging and evaluation, not the maths.
_RESUME_MAY_CHANGE = {
    "max_steps", "log_every", "eval_every", "checkpoint_every", "keep_checkpoints", "resume", "threads", "mlflow",
    "teacher", "data.dataset",
}
_EVAL_BATCH = 256


@torch.no_grad()
def student_outputs(model: nn.Module, windows: WindowSet, batch_size: int = _EVAL_BATCH) -> dict[str, torch.Tensor]:
    """``forward_train`` outputs (logits, embedding, confidence_logit) over all windows, in eval mode."""
    was_training = model.training
    model.eval()
    parts: dict[str, list[torch.Tensor]] = {}
    for i in range(0, len(windows), batch_size):
        out = model.forward_train(*windows.student_inputs(np.arange(i, min(i + batch_size, len(windows)))))
        for k, v in out.items():
            parts.setdefault(k, []).append(v)
    model.train(was_training)
    return {k: torch.cat(v) for k, v in parts.items()}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class DistillRecipe:
    """Distil an `AVTeacher` into one student (see the module docstring)."""

    def __init__(self, cfg: DistillConfig) -> None:
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.seed, self.max_steps, self.batch_size = cfg.seed, cfg.max_steps, cfg.batch_size
        self.temperature, self.kd_weight = cfg.kd.temperature, cfg.kd.kd_weight
        self.feature_weight, self.confidence_weight = cfg.kd.feature_weight, cfg.kd.confidence_weight
        self.grad_clip = cfg.optim.grad_clip
        self.log_every, self.eval_every = cfg.log_every, cfg.eval_every
        self.checkpoint_every, self.keep_checkpoints = cfg.checkpoint_every, cfg.keep_checkpoints
        self.n_out = len(labels_of(cfg.student.name))  # the first n_out teacher tags
        self.has_confidence = cfg.student.name == "av"
        self.step = 0
        self.resumed_from: int | None = None
        self.mlflow_run_id: str | None = None
        self.last_loss: float | None = None
        self.last_metrics: dict[str, float] | None = None

    # --- setup ----------------------------------------------------------------------

    def setup(self) -> None:
        cfg = self.cfg
        torch.set_num_threads(cfg.threads or max(1, os.cpu_count() or 1))
        checkpoint = latest_checkpoint(self.out)
        if checkpoint is not None and not cfg.resume:
            raise UserError(f"out: {self.out} already holds {checkpoint.name}; resume=true continues it, or pick a new out")

        # The teacher first: its card says what it reads of a window and which data it saw.
        # Without one (teacher=null) the student learns the world's exact labels only.
        self.teacher, self.teacher_card, self.teacher_parameters, view = None, {}, 0, None
        if cfg.teacher is not None:
            self.teacher, _, self.teacher_card = load_teacher(cfg.teacher)
            self.teacher_parameters = self.teacher.num_parameters()  # before freezing: it counts trainable ones
            for p in self.teacher.parameters():
                p.requires_grad_(False)
            view = TeacherView.from_card(self.teacher_card)
        self.dataset_root = (dataset_root_of(self.teacher_card, cfg.teacher, cfg.data.dataset)
                             if cfg.teacher is not None else Path(cfg.data.dataset))
        dataset = load_dataset(self.dataset_root)

        # Windows of the train and val recordings, in the forms both models read.
        s = cfg.student
        common = dict(
            audio_s=s.audio_s, stride_s=cfg.data.stride_s, teacher_view=view,
            frame_size_px=s.frame_size_px if s.name == "av" else None, max_recordings=cfg.data.max_recordings,
        )
        self.train_set = load_split(dataset, "train", **common)
        self.val_set = load_split(dataset, "val", **common)
        self.train_emphasis = None  # data.onset_weight: the train windows that hold a sound's beginning weigh more
        if cfg.data.onset_weight > 0:
            self.train_emphasis = self.train_set.onset_emphasis(cfg.data.onset_s, cfg.data.onset_weight,
                                                                min(self.n_out, len(EVENT_NAMES)))
        if not len(self.train_set):
            raise UserError(f"{self.dataset_root}: the train split has no window of {s.audio_s} s")
        if s.name == "av":  # the exported program reads the camera frame as recorded (shared/frames.py)
            recorded = {tuple(r.camera_shape) for r in self.train_set.recordings if r.camera_shape}
            if recorded - {(s.camera_px, s.camera_px)}:
                raise UserError(f"student.camera_px: {s.camera_px}, but {self.dataset_root} stores frames of "
                                f"{sorted(recorded)} px: set student.camera_px to the recorded size")

        # Teacher targets after the windows (they are per window), before the student
        # (nothing about the student changes them).
        self.targets = self._teacher_targets()

        # The student (and the feature adapter) after seeding, so a run is a function of seed.
        torch.manual_seed(self.seed)
        self.student = make_student(s)
        self.adapter = None
        if self.feature_weight > 0:
            self.adapter = nn.Linear(self.student.embedding_dim, self.targets["train.features"].shape[1])
        trained = list(self.student.parameters()) + (list(self.adapter.parameters()) if self.adapter else [])
        self.optimizer = make_adamw(trained, cfg.optim)
        self.num_parameters = num_parameters(self.student)
        self.macs = count_macs(self.student, example_inputs(s)).total

        # Resume into the built objects; MLflow last, as a resumed run continues its MLflow run.
        if checkpoint is not None:
            self._load_checkpoint(checkpoint)
        self._start_mlflow()
        print(
            f"student {s.name}: {self.num_parameters / 1e3:.1f} k parameters, {self.macs / 1e6:.2f} M MACs per call; "
            f"teacher {self.teacher_parameters / 1e6:.2f} M parameters; "
            f"{len(self.train_set)} train / {len(self.val_set)} val windows"
            + (f"; resuming from step {self.resumed_from}" if self.resumed_from is not None else ""),
            flush=True,
        )

    def _teacher_targets(self) -> dict[str, torch.Tensor]:
        """Teacher logits and features per window, from ``<out>`` if this run computed them already
        (empty without a teacher)."""
        if self.teacher is None:
            return {}
        key = {
            "targets": "per-token v1",  # distill/teacher_tokens.py (older runs cached pooled tags)
            "teacher_weights_sha256": _sha256(Path(self.cfg.teacher) / TEACHER_WEIGHTS),
            "dataset": str(Path(self.dataset_root).resolve()),
            "audio_s": self.cfg.student.audio_s,
            "frame_size_px": self.cfg.student.frame_size_px if self.cfg.student.name == "av" else None,
            "data": dataclasses.asdict(self.cfg.data) | {"dataset": None},
            "windows": {"train": len(self.train_set), "val": len(self.val_set)},
        }
        path, key_path = self.out / TARGETS_FILE, self.out / TARGETS_KEY_FILE
        if path.is_file() and key_path.is_file() and json.loads(key_path.read_text(encoding="utf-8")) == key:
            return safetensors.torch.load_file(str(path))
        t0 = time.perf_counter()
        targets = {}
        for split, windows in (("train", self.train_set), ("val", self.val_set)):
            logits, features = teacher_window_targets(self.teacher, windows)
            targets[f"{split}.logits"], targets[f"{split}.features"] = logits.contiguous(), features.contiguous()
        self.out.mkdir(parents=True, exist_ok=True)
        safetensors.torch.save_file(targets, str(path))
        key_path.write_text(json.dumps(key, indent=1) + "\n", encoding="utf-8")
        print(f"teacher targets: {len(self.train_set) + len(self.val_set)} windows in {time.perf_counter() - t0:.1f} s", flush=True)
        return targets

    # --- one batch ------------------------------------------------------------------

    def _loss_step(self, idx: list[int]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(total loss, its parts) for the train windows ``idx``."""
        n = self.n_out
        labels = torch.from_numpy(self.train_set.labels[idx, :n])
        mask = self.train_set.label_mask[idx, :n]
        if self.train_emphasis is not None:
            mask = mask.copy()
            mask[:, :self.train_emphasis.shape[1]] *= self.train_emphasis[idx]
        mask = torch.from_numpy(mask)
        out = self.student.forward_train(*self.train_set.student_inputs(idx))
        hard = hard_loss(out["logits"], labels, self.cfg.data.pos_weight, mask)
        loss, parts = (1.0 - self.kd_weight) * hard, {"hard": hard}
        teacher_logits = None
        if self.teacher is not None:
            teacher_logits = self.targets["train.logits"][idx, :n]  # cached: the teacher ran under no_grad once
            parts["kd"] = binary_kd_loss(out["logits"], teacher_logits, self.temperature)
            loss = loss + self.kd_weight * parts["kd"]
        if self.adapter is not None:
            parts["feature"] = feature_loss(self.adapter(out["embedding"]), self.targets["train.features"][idx])
            loss = loss + self.feature_weight * parts["feature"]
        if self.has_confidence:
            reference = teacher_logits if self.cfg.kd.confidence_target == "teacher" else labels
            target = confidence_targets(out["logits"], reference, reference_is_logits=self.cfg.kd.confidence_target == "teacher")
            parts["confidence"] = confidence_loss(out["confidence_logit"], target)
            loss = loss + self.confidence_weight * parts["confidence"]
        return loss, parts

    # --- the loop -------------------------------------------------------------------

    def train(self) -> None:
        t0, step0 = time.perf_counter(), self.step
        trained = [p for g in self.optimizer.param_groups for p in g["params"]]
        while self.step < self.max_steps:
            step = self.step
            seed_step(self.seed, step)  # any randomness, and the batch, are functions of the step
            lr = lr_at(step, self.cfg.optim, self.max_steps)
            set_lr(self.optimizer, lr)

            self.student.train()
            loss, parts = self._loss_step(batch_indices(len(self.train_set), self.batch_size, self.seed, step))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(trained, self.grad_clip)
            self.optimizer.step()
            self.step = step + 1

            self.last_loss = loss.item()
            self._log({"train/loss": self.last_loss, "train/lr": lr, **{f"train/{k}": v.item() for k, v in parts.items()}})
            if self.step % self.log_every == 0 or self.step == self.max_steps:
                rate = (self.step - step0) / max(time.perf_counter() - t0, 1e-9)
                detail = "  ".join(f"{k} {v.item():.4f}" for k, v in parts.items())
                print(f"step {self.step}/{self.max_steps}  loss {self.last_loss:.4f}  {detail}  lr {lr:.2e}  {rate:.1f} steps/s", flush=True)
                self.tracker.flush()
            if self.step % self.eval_every == 0 or self.step == self.max_steps:
                self._evaluate()
            if self.step % self.checkpoint_every == 0 or self.step == self.max_steps:
                self._save_checkpoint()
        self._save_final()

    # --- evaluation -----------------------------------------------------------------

    def _evaluate(self) -> dict[str, float] | None:
        """Val metrics at threshold 0.5 (export picks tuned thresholds later)."""
        if not len(self.val_set):
            return None
        n = self.n_out
        out = student_outputs(self.student, self.val_set)
        labels, mask = self.val_set.labels[:, :n], self.val_set.label_mask[:, :n]
        s_prob = torch.sigmoid(out["logits"]).numpy()
        half = np.full(n, 0.5)
        m = {
            "val/hard": hard_loss(out["logits"], torch.from_numpy(labels), mask=torch.from_numpy(mask)).item(),
            "val/macro_f1": macro_f1(s_prob, labels, half, mask),
        }
        if self.teacher is not None:
            teacher = self.targets["val.logits"][:, :n]
            t_prob = torch.sigmoid(teacher).numpy()
            m["val/kd"] = binary_kd_loss(out["logits"], teacher, self.temperature).item()
            m["val/teacher_macro_f1"] = macro_f1(t_prob, labels, half, mask)
            m["val/agreement_f1"] = macro_f1(s_prob, t_prob >= 0.5, half)
            m["val/retention"] = (m["val/macro_f1"] / m["val/teacher_macro_f1"] if m["val/teacher_macro_f1"] > 0
                                  else float("nan"))
        if self.has_confidence and self.teacher is not None:
            agree = confidence_targets(out["logits"], teacher, reference_is_logits=True).numpy()
            m["val/confidence_auroc"] = auroc(torch.sigmoid(out["confidence_logit"]).numpy(), agree)
            m["val/agreement_rate"] = float(agree.mean())
        self._log(m)
        self.tracker.flush()
        print(f"eval step {self.step}: " + "  ".join(f"{k[4:]} {v:.4f}" for k, v in m.items()), flush=True)
        self.last_metrics = m
        return m

    # --- checkpoints ----------------------------------------------------------------

    def _trained_state(self) -> dict[str, torch.Tensor]:
        state = {f"student.{k}": v for k, v in self.student.state_dict().items()}
        if self.adapter is not None:
            state.update({f"adapter.{k}": v for k, v in self.adapter.state_dict().items()})
        return {k: v.contiguous() for k, v in state.items()}

    def _save_checkpoint(self) -> None:
        self.tracker.flush()

        def write(folder: Path) -> dict[str, Any]:
            safetensors.torch.save_file(self._trained_state(), str(folder / WEIGHTS_FILE))
            return {"optimizer": save_optimizer(self.optimizer, folder)}

        state = {"step": self.step, "mlflow_run_id": self.mlflow_run_id, "config": dataclasses.asdict(self.cfg)}
        save_checkpoint(self.out, self.step, write, state, self.keep_checkpoints)

    def _load_checkpoint(self, folder: Path) -> None:
        state = read_state(folder)
        check_resume_config(folder, state["config"], dataclasses.asdict(self.cfg), _RESUME_MAY_CHANGE, "distilled")
        weights = safetensors.torch.load_file(str(folder / WEIGHTS_FILE))
        self.student.load_state_dict({k[8:]: v for k, v in weights.items() if k.startswith("student.")})
        if self.adapter is not None:
            self.adapter.load_state_dict({k[8:]: v for k, v in weights.items() if k.startswith("adapter.")})
        load_optimizer(self.optimizer, folder, state["optimizer"])
        self.step = self.resumed_from = int(state["step"])
        self.mlflow_run_id = state.get("mlflow_run_id")

    def _save_final(self) -> None:
        final = replace_folder(self.out / STUDENT_DIR, lambda tmp: save_student(tmp, self.student, self.cfg.student, {
            "step": self.step,
            "num_parameters": self.num_parameters,
            "macs": self.macs,
            "teacher": None if self.teacher is None else {
                "folder": str(Path(self.cfg.teacher).resolve()),
                "num_parameters": self.teacher_parameters,
                "mlflow_run_id": self.teacher_card.get("mlflow_run_id"),
            },
            "data": {"dataset": str(Path(self.dataset_root).resolve()), **{k: v for k, v in dataclasses.asdict(self.cfg.data).items() if k != "dataset"}},
            "kd": dataclasses.asdict(self.cfg.kd),
            "val": {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in (self.last_metrics or {}).items()},
            "mlflow_run_id": self.mlflow_run_id,
        }))
        print(f"student: {final}", flush=True)
        self.tracker.flush()
        self.tracker.artifacts(final, STUDENT_DIR)

    # --- tracking -------------------------------------------------------------------

    def _start_mlflow(self) -> None:
        m = self.cfg.mlflow
        self.tracker = make_tracker(m)
        if self.mlflow_run_id is not None and m.enabled:
            self.tracker.start(run_id=self.mlflow_run_id)
            self.tracker.tags({"resumed_from_step": str(self.resumed_from)})
            # Steps the killed run had flushed come out identical now (exact resume): log them once.
            self.tracker.skip_logged("train/loss")
            return
        self.mlflow_run_id = self.tracker.start(run_name=m.run_name)
        params = flatten(dataclasses.asdict(self.cfg))
        params.update(num_parameters=self.num_parameters, macs=self.macs, train_windows=len(self.train_set),
                      val_windows=len(self.val_set), teacher_num_parameters=self.teacher_parameters)
        self.tracker.params(params)

    def _log(self, metrics: dict[str, float]) -> None:
        self.tracker.metrics(metrics, self.step)

    def cleanup(self, failed: bool = False) -> None:
        tracker = getattr(self, "tracker", None)
        if tracker is not None:
            tracker.end(failed=failed)


def run(cfg: DistillConfig) -> DistillRecipe:
    """The verb's body: setup, train, cleanup. Returns the finished recipe."""
    recipe = DistillRecipe(cfg)
    try:
        recipe.setup()
        recipe.train()
    except BaseException:
        recipe.cleanup(failed=True)
        raise
    recipe.cleanup()
    return recipe
