"""``earshot instruct``: the instruction data engine as a verb.

    earshot instruct dataset=data/world out=data/qa

The schema lives in ``cloud/data_engine/instruct_config.py``.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

from cloud.data_engine.instruct_config import InstructConfig, make_params, make_plan
from shared.config import verb

__all__ = ["instruct_main", "run_instruct", "print_summary"]


def run_instruct(cfg: InstructConfig) -> dict[str, Any]:
    """The verb's body: build the QA folder, print its summary, return its info.json."""
    from cloud.data_engine.engine import build_instruct

    # The output location is not content: leave it out so two runs compare byte for byte.
    config = {k: v for k, v in asdict(cfg).items() if k not in ("out", "progress")}
    qa, pairs = make_params(cfg)
    info = build_instruct(cfg.dataset, cfg.out, qa, make_plan(cfg), pairs, config=config, progress=cfg.progress)
    print(f"wrote {cfg.out}")
    print_summary(info)
    return info


@verb("instruct", InstructConfig)
def instruct_main(cfg: InstructConfig) -> None:
    """Build instruction QA (SSA, AVDN, AVSN, TR, AVH) from a dataset's annotations."""
    run_instruct(cfg)


def print_summary(info: dict[str, Any]) -> None:
    """Records per split x category, vocabulary size, audio share, bench shortfall."""
    from rich.console import Console
    from rich.table import Table

    from cloud.data_engine.records import CATEGORIES

    console = Console()
    table = Table(title="instruction QA: records per split x category")
    # needs audio: share of records whose evidence is audio or audiovisual; noisy/quiet splits them by SNR
    for col in ("split", *CATEGORIES, "total", "audio%", "noisy/quiet"):
        table.add_column(col, justify="left" if col == "split" else "right")
    for split, c in info["counts"].items():
        cats = c["categories"]
        noise = c["needs_audio_by_noise"]
        table.add_row(split, *[str(cats[k]) for k in CATEGORIES], str(cats["total"]),
                      f"{100 * c['needs_audio_share']:.0f}%", f"{noise['noisy']}/{noise['quiet']}")
    console.print(table)
    for split, d in info["visual_vs_av"].items():
        console.print(f"{split}_visual vs {split}_av: {d['same']} same answer, {d['changed']} changed, "
                      f"{d['dropped']} dropped (not in the vision-only narration)")
    console.print(f"answer vocabulary: {info['answer_vocab_size']} tokens")
    bench = info["bench"]
    pairs = ", ".join(f"{c} {n}" for c, n in bench["pairs"].items())
    console.print(f"bench: {bench['recordings']} held-out recordings; counterfactual pairs: {pairs}")
    if not bench["complete"]:
        short = ", ".join(f"{c} {bench['available'][c]}" for c in bench["shortfall"])
        console.print(f"[yellow]bench incomplete: wanted {bench['wanted']}; only {short} available "
                      f"(add test recordings)[/yellow]")
