"""The teacher with a pretrained LM as its decoder (cloud/model/lm_decoder.py, model.decoder=lm).

A tiny randomly initialised Llama with a byte-level BPE tokenizer, saved as a local Hugging
Face folder, stands in for SmolLM2 (the same code path: `cloud.lm.load.load_lm` reads a folder
like the de-quantized GGUF cache); scripts/bench_lm_decoder.py runs the real one."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import safetensors.torch
import torch

from cloud.model.config import ModelConfig
from cloud.model.perception import FRAME_LABELS, SOUND_LABELS
from cloud.model.teacher import AVTeacher
from shared.config import ConfigError, UserError

LABELS = (*SOUND_LABELS, *FRAME_LABELS)
TINY = dict(audio_channels=16, frame_size_px=32, visual_channels=8, d_model=32, n_heads=2, fusion_layers=1,
            decoder_layers=1, gate_hidden=8, dropout=0.0)


def test_a_bad_lm_path_or_decoder_fails_when_the_config_is_read(tmp_path):
    with pytest.raises(ConfigError, match=r"^model\.lm: .*nope\.gguf does not exist; Earshot never downloads"):
        ModelConfig(decoder="lm", lm=str(tmp_path / "nope.gguf"))
    with pytest.raises(ConfigError, match=r"^model\.decoder: must be one of \('small', 'lm'\)"):
        ModelConfig(decoder="big")
    assert "decoder" not in ModelConfig().to_dict()  # a small decoder's card is as before the LM variant
    assert ModelConfig.from_dict(ModelConfig().to_dict()) == ModelConfig()


def test_multi_piece_labels_are_found_in_questions_longest_first():
    pieces = [[100 + i] for i in range(len(LABELS))]
    walk, walk_to_door, timer = LABELS.index("walk"), LABELS.index("walk_to_door"), LABELS.index("timer_beep")
    pieces[walk], pieces[walk_to_door], pieces[timer] = [5], [5, 6, 7], [8, 9]
    model = AVTeacher(ModelConfig(**TINY), 200, label_pieces=pieces)
    q = torch.tensor([[5, 6, 7, 1, 5, 8, 9], [8, 5, 6, 4, 9, 0, 0]])
    assert model._question_labels(q).tolist() == [[-1, -1, walk_to_door, -1, walk, -1, timer],
                                                  [-1, walk, -1, -1, -1, -1, -1]]
    with pytest.raises(ValueError, match="label_pieces"):
        AVTeacher(ModelConfig(**TINY), 200, label_pieces=[[1]] * 3)


def make_tiny_lm(folder: Path, texts: list[str]) -> Path:
    """A 2-layer Llama (width 48) and a BPE tokenizer trained on ``texts``, as an HF folder."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>")
    fast.save_pretrained(folder)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(fast), hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                      tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=0,
                      initializer_range=0.3)  # logits of a 0.02-initialised stand-in span ~1 nat: nothing to learn
    LlamaForCausalLM(cfg).save_pretrained(folder)
    return folder


def _generic_option_logprobs(model, enc, batch, options):
    """The teacher's decoder-agnostic scoring: each option re-reads the whole prefix."""
    out = []
    for b, opts in enumerate(options):
        q = batch["question_ids"][b][batch["question_ids"][b] != model.pad_id].tolist()
        row = []
        for o in opts:
            ids = torch.tensor([[*q, model.bos_id, *o, model.eos_id]])
            logits = model.decoder(enc.prefix[b : b + 1], enc.prefix_mask[b : b + 1], ids[:, :-1])
            logp = torch.log_softmax(logits.float(), -1).gather(-1, ids[:, 1:, None])[0, len(q):, 0]
            row.append(float(logp.sum()))
        out.append(row)
    return out


@pytest.mark.slow  # a tiny LM teacher: perception, 30 QA steps, save, load (~15 s)
def test_lm_decoder_learns_scores_options_and_its_checkpoint_round_trips(tmp_path):
    from cloud.data import collate, load_records
    from cloud.model.io import load_teacher
    from cloud.model.lm_decoder import is_base_weight
    from cloud.train import TrainRecipe
    from tests.cloud.test_train_teacher import compose_train
    from tests.helpers.teacher_world import make_world

    qa = make_world(tmp_path / "world")
    recs = load_records(qa, "train_av")
    lm_dir = make_tiny_lm(tmp_path / "tiny_lm", [" ".join(LABELS)] + [f"{r.question} {r.answer}" for r in recs])
    cfg = compose_train(["train/preset=tiny", f"data.qa_dir={qa}", f"out={tmp_path / 'out'}", "threads=1",
                         "model.decoder=lm", f"model.lm={lm_dir}", "max_steps=80", "eval_every=80",
                         "mlflow.enabled=false", "model.max_answer_tokens=40", "model.max_question_tokens=40"])
    recipe = TrainRecipe(cfg)
    recipe.setup()
    batch = collate([recipe.train_set[i] for i in range(8)], recipe.tokenizer.pad_id)
    with torch.no_grad():
        recipe.model.eval()
        before = recipe._loss_step(batch)[1].item()
    recipe.train()
    recipe.cleanup()
    model = recipe.model.eval()
    with torch.no_grad():
        after = recipe._loss_step(batch)[1].item()
    assert after < 0.5 * before, (before, after)
    assert recipe.last_scores["category"]["AVH"] > 0.5, recipe.last_scores  # yes/no by option likelihood

    # the cached option scoring is the generic computation
    tok = recipe.tokenizer
    options = [[tok.encode_answer(o) for o in ("yes", "no", "timer_beep")]] * 3
    sub = {k: v[:3] for k, v in batch.items()}
    with torch.no_grad():
        enc = model.encode(sub)
        fast = model.option_logprobs(sub, options, enc=enc)
        slow = _generic_option_logprobs(model, enc, sub, options)
    for got, want in zip(fast, slow):
        assert got == pytest.approx(want, abs=1e-4)
    assert model.generate(sub, max_new_tokens=5)["ids"].shape[0] == 3

    # the checkpoint: what trained, not the base LM; the base checked by sha256 on load
    folder = tmp_path / "out" / "model"
    saved = safetensors.torch.load_file(str(folder / "model.safetensors"))
    assert any("lora_A" in k for k in saved) and not any(is_base_weight(k) for k in saved)
    card = json.loads((folder / "model_config.json").read_text())
    assert card["model"]["decoder"] == "lm" and len(card["lm"]["sha256"]) == 64
    loaded, tok2, _ = load_teacher(folder)
    with torch.no_grad():
        for got, want in zip(loaded.option_logprobs(sub, options), fast):
            assert got == pytest.approx(want, abs=1e-5)
    assert tok2.decode(tok2.encode_answer("0s timer_beep; 2s open_oven") + [tok2.eos_id]) == \
        "0s timer_beep; 2s open_oven"

    other = tmp_path / "other_lm"
    shutil.copytree(lm_dir, other)
    (other / "config.json").write_text((lm_dir / "config.json").read_text().replace("{", '{"note": 1,', 1))
    card["model"]["lm"] = str(other)
    (folder / "model_config.json").write_text(json.dumps(card))
    with pytest.raises(UserError, match=r"model\.lm: .*other_lm has sha256 .* trained on an LM with sha256"):
        load_teacher(folder)
