"""Saving and loading a distilled student: safetensors weights + JSON, never pickle.

A student folder holds::

    student.safetensors   the weights and buffers (BatchNorm statistics, the
                          front end's fixed DFT and mel matrices)
    student.json          StudentConfig, labels, teacher and data provenance

It is what ``earshot distill`` writes (``<out>/student/``) and what
``earshot export`` reads.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import safetensors.torch
from torch import nn

from distill.student_config import StudentConfig
from distill.students import labels_of, make_student
from shared.config import UserError
from shared.labels import TAXONOMY_VERSION

__all__ = ["WEIGHTS_FILE", "CARD_FILE", "FORMAT_VERSION", "save_student", "load_student", "student_folder"]

WEIGHTS_FILE = "student.safetensors"
CARD_FILE = "student.json"
FORMAT_VERSION = 1


def save_student(folder: str | Path, model: nn.Module, cfg: StudentConfig, extra: dict[str, Any] | None = None) -> Path:
    """Write the two files into ``folder`` (created if needed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / WEIGHTS_FILE))
    card = {
        "format_version": FORMAT_VERSION,
        "student": cfg.to_dict(),
        "labels": list(labels_of(cfg.name)),
        "taxonomy_version": TAXONOMY_VERSION,
        **(extra or {}),
    }
    (folder / CARD_FILE).write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")
    return folder


def student_folder(path: str | Path) -> Path:
    """A student folder, or a distill ``out`` holding one as ``student/``."""
    path = Path(path)
    return path / "student" if (path / "student" / CARD_FILE).is_file() else path


def load_student(path: str | Path) -> tuple[nn.Module, StudentConfig, dict[str, Any]]:
    """Rebuild a student; returns (model in eval mode, config, card).

    Raises:
        UserError: a file is missing or the card does not match this code.
    """
    folder = student_folder(path)
    for name in (WEIGHTS_FILE, CARD_FILE):
        if not (folder / name).is_file():
            raise UserError(f"{folder}: missing {name} (not a distilled student; run 'earshot distill')")
    card = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
    if card.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{folder / CARD_FILE}: format_version {card.get('format_version')!r}, expected {FORMAT_VERSION}")
    cfg = StudentConfig.from_dict(card["student"])
    if tuple(card.get("labels", ())) != labels_of(cfg.name):
        raise UserError(f"{folder / CARD_FILE}: labels differ from shared.labels (taxonomy changed since distillation)")
    model = make_student(cfg)
    state = safetensors.torch.load_file(str(folder / WEIGHTS_FILE))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise UserError(f"{folder / WEIGHTS_FILE}: missing {list(missing)}, unexpected {list(unexpected)}")
    return model.eval(), cfg, card
