"""`AVTeacher`: the cloud audio-visual LM that answers questions about a window.

::

    log-mel (B, T, 64) --AudioEncoder--> one token per 0.5 s  --TokenContext--+--> sound head (18 per token)
    frames (B, F, H, W, 3) --VisualEncoder--> one token per frame --TokenContext-+--> frame head (23 per frame)
                                                                                 |
    context (signal-estimated SNR, blur, hand cover) --ReliabilityGate--> r_audio, r_visual
                                                                                 |
    token' = r * token + (1 - r) * null  +  modality  +  TimeEmbedding(t - t_query)
    sorted by time, after a learned <av> start token --> fusion (bidirectional) --> to_decoder
                                                                                 |
    + r * sum_l p(l | token) * wte[" l"]   (per-token perception as a mixture of the
                                            label words' embeddings, tied to the decoder)
                                                                                 |
    decoder (causal): [<av>, tokens..., question ids, <bos>, answer ids] -------> next-token logits

Per-token perception (`cloud/model/perception.py`) is supervised on the
world's exact labels, and read by the decoder through the label mixtures, so
"did you hear the knock before you walked to the door?" is answered by
finding the knock's tokens in the prefix, not from the question's priors.
The tag output (``TAG_NAMES``: audio events, then visual actions) is the
per-token probabilities max-pooled over the window: what distillation reads.

The encoders' outputs before `TokenContext` depend only on each token's own
samples or pixels, so training caches them per recording
(``cloud/data.py:FeatureCache``) and later steps skip the encoders: a batch
may carry ``audio_feat``/``frame_feat`` (and ``context``) instead of
``mel``/``frames``. Batches are dicts of tensors made by `cloud.data.collate`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cloud.model.config import ModelConfig
from cloud.model.context import context_features
from cloud.model.decoder import Block, Decoder, TransformerDecoder
from cloud.model.encoders import AudioEncoder, TimeEmbedding, TokenContext, VisualEncoder
from cloud.model.gate import MODALITIES, ReliabilityGate
from cloud.model.perception import FRAME_LABELS, N_ACTIONS, SOUND_LABELS
from shared.labels import names

__all__ = ["TAG_NAMES", "BATCH_KEYS", "Encoded", "AVTeacher"]

#: The tag output, in order: every audio event, then every visual action.
TAG_NAMES: tuple[str, ...] = (*names("audio_event"), *names("visual_action"))

#: What a batch holds (shapes for batch B):
#:   mel (B, T, n_mels) float, mel_valid (B, T) bool, audio_end_s (B,) float64;
#:   frames (B, F, S, S, 3) uint8, frame_valid (B, F) bool, frame_times_s (B, F) float64;
#:   t_query_s (B,) float64; question_ids (B, Lq) long (pad-filled);
#:   answer_in (B, La) long = <bos> + answer, answer_out (B, La) long = answer + <eos>
#:   (pad-filled); sound, sound_mask (B, Na, 18) and frame, frame_mask (B, F, 23) float.
#: From the feature cache instead of mel/frames: audio_feat (B, Na, d), audio_valid (B, Na),
#: frame_feat (B, F, d), context (B, 5).
BATCH_KEYS = (
    "mel", "mel_valid", "audio_end_s", "frames", "frame_valid", "frame_times_s",
    "t_query_s", "question_ids", "answer_in", "answer_out", "sound", "sound_mask", "frame", "frame_mask",
)
_EMPTY_LOGIT = -20.0  # pooled tag logit of a modality with no valid token


@dataclass
class Encoded:
    """The fused audio-visual prefix and what perception, the gate and the tags made of it.

    Attributes:
        prefix: (B, 1 + N, decoder width), <av> first, then the valid tokens by time
            (N: the most valid audio tokens + frames of any record in the batch;
            shorter records are padded at the end, masked).
        prefix_mask: (B, 1 + N) bool.
        times_rel_s: (B, N) seconds relative to the query, per token (sorted).
        modality: (B, N) long, index into ``MODALITIES``.
        time_embedding: (B, N, d_model), the time part added to each token.
        tag_logits: (B, len(TAG_NAMES)), per-token logits max-pooled.
        reliability: (B, 2) gate output for (audio, visual).
        context: (B, 5) raw context features (``context.CONTEXT_NAMES``).
        sound_logits: (B, Na, 18) per audio token, in time order; audio_valid (B, Na).
        frame_logits: (B, F, 23) per frame slot; frame_valid (B, F).
    """

    prefix: torch.Tensor
    prefix_mask: torch.Tensor
    times_rel_s: torch.Tensor
    modality: torch.Tensor
    time_embedding: torch.Tensor
    tag_logits: torch.Tensor
    reliability: torch.Tensor
    context: torch.Tensor
    sound_logits: torch.Tensor
    audio_valid: torch.Tensor
    frame_logits: torch.Tensor
    frame_valid: torch.Tensor


def _init_weights(module: nn.Module) -> None:
    # GPT-2 / nanoGPT initialisation for the transformer parts.
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)


def _masked_max(logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    filled = logits.masked_fill(~valid[..., None], _EMPTY_LOGIT)
    return filled.amax(1) if logits.shape[1] else logits.new_full((logits.shape[0], logits.shape[2]), _EMPTY_LOGIT)


def _valid_only(encoder: nn.Module, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``encoder`` over the valid slots of ``x`` (B, N, ...) only; the others get zeros.

    Both encoders treat each slot on its own (an audio token from its own 0.5 s,
    a frame alone), and everything downstream masks invalid slots (TokenContext
    zeroes them before reading neighbours), so this equals encoding every slot;
    a 5 s, 4-frame request no longer pays for 10 s and 20 frames. When every slot
    is valid (training windows) the encoder runs on the batch as it is.
    """
    b, n = valid.shape
    if bool(valid.all()):
        return encoder(x.reshape(b, n * x.shape[2], x.shape[3]) if x.dim() == 4 else x)
    idx = valid.reshape(-1).nonzero()[:, 0]
    w = encoder.proj.weight
    full = torch.zeros((b * n, w.shape[0]), dtype=w.dtype, device=w.device)
    if len(idx):
        flat = x.reshape(b * n, *x.shape[2:]).index_select(0, idx)  # (k, ...): one slot each
        out = encoder(flat if x.dim() == 4 else flat[:, None])  # audio (k, frames, mels); frames (k, 1, S, S, 3)
        full = full.index_copy(0, idx, out.reshape(len(idx), -1))
    return full.reshape(b, n, -1)


def time_emb_a(model: "AVTeacher", audio_t: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Time embeddings of the audio tokens in their own order (relative to the query)."""
    return model.time_embedding((audio_t - batch["t_query_s"].to(audio_t.dtype)[:, None]).float())


def time_emb_v(model: "AVTeacher", batch: dict[str, torch.Tensor]) -> torch.Tensor:
    t = batch["frame_times_s"].to(torch.float64) - batch["t_query_s"].to(torch.float64)[:, None]
    return model.time_embedding(t.float())


class AVTeacher(nn.Module):
    """The teacher. ``decoder`` may be any `Decoder`; by default the built-in one.

    ``label_word_ids``: for each perception label (``SOUND_LABELS`` then
    ``FRAME_LABELS``) the decoder token id of its word, or -1 (no mixture for
    it); saved as a buffer so a checkpoint keeps its own mapping.

    ``label_pieces``: instead, for a decoder whose tokenizer splits a label into
    several pieces (a pretrained LM: " timer_beep" -> " timer", "_", "be", "ep"),
    each label's piece ids; a label's embedding is then the mean of its pieces'
    and a question names it where its pieces occur in a row (`_question_labels`).
    A decoder passed in is pretrained: its weights are left as they are.
    """

    def __init__(
        self,
        cfg: ModelConfig,
        vocab_size: int,
        pad_id: int = 0,
        bos_id: int = 2,
        eos_id: int = 3,
        decoder: Decoder | None = None,
        label_word_ids: list[int] | None = None,
        label_pieces: list[list[int]] | None = None,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        d = cfg.d_model
        self.audio_encoder = AudioEncoder(cfg.n_mels, cfg.audio_channels, d, cfg.mel_frames_per_token)
        self.visual_encoder = VisualEncoder(cfg.visual_channels, d)
        self.audio_context = TokenContext(d, cfg.context_layers)
        self.visual_context = TokenContext(d, cfg.context_layers)
        self.sound_head = nn.Linear(d, len(SOUND_LABELS))
        self.frame_head = nn.Linear(d, len(FRAME_LABELS))
        self.time_embedding = TimeEmbedding(d, cfg.time_min_period_s, cfg.time_max_period_s)
        self.modality_embedding = nn.Embedding(len(MODALITIES), d)
        self.start = nn.Parameter(torch.zeros(d))
        self.fusion = nn.ModuleList(Block(d, cfg.n_heads, cfg.dropout) for _ in range(cfg.fusion_layers))
        self.fusion_ln = nn.LayerNorm(d)
        built_in = decoder is None
        if decoder is None:
            max_text = cfg.max_question_tokens + 1 + cfg.max_answer_tokens
            decoder = TransformerDecoder(vocab_size, d, cfg.decoder_layers, cfg.n_heads, max_text, cfg.dropout, pad_id)
        self.decoder = decoder
        # Identity for the built-in decoder; a projector for a wider LM.
        self.to_decoder = nn.Identity() if decoder.d_model == d else nn.Linear(d, decoder.d_model)
        if cfg.fusion_reads_question:
            self.from_decoder = nn.Identity() if decoder.d_model == d else nn.Linear(decoder.d_model, d)
            self.question_embedding = nn.Parameter(torch.zeros(d))
        if cfg.label_pointer:
            # what the tokens where a named label was perceived hold, and whether it was
            self.pointer_proj = nn.Linear(d + 4, d)
            self.relation_proj = nn.Linear(4, d)
        ids = label_word_ids if label_word_ids is not None else [-1] * (len(SOUND_LABELS) + len(FRAME_LABELS))
        if len(ids) != len(SOUND_LABELS) + len(FRAME_LABELS):
            raise ValueError(f"label_word_ids: {len(ids)} ids for {len(SOUND_LABELS) + len(FRAME_LABELS)} labels")
        self.register_buffer("label_word_ids", torch.tensor(ids, dtype=torch.long))
        if label_pieces is not None:
            if len(label_pieces) != len(ids) or not all(label_pieces):
                raise ValueError(f"label_pieces: need a non-empty piece list for each of {len(ids)} labels")
            width = max(len(x) for x in label_pieces)
            table = torch.full((len(label_pieces), width), -1, dtype=torch.long)
            for i, x in enumerate(label_pieces):
                table[i, : len(x)] = torch.tensor(x, dtype=torch.long)
            self.register_buffer("label_piece_ids", table)
        else:
            self.label_piece_ids = None
        # how much each modality's label mixture adds to its prefix tokens (learned; starts level with them)
        self.mix_scale = nn.Parameter(torch.full((len(MODALITIES),), 1.0))
        for part in (self.modality_embedding, self.fusion, self.decoder, self.sound_head, self.frame_head):
            if part is not self.decoder or built_in:
                part.apply(_init_weights)
        # Built last so the initialisation above cannot touch its physics prior.
        self.gate = ReliabilityGate(d, cfg.gate_hidden, context_aware=cfg.fusion == "gate")
        #: Encode only the valid audio tokens and frames, and cut masked slots from the
        #: prefix (`_valid_only`, `encode`): the same outputs, less work for partial
        #: windows. False runs every slot (the equivalence test's reference).
        self.compact = True

    # --- perception ---------------------------------------------------------------

    def token_features(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(audio (B, Na, d), audio_valid (B, Na), frames (B, F, d)): the cacheable part,
        from ``audio_feat``/``frame_feat`` when the batch carries them."""
        if "audio_feat" in batch:
            audio, audio_valid = batch["audio_feat"], batch["audio_valid"]
        else:
            mel = batch["mel"]
            b, n = mel.shape[0], mel.shape[1] // self.cfg.mel_frames_per_token
            audio_valid = batch["mel_valid"].reshape(b, n, -1).any(-1)
            if self.compact:
                audio = _valid_only(self.audio_encoder, mel.reshape(b, n, -1, mel.shape[-1]), audio_valid)
            else:
                audio = self.audio_encoder(mel)
        if "frame_feat" in batch:
            visual = batch["frame_feat"]
        elif self.compact:
            visual = _valid_only(self.visual_encoder, batch["frames"], batch["frame_valid"])
        else:
            visual = self.visual_encoder(batch["frames"])
        return audio, audio_valid, visual

    def perceive(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-token features and logits: ``audio`` (B, Na, d), ``audio_valid``,
        ``sound_logits`` (B, Na, 18), ``visual`` (B, F, d), ``frame_valid``,
        ``frame_logits`` (B, F, 23). Token k of the audio covers the 0.5 s that
        end ``(Na - k - 1) * 0.5`` s before ``audio_end_s``."""
        audio, audio_valid, visual = self.token_features(batch)
        frame_valid = batch["frame_valid"]
        audio = self.audio_context(audio, audio_valid)
        visual = self.visual_context(visual, frame_valid)
        return {"audio": audio, "audio_valid": audio_valid, "sound_logits": self.sound_head(audio),
                "visual": visual, "frame_valid": frame_valid, "frame_logits": self.frame_head(visual)}

    def _label_mixture(self, probs: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """(B, N, L) probabilities -> (B, N, decoder width): sum_l p_l * wte[id_l], each
        label's embedding rescaled to the norm of a LayerNorm output (sqrt(width)), so a
        heard label weighs as much in its prefix token as the token's own features
        (word embeddings start ~50x smaller). ``ids``: the labels' rows of
        ``label_word_ids``, or of ``label_piece_ids`` (L, P) for a multi-piece LM."""
        if ids.dim() == 2:
            return probs @ self._piece_label_embeddings(ids)
        known = ids >= 0
        emb = self.decoder.embed(ids.clamp_min(0))
        emb = emb * (math.sqrt(emb.shape[-1]) / emb.norm(dim=-1, keepdim=True).clamp_min(1e-6))
        return probs @ (emb * known[:, None].to(probs.dtype))

    def _piece_label_embeddings(self, pieces: torch.Tensor) -> torch.Tensor:
        """(L, P) piece ids (-1 = none) -> (L, decoder width): the mean of each label's pieces'
        embeddings, rescaled to the decoder's ``embed_norm`` (a pretrained LM's typical
        token norm, so a label reads like one of its words)."""
        valid = (pieces >= 0).to(self.start.dtype)[..., None]
        emb = (self.decoder.embed(pieces.clamp_min(0)) * valid).sum(1) / valid.sum(1).clamp_min(1.0)
        return emb * (self.decoder.embed_norm / emb.norm(dim=-1, keepdim=True).clamp_min(1e-6))

    def _question_labels(self, question_ids: torch.Tensor) -> torch.Tensor:
        """(B, Lq) -> (B, Lq) index of the perception label a question token names, -1 elsewhere.

        One-token labels: a lookup of ``label_word_ids``. Multi-piece labels: the last
        piece of each run of a label's pieces, longest labels first, so " walk" inside
        " walk_to_door" names only walk_to_door."""
        if self.label_piece_ids is None:
            lookup = torch.full((max(int(self.label_word_ids.max()) + 1, 1),), -1, dtype=torch.long,
                                device=question_ids.device)
            known = self.label_word_ids >= 0
            lookup[self.label_word_ids[known]] = torch.arange(len(self.label_word_ids), device=question_ids.device)[known]
            ids = question_ids.clamp(0, len(lookup) - 1)
            return torch.where(question_ids < len(lookup), lookup[ids], torch.full_like(ids, -1))
        b, n = question_ids.shape
        label = torch.full_like(question_ids, -1)
        covered = torch.zeros_like(question_ids, dtype=torch.bool)
        lengths = (self.label_piece_ids >= 0).sum(1).tolist()
        for j in sorted(range(len(lengths)), key=lambda j: -lengths[j]):
            k = lengths[j]
            if k > n:
                continue
            hit = (question_ids.unfold(1, k, 1) == self.label_piece_ids[j, :k]).all(-1)  # (B, n - k + 1)
            hit &= ~covered.unfold(1, k, 1).any(-1)
            label[:, k - 1 :][hit] = j
            for t in range(k):
                covered[:, t : t + n - k + 1] |= hit
        return label

    # --- the fused prefix ------------------------------------------------------

    def encode(self, batch: dict[str, torch.Tensor]) -> Encoded:
        """Perception -> gate -> time and modality -> sort by time -> fusion -> label mixtures."""
        p = self.perceive(batch)
        audio, audio_valid, visual, frame_valid = p["audio"], p["audio_valid"], p["visual"], p["frame_valid"]
        b, n_audio = audio.shape[:2]

        if "context" in batch:
            context = batch["context"]
        else:
            context = context_features(batch["mel"], batch["mel_valid"], batch["frames"], frame_valid)
        r = self.gate(context)
        audio_g, visual_g = self.gate.mix(audio, "audio", r), self.gate.mix(visual, "visual", r)

        # One clock: absolute times (float64) minus the query time, then float32.
        audio_t = AudioEncoder.token_times(batch["audio_end_s"], n_audio, self.cfg.audio_token_s)
        t_abs = torch.cat([audio_t, batch["frame_times_s"].to(audio_t.dtype)], dim=1)
        t_rel = (t_abs - batch["t_query_s"].to(t_abs.dtype)[:, None]).float()
        modality = torch.cat(
            [torch.zeros_like(audio_valid, dtype=torch.long), torch.ones_like(frame_valid, dtype=torch.long)], dim=1
        )
        time_emb = self.time_embedding(t_rel)
        x = torch.cat([audio_g, visual_g], dim=1) + self.modality_embedding(modality) + time_emb
        valid = torch.cat([audio_valid, frame_valid], dim=1)

        # Order by time (stable: audio before a frame at the same instant), so
        # a causal decoder reads the window in the order it happened. Masked slots
        # (audio the request did not fill, empty frame slots) go last and are cut
        # to the batch's longest valid run: no attention ever reads them and text
        # positions count only real ids, so the answer is the same, and a request
        # of 5 s and 4 frames no longer pays fusion and decoding for 10 s and 20.
        order = torch.argsort(t_rel.masked_fill(~valid, math.inf), dim=1, stable=True)
        if self.compact and valid.numel():
            order = order[:, : int(valid.sum(1).max())]
        x = x.gather(1, order[..., None].expand(-1, -1, x.shape[-1]))
        time_emb = time_emb.gather(1, order[..., None].expand(-1, -1, time_emb.shape[-1]))
        valid, t_rel, modality = valid.gather(1, order), t_rel.gather(1, order), modality.gather(1, order)

        # <av> is always valid, so no attention row is ever empty.
        x = torch.cat([self.start.expand(b, 1, -1), x], dim=1)
        prefix_mask = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=valid.device), valid], dim=1)
        n_prefix = x.shape[1]
        attend_mask = prefix_mask
        if self.cfg.fusion_reads_question and "question_ids" in batch:
            # The question joins the bidirectional fusion, so every token is read knowing
            # what is asked ("did you hear the knock?" lights the knock's tokens up).
            q_ids = batch["question_ids"]
            q = self.from_decoder(self.decoder.embed(q_ids)) + self.question_embedding
            x = torch.cat([x, q], dim=1)
            attend_mask = torch.cat([prefix_mask, q_ids != self.pad_id], dim=1)
        attend = attend_mask[:, None, None, :]
        for block in self.fusion:
            x = block(x, attend)
        prefix = self.to_decoder(self.fusion_ln(x[:, :n_prefix]))

        if self.cfg.label_mix:
            n_s = len(SOUND_LABELS)
            labels = self.label_word_ids if self.label_piece_ids is None else self.label_piece_ids
            mix_a = self._label_mixture(torch.sigmoid(p["sound_logits"]), labels[:n_s])
            mix_v = self._label_mixture(torch.sigmoid(p["frame_logits"]), labels[n_s:])
            w = r * self.mix_scale  # an untrusted modality's labels count for less, like its tokens
            mix = torch.cat([mix_a * w[:, 0, None, None], mix_v * w[:, 1, None, None]], dim=1)
            mix = mix.gather(1, order[..., None].expand(-1, -1, mix.shape[-1])) * valid[..., None].to(mix.dtype)
            prefix = torch.cat([prefix[:, :1], prefix[:, 1:] + mix], dim=1)

        if self.cfg.label_pointer and "question_ids" in batch:
            t_a = (audio_t - batch["t_query_s"].to(audio_t.dtype)[:, None]).float()
            t_v = (batch["frame_times_s"].to(torch.float64) - batch["t_query_s"].to(torch.float64)[:, None]).float()
            ptr, ptr_mask = self._label_pointers(batch["question_ids"], p, audio_g + time_emb_a(self, audio_t, batch),
                                                 visual_g + time_emb_v(self, batch), r, (t_a, t_v))
            prefix = torch.cat([prefix, ptr], dim=1)
            prefix_mask = torch.cat([prefix_mask, ptr_mask], dim=1)

        tag_logits = torch.cat([_masked_max(p["sound_logits"], audio_valid),
                                _masked_max(p["frame_logits"][..., :N_ACTIONS], frame_valid)], dim=-1)
        return Encoded(prefix, prefix_mask, t_rel, modality, time_emb, tag_logits, r, context,
                       p["sound_logits"], audio_valid, p["frame_logits"], frame_valid)

    def _label_pointers(self, question_ids: torch.Tensor, p: dict[str, torch.Tensor], audio: torch.Tensor,
                        visual: torch.Tensor, r: torch.Tensor, times: tuple[torch.Tensor, torch.Tensor]
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """Extra prefix tokens for the perception labels the question names.

        One token per question word that names a label (" knock"): the tokens of
        its modality pooled with softmax weights over that label's per-token
        logits (the features where the knock was heard), whether it was (the max
        probability) and when (its first and last active token, seconds before
        the question / 10), scaled by the gate's trust in that modality. Then one
        relation token for the first two labels named (their onset and end
        differences and both presences), so "did you hear X before Y?" is read
        off the prefix. Returns (B, Lq + 1, decoder width) tokens and their mask.
        """
        n_s = len(SOUND_LABELS)
        label = self._question_labels(question_ids)  # (B, Lq)
        feats_out, when = [], []
        for logits, feats, valid, t, lo, hi, m in (
                (p["sound_logits"], audio, p["audio_valid"], times[0], 0, n_s, 0),
                (p["frame_logits"], visual, p["frame_valid"], times[1], n_s, len(self.label_word_ids), 1)):
            idx = (label - lo).clamp(0, hi - lo - 1)
            lt = logits.gather(2, idx[:, None, :].expand(-1, logits.shape[1], -1)).transpose(1, 2)  # (B, Lq, N)
            lt = lt.masked_fill(~valid[:, None, :], -1e4)
            w = torch.softmax(lt, dim=-1)
            pooled = (w @ feats) * r[:, m, None, None]
            present = torch.sigmoid(lt.amax(-1, keepdim=True)) * r[:, m, None, None]
            # when: first and last active token (or the most likely one), seconds / 10 before the query
            tt = t[:, None, :].expand_as(lt).detach()
            active = lt > 0
            peak = tt.gather(2, lt.argmax(-1, keepdim=True))
            onset = torch.where(active.any(-1, keepdim=True), tt.masked_fill(~active, 1e4).amin(-1, keepdim=True), peak)
            end = torch.where(active.any(-1, keepdim=True), tt.masked_fill(~active, -1e4).amax(-1, keepdim=True), peak)
            mine = ((label >= lo) & (label < hi))[..., None]
            zero = torch.zeros((), dtype=pooled.dtype, device=pooled.device)
            feats_out.append(torch.where(mine, torch.cat([pooled, present, 1.0 - present, onset / 10, end / 10], -1), zero))
            when.append(torch.where(mine, torch.cat([onset / 10, end / 10, present], -1), zero))
        tokens = self.to_decoder(self.pointer_proj(feats_out[0] + feats_out[1]))
        if self.label_piece_ids is None:
            emb = self.decoder.embed(question_ids)
            emb = emb * (math.sqrt(emb.shape[-1]) / emb.norm(dim=-1, keepdim=True).clamp_min(1e-6))
        else:  # the named label's own embedding (its last piece alone would be "ep" of " timer_beep")
            emb = self._piece_label_embeddings(self.label_piece_ids)[label.clamp_min(0)]
        mask = label >= 0
        # the relation of the first two labels named
        when = when[0] + when[1]  # (B, Lq, 3)
        order = torch.where(mask, torch.arange(mask.shape[1], device=mask.device), mask.shape[1]).argsort(1)
        first, second = when.gather(1, order[:, :1, None].expand(-1, 1, 3)), when.gather(1, order[:, 1:2, None].expand(-1, 1, 3))
        two = (mask.sum(1, keepdim=True) >= 2)
        rel = torch.cat([first[..., :2] - second[..., :2], first[..., 2:], second[..., 2:]], -1)  # (B, 1, 4)
        rel_token = self.to_decoder(self.relation_proj(rel))
        return torch.cat([tokens + emb, rel_token], 1), torch.cat([mask, two], 1)

    # --- training and inference --------------------------------------------------

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Teacher-forced logits (B, La, vocab) for ``answer_out``, per-token perception
        logits, pooled tag logits, gate."""
        enc = self.encode(batch)
        question = batch["question_ids"]
        ids = torch.cat([question, batch["answer_in"]], dim=1)
        logits = self.decoder(enc.prefix, enc.prefix_mask, ids)[:, question.shape[1] :]
        return {"logits": logits, "tag_logits": enc.tag_logits, "reliability": enc.reliability,
                "sound_logits": enc.sound_logits, "frame_logits": enc.frame_logits}

    @torch.no_grad()
    def generate(self, batch: dict[str, torch.Tensor], max_new_tokens: int | None = None) -> dict[str, torch.Tensor]:
        """Greedy answers: ``ids`` (B, n) ending in <eos> (then pad), plus
        ``tag_probs`` (B, n_tags), ``reliability`` (B, 2) and the per-token perception
        (``sound_probs`` (B, Na, 18), ``audio_valid``, ``frame_probs`` (B, F, 23),
        ``frame_valid``) that the server's evidence is built from (cloud/lm/evidence.py)."""
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
        return {"ids": ids, "tag_probs": torch.sigmoid(enc.tag_logits), "reliability": enc.reliability,
                "sound_probs": torch.sigmoid(enc.sound_logits), "audio_valid": enc.audio_valid,
                "frame_probs": torch.sigmoid(enc.frame_logits), "frame_valid": enc.frame_valid}

    @torch.no_grad()
    def option_logprobs(self, batch: dict[str, torch.Tensor], options: list[list[list[int]]],
                        enc: Encoded | None = None) -> list[list[float]]:
        """log p(option + <eos> | window, question) for every option of every record.

        ``options[b]`` lists record b's candidate answers as token ids (without
        <bos>/<eos>). Closed-form answers are scored this way: the model picks
        among the answers the question allows instead of free-running.
        """
        enc = enc if enc is not None else self.encode(batch)
        question = batch["question_ids"]
        if hasattr(self.decoder, "option_logprobs"):
            # a large LM reads the shared prefix and question once, then only each option
            bos = torch.full((question.shape[0], 1), self.bos_id, dtype=question.dtype, device=question.device)
            return self.decoder.option_logprobs(enc.prefix, enc.prefix_mask, torch.cat([question, bos], dim=1),
                                                [[[*o, self.eos_id] for o in opts] for opts in options])
        rows, seqs = [], []
        for b, opts in enumerate(options):
            q = question[b][question[b] != self.pad_id].tolist()
            for o in opts:
                rows.append(b)
                seqs.append((len(q), [*q, self.bos_id, *o, self.eos_id]))
        if not rows:
            return [[] for _ in options]
        width = max(len(s) for _, s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long, device=question.device)
        for i, (_, s) in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        idx = torch.tensor(rows, device=question.device)
        logits = self.decoder(enc.prefix.index_select(0, idx), enc.prefix_mask.index_select(0, idx), ids[:, :-1])
        logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, ids[:, 1:, None])[..., 0]
        out: list[list[float]] = [[] for _ in options]
        for i, ((nq, s), b) in enumerate(zip(seqs, rows)):
            # positions predicting the option's tokens and <eos>: after <bos> (index nq)
            out[b].append(float(logp[i, nq : len(s) - 1].sum()))
        return out

    def num_parameters(self) -> int:
        """Parameters (frozen ones too), tied embeddings counted once."""
        return sum(p.numel() for p in self.parameters())
