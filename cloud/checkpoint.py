"""Optimizer state in a checkpoint without pickle: tensors in safetensors, the rest in JSON.

Shared by the teacher recipe (``cloud/train.py``) and the distillation recipe
(``distill/recipe.py``), so both resume the same way.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import safetensors.torch
import torch

__all__ = ["OPTIMIZER_FILE", "save_optimizer", "load_optimizer"]

OPTIMIZER_FILE = "optimizer.safetensors"


def save_optimizer(optimizer: torch.optim.Optimizer, folder: Path) -> dict[str, Any]:
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


def load_optimizer(optimizer: torch.optim.Optimizer, folder: Path, saved: dict[str, Any]) -> None:
    """Inverse of :func:`save_optimizer`; ``saved`` is what it returned."""
    opt_state: dict[int, dict[str, Any]] = {}
    for key, value in safetensors.torch.load_file(str(Path(folder) / OPTIMIZER_FILE)).items():
        _, pid, name = key.split(".", 2)
        opt_state.setdefault(int(pid), {})[name] = value
    for pid, extra in saved["plain_state"].items():
        opt_state.setdefault(int(pid), {}).update(extra)
    optimizer.load_state_dict({"state": opt_state, "param_groups": saved["param_groups"]})
