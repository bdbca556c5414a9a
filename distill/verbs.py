"""Distillation verbs: ``earshot distill`` and ``earshot export``.

    earshot distill teacher=runs/teacher/model                        # the trigger
    earshot distill distill/student=av teacher=runs/teacher/model     # the AV student
    earshot distill distill/preset=tiny teacher=/tmp/teacher/model out=/tmp/kd   # seconds, for tests
    earshot export checkpoint=runs/distill/trigger                    # .pte fp32 + int8 (+ .tflite), cards

The schemas live in ``distill/distill_config.py``; the YAML files
(``configs/distill.yaml``, ``configs/distill/``, ``configs/export.yaml``)
carry the defaults and the trade-off comments. Torch is imported only inside
the verbs, so listing verbs stays fast.
"""
from __future__ import annotations

from distill.distill_config import DistillConfig, ExportConfig
from shared.config import verb

__all__ = ["distill_main", "export_main"]


@verb("distill", DistillConfig)
def distill_main(cfg: DistillConfig) -> None:
    """Distil the teacher into an on-device student (trigger or AV)."""
    from distill.recipe import run

    run(cfg)


@verb("export", ExportConfig)
def export_main(cfg: ExportConfig) -> None:
    """Quantize and export a student to .pte (and .tflite) with model cards."""
    from distill.export import run

    run(cfg)
