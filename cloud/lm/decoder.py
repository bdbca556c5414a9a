"""A pretrained causal LM behind the teacher's `Decoder` interface, and its tokenizer.

The EgoAVU recipe in miniature: the teacher's fused audio-visual tokens are
projected into the LM's embedding space (``AVTeacher.to_decoder``, a linear
layer when the widths differ) and read as a prefix; the LM is frozen and
adapted with LoRA (``peft``); everything before it trains as with the
built-in decoder.

Labels as tokens. The teacher mixes each perception label's word embedding
into the prefix and adds a "label pointer" token per question word that
names a label; both assume a label is one token. A pretrained tokenizer
splits ``timer_beep`` into pieces, so `LMTokenizer` adds every label (with
its leading space, `` timer_beep``, as the word tokenizer writes it) as one
new token, whose embedding starts as the mean of its pieces' embeddings
(`add_label_tokens`): the LM reads the new token roughly as it read the
pieces, and the teacher code stays exactly as it is for the built-in decoder.

Sequence layout, the chat template of an instruct model spelled in the
teacher's own order ``[question ids, <bos>, answer ids, <eos>]``::

    <|im_start|>user\\n{question}<|im_end|>\\n<|im_start|>assistant   \\n   {answer}   <|im_end|>
    ^------------------ question ids -------------------------------^ bos  answer    eos

with a pad token that is none of these (``<|endoftext|>`` for SmolLM2), so the
answer's end token is learned and never mistaken for padding.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch
from torch import nn

from cloud.model.perception import FRAME_LABELS, SOUND_LABELS
from cloud.model.tokenizer import split_words

__all__ = ["LMTokenizer", "PretrainedDecoder", "add_label_tokens"]


class LMTokenizer:
    """The word tokenizer's interface (`cloud.model.tokenizer.Tokenizer`) over a pretrained one.

    ``encode(question)`` gives the chat-formatted user turn up to ``assistant``;
    ``encode_answer(answer)`` the answer's tokens (labels as single tokens);
    ``decode(ids)`` the text up to the end token. ``ids`` maps each label word
    (`` timer_beep``) to its token id, as the teacher's ``label_word_ids`` reads it.
    """

    def __init__(self, hf_tokenizer, labels: Sequence[str] = (*SOUND_LABELS, *FRAME_LABELS)) -> None:
        self.hf = hf_tokenizer
        vocab = hf_tokenizer.get_vocab()
        self.eos_id = self._special(("<|im_end|>", hf_tokenizer.eos_token))
        self.pad_id = self._special(("<|endoftext|>", "<pad>", hf_tokenizer.pad_token), avoid=self.eos_id)
        start = self._special(("<|im_start|>", hf_tokenizer.bos_token))
        newline = hf_tokenizer.encode("\n", add_special_tokens=False)
        if len(newline) != 1:
            raise ValueError("LMTokenizer: the tokenizer does not write a newline as one token")
        self.bos_id = newline[0]
        self.unk_id = hf_tokenizer.unk_token_id if hf_tokenizer.unk_token_id is not None else self.pad_id
        self._start = start
        self.label_words = [" " + l for l in labels]
        self.ids = {w: vocab[w] for w in self.label_words if w in vocab}

    def _special(self, names: Iterable[str | None], avoid: int | None = None) -> int:
        vocab = self.hf.get_vocab()
        for name in names:
            if name and name in vocab and vocab[name] != avoid:
                return vocab[name]
        raise ValueError(f"LMTokenizer: the tokenizer has none of {[n for n in names if n]}")

    def __len__(self) -> int:
        return len(self.hf)

    def _words(self, text: str, lead_space: bool) -> list[int]:
        # The word tokenizer's normal form (lower case, single spaces), so labels
        # match the added tokens exactly.
        return self.hf.encode("".join(split_words(text, lead_space=lead_space)).lstrip(" ") if not lead_space
                              else "".join(split_words(text, lead_space=True)), add_special_tokens=False)

    def encode(self, text: str) -> list[int]:
        head = self.hf.encode("user\n", add_special_tokens=False)
        tail = self.hf.encode("\n", add_special_tokens=False) + [self._start] + \
            self.hf.encode("assistant", add_special_tokens=False)
        return [self._start, *head, *self._words(text, lead_space=False), self.eos_id, *tail]

    def encode_answer(self, text: str) -> list[int]:
        return self._words(text, lead_space=True)

    def decode(self, ids: Iterable[int]) -> str:
        out = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i not in (self.pad_id, self.bos_id):
                out.append(i)
        return self.hf.decode(out, skip_special_tokens=True).strip()


def add_label_tokens(lm_model, hf_tokenizer, labels: Sequence[str] = (*SOUND_LABELS, *FRAME_LABELS)) -> list[int]:
    """Add `` <label>`` tokens to the tokenizer and the LM; each new embedding row is the
    mean of the label's old pieces. Returns the new token ids (in ``labels`` order).

    Raises:
        ValueError: a label already is a token (nothing to add) and its id is kept.
    """
    from tokenizers import AddedToken

    words = [" " + l for l in labels]
    pieces = [hf_tokenizer.encode(w, add_special_tokens=False) for w in words]
    hf_tokenizer.add_tokens([AddedToken(w, normalized=False, special=False) for w in words])
    ids = [hf_tokenizer.convert_tokens_to_ids(w) for w in words]
    lm_model.resize_token_embeddings(len(hf_tokenizer), mean_resizing=False)
    emb = lm_model.get_input_embeddings().weight
    with torch.no_grad():
        for i, p in zip(ids, pieces):
            emb[i] = emb[torch.tensor(p)].mean(0)
    return ids


class PretrainedDecoder(nn.Module):
    """`cloud.model.decoder.Decoder` over a Hugging Face causal LM (``inputs_embeds``).

    Positions count real tokens only (prefix and text), as the built-in decoder
    does, so padding inside the time-sorted prefix or after the question moves
    nothing. ``generate`` is greedy with no KV cache, like the built-in one
    (closed-form answers are a few tokens)."""

    def __init__(self, lm_model, pad_id: int) -> None:
        super().__init__()
        self.lm = lm_model
        self.pad_id = pad_id
        self.d_model = int(lm_model.config.hidden_size)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lm.get_input_embeddings()(ids)

    def forward(self, prefix: torch.Tensor, prefix_mask: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        text_valid = ids != self.pad_id
        x = torch.cat([prefix.to(self.embed(ids[:, :1]).dtype), self.embed(ids)], dim=1)
        mask = torch.cat([prefix_mask, text_valid], dim=1).long()
        pos = (mask.cumsum(1) - 1).clamp_min(0)
        logits = self.lm(inputs_embeds=x, attention_mask=mask, position_ids=pos, use_cache=False).logits
        return logits[:, prefix.shape[1]:]

    @torch.no_grad()
    def generate(self, prefix: torch.Tensor, prefix_mask: torch.Tensor, ids: torch.Tensor, max_new_tokens: int,
                 eos_id: int) -> torch.Tensor:
        # Padding is masked and positions count real tokens, so appending after a
        # row's padding is the same as appending after its last real id.
        done = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
        new = []
        for _ in range(max_new_tokens):
            nxt = self(prefix, prefix_mask, ids)[:, -1].argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, self.pad_id), nxt)
            new.append(nxt)
            ids = torch.cat([ids, nxt[:, None]], dim=1)
            done |= nxt == eos_id
            if bool(done.all()):
                break
        return torch.stack(new, dim=1) if new else ids[:, :0]
