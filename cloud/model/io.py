"""Saving and loading a teacher: safetensors weights + JSON, never pickle.

A model folder holds::

    model.safetensors    the weights (tied tensors stored once)
    model_config.json    ModelConfig, vocabulary size, tag names, front end
    vocab.json           the tokenizer (cloud/model/tokenizer.py)

It is what `earshot train` writes (inside each checkpoint and as the final
``model/``), what `earshot eval` reads, and what distillation loads as its
teacher.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import safetensors.torch

from cloud.model.config import ModelConfig
from cloud.model.teacher import TAG_NAMES, AVTeacher
from cloud.model.tokenizer import Tokenizer
from shared.config import UserError
from shared.features import FeatureConfig
from shared.labels import TAXONOMY_VERSION

__all__ = ["WEIGHTS_FILE", "CONFIG_FILE", "VOCAB_FILE", "FORMAT_VERSION", "save_teacher", "load_teacher"]

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "model_config.json"
VOCAB_FILE = "vocab.json"
FORMAT_VERSION = 1


def save_teacher(folder: str | Path, model: AVTeacher, tokenizer: Tokenizer, extra: dict[str, Any] | None = None) -> Path:
    """Write the three files into ``folder`` (created if needed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_model(model, str(folder / WEIGHTS_FILE))
    card = {
        "format_version": FORMAT_VERSION,
        "model": model.cfg.to_dict(),
        "vocab_size": len(tokenizer),
        "special_ids": {"pad": model.pad_id, "bos": model.bos_id, "eos": model.eos_id},
        "tags": list(TAG_NAMES),
        "taxonomy_version": TAXONOMY_VERSION,
        "features": FeatureConfig(n_mels=model.cfg.n_mels).to_dict(),
        "num_parameters": model.num_parameters(),
        **(extra or {}),
    }
    (folder / CONFIG_FILE).write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")
    tokenizer.save(folder / VOCAB_FILE)
    return folder


def load_teacher(folder: str | Path, map_location: str = "cpu") -> tuple[AVTeacher, Tokenizer, dict[str, Any]]:
    """Rebuild a teacher from a model folder; returns (model in eval mode, tokenizer, card).

    Raises:
        UserError: a file is missing, or the card does not match this code
            (format version, tag list); the message names the file.
    """
    folder = Path(folder)
    for name in (WEIGHTS_FILE, CONFIG_FILE, VOCAB_FILE):
        if not (folder / name).is_file():
            raise UserError(f"{folder}: missing {name} (not an Earshot teacher folder)")
    card = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    if card.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{folder / CONFIG_FILE}: format_version {card.get('format_version')!r}, expected {FORMAT_VERSION}")
    if tuple(card.get("tags", ())) != TAG_NAMES:
        raise UserError(f"{folder / CONFIG_FILE}: tags differ from shared.labels (taxonomy changed since training)")
    tokenizer = Tokenizer.load(folder / VOCAB_FILE)
    if len(tokenizer) != card["vocab_size"]:
        raise UserError(f"{folder / VOCAB_FILE}: {len(tokenizer)} words, the card says {card['vocab_size']}")
    ids = card["special_ids"]
    model = AVTeacher(ModelConfig.from_dict(card["model"]), card["vocab_size"], ids["pad"], ids["bos"], ids["eos"])
    missing, unexpected = safetensors.torch.load_model(model, str(folder / WEIGHTS_FILE), device=map_location)
    if missing or unexpected:
        raise UserError(f"{folder / WEIGHTS_FILE}: missing {missing}, unexpected {unexpected}")
    return model.eval(), tokenizer, card
