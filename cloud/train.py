"""`earshot train`: the audio-visual teacher's training recipe, top to bottom.

    earshot train data.qa_dir=data/qa out=runs/teacher
    earshot train train/preset=tiny data.qa_dir=data/qa_tiny out=/tmp/teacher_tiny
    torchrun --nproc_per_node=2 --no-python earshot train data.qa_dir=data/qa out=runs/teacher

One class in the torchtune style: ``__init__`` reads scalars, ``setup()``
builds everything in dependency order, ``_loss_step`` is the maths of one
batch, ``train()`` is an explicit loop, ``cleanup()`` releases. No trainer
framework; copy and modify.

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

MLflow: ``sqlite:///mlflow.db`` in the working directory unless
``MLFLOW_TRACKING_URI`` or ``mlflow.tracking_uri`` says otherwise. A run
logs the flattened config as params, ``train/loss`` (and its parts) at every
step, ``val/acc/<category>`` (and evidence and SNR breakdowns) at each
evaluation, and the final model folder as the ``model`` artifact (stored in
``mlruns/`` beside an sqlite database). A resumed run continues the same
MLflow run and logs each step once.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from cloud.data import QADataset, RecordingStore, WindowSpec, collate, load_records, resolve_dataset
from cloud.eval import flat_metrics, predict, score_predictions, start_mlflow_experiment
from cloud.model.io import VOCAB_FILE, WEIGHTS_FILE, save_teacher
from cloud.model.teacher import AVTeacher
from cloud.model.tokenizer import Tokenizer
from cloud.verbs import TrainConfig
from cloud.checkpoint import load_optimizer, save_optimizer
from shared.config import UserError

__all__ = ["CHECKPOINTS_DIR", "MODEL_DIR", "TrainRecipe", "run", "latest_checkpoint"]

CHECKPOINTS_DIR = "checkpoints"
MODEL_DIR = "model"
STATE_FILE = "state.json"
_STEP_DIR = re.compile(r"^step_(\d{7})$")
# Config keys a resumed run may change: they steer logging and evaluation, not the maths.
RESUME_MAY_CHANGE = {
    "max_steps", "log_every", "eval_every", "checkpoint_every", "keep_checkpoints", "resume", "threads",
    "mlflow", "data.val_split", "data.max_val_records",
}


def latest_checkpoint(out: str | Path) -> Path | None:
    """The newest complete checkpoint folder under ``<out>/checkpoints``, or None."""
    root = Path(out) / CHECKPOINTS_DIR
    steps = sorted(p for p in root.glob("step_*") if _STEP_DIR.match(p.name) and (p / STATE_FILE).is_file())
    return steps[-1] if steps else None


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


class TrainRecipe:
    """Train an `AVTeacher` on instruction QA (see the module docstring)."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.seed = cfg.seed
        self.max_steps = cfg.max_steps
        self.batch_size = cfg.batch_size
        self.tag_weight = cfg.tag_weight
        self.lr, self.warmup_steps, self.min_lr_ratio = cfg.optim.lr, cfg.optim.warmup_steps, cfg.optim.min_lr_ratio
        self.grad_clip = cfg.optim.grad_clip
        self.log_every, self.eval_every = cfg.log_every, cfg.eval_every
        self.checkpoint_every, self.keep_checkpoints = cfg.checkpoint_every, cfg.keep_checkpoints
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.is_main = self.rank == 0
        self.step = 0
        self.resumed_from: int | None = None
        self.mlflow_run_id: str | None = None
        self._metrics: list[tuple[str, float, int]] = []
        self._logged_through = 0  # MLflow already holds this run's metrics up to this step
        self.last_loss: float | None = None  # of the last step run by this process
        self.last_scores: dict[str, Any] | None = None  # of the last evaluation (rank 0)

    # --- setup ----------------------------------------------------------------------

    def setup(self) -> None:
        cfg = self.cfg
        # Threads and the process group first: everything after allocates or talks.
        if self.batch_size % self.world_size:
            raise UserError(f"batch_size: {self.batch_size} does not split evenly over {self.world_size} processes")
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
        if checkpoint is not None:
            self.tokenizer = Tokenizer.load(checkpoint / VOCAB_FILE)
        else:
            self.tokenizer = Tokenizer.build(t for r in self.train_records for t in (r.question, r.answer))

        # Datasets share one store, so each recording is decoded once per process.
        self.spec = WindowSpec(
            audio_history_s=cfg.data.audio_history_s,
            frame_hz=cfg.data.frame_hz,
            max_window_s=cfg.data.max_window_s,
            frame_size_px=cfg.model.frame_size_px,
            n_mels=cfg.model.n_mels,
        )
        store = RecordingStore(resolve_dataset(cfg.data.qa_dir, cfg.data.dataset), self.spec.frame_size_px, self.spec.n_mels)
        q, a = cfg.model.max_question_tokens, cfg.model.max_answer_tokens
        self.train_set = QADataset(self.train_records, store, self.tokenizer, self.spec, q, a)
        self.val_set = QADataset(self.val_records, store, self.tokenizer, self.spec, q, a)

        # The model after the tokenizer (vocabulary size) and after seeding, so every
        # process starts from the same weights (DDP would broadcast rank 0's anyway).
        torch.manual_seed(self.seed)
        self.model = AVTeacher(cfg.model, len(self.tokenizer), self.tokenizer.pad_id, self.tokenizer.bos_id, self.tokenizer.eos_id)

        # AdamW over the model's parameters: matrices decay, biases and norms do not (nanoGPT).
        params = [p for p in self.model.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.optim.weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        self.optimizer = torch.optim.AdamW(groups, lr=self.lr, betas=(cfg.optim.beta1, cfg.optim.beta2))

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
        """(total, answer cross-entropy per answer token, tag BCE)."""
        out = self.ddp(batch)
        logits = out["logits"]
        ce = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), batch["answer_out"].reshape(-1), ignore_index=self.tokenizer.pad_id
        )
        tag = F.binary_cross_entropy_with_logits(out["tag_logits"], batch["tags"])
        return ce + self.tag_weight * tag, ce, tag

    def _batch_indices(self, step: int) -> list[int]:
        """This process's records for ``step``: a pure function of (seed, step, rank)."""
        n = len(self.train_set)
        per_epoch = max(1, n // self.batch_size)
        epoch, b = divmod(step, per_epoch)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed * 1_000_003 + epoch))
        if n < self.batch_size:  # a tiny set: repeat it to fill the batch
            perm = perm.repeat(math.ceil(self.batch_size / n))
        chosen = perm[b * self.batch_size : (b + 1) * self.batch_size]
        return chosen[self.rank :: self.world_size].tolist()

    def _lr_at(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        progress = (step - self.warmup_steps) / max(1, self.max_steps - self.warmup_steps)
        cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        return self.lr * (self.min_lr_ratio + (1.0 - self.min_lr_ratio) * cosine)

    # --- the loop -------------------------------------------------------------------

    def train(self) -> None:
        t0, step0 = time.perf_counter(), self.step
        while self.step < self.max_steps:
            step = self.step
            # Dropout's randomness is a function of the step: nothing to save for resume.
            torch.manual_seed((self.seed << 32) + (self.rank << 24) + step)
            lr = self._lr_at(step)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            batch = collate([self.train_set[i] for i in self._batch_indices(step)], self.tokenizer.pad_id)

            self.ddp.train()
            loss, ce, tag = self._loss_step(batch)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            self.optimizer.step()
            self.step = step + 1

            loss_v, ce_v, tag_v = self._mean_over_processes([loss.item(), ce.item(), tag.item()])
            self.last_loss = loss_v
            self._log({"train/loss": loss_v, "train/ce": ce_v, "train/tag": tag_v, "train/lr": lr}, self.step)
            if self.is_main and (self.step % self.log_every == 0 or self.step == self.max_steps):
                rate = (self.step - step0) / max(time.perf_counter() - t0, 1e-9)
                print(
                    f"step {self.step}/{self.max_steps}  loss {loss_v:.4f}  ce {ce_v:.4f}  tag {tag_v:.4f}  "
                    f"lr {lr:.2e}  {rate:.2f} steps/s",
                    flush=True,
                )
                self._flush_metrics()
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
            self._flush_metrics()
            per_cat = "  ".join(f"{k} {100 * v:.1f}" for k, v in scores["category"].items())
            print(f"eval step {self.step}: {per_cat}  overall {100 * scores['overall']:.1f}  ({time.perf_counter() - t0:.1f} s)", flush=True)
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
            self._flush_metrics()
            root = self.out / CHECKPOINTS_DIR
            final = root / f"step_{self.step:07d}"
            tmp = root / f".tmp_step_{self.step:07d}"
            shutil.rmtree(tmp, ignore_errors=True)
            save_teacher(tmp, self.model, self.tokenizer, self._card_extra())
            optimizer_state = save_optimizer(self.optimizer, tmp)
            state = {
                "step": self.step,
                "seed": self.seed,
                "world_size": self.world_size,
                "mlflow_run_id": self.mlflow_run_id,
                "optimizer": optimizer_state,
                "config": dataclasses.asdict(self.cfg),
            }
            (tmp / STATE_FILE).write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            for old in sorted(p for p in root.glob("step_*") if _STEP_DIR.match(p.name))[: -self.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
        self._barrier()

    def _load_checkpoint(self, folder: Path) -> None:
        state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
        then, now = _flatten(state["config"]), _flatten(dataclasses.asdict(self.cfg))
        changed = sorted(
            k for k in set(then) | set(now)
            if then.get(k) != now.get(k) and k not in RESUME_MAY_CHANGE and k.split(".")[0] not in RESUME_MAY_CHANGE
        )
        if changed:
            raise UserError(
                f"out: {folder} was trained with a different config ({', '.join(changed)}); "
                "resume with the same config, or pick a new out"
            )
        missing, unexpected = safetensors.torch.load_model(self.model, str(folder / WEIGHTS_FILE))
        if missing or unexpected:
            raise UserError(f"{folder / WEIGHTS_FILE}: missing {missing}, unexpected {unexpected}")
        load_optimizer(self.optimizer, folder, state["optimizer"])
        self.step = self.resumed_from = int(state["step"])
        self.mlflow_run_id = state.get("mlflow_run_id")

    def _save_final(self) -> None:
        if self.is_main:
            final, tmp = self.out / MODEL_DIR, self.out / f".tmp_{MODEL_DIR}"
            shutil.rmtree(tmp, ignore_errors=True)
            save_teacher(tmp, self.model, self.tokenizer, self._card_extra())
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            print(f"model: {final}", flush=True)
            if self.mlflow_run_id is not None:
                import mlflow

                self._flush_metrics()
                mlflow.log_artifacts(str(final), artifact_path=MODEL_DIR)
        self._barrier()

    # --- tracking -------------------------------------------------------------------

    def _start_mlflow(self) -> None:
        if not (self.is_main and self.cfg.mlflow.enabled):
            self.mlflow_run_id = None
            return
        import mlflow

        start_mlflow_experiment(self.cfg.mlflow.tracking_uri, self.cfg.mlflow.experiment)
        if self.mlflow_run_id is not None:
            mlflow.start_run(run_id=self.mlflow_run_id)
            mlflow.set_tag("resumed_from_step", str(self.resumed_from))
            # Steps after the checkpoint that the killed run had already flushed come out
            # identical this time (exact resume): log them once, not twice.
            history = mlflow.MlflowClient().get_metric_history(self.mlflow_run_id, "train/loss")
            self._logged_through = max((m.step for m in history), default=0)
            return
        run = mlflow.start_run(run_name=self.cfg.mlflow.run_name)
        self.mlflow_run_id = run.info.run_id
        params = _flatten(dataclasses.asdict(self.cfg))
        params.update(num_parameters=self.model.num_parameters(), vocab_size=len(self.tokenizer),
                      world_size=self.world_size, train_records=len(self.train_set))
        mlflow.log_params({k: ("" if v is None else v) for k, v in params.items()})

    def _log(self, metrics: dict[str, float], step: int) -> None:
        if self.mlflow_run_id is not None and step > self._logged_through:
            self._metrics += [(k, float(v), step) for k, v in metrics.items() if not math.isnan(float(v))]

    def _flush_metrics(self) -> None:
        # One batched write per flush: a sqlite transaction per scalar would cost more than a step.
        if self.mlflow_run_id is None or not self._metrics:
            return
        from shared.tracking import log_metric_batch

        log_metric_batch(self.mlflow_run_id, self._metrics)
        self._metrics = []

    def _barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def cleanup(self, failed: bool = False) -> None:
        if self.mlflow_run_id is not None:
            import mlflow

            self._flush_metrics()
            mlflow.end_run(status="FAILED" if failed else "FINISHED")
        if self.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()


def run(cfg: TrainConfig) -> TrainRecipe:
    """The verb's body: setup, train, cleanup. Returns the finished recipe."""
    recipe = TrainRecipe(cfg)
    recipe.setup()
    try:
        recipe.train()
    except BaseException:
        recipe.cleanup(failed=True)
        raise
    recipe.cleanup()
    return recipe
