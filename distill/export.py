"""`earshot export`: a distilled student -> on-device programs, each with a model card.

    earshot export checkpoint=runs/distill/trigger
    earshot export checkpoint=runs/distill/av precisions=[fp32] tflite=off

For one student (``earshot distill``'s ``out/student``) it writes, into
``<out>`` (default: the distill out's ``export/``)::

    <name>_xnnpack_fp32.pte   torch.export -> to_edge_transform_and_lower(XnnpackPartitioner)
    <name>_xnnpack_int8.pte   PT2E + XNNPACKQuantizer, calibrated on val windows, then the same
    <name>_litert_fp32.tflite litert-torch (optional extra; skipped with a message without it)
    <program stem>.json       the model card of each (shared/model_card.py)
    <program stem>.probes.json  the program on the bench's event probes (distill/probes.py)

Every program is loaded back and run, one window per call as on the device,
over the val windows (to choose its per-label decision thresholds) and the
test windows (held-out recordings: macro-F1 against the labels, the
teacher's on the same windows, agreement with the teacher, parity with the
eager model). Then it answers the counterfactual bench's event probes ("did
you hear X?", "did you X?", "did you see X?") from its own outputs at every
hop, beside the teacher's answers and the controls; **retention** on its card
is its pair accuracy over the teacher's (``distill/probes.py``). Programs and
cards are logged to MLflow and each program is registered as a version of the
model ``earshot-<name>-<backend>-<precision>``.

The style of ExecuTorch's ``examples/portable/scripts/export.py``: the model
comes from the registry (``distill/students.py``), the file name says backend
and precision, and the program is run after export.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cloud.model.io import load_teacher
from distill.data import TeacherView, WindowSet, load_split
from distill.io import load_student, student_folder
from distill.macs import count_macs
from distill.metrics import auroc, choose_thresholds, f1_per_label, macro_f1
from distill.probes import NoProbes, TeacherProbes, hop_outputs, probe_metrics
from distill.programs import EagerProgram, PteProgram, delegation_summary, lower_to_pte, program_outputs, quantize_int8
from distill.students import example_inputs, io_spec, labels_of, num_parameters
from distill.teacher_tokens import teacher_window_targets
from distill.tflite import TfliteProgram, convert_tflite, tflite_status
from shared.tracking import make_tracker
from distill.distill_config import ExportConfig
from shared.config import UserError
from shared.dataset import load_dataset
from shared.labels import TAXONOMY_VERSION
from shared.model_card import ModelCard, TensorSpec, card_path_for, file_sha256, save_model_card
from distill.trigger_eval import evaluate_trigger, render_det

__all__ = ["program_file", "registered_name", "evenly", "run"]

THRESHOLD_RULE = "per label: the F1-maximising value on the val split (grid 0.05..0.95 step 0.025, ties nearest 0.5); 0.5 if the label never occurs in val"
OPERATING_POINT_RULE = ("trigger operating point chosen on val recordings (distill/operating_point.py): per-label thresholds "
                        "that detect the most val events within trigger.fa_per_hour false triggers per val hour, with the "
                        "card's refractory hold; one shared threshold where per-label ones do not help")
_EAGER_BATCH = 256


def program_file(name: str, backend: str, precision: str) -> str:
    """``trigger_xnnpack_int8.pte``: the file name says backend and precision."""
    return f"{name}_{backend}_{precision}.{'tflite' if backend == 'litert' else 'pte'}"


def registered_name(name: str, backend: str, precision: str) -> str:
    return f"earshot-{name}-{backend}-{precision}"


def evenly(n: int, k: int) -> np.ndarray:
    """``k`` evenly spaced indices of ``range(n)`` (all of them if k == 0 or k >= n)."""
    if k <= 0 or k >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, k).round().astype(int))


def _per_window(windows: WindowSet):
    return (windows.student_inputs([k], camera=True) for k in range(len(windows)))


def _eager_outputs(model: torch.nn.Module, windows: WindowSet) -> list[np.ndarray]:
    batches = (windows.student_inputs(np.arange(i, min(i + _EAGER_BATCH, len(windows))), camera=True)
               for i in range(0, len(windows), _EAGER_BATCH))
    return program_outputs(EagerProgram(model), batches)


def _metrics(probs: np.ndarray, thresholds: np.ndarray, test: WindowSet, teacher: dict[str, np.ndarray] | None,
             n: int) -> dict[str, Any]:
    """Accuracy of one program on the test windows, against the labels and against the teacher (if any).

    ``retention`` is left None here: it is the probes' pair-accuracy ratio (`probe_metrics`);
    ``macro_f1_ratio`` is the window-level one."""
    labels, mask = test.labels[:, :n], test.label_mask[:, :n]
    m: dict[str, Any] = {
        "split": "test",
        "n_windows": len(test),
        "n_recordings": len(test.recordings),
        "labels_counted": int(((labels * mask).sum(0) > 0).sum()),
        "macro_f1": macro_f1(probs, labels, thresholds, mask),
        "teacher_macro_f1": None, "agreement_f1": None, "retention": None, "macro_f1_ratio": None,
    }
    if teacher is None:
        return m
    m["teacher_macro_f1"] = teacher["macro_f1"]
    m["agreement_f1"] = macro_f1(probs, teacher["test"] >= teacher["thresholds"][None, :], thresholds)
    m["macro_f1_ratio"] = m["macro_f1"] / m["teacher_macro_f1"] if m["teacher_macro_f1"] > 0 else None
    return m


def run(cfg: ExportConfig) -> dict[str, ModelCard]:
    """The verb's body: build, run, measure and card every program. Returns the cards by file name."""
    torch.set_num_threads(cfg.threads or max(1, os.cpu_count() or 1))
    model, scfg, scard = load_student(cfg.checkpoint)
    name, labels = scfg.name, list(labels_of(scfg.name))
    n = len(labels)
    inputs = example_inputs(scfg)
    out = Path(cfg.out) if cfg.out else student_folder(cfg.checkpoint).parent / "export"
    out.mkdir(parents=True, exist_ok=True)

    # Held-out windows: val picks thresholds and calibrates int8, test measures.
    teacher_dir = cfg.teacher or (scard.get("teacher") or {}).get("folder")  # None: distilled from labels only
    teacher, tokenizer, tcard = None, None, None
    if teacher_dir:
        teacher, tokenizer, tcard = load_teacher(teacher_dir)
    # The bench first: a missing or empty one is a configuration problem, found before the long work.
    probes, hop_windows = _load_probes(cfg, teacher, tokenizer, tcard, scfg)
    dataset = load_dataset(cfg.dataset or scard["data"]["dataset"])
    # The background set too: a wrong path is reported before the programs are built.
    background = load_dataset(cfg.trigger.background) if name == "trigger" and cfg.trigger.background else None
    data = scard["data"]
    split_kw = dict(audio_s=scfg.audio_s, stride_s=data["stride_s"],
                    teacher_view=TeacherView.from_card(tcard) if teacher else None,
                    frame_size_px=scfg.frame_size_px if name == "av" else None, keep_camera=True)
    val, test = load_split(dataset, "val", **split_kw), load_split(dataset, "test", **split_kw)
    if not len(val) or not len(test):
        raise UserError(f"{dataset.root}: export needs val and test recordings (val {len(val)}, test {len(test)} windows)")
    calibration = [val.student_inputs([k], camera=True) for k in evenly(len(val), cfg.calibration_windows)]
    val, test = val.subset(evenly(len(val), cfg.max_eval_windows)), test.subset(evenly(len(test), cfg.max_eval_windows))
    teacher_ref = None
    if teacher is not None:  # the per-token teacher at the same windows (distill/teacher_tokens.py)
        t_val, t_test = (torch.sigmoid(teacher_window_targets(teacher, w)[0][:, :n]).numpy() for w in (val, test))
        t_thresholds = choose_thresholds(t_val, val.labels[:, :n], val.label_mask[:, :n])
        teacher_ref = {"test": t_test, "thresholds": t_thresholds,
                       "macro_f1": macro_f1(t_test, test.labels[:, :n], t_thresholds, test.label_mask[:, :n])}

    # The programs. Each entry: (backend, precision, file, runner).
    macs = count_macs(model, inputs)
    programs: list[tuple[str, str, Path, Any]] = []
    if "fp32" in cfg.precisions:
        path = lower_to_pte(model, inputs, out / program_file(name, "xnnpack", "fp32"))
        programs.append(("xnnpack", "fp32", path, PteProgram(path)))
    if "int8" in cfg.precisions:
        quantized = quantize_int8(model, inputs, calibration)
        path = lower_to_pte(quantized, inputs, out / program_file(name, "xnnpack", "int8"))
        programs.append(("xnnpack", "int8", path, PteProgram(path)))
    available, why = tflite_status()
    if cfg.tflite == "on" and not available:
        raise UserError(why)
    if cfg.tflite != "off" and available:
        path = convert_tflite(model, inputs, out / program_file(name, "litert", "fp32"))
        programs.append(("litert", "fp32", path, TfliteProgram(path)))
    elif cfg.tflite != "off":
        print(why, flush=True)

    # Measure: eager first (the parity reference), then each program one window per call.
    eager_val, eager_test = _eager_outputs(model, val), _eager_outputs(model, test)
    eager_thresholds = choose_thresholds(eager_val[0], val.labels[:, :n], val.label_mask[:, :n])
    eager_f1 = macro_f1(eager_test[0], test.labels[:, :n], eager_thresholds, test.label_mask[:, :n])
    inputs_spec, outputs_spec = io_spec(scfg)
    tracker = make_tracker(cfg.mlflow)
    tracker.start(run_name=cfg.mlflow.run_name or f"export-{name}")
    tracker.params({"student": name, "checkpoint": str(student_folder(cfg.checkpoint).resolve()), "teacher": str(teacher_dir),
                    "precisions": ",".join(cfg.precisions), "tflite": cfg.tflite, "calibration_windows": len(calibration),
                    "val_windows": len(val), "test_windows": len(test), "num_parameters": num_parameters(model), "macs": macs.total})
    cards: dict[str, ModelCard] = {}
    for backend, precision, path, runner in programs:
        t0 = time.perf_counter()
        p_val, p_test = program_outputs(runner, _per_window(val)), program_outputs(runner, _per_window(test))
        thresholds = choose_thresholds(p_val[0], val.labels[:, :n], val.label_mask[:, :n])
        metrics = _metrics(p_test[0], thresholds, test, teacher_ref, n)
        metrics["eager_fp32_macro_f1"] = eager_f1
        metrics["max_abs_diff_vs_eager"] = float(max(np.abs(a - b).max() for a, b in zip(p_test, eager_test)))
        metrics["mean_abs_diff_vs_eager"] = float(np.mean([np.abs(a - b).mean() for a, b in zip(p_test, eager_test)]))
        if precision == "int8":
            metrics["int8_gap_macro_f1"] = eager_f1 - metrics["macro_f1"]
        if name == "av" and teacher_ref is not None:
            # What the head was trained to predict (distill/losses.py): every tag's 0.5-decision agrees with the teacher's.
            agree = ((p_test[0] > 0.5) == (teacher_ref["test"] > 0.5)).all(axis=1)
            metrics["confidence_auroc"] = auroc(p_test[1][:, 0], agree)
            metrics["agreement_rate"] = float(agree.mean())
        extra: dict[str, Any] = {"mlflow_run_id": tracker.run_id, "distill_mlflow_run_id": scard.get("mlflow_run_id"),
                                 "student_folder": str(student_folder(cfg.checkpoint).resolve()),
                                 "per_label_f1": dict(zip(labels, [None if np.isnan(v) else round(float(v), 4) for v in f1_per_label(p_test[0] >= thresholds, test.labels[:, :n], test.label_mask[:, :n])])),
                                 "calibration_windows": len(calibration) if precision == "int8" else 0,
                                 "macs_by_op": macs.by_op, "eval_seconds": round(time.perf_counter() - t0, 2)}
        if path.suffix == ".pte":
            extra["delegation"] = delegation_summary(path)
        if name == "av":
            extra["confidence_target"] = (scard.get("kd") or {}).get("confidence_target", "teacher")
        rule, refractory_s, early_thresholds = THRESHOLD_RULE, 0.0, None
        if name == "trigger":  # as a detector: operating point on val, event-level figures on test
            report, op = evaluate_trigger(_one_per_call(runner), labels, scfg.audio_s, cfg.trigger, dataset, background)
            thresholds, rule, refractory_s = np.asarray(op.thresholds), OPERATING_POINT_RULE, cfg.trigger.refractory_s
            if report.get("early_stage"):
                early_thresholds = {k: float(v) for k, v in zip(labels, report["early_stage"]["thresholds"])}
            metrics.update(_trigger_metrics(report))
            report_path = out / f"{path.stem}.trigger_eval.json"
            report_path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
            det_path = out / f"{path.stem}.det.png"
            det_path.write_bytes(render_det(report, f"{path.name}: held-out recordings"))
            extra.update(trigger_eval=report_path.name, det_curve=det_path.name)
            tracker.artifact(report_path, path.stem)
            tracker.artifact(det_path, path.stem)
        if probes is not None:  # with the card's final thresholds: what the device would answer
            report = probes.score(hop_outputs(_one_call(runner), hop_windows, cfg.probes.hop_s), labels, thresholds)
            metrics.update(probe_metrics(report, cfg.probes.target_retention))
            probes_path = out / f"{path.stem}.probes.json"
            probes_path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
            extra["probes"] = probes_path.name
            tracker.artifact(probes_path, path.stem)
            _print_probes(path.name, report)
        metrics = {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in metrics.items()}  # JSON has no NaN
        card = ModelCard(
            name=name, program=path.name, format=path.suffix[1:], backend=backend, precision=precision,
            size_bytes=path.stat().st_size, sha256=file_sha256(path),
            inputs=[TensorSpec(**t) for t in inputs_spec], outputs=[TensorSpec(**t) for t in outputs_spec],
            labels=labels, thresholds={k: float(v) for k, v in zip(labels, thresholds)}, threshold_rule=rule,
            refractory_s=refractory_s, early_thresholds=early_thresholds,
            features={**scfg.features.feature_kwargs(), "trim_bins": scfg.features.trim_bins},
            audio_window_s=scfg.audio_s, frame_size_px=scfg.camera_px if name == "av" else None,
            num_parameters=num_parameters(model), macs=macs.total, metrics=metrics,
            teacher={} if teacher is None else {
                "folder": str(Path(teacher_dir).resolve()), "num_parameters": teacher.num_parameters(),
                "student_share_of_parameters": num_parameters(model) / teacher.num_parameters()},
            taxonomy_version=TAXONOMY_VERSION, extra=extra,
        )
        card_path = save_model_card(card, card_path_for(path))
        cards[path.name] = card
        stem = path.stem
        tracker.metrics({f"{stem}/{k}": v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}, step=0)
        tracker.artifact(path, stem)
        tracker.artifact(card_path, stem)
        tracker.flush()
        if cfg.register:
            tracker.register(registered_name(name, backend, precision), stem, {"precision": precision, "backend": backend, "student": name})
    tracker.end()
    _print_table(name, cards)
    return cards


def _load_probes(cfg: ExportConfig, teacher, tokenizer, tcard, scfg) -> tuple[TeacherProbes | None, WindowSet | None]:
    """The teacher and the controls on the bench's event probes, and the hop windows of its
    recordings for the programs (None, None when ``probes.mode`` is off or auto finds no bench)."""
    from cloud.data import resolve_dataset

    p = cfg.probes
    if p.mode == "off":
        return None, None
    qa_dir = p.qa_dir or ((tcard or {}).get("trained_on") or {}).get("qa_dir")
    why = ("no teacher to compare with" if teacher is None else "no QA folder (probes.qa_dir)" if not qa_dir
           else None if (Path(qa_dir) / "bench.jsonl").is_file() else f"no {Path(qa_dir) / 'bench.jsonl'}")
    if why:
        if p.mode == "on":
            raise UserError(f"probes: {why}; set probes.mode=off to export without the bench's event probes")
        print(f"probes: skipped ({why})", flush=True)
        return None, None
    root = resolve_dataset(qa_dir, None)
    t0 = time.perf_counter()
    try:
        probes = TeacherProbes.load(teacher, tokenizer, tcard, qa_dir, max_pairs=p.max_pairs, batch_size=p.batch_size,
                                    seed=p.seed, dataset_root=root)
    except NoProbes as exc:
        if p.mode == "on":
            raise
        print(f"probes: skipped ({exc})", flush=True)
        return None, None
    windows = load_split(load_dataset(root), "test", audio_s=scfg.audio_s, stride_s=p.hop_s, teacher_view=None,
                         frame_size_px=scfg.frame_size_px if scfg.name == "av" else None, keep_camera=True,
                         only=probes.recording_ids, first_end_s=p.hop_s)
    missing = probes.recording_ids - {r.id for r in windows.recordings}
    if missing:
        raise UserError(f"probes: {qa_dir}/bench.jsonl asks about {sorted(missing)[:3]}, not test recordings of {root}")
    print(f"probes: {len(probes.records) // 2} event-probe pairs on {len(probes.recording_ids)} held-out recordings; "
          f"teacher and controls in {time.perf_counter() - t0:.1f} s", flush=True)
    return probes, windows


def _one_call(runner: Any):
    """A program called with torch inputs, returning its outputs as numpy arrays."""
    return lambda *inputs: [np.asarray(o) for o in runner(*inputs)]


def _print_probes(program: str, report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    from shared.stats import format_interval

    mods = report["modalities"]
    table = Table(title=f"{program}: the bench's event probes ({report['n_pairs']} pairs, "
                        f"{report['n_recordings']} held-out recordings)")
    table.add_column("system")
    for m in mods:
        table.add_column(f"{m} per question %", justify="right")
        table.add_column(f"{m} per pair %", justify="right")
    for name in report["systems"]:
        fig = report["figures"][name]
        table.add_row(name, *[format_interval((fig.get(m) or {}).get(lvl)) for m in mods for lvl in ("question", "pair")],
                      style="bold" if name in ("student", "teacher") else "dim")
    table.add_row("retention (student / teacher pairs)",
                  *[x for m in mods for x in ("", format_interval(report["retention"][m]))], style="bold")
    Console(width=200).print(table)


def _one_per_call(runner: Any):
    """A batched call made of one program call per window, as on the device."""
    def run(windows: np.ndarray) -> np.ndarray:
        return np.concatenate([runner(w[None])[0].reshape(1, -1) for w in windows])
    return run


def _trigger_metrics(report: dict[str, Any]) -> dict[str, Any]:
    """The headline trigger figures for the card's metrics (the full report is beside it)."""
    t, m = report["test"], {}
    for key in ("event_recall", "fa_per_hour_background", "fa_per_hour_labelled"):
        iv = t[key]
        m[key] = None if iv is None else iv["value"]
        m[f"{key}_lo"], m[f"{key}_hi"] = (None, None) if iv is None else (iv["lo"], iv["hi"])
    m.update(n_events=t["n_events"], hours_background=round(t["hours_background"], 4),
             event_f1=t["event_f1"]["micro_f1"], event_f1_macro=t["event_f1"]["macro_f1"],
             trigger_targets_met=str(report["targets"]["met"]).lower())
    return m


def _print_table(name: str, cards: dict[str, ModelCard]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{name}: programs (macro-F1 on test windows, thresholds from val; pairs: the bench's "
                        "event probes; retention = student / teacher pair accuracy)")
    for col in ("program", "size kB", "macro-F1", "teacher F1", "agreement F1", "probe pairs %", "teacher pairs %",
                "retention", "max |diff| vs eager"):
        table.add_column(col, justify="left" if col == "program" else "right")
    def fmt(value: Any, spec: str) -> str:
        return "n/a" if value is None else format(value, spec)

    for file, card in cards.items():
        m = card.metrics
        pct = lambda key: fmt(None if m.get(key) is None else 100 * m[key], ".1f")  # noqa: E731
        table.add_row(file, f"{card.size_bytes / 1024:.1f}", fmt(m["macro_f1"], ".3f"), fmt(m["teacher_macro_f1"], ".3f"),
                      fmt(m["agreement_f1"], ".3f"), pct("probe_pair_accuracy"), pct("teacher_probe_pair_accuracy"),
                      pct("retention") + ("%" if m.get("retention") is not None else ""),
                      fmt(m["max_abs_diff_vs_eager"], ".2e"))
    Console(width=160).print(table)
