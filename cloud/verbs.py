"""Teacher verbs: ``earshot train`` and ``earshot eval``.

    earshot train data.qa_dir=data/qa out=runs/teacher
    earshot train train/preset=tiny data.qa_dir=data/qa_tiny out=/tmp/teacher_tiny
    torchrun --nproc_per_node=2 --no-python earshot train data.qa_dir=data/qa out=runs/teacher
    earshot eval checkpoint=runs/teacher/model qa_dir=data/qa split=bench

The schemas live in ``cloud/teacher_config.py``; the YAML files
(``configs/train.yaml``, ``configs/eval.yaml``) carry the defaults and the
trade-off comments. Torch is imported only inside the verbs, so listing
verbs stays fast.
"""
from __future__ import annotations

from cloud.teacher_config import EvalConfig, TrainConfig
from shared.config import verb

__all__ = ["train_main", "eval_main"]


@verb("train", TrainConfig)
def train_main(cfg: TrainConfig) -> None:
    """Train the audio-visual teacher (single process or torchrun DDP)."""
    from cloud.train import run

    run(cfg)


@verb("eval", EvalConfig)
def eval_main(cfg: EvalConfig) -> None:
    """Score a teacher checkpoint per category; print a table, log to MLflow."""
    from cloud.eval import run

    run(cfg)
