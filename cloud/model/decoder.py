"""The answer decoder: a small interface and a small causal transformer.

`Decoder` is all the teacher asks of a language model: read a prefix of
input embeddings (the fused audio-visual tokens) followed by text ids (the
question, ``<bos>``, the answer so far) and give next-token logits for the
text positions. A larger pretrained LM fits behind the same two methods
(embed its own ids, concatenate after the prefix, pass ``inputs_embeds`` and
an attention mask); the teacher then projects its tokens to that model's
width (`AVTeacher.to_decoder`) and uses that model's tokenizer.

`TransformerDecoder` is the built-in implementation, GPT-2 style (pre-LN
blocks, tied input/output embeddings), nanoGPT-sized.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Decoder", "SelfAttention", "Block", "TransformerDecoder", "causal_mask"]


@runtime_checkable
class Decoder(Protocol):
    """What the teacher needs from a language model.

    Shapes: prefix (B, P, d_model) float, prefix_mask (B, P) bool (True =
    real token; ``prefix_mask[:, 0]`` must be True), ids (B, L) long with
    the pad id where there is no token.
    """

    d_model: int

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Input embeddings of token ids (..., d_model): the teacher mixes label words with them."""
        ...

    def __call__(self, prefix: torch.Tensor, prefix_mask: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Logits (B, L, vocab) for the positions of ``ids``: row i predicts ids[i + 1]."""
        ...

    def generate(
        self, prefix: torch.Tensor, prefix_mask: torch.Tensor, ids: torch.Tensor, max_new_tokens: int, eos_id: int
    ) -> torch.Tensor:
        """Greedy continuation of ``ids``: (B, n) new ids, n <= max_new_tokens,
        pad after a row's ``eos_id``; stops as soon as every row has ended."""
        ...


def causal_mask(valid: torch.Tensor) -> torch.Tensor:
    """(B, L) key validity -> (B, 1, L, L) bool: query i sees valid keys j <= i."""
    n = valid.shape[1]
    tri = torch.ones(n, n, dtype=torch.bool, device=valid.device).tril()
    return tri[None, None] & valid[:, None, None, :]


class SelfAttention(nn.Module):
    """Multi-head self-attention under a boolean mask (B, 1, L, L), True = attend."""

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.forward_kv(x, mask)[0]

    def forward_kv(self, x: torch.Tensor, mask: torch.Tensor,
                   cache: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, tuple]:
        """Attention of ``x`` (B, n, d) over ``cache`` keys/values (B, H, m, d/H) followed by
        its own; ``mask`` (B, 1, n, m + n). Returns the output and the extended (keys, values)."""
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        if cache is not None:
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
        # No dropout on the attention weights: on a CPU drawing the (B, H, L, L) mask
        # costs as much as the attention itself; the residual dropout regularises.
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.resid_dropout(self.proj(y.transpose(1, 2).reshape(b, n, d))), (k, v)


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, n_heads, dropout)
        self.ln_2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.forward_kv(x, mask)[0]

    def forward_kv(self, x: torch.Tensor, mask: torch.Tensor, cache: tuple | None = None) -> tuple[torch.Tensor, tuple]:
        """``forward`` for new positions after cached ones (`SelfAttention.forward_kv`)."""
        a, kv = self.attn.forward_kv(self.ln_1(x), mask, cache)
        x = x + a
        return x + self.mlp(self.ln_2(x)), kv


class TransformerDecoder(nn.Module):
    """Causal transformer over [prefix embeddings | text ids].

    Text positions count only real (non-pad) ids, so the answer sits at the
    same positions however much padding a batch adds after the question;
    batched and one-by-one decoding agree.
    """

    def __init__(
        self, vocab_size: int, d_model: int, n_layers: int, n_heads: int, max_text_tokens: int, dropout: float, pad_id: int
    ) -> None:
        super().__init__()
        self.d_model, self.pad_id, self.max_text_tokens = d_model, pad_id, max_text_tokens
        self.wte = nn.Embedding(vocab_size, d_model)
        self.wpe = nn.Embedding(max_text_tokens, d_model)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, dropout) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying (GPT-2, nanoGPT)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.wte(ids)

    def forward(self, prefix: torch.Tensor, prefix_mask: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        text_valid = ids != self.pad_id
        pos = (text_valid.long().cumsum(1) - 1).clamp(0, self.max_text_tokens - 1)
        x = torch.cat([prefix, self.wte(ids) + self.wpe(pos)], dim=1)
        mask = causal_mask(torch.cat([prefix_mask, text_valid], dim=1))
        x = self.drop(x)
        for block in self.blocks:
            x = block(x, mask)
        return self.lm_head(self.ln_f(x[:, prefix.shape[1] :]))

    @torch.no_grad()
    def generate(
        self, prefix: torch.Tensor, prefix_mask: torch.Tensor, ids: torch.Tensor, max_new_tokens: int, eos_id: int
    ) -> torch.Tensor:
        # A key/value cache: one pass over [prefix | ids] keeps every layer's keys and
        # values, then each new token runs through the blocks alone. Re-running the
        # whole sequence per token (~100 positions for one new one) made decoding
        # most of the server's batch time, growing with the batch; this is the same
        # arithmetic (tests/cloud/test_decoder_cache.py) at a fraction of the cost.
        text_valid = ids != self.pad_id
        pos = (text_valid.long().cumsum(1) - 1).clamp(0, self.max_text_tokens - 1)
        x = self.drop(torch.cat([prefix, self.wte(ids) + self.wpe(pos)], dim=1))
        valid = torch.cat([prefix_mask, text_valid], dim=1)
        mask = causal_mask(valid)
        cache = []
        for block in self.blocks:
            x, kv = block.forward_kv(x, mask)
            cache.append(kv)
        logits = self.lm_head(self.ln_f(x[:, -1]))
        n_text = text_valid.long().sum(1)  # real text tokens so far: the next one's position
        done = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
        new = []
        for step in range(max_new_tokens):
            nxt = logits.argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, self.pad_id), nxt)
            new.append(nxt)
            done |= nxt == eos_id
            if bool(done.all()) or step == max_new_tokens - 1:
                break
            real = nxt != self.pad_id
            h = self.drop(self.wte(nxt) + self.wpe(n_text.clamp(max=self.max_text_tokens - 1)))[:, None]
            n_text = n_text + real.long()
            valid = torch.cat([valid, real[:, None]], dim=1)
            key_mask = valid[:, None, None, :]  # the new token is last: it sees every valid key
            for i, block in enumerate(self.blocks):
                h, cache[i] = block.forward_kv(h, key_mask, cache[i])
            logits = self.lm_head(self.ln_f(h[:, -1]))
        return torch.stack(new, dim=1) if new else ids[:, :0]
