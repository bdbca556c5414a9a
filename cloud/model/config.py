"""`ModelConfig`: every size and switch of the audio-visual teacher.

Kept free of torch so that the Hydra schemas (``cloud/verbs.py``) can embed it
without importing the model. The checkpoint stores it as JSON
(``model_config.json``) next to the weights, so a checkpoint rebuilds its own
model with no training config at hand.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from shared.config import check

__all__ = ["FUSIONS", "DECODERS", "ModelConfig"]

#: ``gate``: per-modality reliability from context (audio SNR, visual blur and
#: occlusion, all estimated from the signals). ``blind``: the same gate fed a
#: constant context, so it learns one fixed trust per modality.
FUSIONS = ("gate", "blind")
#: ``small``: the built-in word-level decoder (``cloud/model/decoder.py``). ``lm``: a local
#: pretrained causal LM (``model.lm``) with LoRA adapters (``cloud/model/lm_decoder.py``).
DECODERS = ("small", "lm")
#: The fields that only the ``lm`` decoder reads: left out of a ``small`` model's card, so
#: its checkpoints stay exactly as before the LM variant existed.
_LM_FIELDS = ("decoder", "lm", "lora_rank")


@dataclass
class ModelConfig:
    """Sizes of the teacher (see ``cloud/model/teacher.py`` for the picture).

    Attributes:
        n_mels: mel bands of the log-mel input (``shared.features.FeatureConfig``).
        audio_token_s: seconds of audio per audio token; a multiple of 0.25 s
            (the audio stem runs at 4 Hz).
        audio_channels: width of the audio conv stem.
        frame_size_px: frames are resized to this square size before the CNN.
        visual_channels: width of the visual patchify stem; doubles at each
            of the two stride-2 stages after it.
        d_model: width of tokens, fusion and decoder.
        n_heads: attention heads (fusion and decoder).
        context_layers: residual conv layers along each modality's tokens
            before the perception heads (each sees one more token per side).
        fusion_layers: bidirectional transformer layers over the gated
            audio-visual tokens (what the decoder reads).
        decoder_layers: causal transformer layers of the built-in decoder.
        fusion: ``gate`` (context-aware) or ``blind`` (context-blind).
        gate_hidden: hidden width of the gate's context MLP.
        time_min_period_s, time_max_period_s: shortest and longest period of
            the sinusoids that encode a token's time; 0.25 s resolves one
            frame step at 4 fps, 64 s is far past any window.
        max_question_tokens: questions are cut to this many word tokens.
        max_answer_tokens: answers (with their end token) are cut to this many.
        dropout: dropout in the transformer layers.
        label_mix: add each token's perception probabilities to the prefix as
            a mixture of the label words' embeddings (tied to the decoder).
        fusion_reads_question: the question's words join the fusion layers, so
            the audio-visual tokens are read knowing what is asked.
        label_pointer: each question word that names a perception label adds a
            prefix token pooled from where that label was perceived (features,
            time, and whether it was), so "did you hear the knock?" is a lookup.
        decoder: ``small`` (built-in, over the training records' words) or ``lm``
            (the pretrained LM of ``lm``, frozen, with LoRA adapters; the prefix
            is projected to its width and labels are its word pieces).
        lm: the LM for ``decoder=lm``: a local ``.gguf`` file or Hugging Face
            folder, or null / ``default`` for the embedded SmolLM2 (``cloud/lm/load.py``);
            checked when the config is read. Never downloaded.
        lora_rank: rank of the LoRA adapters on the LM's query and value projections.
    """

    n_mels: int = 64
    audio_token_s: float = 0.5
    audio_channels: int = 64
    frame_size_px: int = 32
    visual_channels: int = 32
    d_model: int = 128
    n_heads: int = 4
    context_layers: int = 2
    fusion_layers: int = 1
    decoder_layers: int = 2
    fusion: str = "gate"
    gate_hidden: int = 16
    time_min_period_s: float = 0.25
    time_max_period_s: float = 64.0
    max_question_tokens: int = 32
    max_answer_tokens: int = 24
    dropout: float = 0.1
    label_mix: bool = True
    fusion_reads_question: bool = False
    label_pointer: bool = True
    decoder: str = "small"
    lm: str | None = None
    lora_rank: int = 8

    def __post_init__(self) -> None:
        p = "model."
        check(1 <= self.n_mels <= 256, p + "n_mels", f"must be in [1, 256], got {self.n_mels}")
        steps = self.audio_token_s / 0.25
        check(
            0.25 <= self.audio_token_s <= 4.0 and abs(steps - round(steps)) < 1e-9,
            p + "audio_token_s",
            f"must be a multiple of 0.25 s in [0.25, 4], got {self.audio_token_s}",
        )
        check(4 <= self.audio_channels <= 1024, p + "audio_channels", f"must be in [4, 1024], got {self.audio_channels}")
        check(
            16 <= self.frame_size_px <= 256 and self.frame_size_px % 16 == 0,
            p + "frame_size_px",
            f"must be a multiple of 16 in [16, 256] (stride 16 in all), got {self.frame_size_px}",
        )
        check(2 <= self.visual_channels <= 256, p + "visual_channels", f"must be in [2, 256], got {self.visual_channels}")
        check(self.n_heads >= 1, p + "n_heads", f"must be >= 1, got {self.n_heads}")
        check(
            self.d_model >= 8 and self.d_model % self.n_heads == 0,
            p + "d_model",
            f"must be >= 8 and divisible by n_heads={self.n_heads}, got {self.d_model}",
        )
        check(0 <= self.context_layers <= 8, p + "context_layers", f"must be in [0, 8], got {self.context_layers}")
        check(0 <= self.fusion_layers <= 24, p + "fusion_layers", f"must be in [0, 24], got {self.fusion_layers}")
        check(1 <= self.decoder_layers <= 48, p + "decoder_layers", f"must be in [1, 48], got {self.decoder_layers}")
        check(self.fusion in FUSIONS, p + "fusion", f"must be one of {FUSIONS}, got {self.fusion!r}")
        check(1 <= self.gate_hidden <= 1024, p + "gate_hidden", f"must be in [1, 1024], got {self.gate_hidden}")
        check(
            0 < self.time_min_period_s < self.time_max_period_s,
            p + "time_min_period_s",
            f"must be > 0 and below time_max_period_s={self.time_max_period_s}, got {self.time_min_period_s}",
        )
        check(1 <= self.max_question_tokens <= 512, p + "max_question_tokens", f"must be in [1, 512], got {self.max_question_tokens}")
        check(2 <= self.max_answer_tokens <= 256, p + "max_answer_tokens", f"must be in [2, 256], got {self.max_answer_tokens}")
        check(0.0 <= self.dropout < 1.0, p + "dropout", f"must be in [0, 1), got {self.dropout}")
        check(self.decoder in DECODERS, p + "decoder", f"must be one of {DECODERS}, got {self.decoder!r}")
        check(1 <= self.lora_rank <= 256, p + "lora_rank", f"must be in [1, 256], got {self.lora_rank}")
        if self.decoder == "lm":
            # A bad path fails here, before any data is read or a model is built.
            from cloud.lm.load import resolve_lm_path
            from shared.config import ConfigError, UserError

            try:
                resolve_lm_path(self.lm, key=p + "lm")
            except UserError as exc:
                raise ConfigError(str(exc)) from None

    @property
    def mel_frames_per_token(self) -> int:
        """Log-mel frames (10 ms hop) per audio token: 50 at 0.5 s."""
        return int(round(self.audio_token_s * 100))

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if self.decoder == "small":
            for key in _LM_FIELDS:
                out.pop(key)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelConfig":
        """Inverse of `to_dict`; unknown keys are an error (a newer checkpoint)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        check(not unknown, "model_config", f"unknown keys {unknown} (checkpoint from a newer Earshot?)")
        return cls(**dict(data))
