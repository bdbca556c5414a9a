"""What every training recipe needs, in one place (torchtune's ``training/``).

The recipes (``cloud/train.py``, ``distill/recipe.py``) keep their own
top-to-bottom loops and import these pieces:

- checkpoints: ``<out>/checkpoints/step_<k>/`` written under a temporary name
  and renamed (a kill mid-write never leaves a half checkpoint), the oldest
  pruned, the newest found again (:func:`save_checkpoint`,
  :func:`latest_checkpoint`, :func:`read_state`, :func:`replace_folder`);
- the optimizer's state without pickle: tensors in safetensors, the rest in
  the checkpoint's JSON state (:func:`save_optimizer`, :func:`load_optimizer`);
- the resume rule: a continued run must have the same config but for the keys
  that steer logging and evaluation (:func:`check_resume_config`);
- AdamW with decay on matrices only, linear warm-up and cosine decay
  (:func:`make_adamw`, :func:`lr_at`, :func:`set_lr`);
- exact resume: the batch of step k and the RNG seed of step k are pure
  functions of (seed, k, rank), so no sampler or RNG state is saved
  (:func:`batch_indices`, :func:`seed_step`).

Nothing is pickled.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable, Iterable

import safetensors.torch
import torch

from shared.config import UserError
from shared.tracking import flatten

__all__ = [
    "CHECKPOINTS_DIR", "STATE_FILE", "OPTIMIZER_FILE", "latest_checkpoint", "save_checkpoint", "read_state",
    "replace_folder", "save_optimizer", "load_optimizer", "config_changes", "check_resume_config", "make_adamw",
    "lr_at", "set_lr", "batch_indices", "seed_step",
]

CHECKPOINTS_DIR = "checkpoints"
STATE_FILE = "state.json"
OPTIMIZER_FILE = "optimizer.safetensors"
_STEP_DIR = re.compile(r"^step_(\d{7})$")
#: Spreads (seed, epoch) over torch's seed space so neighbouring seeds shuffle differently.
_EPOCH_SEED_STRIDE = 1_000_003


# --- checkpoints -------------------------------------------------------------------


def _step_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("step_*") if _STEP_DIR.match(p.name))


def latest_checkpoint(out: str | Path) -> Path | None:
    """The newest complete checkpoint folder under ``<out>/checkpoints``, or None."""
    steps = [p for p in _step_dirs(Path(out) / CHECKPOINTS_DIR) if (p / STATE_FILE).is_file()]
    return steps[-1] if steps else None


def replace_folder(final: str | Path, write: Callable[[Path], Any]) -> Path:
    """Fill a temporary sibling of ``final`` with ``write(tmp)``, then swap it in.

    A kill before the swap leaves the old ``final`` (or none) and a stale
    temporary folder that the next call removes."""
    final = Path(final)
    tmp = final.parent / f".tmp_{final.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final


def save_checkpoint(out: str | Path, step: int, write: Callable[[Path], dict[str, Any] | None],
                    state: dict[str, Any], keep: int) -> Path:
    """Write ``<out>/checkpoints/step_<step>/`` atomically and keep the newest ``keep``.

    ``write(folder)`` saves the weights (and may return more JSON state, e.g. the
    optimizer's from :func:`save_optimizer`); ``state`` plus that goes to
    ``state.json``, written last, so a folder with a state file is complete.
    """
    root = Path(out) / CHECKPOINTS_DIR

    def fill(folder: Path) -> None:
        extra = write(folder) or {}
        (folder / STATE_FILE).write_text(json.dumps({**state, **extra}, indent=1) + "\n", encoding="utf-8")

    final = replace_folder(root / f"step_{step:07d}", fill)
    for old in _step_dirs(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def read_state(folder: str | Path) -> dict[str, Any]:
    """A checkpoint's ``state.json``."""
    return json.loads((Path(folder) / STATE_FILE).read_text(encoding="utf-8"))


def save_optimizer(optimizer: torch.optim.Optimizer, folder: str | Path) -> dict[str, Any]:
    """Write the optimizer's tensors to ``folder/OPTIMIZER_FILE``; return the
    JSON-ready rest (param groups and non-tensor state) for the state file."""
    tensors, rest = {}, {}
    opt_state = optimizer.state_dict()
    for pid, state in opt_state["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"state.{pid}.{key}"] = value.contiguous()
            else:
                rest.setdefault(str(pid), {})[key] = value
    safetensors.torch.save_file(tensors, str(Path(folder) / OPTIMIZER_FILE))
    return {"param_groups": opt_state["param_groups"], "plain_state": rest}


def load_optimizer(optimizer: torch.optim.Optimizer, folder: str | Path, saved: dict[str, Any]) -> None:
    """Inverse of :func:`save_optimizer`; ``saved`` is what it returned."""
    opt_state: dict[int, dict[str, Any]] = {}
    for key, value in safetensors.torch.load_file(str(Path(folder) / OPTIMIZER_FILE)).items():
        _, pid, name = key.split(".", 2)
        opt_state.setdefault(int(pid), {})[name] = value
    for pid, extra in saved["plain_state"].items():
        opt_state.setdefault(int(pid), {}).update(extra)
    optimizer.load_state_dict({"state": opt_state, "param_groups": saved["param_groups"]})


# --- resume ------------------------------------------------------------------------


def config_changes(then: dict[str, Any], now: dict[str, Any], may_change: Iterable[str] = ()) -> list[str]:
    """Flattened keys whose value differs between two configs (``asdict`` form), sorted.

    A key in ``may_change``, or under a section named there (``"mlflow"`` covers
    ``mlflow.run_name``), is not counted."""
    allowed = set(may_change)
    a, b = flatten(then), flatten(now)
    return sorted(k for k in set(a) | set(b)
                  if a.get(k) != b.get(k) and k not in allowed and k.split(".")[0] not in allowed)


def check_resume_config(folder: Path, then: dict[str, Any], now: dict[str, Any], may_change: Iterable[str],
                        done: str = "trained") -> None:
    """Raise :class:`UserError` naming the keys if ``now`` may not continue the run in ``folder``."""
    changed = config_changes(then, now, may_change)
    if changed:
        raise UserError(f"out: {folder} was {done} with a different config ({', '.join(changed)}); "
                        "resume with the same config, or pick a new out")


# --- optimizer and schedule --------------------------------------------------------


def make_adamw(params: Iterable[torch.nn.Parameter], optim: Any) -> torch.optim.AdamW:
    """AdamW from a ``shared.config.OptimConfig``: matrices decay, biases and norms do not (nanoGPT)."""
    params = [p for p in params if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": optim.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=optim.lr, betas=(optim.beta1, optim.beta2))


def lr_at(step: int, optim: Any, max_steps: int) -> float:
    """Learning rate of ``step`` (0-based): linear warm-up over ``warmup_steps``, then cosine
    decay to ``lr * min_lr_ratio`` at ``max_steps``."""
    if step < optim.warmup_steps:
        return optim.lr * (step + 1) / optim.warmup_steps
    progress = (step - optim.warmup_steps) / max(1, max_steps - optim.warmup_steps)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return optim.lr * (optim.min_lr_ratio + (1.0 - optim.min_lr_ratio) * cosine)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


# --- exact resume ------------------------------------------------------------------


def batch_indices(n: int, batch_size: int, seed: int, step: int, rank: int = 0, world_size: int = 1) -> list[int]:
    """The examples of ``step`` for process ``rank``: a pure function of (n, batch_size, seed, step, rank).

    Each epoch's order is ``randperm`` seeded by (seed, epoch); a set smaller than a
    batch is repeated to fill it; under DDP, rank r takes every r-th example of
    the step's global batch."""
    per_epoch = max(1, n // batch_size)
    epoch, b = divmod(step, per_epoch)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * _EPOCH_SEED_STRIDE + epoch))
    if n < batch_size:
        perm = perm.repeat(math.ceil(batch_size / n))
    chosen = perm[b * batch_size : (b + 1) * batch_size]
    return chosen[rank::world_size].tolist()


def seed_step(seed: int, step: int, rank: int = 0) -> None:
    """Seed torch's RNG for ``step`` (dropout, augmentation): the RNG state at a step boundary
    is then known without being saved."""
    torch.manual_seed((seed << 32) + (rank << 24) + step)
