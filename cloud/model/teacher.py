"""`AVTeacher`: the cloud audio-visual LM that answers questions about a window.

::

    log-mel (B, T, 64) --AudioEncoder--> audio tokens, one per 0.5 s  --+
    frames (B, F, H, W, 3) --VisualEncoder--> one token per frame      --+
                                                                          |
    context (signal-estimated SNR, blur, hand cover) --ReliabilityGate--> r_audio, r_visual
                                                                          |
    token' = r * token + (1 - r) * null  +  modality  +  TimeEmbedding(t - t_query)
    sorted by time, after a learned <av> start token
                                                                          |
    fusion: bidirectional transformer layers -----------------------------+--> tag head (event and
                                                                          |    action probabilities)
    decoder (causal): [<av>, tokens..., question ids, <bos>, answer ids] -+--> next-token logits

Batches are dicts of tensors made by `cloud.data.collate` (keys in
`BATCH_KEYS`); the model reads no annotations, only signals, times and text.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cloud.model.config import ModelConfig
from cloud.model.context import context_features
from cloud.model.decoder import Block, Decoder, TransformerDecoder
from cloud.model.encoders import AudioEncoder, TimeEmbedding, VisualEncoder
from cloud.model.gate import MODALITIES, ReliabilityGate
from shared.labels import names

__all__ = ["TAG_NAMES", "BATCH_KEYS", "Encoded", "AVTeacher"]

#: The tag head's outputs, in order: every audio event, then every visual
#: action (``shared.labels`` ids, offset by the number of audio events).
TAG_NAMES: tuple[str, ...] = (*names("audio_event"), *names("visual_action"))

#: What a batch holds (shapes for batch B):
#:   mel (B, T, n_mels) float, mel_valid (B, T) bool, audio_end_s (B,) float64;
#:   frames (B, F, S, S, 3) uint8, frame_valid (B, F) bool, frame_times_s (B, F) float64;
#:   t_query_s (B,) float64; question_ids (B, Lq) long (pad-filled);
#:   answer_in (B, La) long = <bos> + answer, answer_out (B, La) long = answer + <eos>
#:   (pad-filled); tags (B, len(TAG_NAMES)) float 0/1.
BATCH_KEYS = (
    "mel", "mel_valid", "audio_end_s", "frames", "frame_valid", "frame_times_s",
    "t_query_s", "question_ids", "answer_in", "answer_out", "tags",
)


@dataclass
class Encoded:
    """The fused audio-visual prefix and what the gate and tag head made of it.

    Attributes:
        prefix: (B, 1 + N, decoder width), <av> first, then tokens by time.
        prefix_mask: (B, 1 + N) bool.
        times_rel_s: (B, N) seconds relative to the query, per token (sorted).
        modality: (B, N) long, index into ``MODALITIES``.
        time_embedding: (B, N, d_model), the time part added to each token.
        tag_logits: (B, len(TAG_NAMES)).
        reliability: (B, 2) gate output for (audio, visual).
        context: (B, 5) raw context features (``context.CONTEXT_NAMES``).
    """

    prefix: torch.Tensor
    prefix_mask: torch.Tensor
    times_rel_s: torch.Tensor
    modality: torch.Tensor
    time_embedding: torch.Tensor
    tag_logits: torch.Tensor
    reliability: torch.Tensor
    context: torch.Tensor


def _init_weights(module: nn.Module) -> None:
    # GPT-2 / nanoGPT initialisation for the transformer parts.
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)


class AVTeacher(nn.Module):
    """The teacher. ``decoder`` may be any `Decoder`; by default the built-in one."""

    def __init__(
        self,
        cfg: ModelConfig,
        vocab_size: int,
        pad_id: int = 0,
        bos_id: int = 2,
        eos_id: int = 3,
        decoder: Decoder | None = None,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        d = cfg.d_model
        self.audio_encoder = AudioEncoder(cfg.n_mels, cfg.audio_channels, d, cfg.mel_frames_per_token)
        self.visual_encoder = VisualEncoder(cfg.visual_channels, d)
        self.time_embedding = TimeEmbedding(d, cfg.time_min_period_s, cfg.time_max_period_s)
        self.modality_embedding = nn.Embedding(len(MODALITIES), d)
        self.start = nn.Parameter(torch.zeros(d))
        self.fusion = nn.ModuleList(Block(d, cfg.n_heads, cfg.dropout) for _ in range(cfg.fusion_layers))
        self.fusion_ln = nn.LayerNorm(d)
        self.tag_head = nn.Linear(2 * d, len(TAG_NAMES))
        if decoder is None:
            max_text = cfg.max_question_tokens + 1 + cfg.max_answer_tokens
            decoder = TransformerDecoder(vocab_size, d, cfg.decoder_layers, cfg.n_heads, max_text, cfg.dropout, pad_id)
        self.decoder = decoder
        # Identity for the built-in decoder; a projector for a wider LM.
        self.to_decoder = nn.Identity() if decoder.d_model == d else nn.Linear(d, decoder.d_model)
        for part in (self.modality_embedding, self.fusion, self.tag_head, self.decoder):
            part.apply(_init_weights)
        # Built last so the initialisation above cannot touch its physics prior.
        self.gate = ReliabilityGate(d, cfg.gate_hidden, context_aware=cfg.fusion == "gate")

    # --- the fused prefix ------------------------------------------------------

    def encode(self, batch: dict[str, torch.Tensor]) -> Encoded:
        """Encoders -> gate -> time and modality -> sort by time -> fusion -> tag head."""
        mel, mel_valid = batch["mel"], batch["mel_valid"]
        frames, frame_valid = batch["frames"], batch["frame_valid"]
        b = mel.shape[0]
        n_audio = mel.shape[1] // self.cfg.mel_frames_per_token

        audio = self.audio_encoder(mel)
        audio_valid = mel_valid.reshape(b, n_audio, -1).any(-1)
        audio_t = AudioEncoder.token_times(batch["audio_end_s"], n_audio, self.cfg.audio_token_s)
        visual = self.visual_encoder(frames)

        context = context_features(mel, mel_valid, frames, frame_valid)
        r = self.gate(context)
        audio, visual = self.gate.mix(audio, "audio", r), self.gate.mix(visual, "visual", r)

        # One clock: absolute times (float64) minus the query time, then float32.
        t_abs = torch.cat([audio_t, batch["frame_times_s"].to(audio_t.dtype)], dim=1)
        t_rel = (t_abs - batch["t_query_s"].to(t_abs.dtype)[:, None]).float()
        modality = torch.cat(
            [torch.zeros_like(audio_valid, dtype=torch.long), torch.ones_like(frame_valid, dtype=torch.long)], dim=1
        )
        time_emb = self.time_embedding(t_rel)
        x = torch.cat([audio, visual], dim=1) + self.modality_embedding(modality) + time_emb
        valid = torch.cat([audio_valid, frame_valid], dim=1)

        # Order by time (stable: audio before a frame at the same instant), so
        # a causal decoder reads the window in the order it happened.
        order = torch.argsort(t_rel, dim=1, stable=True)
        x = x.gather(1, order[..., None].expand_as(x))
        time_emb = time_emb.gather(1, order[..., None].expand_as(time_emb))
        valid, t_rel, modality = valid.gather(1, order), t_rel.gather(1, order), modality.gather(1, order)

        # <av> is always valid, so no attention row is ever empty.
        x = torch.cat([self.start.expand(b, 1, -1), x], dim=1)
        prefix_mask = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=valid.device), valid], dim=1)
        attend = prefix_mask[:, None, None, :]
        for block in self.fusion:
            x = block(x, attend)
        x = self.fusion_ln(x)

        tokens, w = x[:, 1:], valid[..., None].to(x.dtype)
        mean = (tokens * w).sum(1) / w.sum(1).clamp_min(1.0)
        peak = tokens.masked_fill(~valid[..., None], -1e4).amax(1)
        peak = torch.where(valid.any(1, keepdim=True), peak, torch.zeros_like(peak))
        tag_logits = self.tag_head(torch.cat([mean, peak], dim=-1))
        return Encoded(self.to_decoder(x), prefix_mask, t_rel, modality, time_emb, tag_logits, r, context)

    # --- training and inference --------------------------------------------------

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Teacher-forced logits (B, La, vocab) for ``answer_out``, tag logits, gate."""
        enc = self.encode(batch)
        question = batch["question_ids"]
        ids = torch.cat([question, batch["answer_in"]], dim=1)
        logits = self.decoder(enc.prefix, enc.prefix_mask, ids)[:, question.shape[1] :]
        return {"logits": logits, "tag_logits": enc.tag_logits, "reliability": enc.reliability}

    @torch.no_grad()
    def generate(self, batch: dict[str, torch.Tensor], max_new_tokens: int | None = None) -> dict[str, torch.Tensor]:
        """Greedy answers: ``ids`` (B, n) ending in <eos> (then pad), plus
        ``tag_probs`` (B, n_tags) and ``reliability`` (B, 2)."""
        enc = self.encode(batch)
        question = batch["question_ids"]
        bos = torch.full((question.shape[0], 1), self.bos_id, dtype=question.dtype, device=question.device)
        ids = self.decoder.generate(
            enc.prefix,
            enc.prefix_mask,
            torch.cat([question, bos], dim=1),
            max_new_tokens or self.cfg.max_answer_tokens,
            self.eos_id,
        )
        return {"ids": ids, "tag_probs": torch.sigmoid(enc.tag_logits), "reliability": enc.reliability}

    def num_parameters(self) -> int:
        """Trainable parameters, tied embeddings counted once."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
