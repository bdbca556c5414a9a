"""A pretrained causal LM as the teacher's decoder: the EgoAVU recipe in miniature.

``model.decoder=lm`` puts a local LM (``model.lm``: the embedded SmolLM2-135M by
default, any GGUF file or Hugging Face folder; ``cloud/lm/load.py``) behind the
`cloud.model.decoder.Decoder` interface::

    fused audio-visual tokens (B, P, d_model) --to_decoder: Linear(d_model -> 576)--+
    label mixtures / pointers: mean embedding of each label's word pieces ----------+--> [prefix | question | <bos> answer]
                                                                                          |
                                  SmolLM2 (frozen) + LoRA (r=8) on q_proj, v_proj --------+--> next-token logits

The LM stays frozen; the teacher's own parts, the projection and the LoRA
adapters train. Questions and answers are written with the LM's tokenizer
(`LMTokenizer`); closed-form answers are scored by option likelihood with the
prefix and question read once (`LMDecoder.option_logprobs`).

A checkpoint (``cloud/model/io.py``) holds only what trained; the base LM is
loaded from its file, whose sha256 the card records and `check_lm_hash` checks.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cloud.model.perception import FRAME_LABELS, SOUND_LABELS
from shared.config import UserError

__all__ = ["LORA_TARGETS", "LMTokenizer", "LMDecoder", "lm_sha256", "check_lm_hash", "make_lm_teacher",
           "is_base_weight"]

LORA_TARGETS = ("q_proj", "v_proj")
_TEXT_SPECIALS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>")  # bos, eos, pad when the LM has them


def lm_sha256(path: str | Path) -> str:
    """sha256 of an LM: a GGUF file's bytes, or of a folder's config and weight files
    (name and bytes, sorted), so a checkpoint knows which base it was trained on."""
    path = Path(path)
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(
        p for p in path.iterdir() if p.name == "config.json" or p.suffix in (".safetensors", ".bin", ".gguf"))
    for f in files:
        if path.is_dir():
            digest.update(f.name.encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def check_lm_hash(path: str | Path, expected: str, where: str) -> None:
    """Raises UserError unless ``path`` hashes to ``expected`` (the checkpoint's base LM)."""
    got = lm_sha256(path)
    if got != expected:
        raise UserError(f"model.lm: {path} has sha256 {got[:16]}..., but {where} was trained on an LM with sha256 "
                        f"{expected[:16]}... (give that LM as model.lm)")


class LMTokenizer:
    """The LM's tokenizer behind the word tokenizer's interface (``cloud/model/tokenizer.py``).

    Text is written as it sits inside a sentence: a leading space on questions and
    answers, so a label has the same pieces wherever it is named. ``<bos>`` /
    ``<eos>`` / pad are the LM's ``<|im_start|>`` / ``<|im_end|>`` /
    ``<|endoftext|>`` (or its own bos / eos / pad); pad must differ from eos, as
    the answer loss ignores pad.

    Raises:
        UserError: the LM's tokenizer has no end token, or no pad distinct from it.
    """

    def __init__(self, hf_tokenizer: Any, name: str = "lm") -> None:
        self.hf, self.name = hf_tokenizer, name
        vocab = hf_tokenizer.get_vocab()
        im_start, im_end, text_end = (vocab.get(t) for t in _TEXT_SPECIALS)
        self.eos_id = im_end if im_end is not None else hf_tokenizer.eos_token_id
        self.bos_id = im_start if im_start is not None else (hf_tokenizer.bos_token_id or self.eos_id)
        pad = text_end if text_end is not None else hf_tokenizer.pad_token_id
        if self.eos_id is None or pad is None or pad == self.eos_id:
            raise UserError(f"model.lm: {name}'s tokenizer needs an end token and a distinct pad token "
                            f"(<|im_end|> and <|endoftext|>), got eos {self.eos_id}, pad {pad}")
        self.pad_id = self.unk_id = pad
        self.ids: dict[str, int] = {}  # no one-token label words (see label_pieces)

    def __len__(self) -> int:
        return len(self.hf)

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(" " + " ".join(text.split()), add_special_tokens=False)

    encode_answer = encode

    def decode(self, ids) -> str:
        """Text up to the first ``<eos>``; pad and bos skipped."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i not in (self.pad_id, self.bos_id):
                out.append(i)
        return self.hf.decode(out).strip()

    def label_pieces(self) -> list[list[int]]:
        """Piece ids of every perception label (``SOUND_LABELS`` then ``FRAME_LABELS``)."""
        return [self.encode(label) for label in (*SOUND_LABELS, *FRAME_LABELS)]

    def to_json(self) -> str:
        return json.dumps({"kind": "lm", "version": 1, "lm": self.name, "vocab_size": len(self),
                           "special_ids": {"pad": self.pad_id, "bos": self.bos_id, "eos": self.eos_id}})

    def save(self, path: str | Path) -> None:
        """A record of which tokenizer (the LM's own, loaded with it), not the vocabulary."""
        Path(path).write_text(self.to_json() + "\n", encoding="utf-8")


class LMDecoder(nn.Module):
    """A Hugging Face causal LM, frozen, with LoRA adapters, as a `Decoder`.

    Positions count only valid tokens (prefix and text), so padding anywhere
    (masked prefix slots, a padded question before ``<bos>``) shifts nothing.
    """

    def __init__(self, lm: nn.Module, pad_id: int, lora_rank: int = 8) -> None:
        super().__init__()
        from peft import LoraConfig, get_peft_model

        cfg = LoraConfig(r=lora_rank, lora_alpha=2 * lora_rank, lora_dropout=0.0, target_modules=list(LORA_TARGETS))
        self.lm = get_peft_model(lm, cfg)  # freezes the base weights
        self.pad_id = pad_id
        self.d_model = int(lm.config.hidden_size)
        self.vocab_size = int(lm.config.vocab_size)
        with torch.no_grad():
            self.embed_norm = float(self.lm.get_input_embeddings().weight.norm(dim=-1).mean())

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lm.get_input_embeddings()(ids)

    def _run(self, prefix, prefix_mask, ids, keep: int, cache: bool = False):
        valid = torch.cat([prefix_mask, ids != self.pad_id], dim=1)
        x = torch.cat([prefix.to(self.lm.dtype), self.embed(ids)], dim=1)
        pos = (valid.long().cumsum(1) - 1).clamp_min(0)
        out = self.lm(inputs_embeds=x, attention_mask=valid.long(), position_ids=pos, use_cache=cache,
                      logits_to_keep=keep)
        return out, valid

    def forward(self, prefix: torch.Tensor, prefix_mask: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        # the LM head only over the text positions: it costs as much per position as the body
        return self._run(prefix, prefix_mask, ids, keep=ids.shape[1])[0].logits

    def _step(self, new_ids: torch.Tensor, valid: torch.Tensor, cache: Any):
        """Read ``new_ids`` (B, n) after the cached positions; ``valid`` covers cache + new."""
        n = new_ids.shape[1]
        pos = (valid.long().cumsum(1) - 1).clamp_min(0)[:, -n:]
        out = self.lm(inputs_embeds=self.embed(new_ids), attention_mask=valid.long(), position_ids=pos,
                      cache=cache, use_cache=True)
        return out.logits, out.cache

    @staticmethod
    def _last_valid(valid: torch.Tensor) -> torch.Tensor:
        return (torch.arange(valid.shape[1], device=valid.device) * valid).argmax(1)

    @torch.no_grad()
    def generate(self, prefix: torch.Tensor, prefix_mask: torch.Tensor, ids: torch.Tensor, max_new_tokens: int,
                 eos_id: int) -> torch.Tensor:
        out, valid = self._run(prefix, prefix_mask, ids, keep=0, cache=True)
        rows = torch.arange(ids.shape[0], device=ids.device)
        logits, cache = out.logits[rows, self._last_valid(valid)], out.cache
        done = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
        new = []
        for step in range(max_new_tokens):
            nxt = torch.where(done, torch.full_like(done, self.pad_id, dtype=torch.long), logits.argmax(-1))
            new.append(nxt)
            done |= nxt == eos_id
            if bool(done.all()) or step == max_new_tokens - 1:
                break
            valid = torch.cat([valid, (nxt != self.pad_id)[:, None]], dim=1)
            step_logits, cache = self._step(nxt[:, None], valid, cache)
            logits = step_logits[:, -1]
        return torch.stack(new, dim=1) if new else ids[:, :0]

    @torch.no_grad()
    def option_logprobs(self, prefix: torch.Tensor, prefix_mask: torch.Tensor, ids: torch.Tensor,
                        options: list[list[list[int]]]) -> list[list[float]]:
        """log p(option | prefix, ids) for each option (token ids, ending in <eos>) of each row.

        ``ids`` (B, L): the context (question, pad, <bos>). It is read once with a key/value
        cache, which is then repeated once per option: the same sums as the teacher's
        generic path (tested) at the cost of the options' few tokens each."""
        rows = [b for b, opts in enumerate(options) for _ in opts]
        if not rows:
            return [[] for _ in options]
        out, valid = self._run(prefix, prefix_mask, ids, keep=0, cache=True)
        first = torch.log_softmax(out.logits[torch.arange(ids.shape[0]), self._last_valid(valid)].float(), -1)
        idx = torch.tensor(rows, device=ids.device)
        cache = out.cache
        cache.reorder_cache(idx)
        seqs = [o for opts in options for o in opts]
        width = max(len(s) for s in seqs)
        opt = torch.full((len(seqs), width), self.pad_id, dtype=torch.long, device=ids.device)
        for i, s in enumerate(seqs):
            opt[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        logits, _ = self._step(opt[:, :-1], torch.cat([valid[idx], opt[:, :-1] != self.pad_id], 1), cache) \
            if width > 1 else (None, None)
        result: list[list[float]] = [[] for _ in options]
        for i, (s, b) in enumerate(zip(seqs, rows)):
            lp = float(first[b, s[0]])
            if len(s) > 1:
                lp += float(torch.log_softmax(logits[i, : len(s) - 1].float(), -1)
                            .gather(-1, opt[i, 1 : len(s), None]).sum())
            result[b].append(lp)
        return result


def is_base_weight(name: str) -> bool:
    """A state-dict key of the frozen base LM (not saved: loaded from ``model.lm``)."""
    return name.startswith("decoder.lm.") and "lora_" not in name


def make_lm_teacher(cfg, threads: int = 0):
    """(AVTeacher with an `LMDecoder`, `LMTokenizer`, `cloud.lm.load.LoadedLM`) for ``cfg``
    (a ``ModelConfig`` with ``decoder == "lm"``). Seed torch first: LoRA starts at random.

    Raises:
        UserError: the LM cannot be loaded, or its tokenizer lacks the tokens needed.
    """
    from cloud.lm.load import load_lm
    from cloud.model.teacher import AVTeacher

    lm = load_lm(cfg.lm, threads=threads)
    tokenizer = LMTokenizer(lm.tokenizer, lm.name)
    decoder = LMDecoder(lm.model, tokenizer.pad_id, cfg.lora_rank)
    model = AVTeacher(cfg, decoder.vocab_size, tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id,
                      decoder=decoder, label_pieces=tokenizer.label_pieces())
    # Projected tokens start at the norm of the LM's own embeddings (a LayerNorm output in,
    # ~1 per dimension): PyTorch's default made them ~4x larger, and the untrained prefix
    # then drowned the question (first-step answer loss 14 nats, above uniform's 10.8).
    if not isinstance(model.to_decoder, nn.Linear):  # an LM as wide as the teacher: nothing projected
        return model, tokenizer, lm
    with torch.no_grad():
        d_in, d_out = cfg.d_model, decoder.d_model
        model.to_decoder.weight.normal_(0.0, decoder.embed_norm / (d_in * d_out) ** 0.5)
        model.to_decoder.bias.zero_()
    return model, tokenizer, lm
