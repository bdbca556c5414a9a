"""The optional ``.tflite`` path: litert-torch to convert, ai-edge-litert to run.

Both come from the optional extra (``pip install earshot[tflite]``); without
them `tflite_status` says why and every caller skips the ``.tflite`` program
with that message. Only fp32 is converted: int8 on LiteRT would need its own
quantizer (ai-edge-quantizer), and the int8 program of record is the ``.pte``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["EXTRA_HINT", "tflite_status", "convert_tflite", "TfliteProgram"]

EXTRA_HINT = "install the optional extra: pip install 'earshot[tflite]' (litert-torch, ai-edge-litert)"


def tflite_status() -> tuple[bool, str]:
    """(available, reason): whether litert-torch and ai-edge-litert import."""
    missing = []
    for module in ("litert_torch", "ai_edge_litert.interpreter"):
        try:
            __import__(module)
        except Exception as exc:  # ImportError, or a broken install raising anything
            missing.append(f"{module} ({type(exc).__name__}: {exc})")
    if missing:
        return False, f".tflite skipped: cannot import {', '.join(missing)}; {EXTRA_HINT}"
    return True, "litert-torch and ai-edge-litert are installed"


def convert_tflite(model: nn.Module, example_inputs: tuple[torch.Tensor, ...], path: str | Path) -> Path:
    """Convert ``model`` (fp32, static shapes) to a ``.tflite`` file with litert-torch."""
    import logging

    import litert_torch

    path = Path(path)
    # The converter logs every op lowering at INFO (Hydra sets the root logger to INFO): keep the console readable.
    root, level = logging.getLogger(), logging.getLogger().level
    root.setLevel(max(level, logging.WARNING))
    try:
        litert_torch.convert(model.eval(), example_inputs).export(str(path))
    finally:
        root.setLevel(level)
    return path


class TfliteProgram:
    """A ``.tflite`` in the LiteRT interpreter, called like `distill.programs.PteProgram`.

    litert-torch names the signature's inputs ``args_<i>`` and outputs
    ``output_<i>`` in the PyTorch call order.
    """

    def __init__(self, path: str | Path, num_threads: int = 1) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path)
        self.interpreter = Interpreter(model_path=str(self.path), num_threads=num_threads)
        self.runner = self.interpreter.get_signature_runner()
        outputs = self.interpreter.get_signature_list()["serving_default"]["outputs"]
        self.output_names = sorted(outputs, key=lambda n: int(n.rsplit("_", 1)[-1]))

    def __call__(self, *inputs: np.ndarray | torch.Tensor) -> list[np.ndarray]:
        feed = {f"args_{i}": (x.numpy() if isinstance(x, torch.Tensor) else np.ascontiguousarray(x)) for i, x in enumerate(inputs)}
        out = self.runner(**feed)
        return [np.asarray(out[name]) for name in self.output_names]
