"""`Answerer`: a pretrained causal LM answers the wearer's question from the evidence, in one sentence.

::

    system: you are the glasses' assistant; answer in one short sentence from the evidence only
    user:   Notes: heard timer beep 4 seconds ago; saw you open oven just now;
            the sound was clear, the view was clear.
            Question: what was that sound?
    assistant: -> "That was timer beep, 4 seconds ago."

Prompted as it is, a 135M model echoes the notes or invents sounds; the
embedded default is therefore instruction-tuned with LoRA on faithful
sentences (``cloud/lm/tune.py``, ``cloud/lm/answer_data.py``), and
`cloud.lm.tune.load_answerer` merges that adapter in at load.

Greedy decoding (deterministic: the same window and question give the same
sentence), cut at the end of the first sentence. The model is loaded once
(`cloud.lm.load.load_lm`) and reused for every answer; batches are
left-padded so rows of different prompt lengths decode together.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Sequence

import torch

from cloud.lm.evidence import Evidence, evidence_text
from cloud.lm.load import LoadedLM

__all__ = ["SYSTEM_PROMPT", "MAX_NEW_TOKENS", "Answerer", "first_sentence"]

SYSTEM_PROMPT = "You are the voice of the wearer's smart glasses. Answer in one short sentence, from the notes only."
#: A sentence is ~10-25 tokens; the cap bounds the worst-case latency.
MAX_NEW_TOKENS = 32
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")


def first_sentence(text: str) -> str:
    """The first sentence of ``text`` (whitespace collapsed); all of it if it never ends one."""
    text = " ".join(text.split())
    m = _SENTENCE_END.search(text)
    return text[: m.start()] if m else text


@dataclass
class AnswerTiming:
    prompt_tokens: int
    new_tokens: int
    seconds: float


class Answerer:
    """Answers free-form questions from `Evidence` with a loaded LM (see the module docstring)."""

    def __init__(self, lm: LoadedLM, max_new_tokens: int = MAX_NEW_TOKENS, system_prompt: str = SYSTEM_PROMPT) -> None:
        self.lm, self.max_new_tokens, self.system_prompt = lm, max_new_tokens, system_prompt
        tok = lm.tokenizer
        self.eos_ids = sorted({i for i in (tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>"))
                               if isinstance(i, int) and i >= 0 and i != tok.unk_token_id})
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else self.eos_ids[0]
        self.last_timing: AnswerTiming | None = None

    @property
    def model_id(self) -> str:
        return self.lm.name

    def prompt_ids(self, question: str, evidence: Evidence | str) -> list[int]:
        """Token ids of the chat prompt, ending where the assistant's reply starts."""
        text = evidence if isinstance(evidence, str) else evidence_text(evidence)
        messages = [{"role": "system", "content": self.system_prompt}]
        messages.append({"role": "user", "content": f"Notes: {text}\nQuestion: {question.strip()}"})
        tok = self.lm.tokenizer
        if getattr(tok, "chat_template", None):
            return list(tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                return_dict=False))
        # a base model without a chat template: a plain transcript
        turns = "".join(f"{m['content']}\n" if m["role"] != "assistant" else f"Answer: {m['content']}\n\n"
                        for m in messages)
        return tok.encode(f"{turns}Answer:")

    @torch.no_grad()
    def answer_batch(self, questions: Sequence[str], evidences: Sequence[Evidence | str]) -> list[str]:
        """One sentence per (question, evidence); greedy, left-padded batch."""
        if len(questions) != len(evidences):
            raise ValueError(f"questions: {len(questions)} for {len(evidences)} evidences")
        if not questions:
            return []
        t0 = time.perf_counter()
        prompts = [self.prompt_ids(q, e) for q, e in zip(questions, evidences)]
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, width - len(p):] = torch.tensor(p, dtype=torch.long)
            mask[i, width - len(p):] = 1
        out = self.lm.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=self.max_new_tokens,
                                     do_sample=False, eos_token_id=self.eos_ids, pad_token_id=self.pad_id)
        new = out[:, width:]
        texts = self.lm.tokenizer.batch_decode(new, skip_special_tokens=True)
        n_new = int((new != self.pad_id).sum(1).max()) if new.numel() else 0
        self.last_timing = AnswerTiming(width, n_new, time.perf_counter() - t0)
        return [first_sentence(t) for t in texts]

    def answer(self, question: str, evidence: Evidence | str) -> str:
        return self.answer_batch([question], [evidence])[0]

    @torch.no_grad()
    def option_logprobs(self, questions: Sequence[str], evidences: Sequence[Evidence | str], options: Sequence[str],
                        batch_size: int = 8) -> list[list[float]]:
        """log p(option + end | prompt) for each option (the same options for every row): closed-form
        answers by likelihood, as the teacher scores its own (``AVTeacher.option_logprobs``)."""
        end = self.eos_ids[0]
        opts = [self.lm.tokenizer.encode(o, add_special_tokens=False) + [end] for o in options]
        out: list[list[float]] = []
        for i in range(0, len(questions), batch_size):
            seqs = []
            for q, e in zip(questions[i : i + batch_size], evidences[i : i + batch_size]):
                p = self.prompt_ids(q, e)
                seqs += [(len(p), p + o) for o in opts]
            width = max(len(s) for _, s in seqs)
            ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for k, (_, s) in enumerate(seqs):  # right-padded: positions start at 0 in every row
                ids[k, : len(s)], mask[k, : len(s)] = torch.tensor(s), 1
            logp = torch.log_softmax(self.lm.model(input_ids=ids, attention_mask=mask).logits.float(), -1)
            for k in range(0, len(seqs), len(opts)):
                row = []
                for j in range(len(opts)):
                    n_p, s = seqs[k + j]
                    tgt = torch.tensor(s[n_p:])
                    row.append(float(logp[k + j, n_p - 1 : len(s) - 1].gather(-1, tgt[:, None]).sum()))
                out.append(row)
        return out
