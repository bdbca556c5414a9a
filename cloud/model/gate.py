"""The reliability gate: how much to trust each modality in this window.

For each window the gate outputs one reliability per modality, r in (0, 1),
and every token of that modality is pulled towards a learned "nothing here"
token by 1 - r:

    token' = r * token + (1 - r) * null[modality]

Interpolating (rather than scaling) matters because the transformer layers
that follow start with LayerNorm, which would undo any pure scaling.

``context_aware=True`` (``model.fusion=gate``): r comes from the context
features (`cloud/model/context.py`) through a linear *prior* plus a small
MLP. The prior starts with the signs we know from physics (audio trust
rises with SNR; visual trust rises with sharpness and contrast and falls
with hand cover) so the gate responds sensibly from step 0; the MLP's last
layer starts at zero and learns the rest. ``context_aware=False``
(``model.fusion=blind``) feeds the same modules a zero context, so r is a
learned constant per modality: the context-blind baseline, with the same
parameters.
"""
from __future__ import annotations

import torch
from torch import nn

from cloud.model.context import CONTEXT_CENTER, CONTEXT_NAMES, CONTEXT_SCALE

__all__ = ["MODALITIES", "ReliabilityGate"]

MODALITIES = ("audio", "visual")

# Initial prior weights per (modality, context feature), in normalised units.
_PRIOR_INIT = {
    ("audio", "snr_db"): 1.0,
    ("visual", "sharpness"): 0.5,
    ("visual", "skin"): -1.0,
    ("visual", "contrast"): 0.5,
}
_BIAS_INIT = 1.5  # sigmoid(1.5) = 0.82: both modalities mostly trusted at the start


class ReliabilityGate(nn.Module):
    """Context (B, 5) raw features -> reliability (B, 2) for (audio, visual)."""

    def __init__(self, d_model: int, hidden: int, context_aware: bool) -> None:
        super().__init__()
        n_ctx = len(CONTEXT_NAMES)
        self.context_aware = context_aware
        self.register_buffer("center", torch.tensor(CONTEXT_CENTER), persistent=False)
        self.register_buffer("scale", torch.tensor(CONTEXT_SCALE), persistent=False)
        self.prior = nn.Linear(n_ctx, len(MODALITIES))
        self.mlp = nn.Sequential(nn.Linear(n_ctx, hidden), nn.GELU(), nn.Linear(hidden, len(MODALITIES)))
        self.null = nn.Parameter(torch.zeros(len(MODALITIES), d_model))
        with torch.no_grad():
            self.prior.weight.zero_()
            for (modality, feature), w in _PRIOR_INIT.items():
                self.prior.weight[MODALITIES.index(modality), CONTEXT_NAMES.index(feature)] = w
            self.prior.bias.fill_(_BIAS_INIT)
            nn.init.zeros_(self.mlp[-1].weight)
            nn.init.zeros_(self.mlp[-1].bias)
            nn.init.normal_(self.null, std=0.02)

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        """Returns r (B, 2) in (0, 1); columns follow ``MODALITIES``."""
        z = ((context - self.center) / self.scale).clamp(-5.0, 5.0)
        if not self.context_aware:
            z = torch.zeros_like(z)
        return torch.sigmoid(self.prior(z) + self.mlp(z))

    def mix(self, tokens: torch.Tensor, modality: str, r: torch.Tensor) -> torch.Tensor:
        """Pull (B, N, D) ``tokens`` of ``modality`` towards its null token by 1 - r."""
        i = MODALITIES.index(modality)
        w = r[:, i, None, None]
        return w * tokens + (1.0 - w) * self.null[i]
