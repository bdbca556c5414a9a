"""The one frame-resize definition (shared/frames.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from shared.frames import FrameResize, resize_frames


def test_block_mean_rounded_halves_up():
    f = np.zeros((1, 4, 4, 3), np.uint8)
    f[0, :2, :2, 0] = [[1, 2], [2, 0]]  # mean 1.25 -> 1
    f[0, :2, 2:, 0] = [[1, 2], [2, 1]]  # mean 1.5 -> 2
    f[0, 2:, :2, 0] = [[3, 2], [2, 3]]  # mean 2.5 -> 3
    f[0, 2:, 2:, 0] = 255
    out = resize_frames(f, 2)
    assert out.dtype == np.uint8 and out.shape == (1, 2, 2, 3)
    assert out[0, :, :, 0].tolist() == [[1, 2], [3, 255]]


def test_it_is_the_teachers_area_resize_up_to_ties():
    from cloud.data import resize_frames as teacher_resize  # half to even: differs by 1 on exact halves

    frames = np.random.default_rng(0).integers(0, 256, (5, 128, 128, 3), dtype=np.uint8)
    diff = resize_frames(frames, 64).astype(int) - teacher_resize(frames, 64).astype(int)
    assert set(np.unique(diff)) <= {0, 1} and (diff == 0).mean() > 0.7
    assert np.array_equal(resize_frames(frames, 128), frames)


def test_the_exported_graph_delegates_the_resize_in_one_block(tmp_path):
    from distill.programs import PteProgram, delegation_summary, lower_to_pte

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.resize = FrameResize(2)

        def forward(self, frame):
            return self.resize(frame).reshape(1, -1)

    frame = torch.from_numpy(np.random.default_rng(2).integers(0, 256, (1, 16, 16, 3), dtype=np.uint8))
    path = lower_to_pte(Probe(), (frame,), tmp_path / "probe.pte")
    assert delegation_summary(path)["delegates"] == ["XnnpackBackend"]
    out = PteProgram(path)(frame.numpy())[0].reshape(1, 3, 8, 8)
    assert np.array_equal(out.astype(np.uint8).transpose(0, 2, 3, 1), resize_frames(frame.numpy(), 8))


def test_the_module_is_what_the_graph_runs():
    frames = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8))
    pixels = FrameResize(2)(frames)
    assert pixels.shape == (2, 3, 32, 32) and pixels.dtype == torch.float32
    assert np.array_equal(pixels.to(torch.uint8).permute(0, 2, 3, 1).numpy(), resize_frames(frames.numpy(), 32))


def test_sizes_that_do_not_divide_are_refused():
    with pytest.raises(ValueError, match="multiple"):
        resize_frames(np.zeros((1, 100, 100, 3), np.uint8), 64)
    with pytest.raises(ValueError, match="multiple"):
        resize_frames(np.zeros((1, 128, 96, 3), np.uint8), 32)
