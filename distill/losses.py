"""Distillation losses for multi-label (sigmoid) tag heads.

The teacher's tag head is multi-label: every tag c of a window is its own
Bernoulli variable with probability sigmoid(z_c). Softmax KD (Hinton) does not
apply; its binary analogue does. With student logits s, teacher logits t and a
temperature T, per window b and tag c::

    p = sigmoid(t / T)        q = sigmoid(s / T)
    KL_bc = p log(p / q) + (1 - p) log((1 - p) / (1 - q))
    binary_kd_loss = T^2 * mean_{b, c} KL_bc

- KL, not cross-entropy: the loss is 0 when the student matches the teacher,
  so its value reads directly as a divergence. The gradient is the same as
  BCE with soft targets: d/ds_bc = T * (q - p) / (B * C).
- The T^2 factor keeps gradient magnitudes comparable across temperatures
  (Hinton et al. 2015), so ``kd_weight`` need not be retuned with T.
- Computed from logits with ``binary_cross_entropy_with_logits`` (log-sum-exp
  stable): KL = BCE(s / T, p) - BCE(t / T, p), the second term being the
  teacher's entropy H(p).

The recipe's total (``distill/recipe.py``)::

    loss = (1 - kd_weight) * hard_loss + kd_weight * binary_kd_loss
           + feature_weight * feature_loss + confidence_weight * confidence_loss

Checked numerically against a direct float64 evaluation of the formulas in
``tests/distill/test_losses.py``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["binary_kd_loss", "hard_loss", "feature_loss", "confidence_targets", "confidence_loss"]


def binary_kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * mean Bernoulli KL(teacher || student) at temperature T (see module docstring).

    Args:
        student_logits, teacher_logits: (B, C), same shape.
        temperature: T > 0; 1 compares the raw probabilities, larger softens both.

    Raises:
        ValueError: shapes differ or T <= 0.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"logits: student {tuple(student_logits.shape)} vs teacher {tuple(teacher_logits.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature: must be > 0, got {temperature}")
    t = temperature
    teacher_logits = teacher_logits.detach()
    p = torch.sigmoid(teacher_logits / t)
    cross = F.binary_cross_entropy_with_logits(student_logits / t, p, reduction="none")
    entropy = F.binary_cross_entropy_with_logits(teacher_logits / t, p, reduction="none")
    return t * t * (cross - entropy).mean()


def hard_loss(student_logits: torch.Tensor, labels: torch.Tensor, pos_weight: float = 1.0,
              mask: torch.Tensor | None = None) -> torch.Tensor:
    """Binary cross-entropy against 0/1 annotation labels (B, C), mean over the entries
    ``mask`` keeps (all without one; ``distill/data.py``: a label that only grazes the
    window, or an inaudible sound, is neither on nor off and is left out)."""
    weight = None if pos_weight == 1.0 else torch.full((student_logits.shape[-1],), float(pos_weight))
    if mask is None:
        return F.binary_cross_entropy_with_logits(student_logits, labels.to(student_logits.dtype), pos_weight=weight)
    per = F.binary_cross_entropy_with_logits(student_logits, labels.to(student_logits.dtype), pos_weight=weight,
                                             reduction="none")
    m = mask.to(per.dtype)
    return (per * m).sum() / m.sum().clamp_min(1.0)


def feature_loss(projected: torch.Tensor, teacher_features: torch.Tensor) -> torch.Tensor:
    """Feature distillation: mean cosine distance, 1 - cos(projected_b, teacher_b).

    ``projected`` is the student's embedding through a trained linear adapter
    (B, D_teacher); ``teacher_features`` the input of the teacher's tag head
    (its pooled fused tokens). Cosine, not MSE: the scales of the two spaces
    are unrelated and a scale-free loss needs no normalisation statistics.
    """
    return (1.0 - F.cosine_similarity(projected, teacher_features.detach(), dim=-1)).mean()


def confidence_targets(
    student_logits: torch.Tensor, reference: torch.Tensor, *, reference_is_logits: bool
) -> torch.Tensor:
    """(B,) 1.0 where the student's decisions (sigmoid > 0.5) agree with the
    reference on every tag of the window, else 0.0.

    ``reference`` is the teacher's logits (``reference_is_logits=True``: does
    the student say what the cloud would say?) or 0/1 labels (is it right?).
    """
    student = student_logits.detach() > 0.0
    ref = reference > 0.0 if reference_is_logits else reference > 0.5
    return (student == ref).all(dim=1).to(student_logits.dtype)


def confidence_loss(confidence_logit: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """BCE of the confidence head's logit (B,) against `confidence_targets` (B,)."""
    return F.binary_cross_entropy_with_logits(confidence_logit, targets)
