"""Word-level tokenizer for questions and closed-form answers.

Answers are scored by exact match ("doorbell, open_door", "0s timer_beep;
2s open_oven"), so decoding must give back the exact string. Each token
therefore carries the space before it (" timer_beep", ";", " 2s"), as GPT-2's
byte-level tokens do: ``decode(encode(s)) == s`` for any lower-case text with
single spaces whose words are all in the vocabulary.

The vocabulary is built from the training records only and saved with every
checkpoint as JSON (``vocab.json``), so a checkpoint decodes on its own.
Words never seen in training map to ``<unk>``.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Iterable

__all__ = ["PAD", "UNK", "BOS", "EOS", "SPECIALS", "Tokenizer", "split_words"]

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"
SPECIALS = (PAD, UNK, BOS, EOS)  # ids 0..3, fixed

# A word (letters, digits, underscore) or one other non-space character,
# each with the single space before it if there is one.
_TOKEN_RE = re.compile(r" ?[a-z0-9_]+| ?[^\sa-z0-9_]")


def _normalize(text: str) -> str:
    return " ".join(text.lower().split())


def split_words(text: str, lead_space: bool = False) -> list[str]:
    """Lower-case, collapse whitespace, split into space-carrying tokens.

    ``lead_space``: the first word carries a space too, as it would after other
    words. Answers are encoded this way, so a label is one token whether a
    question names it or an answer gives it (" timer_beep" in both)."""
    return _TOKEN_RE.findall((" " if lead_space else "") + _normalize(text))


class Tokenizer:
    """Maps text to ids and back. Ids 0..3 are ``<pad> <unk> <bos> <eos>``."""

    def __init__(self, words: Iterable[str]) -> None:
        words = list(words)
        if tuple(words[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"vocabulary must start with {SPECIALS}, got {words[:4]}")
        if len(set(words)) != len(words):
            raise ValueError("vocabulary has duplicate entries")
        self.words = words
        self.ids = {w: i for i, w in enumerate(words)}
        self.pad_id, self.unk_id, self.bos_id, self.eos_id = (self.ids[s] for s in SPECIALS)

    @classmethod
    def build(cls, texts: Iterable[str], min_count: int = 1, answers: Iterable[str] = ()) -> "Tokenizer":
        """Vocabulary of every token seen at least ``min_count`` times, sorted
        by count then alphabetically (deterministic for a given corpus);
        ``answers`` are split with a leading space (`encode_answer`)."""
        counts = Counter(tok for text in texts for tok in split_words(text))
        counts.update(tok for text in answers for tok in split_words(text, lead_space=True))
        kept = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
        return cls([*SPECIALS, *kept])

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, text: str) -> list[int]:
        return [self.ids.get(tok, self.unk_id) for tok in split_words(text)]

    def encode_answer(self, text: str) -> list[int]:
        """Ids of an answer: its first word carries a space, like the same word inside a question."""
        return [self.ids.get(tok, self.unk_id) for tok in split_words(text, lead_space=True)]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids`` up to the first ``<eos>``; pad and bos are skipped."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i in (self.pad_id, self.bos_id):
                continue
            out.append(self.words[i] if 0 <= i < len(self.words) else UNK)
        return "".join(out).strip()

    # --- JSON ---------------------------------------------------------------

    def to_json(self) -> str:
        return json.dumps({"kind": "word", "version": 1, "words": self.words}, ensure_ascii=False)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "Tokenizer":
        """Raises ValueError naming the file if it is not a vocabulary we wrote."""
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("kind") != "word" or not isinstance(data.get("words"), list):
            raise ValueError(f"{path}: not an Earshot word vocabulary")
        return cls(data["words"])
