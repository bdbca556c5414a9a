"""Building and running the on-device programs: PT2E int8, XNNPACK `.pte`, and their runners.

- `quantize_int8`: post-training static quantization with PT2E and the XNNPACK
  quantizer (symmetric int8, per-channel weights), calibrated on windows of
  held-out recordings. The log-mel front end (module ``front_end``) is left
  in float32: an int8 DFT output would flatten the quiet bands that the log
  magnifies, and it is cheap next to the CNN in latency terms.
- `lower_to_pte`: ``torch.export`` -> ``to_edge_transform_and_lower`` with the
  `XnnpackPartitioner` -> ``.pte`` bytes on disk.
- `PteProgram`: the Python ExecuTorch runtime (``executorch.runtime``) on one
  file, called like the eager model with numpy or torch inputs.
- `program_outputs`: one call per window (batch 1, as on the device) over a
  `WindowSet`, outputs stacked.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["quantize_int8", "lower_to_pte", "PteProgram", "EagerProgram", "program_outputs", "delegation_summary"]


#: Modules left in float32: the log-mel front end and the frame resize (exact pixel means).
_FLOAT_MODULES = ("front_end", "frame_resize")


def _outside_front_end(node: torch.fx.Node) -> bool:
    """The quantizer's filter: annotate every node except the float front ends' (``_FLOAT_MODULES``)."""
    stack = node.meta.get("nn_module_stack") or {}
    return not any(path.split(".")[0] in _FLOAT_MODULES or any(path.startswith(f"L['self'].{m}") for m in _FLOAT_MODULES)
                   for path, _ in stack.values())


def quantize_int8(
    model: nn.Module, example_inputs: tuple[torch.Tensor, ...], calibration: Iterable[tuple[torch.Tensor, ...]]
) -> nn.Module:
    """PT2E static int8 (XNNPACK quantizer), calibrated on ``calibration`` batches.

    Returns the converted module (quantize / dequantize nodes around the int8
    ops), ready for `lower_to_pte`; running it eagerly simulates the int8
    numerics.
    """
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    quantizer.set_filter_function(_outside_front_end)
    graph = torch.export.export(model.eval(), example_inputs).module()
    prepared = prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for batch in calibration:
            prepared(*batch)
    return convert_pt2e(prepared)


def lower_to_pte(module: nn.Module, example_inputs: tuple[torch.Tensor, ...], path: str | Path) -> Path:
    """Export ``module`` with static shapes, delegate to XNNPACK, write the ``.pte``."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    if not isinstance(module, torch.fx.GraphModule):  # a PT2E module has no train/eval switch
        module = module.eval()
    exported = torch.export.export(module, example_inputs)
    edge = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()])
    program = edge.to_executorch()
    path = Path(path)
    path.write_bytes(program.buffer)
    return path


def delegation_summary(path: str | Path) -> dict[str, list[str]]:
    """Delegates and the operators left to portable kernels in a ``.pte`` (for the card)."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    program = deserialize_pte_binary(Path(path).read_bytes())
    program = getattr(program, "program", program)
    plan = program.execution_plan[0]
    return {"delegates": [d.id for d in plan.delegates], "portable_ops": sorted({op.name for op in plan.operators})}


def _as_tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))


class PteProgram:
    """A ``.pte`` loaded in the Python ExecuTorch runtime; outputs as float32 numpy arrays."""

    def __init__(self, path: str | Path) -> None:
        from executorch.runtime import Runtime

        self.path = Path(path)
        self.method = Runtime.get().load_program(self.path).load_method("forward")

    def __call__(self, *inputs: np.ndarray | torch.Tensor) -> list[np.ndarray]:
        return [o.numpy() if isinstance(o, torch.Tensor) else np.asarray(o) for o in self.method.execute([_as_tensor(x) for x in inputs])]


class EagerProgram:
    """The eager PyTorch model behind the same call convention as `PteProgram`."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model if isinstance(model, torch.fx.GraphModule) else model.eval()

    @torch.no_grad()
    def __call__(self, *inputs: np.ndarray | torch.Tensor) -> list[np.ndarray]:
        out = self.model(*[_as_tensor(x) for x in inputs])
        return [o.numpy() for o in (out if isinstance(out, (tuple, list)) else (out,))]


def program_outputs(
    program: Callable[..., Sequence[np.ndarray]], input_batches: Iterable[tuple[torch.Tensor, ...]]
) -> list[np.ndarray]:
    """Run ``program`` once per batch of inputs; returns each output concatenated over calls."""
    outs: list[list[np.ndarray]] = []
    for batch in input_batches:
        for i, o in enumerate(program(*batch)):
            if len(outs) <= i:
                outs.append([])
            outs[i].append(np.asarray(o, np.float32))
    return [np.concatenate(o) for o in outs]
