"""Saving and loading a teacher: safetensors weights + JSON, never pickle.

A model folder holds::

    model.safetensors    the weights (tied tensors stored once)
    model_config.json    ModelConfig, vocabulary size, tag names, front end
    vocab.json           the tokenizer (cloud/model/tokenizer.py)

It is what `earshot train` writes (inside each checkpoint and as the final
``model/``), what `earshot eval` reads, and what distillation loads as its
teacher.

A teacher whose decoder is a pretrained LM (``model.decoder=lm``,
``cloud/model/lm_decoder.py``) saves only what trained (its own parts, the
projection, the LoRA adapters): the base LM is loaded from ``model.lm``, and the
card's ``lm`` entry (file name, sha256) is checked against it on load.
``vocab.json`` then names the LM's tokenizer instead of holding words.
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

__all__ = ["WEIGHTS_FILE", "CONFIG_FILE", "VOCAB_FILE", "FORMAT_VERSION", "save_teacher", "load_teacher",
           "load_weights"]

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "model_config.json"
VOCAB_FILE = "vocab.json"
FORMAT_VERSION = 1


def save_teacher(folder: str | Path, model: AVTeacher, tokenizer: Tokenizer, extra: dict[str, Any] | None = None) -> Path:
    """Write the three files into ``folder`` (created if needed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lm_card: dict[str, Any] = {}
    if model.cfg.decoder == "lm":
        from cloud.lm.load import resolve_lm_path
        from cloud.model.lm_decoder import is_base_weight, lm_sha256

        state = {k: v.detach().contiguous() for k, v in model.state_dict().items() if not is_base_weight(k)}
        safetensors.torch.save_file(state, str(folder / WEIGHTS_FILE))
        path = resolve_lm_path(model.cfg.lm)
        lm_card = {"lm": {"name": path.name, "sha256": getattr(model, "lm_sha256", None) or lm_sha256(path),
                          "vocab_size": model.decoder.vocab_size}}
    else:
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
        **lm_card,
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
    if card["model"].get("decoder") == "lm":
        return _load_lm_teacher(folder, card, map_location)
    tokenizer = Tokenizer.load(folder / VOCAB_FILE)
    if len(tokenizer) != card["vocab_size"]:
        raise UserError(f"{folder / VOCAB_FILE}: {len(tokenizer)} words, the card says {card['vocab_size']}")
    ids = card["special_ids"]
    model = AVTeacher(ModelConfig.from_dict(card["model"]), card["vocab_size"], ids["pad"], ids["bos"], ids["eos"])
    load_weights(model, folder / WEIGHTS_FILE, map_location)
    return model.eval(), tokenizer, card


def load_weights(model: AVTeacher, path: str | Path, map_location: str = "cpu") -> None:
    """Load a weights file into ``model``: every tensor, or for an LM teacher every tensor
    but the frozen base LM's.

    Raises:
        UserError: a tensor is missing or unexpected (the message names the file).
    """
    if model.cfg.decoder != "lm":
        missing, unexpected = safetensors.torch.load_model(model, str(path), device=map_location)
    else:
        from cloud.model.lm_decoder import is_base_weight

        missing, unexpected = model.load_state_dict(safetensors.torch.load_file(str(path), device=map_location),
                                                    strict=False)
        missing = [k for k in missing if not is_base_weight(k)]
    if missing or unexpected:
        raise UserError(f"{path}: missing {missing}, unexpected {unexpected}")


def _load_lm_teacher(folder: Path, card: dict[str, Any], map_location: str):
    """An LM teacher: the base LM from ``model.lm`` (checked by sha256), then the trained weights."""
    import torch

    from cloud.lm.load import resolve_lm_path
    from cloud.model.lm_decoder import check_lm_hash, make_lm_teacher

    cfg = ModelConfig.from_dict(card["model"])  # checks that model.lm exists
    lm_card = card.get("lm") or {}
    if "sha256" not in lm_card:
        raise UserError(f"{folder / CONFIG_FILE}: an LM teacher's card has no lm.sha256")
    check_lm_hash(resolve_lm_path(cfg.lm), lm_card["sha256"], str(folder))
    torch.manual_seed(0)  # LoRA's random start is overwritten by the saved adapters
    model, tokenizer, _ = make_lm_teacher(cfg)
    model.lm_sha256 = lm_card["sha256"]
    load_weights(model, folder / WEIGHTS_FILE, map_location)
    return model.eval(), tokenizer, card
