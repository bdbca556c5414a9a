"""distill/losses.py, checked numerically against float64 evaluations of the formulas."""
import math

import pytest
import torch
import torch.nn.functional as F

from distill.losses import binary_kd_loss, confidence_loss, confidence_targets, feature_loss, hard_loss


def _reference_kd(s: torch.Tensor, t: torch.Tensor, temperature: float) -> float:
    """T^2 * mean of p log(p/q) + (1-p) log((1-p)/(1-q)), written out in float64."""
    total = 0.0
    for sv, tv in zip(s.flatten().tolist(), t.flatten().tolist()):
        p = 1 / (1 + math.exp(-tv / temperature))
        q = 1 / (1 + math.exp(-sv / temperature))
        total += p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))
    return temperature**2 * total / s.numel()


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0, 4.0])
def test_binary_kd_matches_the_bernoulli_kl_formula(temperature):
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(5, 7, generator=g) * 3, torch.randn(5, 7, generator=g) * 3
    got = binary_kd_loss(s.double(), t.double(), temperature).item()
    assert got == pytest.approx(_reference_kd(s.double(), t.double(), temperature), rel=1e-9, abs=1e-12)
    assert binary_kd_loss(s, t, temperature).item() == pytest.approx(got, rel=1e-5)


def test_binary_kd_is_zero_at_a_match_positive_otherwise_and_stable_for_large_logits():
    t = torch.tensor([[-30.0, -2.0, 0.0, 2.0, 30.0]])
    assert binary_kd_loss(t.clone(), t, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    assert binary_kd_loss(t + 1.0, t, 2.0).item() > 0
    extreme = binary_kd_loss(torch.tensor([[-100.0, 100.0]]), torch.tensor([[100.0, -100.0]]), 1.0)
    assert torch.isfinite(extreme) and extreme.item() == pytest.approx(100.0, rel=1e-3)  # KL ~ |z| each


def test_binary_kd_gradient_is_t_times_q_minus_p_over_n():
    g = torch.Generator().manual_seed(1)
    s = (torch.randn(4, 3, generator=g, dtype=torch.float64)).requires_grad_()
    t = torch.randn(4, 3, generator=g, dtype=torch.float64)
    temperature = 3.0
    binary_kd_loss(s, t, temperature).backward()
    expected = temperature * (torch.sigmoid(s.detach() / temperature) - torch.sigmoid(t / temperature)) / s.numel()
    torch.testing.assert_close(s.grad, expected, rtol=1e-10, atol=1e-12)


def test_binary_kd_does_not_backpropagate_into_the_teacher_and_checks_arguments():
    s, t = torch.zeros(2, 3, requires_grad=True), torch.ones(2, 3, requires_grad=True)
    binary_kd_loss(s, t, 2.0).backward()
    assert t.grad is None and s.grad is not None
    with pytest.raises(ValueError, match="logits"):
        binary_kd_loss(torch.zeros(2, 3), torch.zeros(2, 4), 1.0)
    with pytest.raises(ValueError, match="temperature"):
        binary_kd_loss(torch.zeros(2, 3), torch.zeros(2, 3), 0.0)


def test_hard_loss_is_mean_binary_cross_entropy():
    s = torch.tensor([[2.0, -1.0], [0.5, 0.0]])
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    ref = -sum(
        yv * math.log(1 / (1 + math.exp(-sv))) + (1 - yv) * math.log(1 - 1 / (1 + math.exp(-sv)))
        for sv, yv in zip(s.flatten().tolist(), y.flatten().tolist())
    ) / 4
    assert hard_loss(s, y).item() == pytest.approx(ref, rel=1e-6)


def test_feature_loss_is_cosine_distance_and_scale_free():
    a = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    b = torch.tensor([[2.0, 0.0], [-1.0, -1.0]])
    assert feature_loss(a, b).item() == pytest.approx((0.0 + 2.0) / 2)
    assert feature_loss(5 * a, b).item() == pytest.approx(feature_loss(a, b).item())


def test_confidence_targets_mark_windows_where_every_decision_agrees():
    s = torch.tensor([[2.0, -1.0], [2.0, 1.0], [-3.0, -3.0]])
    teacher = torch.tensor([[0.5, -0.2], [1.0, -1.0], [-0.1, -9.0]])
    torch.testing.assert_close(confidence_targets(s, teacher, reference_is_logits=True), torch.tensor([1.0, 0.0, 1.0]))
    labels = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    torch.testing.assert_close(confidence_targets(s, labels, reference_is_logits=False), torch.tensor([1.0, 1.0, 0.0]))
    logit = torch.tensor([3.0, -3.0])
    assert confidence_loss(logit, torch.tensor([1.0, 0.0])).item() == pytest.approx(
        F.softplus(torch.tensor(-3.0)).item(), rel=1e-6)
