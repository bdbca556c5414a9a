"""Audio and visual encoders, and the one clock both modalities share.

Every token leaves its encoder with an absolute time on the recording clock
(seconds). `TimeEmbedding` turns time *relative to the query* into a vector,
with one module for both modalities: an audio token and a frame at the same
instant get the same time vector (the idea of Qwen2.5-Omni's TMRoPE, as an
additive embedding so that any decoder that takes input embeddings can read
it). Shifting a whole window in time while keeping the query at its end
leaves every relative time, and so every embedding, unchanged.
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["AudioEncoder", "VisualEncoder", "TokenContext", "TimeEmbedding"]

# Log-mel values lie in about [log(1e-3), 3] = [-6.9, 3]: a fixed affine puts
# them near unit scale without any statistics that DDP would have to sync.
_MEL_CENTER, _MEL_SCALE = -4.0, 3.0
_MEL_HZ = 100  # log-mel frames per second (10 ms hop)
_STEM_STRIDE = 25  # the audio stem runs at 100 / 25 = 4 Hz


class AudioEncoder(nn.Module):
    """Log-mel -> one token per ``frames_per_token`` mel frames, each token from its
    own frames only.

    Stem, per token: conv k5 s5 (100 -> 20 Hz), conv k3, conv k5 s5 (-> 4 Hz),
    then the 4 Hz steps of the token are concatenated and projected to
    ``d_model``. Tokens do not see each other here (`TokenContext` does that
    later), so a recording's tokens on the 0.5 s grid can be computed once and
    cached: any window ending on the grid reads the same token features.

    Input: mel (B, T, n_mels), T a multiple of ``frames_per_token``.
    Output: (B, T // frames_per_token, d_model).
    """

    def __init__(self, n_mels: int, channels: int, d_model: int, frames_per_token: int) -> None:
        super().__init__()
        if frames_per_token % _STEM_STRIDE:
            raise ValueError(f"frames_per_token: must be a multiple of {_STEM_STRIDE}, got {frames_per_token}")
        self.frames_per_token = frames_per_token
        self.stem = nn.Sequential(
            nn.Conv1d(n_mels, channels, kernel_size=5, stride=5),
            nn.GELU(),
            nn.Conv1d(channels, channels, kernel_size=3, padding=1),
            nn.GELU(),
            nn.Conv1d(channels, channels, kernel_size=5, stride=5),
            nn.GELU(),
        )
        self.steps_per_token = frames_per_token // _STEM_STRIDE
        self.proj = nn.Linear(channels * self.steps_per_token, d_model)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        b, t, m = mel.shape
        if t % self.frames_per_token:
            raise ValueError(f"mel: {t} frames is not a multiple of {self.frames_per_token} frames per token")
        n = t // self.frames_per_token
        x = ((mel - _MEL_CENTER) / _MEL_SCALE).reshape(b * n, self.frames_per_token, m).transpose(1, 2)
        x = self.stem(x)  # (B N, C, steps)
        return self.proj(x.reshape(b, n, -1))

    @staticmethod
    def token_times(audio_end_s: torch.Tensor, n_tokens: int, token_s: float) -> torch.Tensor:
        """Centre time of each token, (B, n_tokens), from the window end (B,).

        Token k covers [end - (n - k) * token_s, end - (n - k - 1) * token_s)
        (``cloud.model.perception.audio_token_ends`` gives their ends for one window, in numpy).
        """
        k = torch.arange(n_tokens, dtype=audio_end_s.dtype, device=audio_end_s.device)
        return audio_end_s[:, None] - (n_tokens - k - 0.5) * token_s


class VisualEncoder(nn.Module):
    """A small CNN applied to each frame independently.

    A 4x4 stride-4 patchify stem (channels c), then two stride-2 3x3 conv
    stages (2c, 4c), each followed by GroupNorm and GELU; global average
    pooling and a linear projection. The patchify stem (ConvNeXt's) costs a
    quarter of a stride-2 3x3 stage at full resolution. GroupNorm costs ~10%
    of the CNN at 32 px (~40% at 48 px) but without it the tiny teacher needs
    far more steps to tell frames apart (measured on the test world).

    Input: frames (B, F, H, W, 3) uint8 RGB, H and W multiples of 16.
    Output: (B, F, d_model).
    """

    def __init__(self, channels: int, d_model: int) -> None:
        super().__init__()
        c = channels
        self.cnn = nn.Sequential(
            nn.Conv2d(3, c, kernel_size=4, stride=4),
            nn.GroupNorm(min(8, c), c),
            nn.GELU(),
            nn.Conv2d(c, 2 * c, kernel_size=3, stride=2, padding=1),
            nn.GroupNorm(min(8, 2 * c), 2 * c),
            nn.GELU(),
            nn.Conv2d(2 * c, 4 * c, kernel_size=3, stride=2, padding=1),
            nn.GroupNorm(min(8, 4 * c), 4 * c),
            nn.GELU(),
        )
        self.proj = nn.Linear(4 * c, d_model)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        b, f, h, w, _ = frames.shape
        x = frames.reshape(b * f, h, w, 3).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        x = self.cnn(x).mean(dim=(2, 3))  # (BF, 4c)
        return self.proj(x).reshape(b, f, -1)


class TokenContext(nn.Module):
    """Residual 1-D convolutions along a token sequence (audio tokens or frames).

    Each layer: ``x + GELU(conv_k3(LayerNorm(x)))``, with masked tokens zeroed
    before every convolution so that a missing second reads as silence, not as
    whatever the padding held. ``n_layers`` layers see ``n_layers`` tokens on
    each side (1 s of audio at 0.5 s tokens, 2 layers).

    Input: x (B, N, d), valid (B, N) bool. Output: (B, N, d).
    """

    def __init__(self, d_model: int, n_layers: int) -> None:
        super().__init__()
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(n_layers))
        self.convs = nn.ModuleList(nn.Conv1d(d_model, d_model, kernel_size=3, padding=1) for _ in range(n_layers))

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        keep = valid[..., None].to(x.dtype)
        for norm, conv in zip(self.norms, self.convs):
            h = (norm(x) * keep).transpose(1, 2)
            x = x + nn.functional.gelu(conv(h)).transpose(1, 2)
        return x * keep


class TimeEmbedding(nn.Module):
    """Seconds relative to the query -> (…, d_model).

    Sinusoids at ``n_freqs`` periods spaced geometrically from ``min_period_s``
    to ``max_period_s``, then a linear map. One instance serves every modality.
    """

    def __init__(self, d_model: int, min_period_s: float, max_period_s: float, n_freqs: int = 16) -> None:
        super().__init__()
        periods = torch.logspace(math.log10(min_period_s), math.log10(max_period_s), n_freqs, dtype=torch.float64)
        self.register_buffer("angular_hz", (2 * math.pi / periods).float(), persistent=False)
        self.proj = nn.Linear(2 * n_freqs, d_model)

    def forward(self, t_rel_s: torch.Tensor) -> torch.Tensor:
        phase = t_rel_s.float()[..., None] * self.angular_hz
        return self.proj(torch.cat([phase.sin(), phase.cos()], dim=-1))
