"""Multiply-accumulates of a whole program, counted over its exported graph.

Counting on the graph that ``torch.export`` captures (rather than with module
hooks) sees everything that runs, including functional calls such as the
front end's ``F.conv1d`` DFT and ``F.linear`` mel matrix, and nothing that
does not. Per node, from the shapes export records in ``node.meta["val"]``:

- convolution (1-D, 2-D, grouped or depthwise): ``out.numel() * (C_in / groups) * prod(kernel)``;
- linear: ``out.numel() * in_features``; ``addmm``/``mm``: ``M * N * K``;
  ``bmm``/``matmul``: ``batch * M * N * K``.

Elementwise ops (BatchNorm in eval, ReLU, sqrt, log, sigmoid, the mean) are
not MACs and are not counted: they are a few percent of the total here.
Tested on layers with known counts in ``tests/distill/test_macs.py``.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

__all__ = ["MacReport", "count_macs", "count_graph_macs"]

_aten = torch.ops.aten
_CONVS = {_aten.convolution.default, _aten.conv1d.default, _aten.conv2d.default}
_LINEARS = {_aten.linear.default}
_MMS = {_aten.mm.default, _aten.addmm.default}
_BMMS = {_aten.bmm.default, _aten.matmul.default}


@dataclass
class MacReport:
    """Total MACs and the split by op kind (``conv``, ``linear``, ``matmul``)."""

    total: int
    by_op: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "by_op": dict(self.by_op)}


def _shape(node: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in node.meta["val"].shape)


def count_graph_macs(graph_module: torch.fx.GraphModule) -> MacReport:
    """MACs of every conv / linear / matmul node of an exported graph."""
    by_op: Counter[str] = Counter()
    for node in graph_module.graph.nodes:
        if node.op != "call_function":
            continue
        target = node.target
        if target in _CONVS:
            weight = _shape(node.args[1])  # (C_out, C_in / groups, *kernel)
            by_op["conv"] += math.prod(_shape(node)) * weight[1] * math.prod(weight[2:])
        elif target in _LINEARS:
            by_op["linear"] += math.prod(_shape(node)) * _shape(node.args[1])[1]
        elif target in _MMS:
            a = node.args[-2]
            by_op["matmul"] += math.prod(_shape(node)) * _shape(a)[-1]
        elif target in _BMMS:
            by_op["matmul"] += math.prod(_shape(node)) * _shape(node.args[0])[-1]
    return MacReport(sum(by_op.values()), dict(by_op))


def count_macs(model: nn.Module, example_inputs: tuple[torch.Tensor, ...]) -> MacReport:
    """Export ``model`` (in eval mode) with ``example_inputs`` and count its MACs."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            exported = torch.export.export(model, example_inputs)
    finally:
        model.train(was_training)
    return count_graph_macs(exported.graph_module)
