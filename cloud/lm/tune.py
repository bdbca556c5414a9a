"""Instruction-tune the answerer with LoRA: notes + question -> one faithful sentence.

    python -m cloud.lm.tune --out cloud/lm/answerer_lora          # the shipped adapter (~10 min, 1 thread)
    python -m cloud.lm.tune --out /tmp/a --steps 5 --eval 4       # a smoke run

The LM stays frozen; LoRA adapters (``peft``) on the attention's query and
value projections learn the format of ``cloud/lm/answer_data.py``: loss on
the sentence tokens only. The adapter folder (``adapter_config.json``,
``adapter_model.safetensors``: safetensors, never pickle) plus ``tune_card.json``
(the run's settings, the LM file it was tuned on, the loss, and the share of
held-out examples answered exactly and naming only listed sounds) is what
``Answerer`` loads (`load_answerer`), merged into the weights once at load.
Deterministic for a given seed and thread count.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from cloud.lm.answer_data import make_examples
from cloud.lm.answerer import Answerer
from cloud.lm.evidence import names_label
from cloud.lm.load import ADAPTER_DIR, LoadedLM, check_adapter, load_lm
from cloud.model.perception import SOUND_LABELS

__all__ = ["ADAPTER_DIR", "CARD_FILE", "tune_answerer", "load_answerer", "main"]

CARD_FILE = "tune_card.json"
_TARGETS = ["q_proj", "v_proj"]


def _batch(answerer: Answerer, examples, pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    tok = answerer.lm.tokenizer
    seqs = []
    for ex in examples:
        p = answerer.prompt_ids(ex.question, ex.evidence)
        a = tok.encode(ex.sentence, add_special_tokens=False) + [answerer.eos_ids[0]]
        seqs.append((p, a))
    width = max(len(p) + len(a) for p, a in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    labels = torch.full_like(ids, -100)
    mask = torch.zeros_like(ids)
    for i, (p, a) in enumerate(seqs):
        n = len(p) + len(a)
        ids[i, :n] = torch.tensor(p + a)
        labels[i, len(p) : n] = torch.tensor(a)
        mask[i, :n] = 1
    return ids, mask, labels


def evaluate_answerer(answerer: Answerer, n: int, seed: int, batch_size: int = 8) -> dict[str, float]:
    """Held-out examples (another seed): exact sentence match, and "faithful" = names no
    sound the notes do not list and every sound a ``heard`` target names."""
    examples = make_examples(n, seed)
    exact = faithful = 0
    for i in range(0, n, batch_size):
        chunk = examples[i : i + batch_size]
        got = answerer.answer_batch([e.question for e in chunk], [e.evidence for e in chunk])
        for ex, s in zip(chunk, got):
            exact += s.strip().lower() == ex.sentence.strip().lower()
            listed = {e.label for e in ex.evidence.events if e.modality == "audio"}
            want = {l for l in SOUND_LABELS if names_label(ex.sentence, l)}
            said = {l for l in SOUND_LABELS if names_label(s, l)}
            asked = {l for l in SOUND_LABELS if names_label(ex.question, l)}
            faithful += (said - asked) <= listed and want <= said
    return {"n": n, "exact": exact / max(n, 1), "faithful": faithful / max(n, 1)}


def tune_answerer(lm: LoadedLM, out: str | Path, *, steps: int = 300, batch_size: int = 8, lr: float = 2e-3,
                  rank: int = 8, seed: int = 0, n_eval: int = 64, progress: bool = True) -> dict[str, Any]:
    """Tune LoRA adapters on ``lm`` (modified in place: adapters merged after training) and
    write them to ``out``. Returns the card (also written as ``out/tune_card.json``)."""
    from peft import LoraConfig, get_peft_model
    from rich.progress import Progress

    torch.manual_seed(seed)
    answerer = Answerer(lm)
    pad = answerer.pad_id
    examples = make_examples(steps * batch_size, seed)
    cfg = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=_TARGETS, task_type="CAUSAL_LM")
    model = get_peft_model(lm.model, cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    losses, t0 = [], time.perf_counter()
    with Progress(disable=not progress) as bar:
        task = bar.add_task("tuning the answerer (LoRA)", total=steps)
        for step in range(steps):
            for g in opt.param_groups:  # linear warm-up over 10% of the steps, then linear decay
                g["lr"] = lr * min((step + 1) / max(steps // 10, 1), (steps - step) / max(steps - steps // 10, 1))
            ids, mask, labels = _batch(answerer, examples[step * batch_size : (step + 1) * batch_size], pad)
            model.train()
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            losses.append(loss.item())
            bar.update(task, advance=1, description=f"tuning the answerer (LoRA), loss {loss.item():.3f}")
    train_s = time.perf_counter() - t0
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    (out / "README.md").unlink(missing_ok=True)  # peft's empty model-card template
    cfg_path = out / "adapter_config.json"  # name the base by its file, not this machine's path
    cfg_path.write_text(json.dumps({**json.loads(cfg_path.read_text()), "base_model_name_or_path": lm.name}, indent=2)
                        + "\n", encoding="utf-8")
    lm.model = model.merge_and_unload().eval()
    scores = evaluate_answerer(Answerer(lm), n_eval, seed + 1) if n_eval else {}
    card = {"lm": lm.name, "steps": steps, "batch_size": batch_size, "lr": lr, "rank": rank, "targets": _TARGETS,
            "seed": seed, "threads": torch.get_num_threads(), "train_s": round(train_s, 1),
            "s_per_step": round(train_s / max(steps, 1), 3),
            "loss_first_10": round(sum(losses[:10]) / max(len(losses[:10]), 1), 4),
            "loss_last_10": round(sum(losses[-10:]) / max(len(losses[-10:]), 1), 4), "held_out": scores}
    (out / CARD_FILE).write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")
    return card


def load_answerer(lm: str | None = None, adapter: str | Path | None = "default", threads: int = 0) -> Answerer:
    """The LM (`load_lm`) with the answerer's LoRA merged in, ready to answer.

    ``adapter``: see `cloud.lm.load.check_adapter` (``default`` = the shipped ``ADAPTER_DIR`` for
    the embedded default LM; another LM is prompted as it is unless given its own folder).

    Raises:
        UserError: the LM or the adapter folder is missing, or the adapter was tuned on another LM.
    """
    from shared.config import UserError

    folder = check_adapter(adapter, lm)
    loaded = load_lm(lm, threads=threads)
    if folder is None:
        return Answerer(loaded)
    card = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
    if card.get("lm") != loaded.name:
        raise UserError(f"model.lm_adapter: {folder} was tuned on {card.get('lm')!r}, not {loaded.name!r}")
    from peft import PeftModel

    t0 = time.perf_counter()
    loaded.model = PeftModel.from_pretrained(loaded.model, str(folder), local_files_only=True).merge_and_unload().eval()
    loaded.load_s += time.perf_counter() - t0
    loaded.name = f"{loaded.name}+{folder.name}"
    return Answerer(loaded)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ADAPTER_DIR))
    ap.add_argument("--lm", default=None, help="model.lm (default: the embedded SmolLM2)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval", type=int, default=64, help="held-out examples to score after tuning")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    lm = load_lm(a.lm, threads=a.threads)
    print(f"lm: {lm.path} ({lm.num_parameters / 1e6:.1f} M parameters, loaded in {lm.load_s:.1f} s)", flush=True)
    card = tune_answerer(lm, a.out, steps=a.steps, batch_size=a.batch_size, lr=a.lr, rank=a.rank, seed=a.seed,
                         n_eval=a.eval)
    print(json.dumps(card, indent=1))
    print(f"adapter: {a.out}")


if __name__ == "__main__":
    main()
