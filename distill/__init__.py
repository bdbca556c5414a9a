"""Earshot distill package: the teacher's tag head -> two on-device programs.

    student_config.py  StudentConfig, FrontEndConfig (torch-free; embedded in the Hydra schemas)
    students.py        AudioTrigger, AVStudent and the registry (get_eager_model / get_example_inputs)
    losses.py          binary KD with temperature, hard BCE, feature and confidence losses
    data.py            windows of recordings -> student inputs, teacher batches, hard labels
    recipe.py          `earshot distill` (torchtune-style KD recipe, exact resume, MLflow)
    programs.py        PT2E int8, XNNPACK lowering to .pte, runtime runners
    tflite.py          the optional .tflite path (litert-torch, ai-edge-litert)
    export.py          `earshot export`: programs + model cards (shared/model_card.py) + MLflow registry
    macs.py            MAC counter over the exported graph
    metrics.py         thresholds, macro-F1, AUROC
    io.py              save_student / load_student (safetensors + JSON)
    tracking.py        MLflow helpers
    verbs.py           the Hydra schemas and verbs

See ARCHITECTURE.md section 6.
"""
