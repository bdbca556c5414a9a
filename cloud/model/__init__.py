"""The cloud audio-visual teacher (nanoGPT-style: a config next to small modules).

    config.py     ModelConfig (torch-free; embedded in the Hydra schemas)
    tokenizer.py  word-level tokenizer, vocabulary saved as JSON
    context.py    SNR, blur and hand-cover estimates from the signals
    encoders.py   AudioEncoder (log-mel), VisualEncoder (frames), TimeEmbedding
    gate.py       ReliabilityGate (context-aware or blind)
    decoder.py    the Decoder interface and a small causal transformer
    lm_decoder.py a pretrained local LM (frozen, LoRA) behind the same interface (model.decoder=lm)
    teacher.py    AVTeacher: all of the above, plus the tag head
    io.py         save_teacher / load_teacher (safetensors + JSON)

Names are exported lazily so that importing the config (``earshot --help``)
does not import torch.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ModelConfig": "cloud.model.config",
    "FUSIONS": "cloud.model.config",
    "Tokenizer": "cloud.model.tokenizer",
    "AVTeacher": "cloud.model.teacher",
    "TAG_NAMES": "cloud.model.teacher",
    "BATCH_KEYS": "cloud.model.teacher",
    "Decoder": "cloud.model.decoder",
    "TransformerDecoder": "cloud.model.decoder",
    "ReliabilityGate": "cloud.model.gate",
    "save_teacher": "cloud.model.io",
    "load_teacher": "cloud.model.io",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'cloud.model' has no attribute {name!r}")
