"""distill/macs.py on layers with known counts, and the students against their budgets."""
import pytest
import torch
from torch import nn

from distill.macs import count_macs
from distill.student_config import FrontEndConfig, StudentConfig
from distill.students import example_inputs, make_student, num_parameters
from shared.features import FeatureConfig, PcmLogMel, used_bin_range


class _Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(6, 5))

    def forward(self, x):  # (2, 4, 5) @ (5, 6) -> (2, 4, 6), then addmm
        y = torch.matmul(x, self.w.T)
        return torch.addmm(torch.zeros(8, 6), y.reshape(8, 6), torch.eye(6))


@pytest.mark.parametrize(
    "layer, x, expected",
    [
        (nn.Conv1d(1, 8, kernel_size=16, stride=4), torch.randn(1, 1, 100), 22 * 8 * 16),  # 22 outputs
        (nn.Conv2d(3, 16, 3, stride=2, padding=1), torch.randn(1, 3, 32, 32), 16 * 16 * 16 * 3 * 9),
        (nn.Conv2d(32, 32, 3, padding=1, groups=32), torch.randn(2, 32, 8, 8), 2 * 32 * 8 * 8 * 9),  # depthwise
        (nn.Linear(10, 7), torch.randn(3, 10), 3 * 7 * 10),
        (_Functional(), torch.randn(2, 4, 5), 2 * 4 * 6 * 5 + 8 * 6 * 6),
    ],
)
def test_counts_known_layers(layer, x, expected):
    assert count_macs(layer, (x,)).total == expected


def test_front_end_count_is_the_dft_and_mel_formula():
    f = FrontEndConfig()
    cfg = FeatureConfig(**f.feature_kwargs())
    lo, hi = used_bin_range(cfg)
    frames = cfg.num_frames(16000)
    report = count_macs(PcmLogMel(cfg, trim_bins=True), (torch.zeros(1, 16000, dtype=torch.int16),))
    assert report.by_op == {"conv": frames * 2 * (hi - lo) * cfg.window_samples, "linear": frames * (hi - lo) * cfg.n_mels}
    assert report.total == 3_182_400


def test_students_fit_their_budgets():
    trigger = StudentConfig()
    model = make_student(trigger)
    assert num_parameters(model) < 100_000
    assert count_macs(model, example_inputs(trigger)).total < 5_000_000  # front end included
    av = StudentConfig(name="av", audio_s=2.0)
    assert num_parameters(make_student(av)) < 1_000_000
