"""The two on-device students and their registry (ExecuTorch's model_base style).

::

    AudioTrigger   pcm int16 (1, N) --PcmLogMel--> (1, T, M) --AudioBody--> (1, C) --Linear--> event_probs (1, 18)

    AVStudent      frame uint8 (1, C, C, 3) --FrameResize--> (1, 3, S, S) --x/127.5-1--> VisualBody --> (1, Cv) --+
                   pcm int16 (1, N) --PcmLogMel--> AudioBody ------------> (1, Ca) --+--> Linear+ReLU (hidden)
                        hidden --> tag_logits (1, 41) --sigmoid--> tag_probs (1, 41)
                        [hidden, tag_probs] --> MLP --sigmoid--> confidence (1, 1)

Outputs follow the per-token teacher (``cloud/model/perception.py``): the
trigger's 18 are the sound events it heard in its window (the teacher's sound
head over the window's tokens); the AV student's 41 are those 18, then what its
frame shows: 15 visual actions and 8 object states (the teacher's frame head),
so it can answer "did you see the door open?" as well as "did you hear it?".

Both bodies are depthwise-separable CNNs (MobileNet / DS-CNN keyword-spotting
style: conv-BN-ReLU only, which PT2E's XNNPACK quantizer annotates and
XNNPACK runs in int8). The log-mel front end is ``shared.features.PcmLogMel``
inside the graph, so every runtime computes identical features; it is kept in
float32 when quantizing (module name ``front_end``), because int8 DFT outputs
would lose the quiet bands that the log then magnifies.

The confidence head predicts whether the student's decisions agree with the
teacher's on every tag of the window (``distill/losses.py:confidence_targets``);
it reads the tag head's inputs and outputs *detached* during training, so
learning to judge itself never bends the features the tags use.

Registry: ``MODELS[name](cfg)`` has ``get_eager_model()`` and
``get_example_inputs()``, like ``executorch/examples/models/model_base.py``.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from cloud.model.perception import FRAME_LABELS, SOUND_LABELS
from distill.student_config import AUDIO_POOLS, StudentConfig
from shared.features import FeatureConfig, PcmLogMel
from shared.frames import FrameResize

__all__ = [
    "EVENT_NAMES",
    "STUDENT_LABELS",
    "AudioBody",
    "VisualBody",
    "AudioTrigger",
    "AVStudent",
    "MODELS",
    "make_student",
    "example_inputs",
    "labels_of",
    "io_spec",
    "num_parameters",
]

#: The trigger's outputs: every audio event, in ``shared.labels`` id order (the teacher's sound head).
EVENT_NAMES: tuple[str, ...] = SOUND_LABELS
#: The AV student's outputs: the sound events, then the teacher's frame labels (actions, object states).
STUDENT_LABELS: tuple[str, ...] = (*SOUND_LABELS, *FRAME_LABELS)

# Log-mel values lie in about [log(1e-3), 3]: a fixed affine to near unit scale
# (the stem's BatchNorm learns the rest), as the teacher's AudioEncoder does.
_MEL_CENTER, _MEL_SCALE = -4.0, 3.0


def _conv_bn_relu(c_in: int, c_out: int, kernel: int, stride: int, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    )


def _global_mean(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C). keepdim=True then reshape: XNNPACK delegates a
    4-D mean over the last two dims only in that form (else it runs portable)."""
    return x.mean(dim=(2, 3), keepdim=True).reshape(x.shape[0], x.shape[1])


def _ds_cnn(c_in: int, widths: list[int]) -> nn.Sequential:
    """Stem (3x3, stride 2) then one depthwise-separable block per later width;
    a block is stride 2 where the width grows, stride 1 where it stays."""
    layers = [_conv_bn_relu(c_in, widths[0], 3, 2)]
    for prev, width in zip(widths, widths[1:]):
        stride = 2 if width > prev else 1
        layers += [_conv_bn_relu(prev, prev, 3, stride, groups=prev), _conv_bn_relu(prev, width, 1, 1)]
    return nn.Sequential(*layers)


def _max_over_time(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, F) -> (B, C): mean over frequency, then max over time. Both as 2-D
    pooling with whole-axis kernels, which XNNPACK delegates (shapes are static
    at export)."""
    t, f = int(x.shape[2]), int(x.shape[3])
    x = nn.functional.max_pool2d(nn.functional.avg_pool2d(x, (1, f)), (t, 1))
    return x.reshape(x.shape[0], x.shape[1])


class AudioBody(nn.Module):
    """Log-mel (B, T, M) -> embedding (B, widths[-1]).

    ``pool`` (`AUDIO_POOLS`): ``mean`` averages the CNN's map over time and
    frequency; ``max_time`` averages over frequency and takes the maximum over
    time, so a sound that fills only the newest columns of the window counts in
    full rather than by the share of the window it fills (a detector fires on a
    sound's first fraction of a second; see docs/edge.md, "The trigger's pooling").
    """

    def __init__(self, widths: list[int], pool: str = "mean") -> None:
        super().__init__()
        if pool not in AUDIO_POOLS:
            raise ValueError(f"pool must be one of {AUDIO_POOLS}, got {pool!r}")
        self.cnn = _ds_cnn(1, widths)
        self.dim = widths[-1]
        self.pool = pool

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        b, t, m = mel.shape
        # reshape, not unsqueeze: XNNPACK delegates view_copy (see shared/features.py).
        x = self.cnn(((mel - _MEL_CENTER) * (1.0 / _MEL_SCALE)).reshape(b, 1, t, m))
        return _max_over_time(x) if self.pool == "max_time" else _global_mean(x)


class VisualBody(nn.Module):
    """Pixel values float32 (B, 3, S, S) in [0, 255] -> embedding (B, widths[-1]); normalises in the graph."""

    def __init__(self, widths: list[int]) -> None:
        super().__init__()
        self.cnn = _ds_cnn(3, widths)
        self.dim = widths[-1]

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return _global_mean(self.cnn(pixels * (1.0 / 127.5) - 1.0))


class AudioTrigger(nn.Module):
    """The always-on trigger: int16 PCM (B, N) -> event probabilities (B, 18).

    ``forward_train`` returns logits and the embedding for the KD recipe;
    ``forward`` (what is exported) returns probabilities only.
    """

    def __init__(self, features: FeatureConfig, trim_bins: bool, audio_channels: list[int], n_events: int,
                 audio_pool: str = "mean") -> None:
        super().__init__()
        self.front_end = PcmLogMel(features, trim_bins=trim_bins)
        self.audio = AudioBody(audio_channels, audio_pool)
        self.head = nn.Linear(self.audio.dim, n_events)
        self.embedding_dim = self.audio.dim

    def forward_train(self, pcm: torch.Tensor) -> dict[str, torch.Tensor]:
        embedding = self.audio(self.front_end(pcm))
        return {"logits": self.head(embedding), "embedding": embedding}

    def forward(self, pcm: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(self.audio(self.front_end(pcm))))


class AVStudent(nn.Module):
    """One camera frame plus recent audio -> (tag probabilities (B, 41), confidence (B, 1)).

    ``forward`` (exported) reads the camera frame (B, C, C, 3) and resizes it with
    ``frame_resize`` in the graph; ``forward_train`` reads frames already resized by
    the same module (``shared.frames.resize_frames``), which is cheaper to keep in memory.
    """

    def __init__(
        self,
        features: FeatureConfig,
        trim_bins: bool,
        audio_channels: list[int],
        visual_channels: list[int],
        hidden: int,
        confidence_hidden: int,
        n_tags: int,
        resize_factor: int = 1,
        audio_pool: str = "mean",
    ) -> None:
        super().__init__()
        self.front_end = PcmLogMel(features, trim_bins=trim_bins)
        self.frame_resize = FrameResize(resize_factor)
        self._cast = FrameResize(1)
        self.audio = AudioBody(audio_channels, audio_pool)
        self.visual = VisualBody(visual_channels)
        self.fuse = nn.Sequential(nn.Linear(self.audio.dim + self.visual.dim, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, n_tags)
        self.confidence = nn.Sequential(
            nn.Linear(hidden + n_tags, confidence_hidden), nn.ReLU(), nn.Linear(confidence_hidden, 1)
        )
        self.embedding_dim = hidden

    def _hidden(self, pixels: torch.Tensor, pcm: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([self.audio(self.front_end(pcm)), self.visual(pixels)], dim=1))

    def forward_train(self, frame: torch.Tensor, pcm: torch.Tensor) -> dict[str, torch.Tensor]:
        """``frame``: uint8 (B, S, S, 3) at the visual body's size (already resized)."""
        hidden = self._hidden(self._cast(frame), pcm)
        logits = self.head(hidden)
        judge = torch.cat([hidden.detach(), torch.sigmoid(logits).detach()], dim=1)
        return {"logits": logits, "embedding": hidden, "confidence_logit": self.confidence(judge)[:, 0]}

    def forward(self, frame: torch.Tensor, pcm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``frame``: the camera frame, uint8 (B, C, C, 3)."""
        hidden = self._hidden(self.frame_resize(frame), pcm)
        probs = torch.sigmoid(self.head(hidden))
        return probs, torch.sigmoid(self.confidence(torch.cat([hidden, probs], dim=1)))


# --- registry ----------------------------------------------------------------------


def labels_of(name: str) -> tuple[str, ...]:
    """Output labels of a student, in output order."""
    return EVENT_NAMES if name == "trigger" else STUDENT_LABELS


class TriggerModel:
    """Registry entry: builds the trigger from a `StudentConfig`."""

    def __init__(self, cfg: StudentConfig) -> None:
        self.cfg = cfg

    def get_eager_model(self) -> nn.Module:
        f = self.cfg.features
        return AudioTrigger(FeatureConfig(**f.feature_kwargs()), f.trim_bins, list(self.cfg.audio_channels),
                            len(EVENT_NAMES), self.cfg.audio_pool)

    def get_example_inputs(self) -> tuple[torch.Tensor, ...]:
        g = torch.Generator().manual_seed(0)
        pcm = torch.randint(-3000, 3000, (1, self.cfg.n_samples), generator=g).to(torch.int16)
        return (pcm,)


class AVModel:
    """Registry entry: builds the AV student from a `StudentConfig`."""

    def __init__(self, cfg: StudentConfig) -> None:
        self.cfg = cfg

    def get_eager_model(self) -> nn.Module:
        c, f = self.cfg, self.cfg.features
        return AVStudent(
            FeatureConfig(**f.feature_kwargs()), f.trim_bins, list(c.audio_channels), list(c.visual_channels),
            c.hidden, c.confidence_hidden, len(STUDENT_LABELS), c.camera_px // c.frame_size_px, c.audio_pool,
        )

    def get_example_inputs(self) -> tuple[torch.Tensor, ...]:
        g = torch.Generator().manual_seed(0)
        s = self.cfg.camera_px
        frame = torch.randint(0, 256, (1, s, s, 3), generator=g).to(torch.uint8)
        pcm = torch.randint(-3000, 3000, (1, self.cfg.n_samples), generator=g).to(torch.int16)
        return frame, pcm


MODELS: dict[str, Any] = {"trigger": TriggerModel, "av": AVModel}


def make_student(cfg: StudentConfig) -> nn.Module:
    """A freshly initialised student (train mode)."""
    return MODELS[cfg.name](cfg).get_eager_model()


def example_inputs(cfg: StudentConfig) -> tuple[torch.Tensor, ...]:
    return MODELS[cfg.name](cfg).get_example_inputs()


def num_parameters(model: nn.Module) -> int:
    """Trainable parameters (the front end's fixed DFT and mel matrices are buffers)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def io_spec(cfg: StudentConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(inputs, outputs) as plain dicts for the model card, in call order."""
    rate = cfg.features.sample_rate_hz
    pcm = {
        "name": "pcm", "dtype": "int16", "shape": [1, cfg.n_samples],
        "description": f"the last {cfg.audio_s:g} s of mono PCM at {rate} Hz, oldest sample first; "
                       "full scale 32768; log-mel is computed inside the program",
    }
    if cfg.name == "trigger":
        outputs = [{"name": "event_probs", "dtype": "float32", "shape": [1, len(EVENT_NAMES)],
                    "description": "probability of each audio event in the window (labels order)"}]
        return [pcm], outputs
    c, s = cfg.camera_px, cfg.frame_size_px
    frame = {
        "name": "frame", "dtype": "uint8", "shape": [1, c, c, 3],
        "description": f"the newest RGB camera frame as captured ({c}x{c}, NHWC); the program area-resizes it "
                       f"to {s}x{s} (shared/frames.py) and scales it to [-1, 1] inside its graph",
    }
    outputs = [
        {"name": "tag_probs", "dtype": "float32", "shape": [1, len(STUDENT_LABELS)],
         "description": "probability of each audio event in the audio window, then of each visual action and "
                        "object state in the frame (labels order)"},
        {"name": "confidence", "dtype": "float32", "shape": [1, 1],
         "description": "estimated probability that every tag's decision at 0.5 matches the reference the head "
                        "was trained on (extra.confidence_target: the cloud teacher by default)"},
    ]
    return [frame, pcm], outputs
