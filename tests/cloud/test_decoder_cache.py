"""The decoder's key/value-cached greedy decoding gives the same ids as re-running the sequence per token.

``TransformerDecoder.generate`` keeps each layer's keys and values and feeds
one new token per step (the serving hot path, cloud/server/backend.py); the
reference below is the plain definition: a full forward over
[prefix | ids] for every new token. Rows of different question lengths
(padding between question and <bos>), rows that end early (pad after <eos>)
and prefixes with masked tokens are all covered.
"""
from __future__ import annotations

import pytest
import torch

from cloud.model.decoder import TransformerDecoder

PAD, EOS = 0, 1


def reference_generate(dec: TransformerDecoder, prefix, prefix_mask, ids, max_new_tokens: int, eos_id: int):
    done = torch.zeros(ids.shape[0], dtype=torch.bool)
    new = []
    for _ in range(max_new_tokens):
        nxt = dec(prefix, prefix_mask, ids)[:, -1].argmax(-1)
        nxt = torch.where(done, torch.full_like(nxt, dec.pad_id), nxt)
        new.append(nxt)
        ids = torch.cat([ids, nxt[:, None]], dim=1)
        done |= nxt == eos_id
        if bool(done.all()):
            break
    return torch.stack(new, dim=1)


@pytest.mark.parametrize("seed", range(6))
def test_cached_generate_matches_the_full_recompute(seed):
    torch.manual_seed(seed)
    vocab = 12 if seed % 2 else 40  # a small vocabulary ends rows early (often <eos>)
    dec = TransformerDecoder(vocab, d_model=32, n_layers=2, n_heads=4, max_text_tokens=20, dropout=0.1,
                             pad_id=PAD).eval()
    b, p = 5, 9
    prefix = torch.randn(b, p, 32)
    prefix_mask = torch.rand(b, p) > 0.3
    prefix_mask[:, 0] = True
    ids = torch.randint(2, vocab, (b, 6))
    for row, n_pad in enumerate((0, 1, 3, 0, 5)):  # right-padded questions, then <bos> (id 2)
        if n_pad:
            ids[row, 6 - 1 - n_pad:6 - 1] = PAD
    ids[:, -1] = 2
    got = dec.generate(prefix, prefix_mask, ids, 12, EOS)
    want = reference_generate(dec, prefix, prefix_mask, ids, 12, EOS)
    assert torch.equal(got, want), (got, want)
    # Each row alone gives its batched answer (padding never leaks between rows).
    for row in range(b):
        alone = dec.generate(prefix[row:row + 1], prefix_mask[row:row + 1], ids[row:row + 1], 12, EOS)
        n = alone.shape[1]
        assert torch.equal(alone[0], got[row, :n])
        assert bool((got[row, n:] == PAD).all())


def test_cached_generate_stops_at_max_new_tokens_and_at_text_capacity():
    torch.manual_seed(7)
    dec = TransformerDecoder(30, d_model=16, n_layers=1, n_heads=2, max_text_tokens=8, dropout=0.0, pad_id=PAD).eval()
    prefix, mask = torch.randn(2, 3, 16), torch.ones(2, 3, dtype=torch.bool)
    ids = torch.randint(2, 30, (2, 4))
    got = dec.generate(prefix, mask, ids, 10, eos_id=99)  # never ends: runs past the 8 text positions
    assert got.shape == (2, 10)
    assert torch.equal(got, reference_generate(dec, prefix, mask, ids, 10, 99))
    assert dec.generate(prefix, mask, ids, 0, EOS).shape == (2, 0)
