"""`earshot train`: the audio-visual teacher's training recipe, top to bottom.

    earshot train data.qa_dir=data/qa out=runs/teacher
    earshot train train/preset=tiny data.qa_dir=data/qa_tiny out=/tmp/teacher_tiny
    torchrun --nproc_per_node=2 --no-python earshot train data.qa_dir=data/qa out=runs/teacher

One class in the torchtune style: ``__init__`` reads scalars, ``setup()``
builds everything in dependency order, ``_loss_step`` is the maths of one
batch, ``train()`` is an explicit loop, ``cleanup()`` releases. No trainer
framework; copy and modify.

Two phases, so that QA steps are cheap (``cloud/model/teacher.py``):

1. **Perception** (``perception.steps``): the encoders, the token context and
   the per-token heads learn the world's exact labels on random windows of
   the training recordings (sounds per 0.5 s token, actions and states per
   frame). The result is saved to ``<out>/perception/``; a restarted run that
   finds it skips this phase (a kill during it restarts the phase).
2. **QA** (``max_steps``): with ``perception.cache`` the encoders are frozen
   and their per-token outputs computed once per recording
   (``cloud/data.py:FeatureCache``), so a step runs only the token context,
   the heads, the gate, fusion and the decoder. The loss is the answer
   cross-entropy averaged per record (a yes/no answer weighs as much as a
   dense narration) plus ``perception.weight`` x the per-token loss.
   Validation scores closed-form answers by option likelihood.

Exact resume. A killed run, started again with the same ``out``, continues
from its newest checkpoint and ends bit-for-bit where an uninterrupted run
ends (``tests/cloud/test_train_teacher.py``). Three things make that true:

- the batch of step k is a pure function of (seed, k): each epoch's order is
  ``randperm`` seeded by (seed, epoch), so no sampler state needs saving;
- the torch RNG (dropout) is re-seeded from (seed, rank, k) before every
  step, so the RNG state at a step boundary is known without storing it;
- model weights and the AdamW moments are saved exactly (safetensors), the
  rest of the optimizer and the step as JSON. Nothing is pickled.

Checkpoints: ``<out>/checkpoints/step_<k>/`` holds a model folder
(``cloud/model/io.py``) plus ``optimizer.safetensors`` and ``state.json``;
it is written under a temporary name and renamed, so a kill mid-write never
leaves a half checkpoint. The final weights go to ``<out>/model/``, which
``earshot eval`` and distillation read.

Distributed: under ``torchrun`` (``WORLD_SIZE`` > 1) every process joins a
gloo group and wraps the model in DDP; the global ``batch_size`` is split
evenly, rank r taking every r-th record of the step's batch. Rank 0 alone
evaluates, checkpoints and talks to MLflow.

MLflow (``shared/tracking.py``: store and artifact placement as every verb):
a run logs the flattened config as params, ``train/loss`` (and its parts) at
every step, ``val/acc/<category>`` (and evidence and SNR breakdowns) at each
evaluation, and the final model folder as the ``model`` artifact. A resumed
run continues the same MLflow run and logs each step once.

Checkpoints, the optimizer state, the resume rule, the LR schedule and the
batch order are ``shared/training.py``'s, shared with ``distill/recipe.py``.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from cloud.data import (FeatureCache, PerceptionWindows, QADataset, RecordingStore, WindowSpec, collate,
                        label_pos_weights, load_records, resolve_dataset)
from cloud.eval import flat_metrics, perception_scores, predict, score_predictions
from cloud.model.io import VOCAB_FILE, WEIGHTS_FILE, load_weights, save_teacher
from cloud.model.perception import FRAME_LABELS, SOUND_LABELS
from cloud.model.teacher import AVTeacher
from cloud.model.tokenizer import Tokenizer
from cloud.teacher_config import TrainConfig
from shared.config import UserError
from shared.tracking import flatten, make_tracker
from shared.training import (batch_indices, check_resume_config, latest_checkpoint, load_optimizer, lr_at,
                             make_adamw, read_state, replace_folder, save_checkpoint, save_optimizer, seed_step,
                             set_lr)

__all__ = ["MODEL_DIR", "PERCEPTION_DIR", "RESUME_MAY_CHANGE", "TrainRecipe", "run", "run_perception", "perception_loss",
           "with_saved_defaults", "label_word_ids"]

MODEL_DIR = "model"
PERCEPTION_DIR = "perception"
_PERCEPTION_STATE = "perception_state.json"
# Config keys a resumed run may change: they steer logging and evaluation, not the maths.
RESUME_MAY_CHANGE = {
    "max_steps", "log_every", "eval_every", "checkpoint_every", "keep_checkpoints", "resume", "threads",
    "mlflow", "data.val_split", "data.max_val_records",
}


class TrainRecipe:
    """Train an `AVTeacher` on instruction QA (see the module docstring)."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.seed = cfg.seed
        self.max_steps = cfg.max_steps
        self.batch_size = cfg.batch_size
        self.perception_weight = cfg.perception.weight
        self.grad_clip = cfg.optim.grad_clip
        self.log_every, self.eval_every = cfg.log_every, cfg.eval_every
        self.checkpoint_every, self.keep_checkpoints = cfg.checkpoint_every, cfg.keep_checkpoints
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.is_main = self.rank == 0
        self.step = 0
        self.resumed_from: int | None = None
        self.mlflow_run_id: str | None = None
        self.last_loss: float | None = None  # of the last step run by this process
        self.last_ce: float | None = None  # its answer part
        self.last_scores: dict[str, Any] | None = None  # of the last evaluation (rank 0)

    # --- setup ----------------------------------------------------------------------

    def setup(self) -> None:
        cfg = self.cfg
        # Threads and the process group first: everything after allocates or talks.
        if self.batch_size % self.world_size:
            raise UserError(f"batch_size: {self.batch_size} does not split evenly over {self.world_size} processes")
        if cfg.perception.steps and cfg.perception.batch_size % self.world_size:
            raise UserError(f"perception.batch_size: {cfg.perception.batch_size} does not split evenly over "
                            f"{self.world_size} processes")
        torch.set_num_threads(cfg.threads or max(1, (os.cpu_count() or 1) // self.world_size))
        if self.world_size > 1:
            dist.init_process_group("gloo")

        # The newest checkpoint decides the vocabulary and the starting step, so find it
        # before building anything that depends on either.
        checkpoint = latest_checkpoint(self.out)
        if checkpoint is not None and not cfg.resume:
            raise UserError(f"out: {self.out} already holds {checkpoint.name}; resume=true continues it, or pick a new out")

        # Records before the tokenizer: its vocabulary is built from the training records.
        self.train_records = load_records(cfg.data.qa_dir, f"train_{cfg.data.narration}", cfg.data.max_train_records)
        self.val_records = load_records(cfg.data.qa_dir, cfg.data.val_split, cfg.data.max_val_records)
        if cfg.model.decoder == "lm":
            self.tokenizer = None  # the LM's own, loaded with it below
        elif checkpoint is not None:
            self.tokenizer = Tokenizer.load(checkpoint / VOCAB_FILE)
        else:
            # every perception label is a word, so each can be mixed into the prefix (label_word_ids)
            labels = " ".join((*SOUND_LABELS, *FRAME_LABELS))
            self.tokenizer = Tokenizer.build([r.question for r in self.train_records],
                                             answers=[labels, *(r.answer for r in self.train_records)])

        # Datasets share one store, so each recording is decoded once per process.
        self.spec = WindowSpec(
            audio_history_s=cfg.data.audio_history_s,
            frame_hz=cfg.data.frame_hz,
            max_window_s=cfg.data.max_window_s,
            frame_size_px=cfg.model.frame_size_px,
            n_mels=cfg.model.n_mels,
        )
        self.store = RecordingStore(resolve_dataset(cfg.data.qa_dir, cfg.data.dataset), self.spec.frame_size_px,
                                    self.spec.n_mels)
        self.pos_weights = None  # perception.pos_weight: (sound, frame) weights of positive entries
        if cfg.perception.pos_weight == "sqrt":
            sound_w, frame_w = label_pos_weights(self.store, sorted({r.recording_id for r in self.train_records}),
                                                 cfg.model.audio_token_s, cfg.data.frame_hz,
                                                 cfg.perception.pos_weight_max)
            self.pos_weights = (torch.from_numpy(sound_w), torch.from_numpy(frame_w))
            if self.is_main:
                print("perception.pos_weight=sqrt, sounds: " + ", ".join(
                    f"{l} {w:.1f}" for l, w in sorted(zip(SOUND_LABELS, sound_w), key=lambda lw: -lw[1])), flush=True)

        # The model after the tokenizer (vocabulary size) and after seeding, so every
        # process starts from the same weights (DDP would broadcast rank 0's anyway).
        torch.manual_seed(self.seed)
        if cfg.model.decoder == "lm":
            from cloud.model.lm_decoder import lm_sha256, make_lm_teacher

            self.model, self.tokenizer, lm = make_lm_teacher(cfg.model)
            self.model.lm_sha256 = lm_sha256(lm.path)  # once, not per checkpoint
            if self.is_main:
                print(f"decoder: {lm.name} ({lm.num_parameters / 1e6:.1f} M parameters, frozen; LoRA r="
                      f"{cfg.model.lora_rank}), loaded in {lm.load_s:.1f} s", flush=True)
        else:
            self.model = AVTeacher(cfg.model, len(self.tokenizer), self.tokenizer.pad_id, self.tokenizer.bos_id,
                                   self.tokenizer.eos_id, label_word_ids=label_word_ids(self.tokenizer))
        q, a = cfg.model.max_question_tokens, cfg.model.max_answer_tokens
        self.train_set = QADataset(self.train_records, self.store, self.tokenizer, self.spec, q, a,
                                   corrupt_share=cfg.data.corrupt_share)
        self.val_set = QADataset(self.val_records, self.store, self.tokenizer, self.spec, q, a)

        # Perception is done when a QA checkpoint or the perception folder exists, or
        # another run's phase 1 is given (variants that differ after phase 1 share it).
        self.perception_done = checkpoint is not None or cfg.perception.steps == 0
        if checkpoint is None and (self.out / PERCEPTION_DIR / _PERCEPTION_STATE).is_file():
            self._load_perception(self.out / PERCEPTION_DIR)
        elif checkpoint is None and cfg.perception.init:
            self._load_perception(_perception_folder(cfg.perception.init), shared=True)

        # Frozen encoders before the optimizer, which then holds only what the QA phase trains.
        # AdamW: matrices decay, biases and norms do not.
        self._freeze_encoders(cfg.perception.cache)
        self.optimizer = make_adamw(self.model.parameters(), cfg.optim)

        # Resume into the plain module and optimizer, before DDP wraps them.
        if checkpoint is not None:
            self._load_checkpoint(checkpoint)
        self.ddp = DistributedDataParallel(self.model) if self.world_size > 1 else self.model

        # MLflow last: a resumed run continues the MLflow run its checkpoint names.
        self._start_mlflow()
        if self.is_main:
            print(
                f"teacher: {self.model.num_parameters() / 1e6:.2f} M parameters, vocabulary {len(self.tokenizer)}, "
                f"{len(self.train_set)} train / {len(self.val_set)} val records, "
                f"{self.world_size} process(es) x {torch.get_num_threads()} thread(s)"
                + (f"; resuming from step {self.resumed_from}" if self.resumed_from is not None else ""),
                flush=True,
            )

    # --- one batch ------------------------------------------------------------------

    def _loss_step(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(total, answer cross-entropy averaged per record, per-token perception BCE)."""
        out = self.ddp(batch)
        target = batch["answer_out"]
        token_ce = F.cross_entropy(out["logits"].transpose(1, 2), target, ignore_index=self.tokenizer.pad_id,
                                   reduction="none")
        real = (target != self.tokenizer.pad_id).to(token_ce.dtype)
        ce = ((token_ce * real).sum(1) / real.sum(1).clamp_min(1.0)).mean()
        perc = perception_loss(out, batch, self.pos_weights)
        return ce + self.perception_weight * perc, ce, perc

    # --- phase 1: perception --------------------------------------------------------

    def _freeze_encoders(self, frozen: bool) -> None:
        for module in (self.model.audio_encoder, self.model.visual_encoder):
            for p in module.parameters():
                p.requires_grad_(not frozen)

    def _perception_parts(self) -> list[torch.nn.Module]:
        m = self.model
        return [m.audio_encoder, m.visual_encoder, m.audio_context, m.visual_context, m.sound_head, m.frame_head]

    def pretrain_perception(self) -> None:
        """Phase 1: the per-token loss alone on random windows of the training recordings.

        Under torchrun the processes split each batch (window i goes to process
        i mod world size) and average their gradients before every step, so all
        hold the same weights throughout; rank 0 then writes ``<out>/perception/``."""
        cfg = self.cfg.perception
        self._freeze_encoders(False)
        params = [p for part in self._perception_parts() for p in part.parameters()]
        opt = make_adamw(params, dataclasses.replace(self.cfg.optim, lr=cfg.lr))
        windows = PerceptionWindows(self.store, sorted({r.recording_id for r in self.train_records}), self.spec,
                                    self.seed, augment=True)
        schedule = dataclasses.replace(self.cfg.optim, lr=cfg.lr)
        mine = range(self.rank, cfg.batch_size, self.world_size)
        t0 = time.perf_counter()
        for step in range(cfg.steps):
            seed_step(self.seed + 7, step)  # its own stream: the QA phase's steps are not shifted
            set_lr(opt, lr_at(step, schedule, cfg.steps))
            batch = collate(windows.batch(step, cfg.batch_size, mine))
            self.model.train()
            loss = perception_loss(self.model.perceive(batch), batch, self.pos_weights)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if self.world_size > 1:
                loss = self._average_gradients(params, loss)
            if self.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
            opt.step()
            self._log({"perception/loss": loss.item()}, step + 1)
            if self.is_main and ((step + 1) % self.log_every == 0 or step + 1 == cfg.steps):
                rate = (step + 1) / max(time.perf_counter() - t0, 1e-9)
                print(f"perception {step + 1}/{cfg.steps}  loss {loss.item():.4f}  {rate:.2f} steps/s", flush=True)
                self.tracker.flush()
        opt.zero_grad(set_to_none=True)  # no stale gradient may reach the QA phase's clipping
        if self.world_size > 1:
            for p in params:  # the same averaged steps everywhere; rank 0's bytes make it exact
                dist.broadcast(p.data, 0)
        self._log({"perception/seconds": time.perf_counter() - t0}, cfg.steps)
        val_ids = sorted({r.recording_id for r in self.val_records})
        if self.is_main and val_ids:
            scores = perception_scores(self.model, self.store, val_ids, self.spec)
            self._log({f"perception/val_{k}_{m}": v for k, row in scores.items() for m, v in row.items()}, cfg.steps)
            print("perception on val recordings: " + "  ".join(
                f"{k} F1 {100 * row['f1']:.1f} (P {100 * row['precision']:.1f} R {100 * row['recall']:.1f}, "
                f"macro {100 * row['macro_f1']:.1f}, {row['n']} positives)" for k, row in scores.items()), flush=True)
        if self.is_main:
            def write(folder: Path) -> None:
                save_teacher(folder, self.model, self.tokenizer, self._card_extra())
                state = {"steps": cfg.steps, "seed": self.seed, "config": dataclasses.asdict(self.cfg)}
                (folder / _PERCEPTION_STATE).write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")

            replace_folder(self.out / PERCEPTION_DIR, write)
        self._barrier()
        self.perception_done = True

    def _average_gradients(self, params: list[torch.nn.Parameter], loss: torch.Tensor) -> torch.Tensor:
        """Mean of every process's gradients (one all-reduce); returns the mean loss."""
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads] + [loss.detach().reshape(1)])
        dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for p, g in zip(params, grads):
            p.grad = flat[offset : offset + g.numel()].view_as(g).clone()
            offset += g.numel()
        return flat[-1]

    def _load_perception(self, folder: Path, shared: bool = False) -> None:
        """Phase 1's result from ``folder``: all of it (our own), or only the perception
        parts (``shared``: another run's, whose decoder and vocabulary may differ)."""
        state = json.loads((folder / _PERCEPTION_STATE).read_text(encoding="utf-8"))
        keys = ("perception.steps", "perception.batch_size", "perception.lr", "perception.pos_weight", "data.qa_dir", "data.dataset",
                "data.frame_hz", "data.max_window_s", "model.n_mels", "model.audio_token_s", "model.audio_channels",
                "model.frame_size_px", "model.visual_channels", "model.d_model", "model.context_layers")
        if not shared:
            keys += ("seed", "model")
        then, now = flatten(with_saved_defaults(state["config"])), flatten(dataclasses.asdict(self.cfg))
        changed = sorted(k for k in set(then) | set(now) if k.startswith(keys) and then.get(k) != now.get(k))
        if changed:
            what = "perception.init" if shared else "out"
            raise UserError(f"{what}: {folder} was pre-trained with a different config ({', '.join(changed)})")
        weights = safetensors.torch.load_file(str(folder / WEIGHTS_FILE))
        if shared:
            parts = {name for name, module in self.model.named_children() if module in self._perception_parts()}
            weights = {k: v for k, v in weights.items() if k.split(".", 1)[0] in parts}
            missing, unexpected = self.model.load_state_dict(weights, strict=False)
            missing = [k for k in missing if k.split(".", 1)[0] in parts]
        else:
            load_weights(self.model, folder / WEIGHTS_FILE)
            missing = unexpected = []
        if missing or unexpected:
            raise UserError(f"{folder / WEIGHTS_FILE}: missing {missing}, unexpected {unexpected}")
        self.perception_done = True

    def _build_cache(self) -> None:
        """Phase 2 with frozen encoders: their per-token outputs, once per recording."""
        if not self.cfg.perception.cache:
            return
        self.model.eval()
        cache = FeatureCache(self.model, self.store)
        ids = sorted({*self.train_set.keys, *self.val_set.keys})
        t0 = time.perf_counter()
        from rich.progress import Progress

        with Progress(disable=not self.is_main, transient=True) as bar:
            task = bar.add_task("caching encoder features", total=len(ids))
            for rid in ids:
                cache.add(rid)
                bar.advance(task)
        self.train_set.use_cache(cache)
        self.val_set.use_cache(cache)
        if self.is_main:
            print(f"feature cache: {len(ids)} recordings in {time.perf_counter() - t0:.1f} s", flush=True)

    # --- the loop -------------------------------------------------------------------

    def train(self) -> None:
        if not self.perception_done:
            self.pretrain_perception()
            self._freeze_encoders(self.cfg.perception.cache)
        self._build_cache()
        t0, step0 = time.perf_counter(), self.step
        while self.step < self.max_steps:
            step = self.step
            # Dropout's randomness and the batch are functions of the step: nothing to save for resume.
            seed_step(self.seed, step, self.rank)
            lr = lr_at(step, self.cfg.optim, self.max_steps)
            set_lr(self.optimizer, lr)
            idx = batch_indices(len(self.train_set), self.batch_size, self.seed, step, self.rank, self.world_size)
            batch = collate([self.train_set[i] for i in idx], self.tokenizer.pad_id)

            self.ddp.train()
            loss, ce, perc = self._loss_step(batch)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], self.grad_clip)
            self.optimizer.step()
            self.step = step + 1

            loss_v, ce_v, perc_v = self._mean_over_processes([loss.item(), ce.item(), perc.item()])
            self.last_loss, self.last_ce = loss_v, ce_v
            self._log({"train/loss": loss_v, "train/ce": ce_v, "train/perception": perc_v, "train/lr": lr}, self.step)
            if self.is_main and (self.step % self.log_every == 0 or self.step == self.max_steps):
                rate = (self.step - step0) / max(time.perf_counter() - t0, 1e-9)
                print(
                    f"step {self.step}/{self.max_steps}  loss {loss_v:.4f}  ce {ce_v:.4f}  perception {perc_v:.4f}  "
                    f"lr {lr:.2e}  {rate:.2f} steps/s",
                    flush=True,
                )
                self.tracker.flush()
            if self.step % self.eval_every == 0 or self.step == self.max_steps:
                self._evaluate()
            if self.step % self.checkpoint_every == 0 or self.step == self.max_steps:
                self._save_checkpoint()
        self._log({"train/seconds": time.perf_counter() - t0}, self.step)
        self._save_final()

    def _mean_over_processes(self, values: list[float]) -> list[float]:
        if self.world_size == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t)
        return (t / self.world_size).tolist()

    # --- evaluation -----------------------------------------------------------------

    def _evaluate(self) -> dict[str, Any] | None:
        scores = None
        if self.is_main and len(self.val_set):
            t0 = time.perf_counter()
            predictions = predict(self.model, self.tokenizer, self.val_set, self.batch_size)
            scores = score_predictions(self.val_records, predictions)
            self._log(flat_metrics(scores, "val"), self.step)
            self.tracker.flush()
            per_cat = "  ".join(f"{k} {100 * v:.1f}" for k, v in scores["category"].items())
            closed = scores["bench"].get("closed", {})
            pairs = f"  pairs {100 * closed['pair']['value']:.1f}" if closed.get("pair") else ""
            print(f"eval step {self.step}: {per_cat}  overall {100 * scores['overall']:.1f}{pairs}  "
                  f"({time.perf_counter() - t0:.1f} s)", flush=True)
            self.last_scores = scores
        self._barrier()
        return scores

    # --- checkpoints ----------------------------------------------------------------

    def _card_extra(self) -> dict[str, Any]:
        return {
            "data": dataclasses.asdict(self.spec),
            "step": self.step,
            "trained_on": {"qa_dir": str(self.cfg.data.qa_dir), "narration": self.cfg.data.narration},
            "mlflow_run_id": self.mlflow_run_id,
        }

    def _save_checkpoint(self) -> None:
        if self.is_main:
            self.tracker.flush()

            def write(folder: Path) -> dict[str, Any]:
                save_teacher(folder, self.model, self.tokenizer, self._card_extra())
                return {"optimizer": save_optimizer(self.optimizer, folder)}

            state = {"step": self.step, "seed": self.seed, "world_size": self.world_size,
                     "mlflow_run_id": self.mlflow_run_id, "config": dataclasses.asdict(self.cfg)}
            save_checkpoint(self.out, self.step, write, state, self.keep_checkpoints)
        self._barrier()

    def _load_checkpoint(self, folder: Path) -> None:
        state = read_state(folder)
        check_resume_config(folder, with_saved_defaults(state["config"]), dataclasses.asdict(self.cfg),
                            RESUME_MAY_CHANGE)
        load_weights(self.model, folder / WEIGHTS_FILE)
        load_optimizer(self.optimizer, folder, state["optimizer"])
        self.step = self.resumed_from = int(state["step"])
        self.mlflow_run_id = state.get("mlflow_run_id")

    def _save_final(self) -> None:
        if self.is_main:
            final = replace_folder(self.out / MODEL_DIR,
                                   lambda tmp: save_teacher(tmp, self.model, self.tokenizer, self._card_extra()))
            print(f"model: {final}", flush=True)
            self.tracker.flush()
            self.tracker.artifacts(final, MODEL_DIR)
        self._barrier()

    # --- tracking -------------------------------------------------------------------

    def _start_mlflow(self) -> None:
        # Rank 0 alone talks to MLflow; the others get a tracker that does nothing.
        self.tracker = make_tracker(self.cfg.mlflow, enabled=self.is_main)
        if not self.tracker.enabled:
            self.mlflow_run_id = None
            return
        if self.mlflow_run_id is not None:
            self.tracker.start(run_id=self.mlflow_run_id)
            self.tracker.tags({"resumed_from_step": str(self.resumed_from)})
            # Steps after the checkpoint that the killed run had already flushed come out
            # identical this time (exact resume): log them once, not twice.
            self.tracker.skip_logged("train/loss")
            return
        self.mlflow_run_id = self.tracker.start(run_name=self.cfg.mlflow.run_name)
        params = flatten(dataclasses.asdict(self.cfg))
        params.update(num_parameters=self.model.num_parameters(), vocab_size=len(self.tokenizer),
                      world_size=self.world_size, train_records=len(self.train_set))
        self.tracker.params(params)

    def _log(self, metrics: dict[str, float], step: int) -> None:
        self.tracker.metrics(metrics, step)

    def _barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def cleanup(self, failed: bool = False) -> None:
        tracker = getattr(self, "tracker", None)  # None if setup failed before MLflow
        if tracker is not None:
            tracker.end(failed=failed)
        if self.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()


def with_saved_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """A saved config from before ``model.decoder`` existed had the built-in decoder; one from
    before ``perception.pos_weight``, unweighted perception."""
    model = {"decoder": "small", "lm": None, "lora_rank": 8, **config.get("model", {})}
    perception = {"pos_weight": "none", "pos_weight_max": 10.0, **config.get("perception", {})}
    return {**config, "model": model, "perception": perception}


def _perception_folder(path: str) -> Path:
    """``perception.init``: a run's out/ or its perception/ folder.

    Raises:
        UserError: neither holds a finished phase 1.
    """
    for folder in (Path(path) / PERCEPTION_DIR, Path(path)):
        if (folder / _PERCEPTION_STATE).is_file():
            return folder
    raise UserError(f"perception.init: {path} holds no finished perception phase ({PERCEPTION_DIR}/{_PERCEPTION_STATE})")


def perception_loss(out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor],
                    pos_weights: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Masked BCE of the per-token heads: the mean over supervised sound entries and the
    mean over supervised frame entries, averaged (``cloud/model/perception.py``).

    ``pos_weights``: (sound (18,), frame (23,)) weights of each label's positive
    entries (``perception.pos_weight``); None weighs every entry 1."""
    parts = []
    weights = pos_weights or (None, None)
    for logits, target, mask, w in ((out["sound_logits"], batch["sound"], batch["sound_mask"], weights[0]),
                                    (out["frame_logits"], batch["frame"], batch["frame_mask"], weights[1])):
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none", pos_weight=w)
        parts.append((bce * mask).sum() / mask.sum().clamp_min(1.0))
    return sum(parts) / len(parts)


def label_word_ids(tokenizer: Tokenizer) -> list[int]:
    """Token id of every perception label's word (" label", as questions and answers
    write it), -1 if unknown."""
    return [tokenizer.ids.get(" " + l, -1) for l in (*SOUND_LABELS, *FRAME_LABELS)]


def run_perception(cfg: TrainConfig) -> Path:
    """Phase 1 only (for runs that share it: ``perception.init``); returns ``<out>/perception``.

    Skipped when the folder already holds it (same config)."""
    recipe = TrainRecipe(cfg)
    recipe.setup()
    try:
        if not recipe.perception_done:
            recipe.pretrain_perception()
    except BaseException:
        recipe.cleanup(failed=True)
        raise
    recipe.cleanup()
    return recipe.out / PERCEPTION_DIR


def run(cfg: TrainConfig) -> TrainRecipe | None:
    """The verb's body: setup, train, cleanup. Returns the finished recipe.

    ``phase=perception`` stops after phase 1 (``run_perception``)."""
    if cfg.phase == "perception":
        folder = run_perception(cfg)
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"perception: {folder}", flush=True)
        return None
    recipe = TrainRecipe(cfg)
    recipe.setup()
    try:
        recipe.train()
    except BaseException:
        recipe.cleanup(failed=True)
        raise
    recipe.cleanup()
    return recipe
