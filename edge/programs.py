"""On-device programs, loaded by their model card (``shared/model_card.py``).

::

    trigger = load_program("runs/kd/export/trigger_xnnpack_int8.pte")
    probs, = trigger(pcm_last_1s[None])            # int16 [1, 16000] -> float32 [1, 18]
    trigger.card.decide(probs[0])                  # labels over their card threshold

A program is found through its card (``x.pte`` -> ``x.json`` beside it); the
file is checked against the card's size and sha256 before it is loaded, so a
different or corrupted program fails with an error naming the file instead
of answering nonsense. ``.pte`` files run in ExecuTorch's Python runtime
(``executorch.runtime``); ``.tflite`` files in ``ai_edge_litert`` (optional
extra). Both take and return NumPy arrays here.

Imports: ``shared`` and the inference runtimes only (edge/ rules). The
ExecuTorch Python runtime takes torch tensors, so torch comes in through it.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from shared.config import UserError
from shared.model_card import ModelCard, ModelCardError, card_path_for, load_model_card

__all__ = ["ProgramError", "Program", "load_program"]

_DTYPES = {"int16": np.int16, "uint8": np.uint8, "int8": np.int8, "float32": np.float32}


class ProgramError(UserError, RuntimeError):
    """A program that cannot be loaded or run; the message names the file."""


class Program:
    """A loaded program with its card; call it with NumPy arrays in card input order.

    Attributes:
        card: the validated model card.
        path: the program file.
        last_ms: wall time of the latest call (ms).
    """

    def __init__(self, card: ModelCard, path: Path) -> None:
        self.card = card
        self.path = path
        self.last_ms = 0.0
        self._run = self._load_pte() if card.format == "pte" else self._load_tflite()

    @property
    def labels(self) -> list[str]:
        return list(self.card.labels)

    def _load_pte(self):
        try:
            import torch
            from executorch.runtime import Runtime

            method = Runtime.get().load_program(self.path).load_method("forward")
        except Exception as exc:  # the runtime raises bare RuntimeErrors for a bad flatbuffer
            raise ProgramError(f"{self.path}: cannot load the ExecuTorch program ({exc})") from exc

        def run(inputs: list[np.ndarray]) -> list[np.ndarray]:
            outs = method.execute([torch.from_numpy(x) for x in inputs])
            return [np.asarray(o.numpy() if hasattr(o, "numpy") else o, np.float32) for o in outs]

        return run

    def _load_tflite(self):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise ProgramError(f"{self.path}: a .tflite program needs ai-edge-litert "
                               "(pip install 'earshot[tflite]')") from exc
        try:
            interp = Interpreter(model_path=str(self.path), num_threads=1)
            interp.allocate_tensors()
        except Exception as exc:
            raise ProgramError(f"{self.path}: cannot load the LiteRT program ({exc})") from exc
        # LiteRT orders tensors by its own rules: match them to the card by shape, in card order.
        ins, outs = interp.get_input_details(), interp.get_output_details()

        def pick(details, specs):
            left, order = list(details), []
            for spec in specs:
                hit = next((d for d in left if tuple(d["shape"]) == tuple(spec.shape)), None)
                if hit is None:
                    raise ProgramError(f"{self.path}: no tensor of shape {spec.shape} for {spec.name!r}")
                left.remove(hit)
                order.append(hit["index"])
            return order

        in_idx, out_idx = pick(ins, self.card.inputs), pick(outs, self.card.outputs)

        def run(inputs: list[np.ndarray]) -> list[np.ndarray]:
            for i, x in zip(in_idx, inputs):
                interp.set_tensor(i, x)
            interp.invoke()
            return [np.asarray(interp.get_tensor(i), np.float32) for i in out_idx]

        return run

    def __call__(self, *inputs: np.ndarray) -> list[np.ndarray]:
        """Run once. Inputs must match the card's dtypes and shapes (raises `ProgramError`)."""
        specs = self.card.inputs
        if len(inputs) != len(specs):
            raise ProgramError(f"{self.path}: expects {len(specs)} inputs, got {len(inputs)}")
        arrays = []
        for x, spec in zip(inputs, specs):
            x = np.ascontiguousarray(x)
            if x.dtype != _DTYPES[spec.dtype] or tuple(x.shape) != tuple(spec.shape):
                raise ProgramError(f"{self.path}: input {spec.name!r} must be {spec.dtype} {list(spec.shape)}, "
                                   f"got {x.dtype} {list(x.shape)}")
            arrays.append(x)
        t0 = time.perf_counter()
        try:
            outs = self._run(arrays)
        except ProgramError:
            raise
        except Exception as exc:
            raise ProgramError(f"{self.path}: the program failed ({exc})") from exc
        self.last_ms = 1000 * (time.perf_counter() - t0)
        return outs


def load_program(path: str | Path, *, expect: str | None = None) -> Program:
    """Load the program at ``path`` (``.pte`` or ``.tflite``) through its card.

    Args:
        expect: the card's ``name`` must be this ("trigger" | "av"), so a
            trigger given where the student belongs fails at once.

    Raises:
        ProgramError: no card, a card that does not match the file (size,
            sha256: a corrupt or swapped program), or a runtime that cannot
            load it. The message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ProgramError(f"{path}: no such program file")
    try:
        card = load_model_card(card_path_for(path))
        if card.program != path.name:
            raise ProgramError(f"{path}: its card {card_path_for(path)} describes {card.program!r}")
        card.check_program(path.parent)
    except ModelCardError as exc:
        raise ProgramError(f"{path}: {exc}") from None
    if expect is not None and card.name != expect:
        raise ProgramError(f"{path}: is a {card.name!r} program, expected {expect!r}")
    return Program(card, path)
