"""`earshot export`: programs, cards, parity with the eager model on real recordings, MLflow registry.

Parity tolerances (max |difference| of output probabilities, per element,
over test windows of the fixture recordings, one window per call):

- ``.pte`` fp32 vs eager fp32: ``ATOL_FP32`` = 1e-4 (measured ~1e-7: the same
  float32 maths in another order; the log-mel front end alone is within 1e-4,
  tests/shared/test_features.py).
- ``.pte`` int8 vs eager fp32: ``ATOL_INT8`` = 0.2 per probability, mean
  |difference| <= ``MEAN_INT8`` = 0.02, and decisions at the card's thresholds
  agree on >= ``AGREE_INT8`` = 90% of window-label pairs. Measured on the
  students distilled from the dev teacher over every test window: max 0.116
  (trigger) and 0.089 (av), where a logit near 0 moves by a few int8 steps.
  The int8 accuracy gap itself is in each int8 card (``metrics.int8_gap_macro_f1``).
"""
import numpy as np
import pytest

from distill.data import TeacherView, load_split
from distill.io import load_student
from distill.macs import count_macs
from distill.programs import EagerProgram, PteProgram, _outside_front_end, program_outputs
from distill.students import example_inputs
from shared.dataset import load_dataset
from shared.model_card import load_model_card

pytestmark = pytest.mark.slow  # needs the tiny distill runs and their exports (minutes)

ATOL_FP32 = 1e-4
ATOL_INT8 = 0.2
MEAN_INT8 = 0.02
AGREE_INT8 = 0.9
N_WINDOWS = 12


def _test_windows(run, world):
    _, cfg, card = load_student(run.out)
    windows = load_split(load_dataset(world), "test", audio_s=cfg.audio_s, stride_s=card["data"]["stride_s"],
                         teacher_view=TeacherView(1.0, 32, 64),
                         frame_size_px=cfg.frame_size_px if cfg.name == "av" else None, keep_camera=True)
    idx = np.linspace(0, len(windows) - 1, N_WINDOWS).round().astype(int)
    return [windows.student_inputs([k], camera=True) for k in idx]


# The AV export fixture builds the int8 program only (conftest: lowering time).
PRECISIONS = {"trigger": ["fp32", "int8"], "av": ["int8"]}


@pytest.mark.parametrize("student", ["trigger", "av"])
def test_programs_and_cards(student, request):
    cards, folder = request.getfixturevalue(f"{student}_export")
    run = request.getfixturevalue(f"{student}_run")
    files = [f"{student}_xnnpack_{p}.pte" for p in PRECISIONS[student]]
    assert sorted(p.name for p in folder.glob("*.pte")) == files
    model, cfg, _ = load_student(run.out)
    for file in files:
        card = load_model_card(folder / file.replace(".pte", ".json"), check_program=True)
        assert card == cards[file]
        assert card.name == student and card.format == "pte" and card.backend == "xnnpack"
        assert card.features == {**cfg.features.feature_kwargs(), "trim_bins": True}
        assert card.macs == count_macs(model, example_inputs(cfg)).total and card.num_parameters == run.num_parameters
        assert [t.name for t in card.inputs] == (["pcm"] if student == "trigger" else ["frame", "pcm"])
        assert set(card.thresholds) == set(card.labels) and card.metrics["split"] == "test"
        # Everything runs in the XNNPACK delegate except the int16 / uint8 -> float casts at the inputs.
        assert card.extra["delegation"]["delegates"] == ["XnnpackBackend"]
        assert card.extra["delegation"]["portable_ops"] == ["dim_order_ops::_to_dim_order_copy"]
        tolerance = ATOL_FP32 if card.precision == "fp32" else ATOL_INT8  # measured by export on every test window
        assert card.metrics["max_abs_diff_vs_eager"] <= tolerance
        assert card.precision == "fp32" or card.metrics["mean_abs_diff_vs_eager"] <= MEAN_INT8
        if student == "av":
            assert {"confidence_auroc", "agreement_rate"} <= set(card.metrics)
    int8 = cards[f"{student}_xnnpack_int8.pte"]
    assert int8.precision == "int8" and "int8_gap_macro_f1" in int8.metrics
    if "fp32" in PRECISIONS[student]:
        assert int8.size_bytes < cards[f"{student}_xnnpack_fp32.pte"].size_bytes


@pytest.mark.parametrize("student", ["trigger", "av"])
def test_pte_programs_agree_with_the_eager_model_on_real_recordings(student, request, world):
    cards, folder = request.getfixturevalue(f"{student}_export")
    run = request.getfixturevalue(f"{student}_run")
    model, _, _ = load_student(run.out)
    inputs = _test_windows(run, world)
    eager = program_outputs(EagerProgram(model), inputs)
    if "fp32" in PRECISIONS[student]:
        fp32 = program_outputs(PteProgram(folder / f"{student}_xnnpack_fp32.pte"), inputs)
        for e, a in zip(eager, fp32):
            np.testing.assert_allclose(a, e, rtol=0, atol=ATOL_FP32)
    int8 = program_outputs(PteProgram(folder / f"{student}_xnnpack_int8.pte"), inputs)
    for e, q in zip(eager, int8):
        np.testing.assert_allclose(q, e, rtol=0, atol=ATOL_INT8)
        assert np.abs(q - e).mean() <= MEAN_INT8
    thresholds = np.asarray(cards[f"{student}_xnnpack_int8.pte"].threshold_vector())
    assert ((int8[0] >= thresholds) == (eager[0] >= thresholds)).mean() >= AGREE_INT8


def test_int8_leaves_the_front_end_in_float(trigger_run):
    import torch

    model, cfg, _ = load_student(trigger_run.out)
    graph = torch.export.export(model, example_inputs(cfg)).module().graph
    calls = [n for n in graph.nodes if n.op == "call_function"]
    front = [n for n in calls if not _outside_front_end(n)]
    assert any("conv1d" in str(n.target) for n in front)  # the DFT is excluded from annotation
    assert all(_outside_front_end(n) for n in calls if "conv2d" in str(n.target))  # the CNN is quantized


def test_programs_are_logged_and_registered_in_mlflow(trigger_export, av_export, mlflow_env):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_env["uri"])
    for cards, _ in (trigger_export, av_export):
        for file, card in cards.items():
            stem = file.rsplit(".", 1)[0]
            (version,) = client.search_model_versions(f"name = 'earshot-{card.name}-{card.backend}-{card.precision}'")
            assert version.run_id == card.extra["mlflow_run_id"] and version.tags["precision"] == card.precision
            assert version.source.endswith(stem)
            listed = sorted(a.path for a in client.list_artifacts(version.run_id, stem))
            extra = [f"{stem}/{card.extra[k]}" for k in ("trigger_eval", "det_curve", "probes") if k in card.extra]
            assert listed == sorted([f"{stem}/{file}", f"{stem}/{stem}.json", *extra])
            assert client.get_run(version.run_id).data.metrics[f"{stem}/macro_f1"] == pytest.approx(card.metrics["macro_f1"])


@pytest.mark.parametrize("student", ["trigger", "av"])
def test_cards_carry_the_bench_probes_beside_the_teacher_and_controls(student, request):
    """The fixture world's QA folder has a hand-written bench (tests/helpers/distill_world.py): every
    program answers its event probes, and retention is its pair accuracy over the teacher's."""
    import json

    from tests.helpers.distill_world import PROBE_PAIRS

    cards, folder = request.getfixturevalue(f"{student}_export")
    for file, card in cards.items():
        report = json.loads((folder / card.extra["probes"]).read_text())
        mods = ["audio"] if student == "trigger" else ["audio", "visual", "all"]
        assert report["modalities"] == mods
        n_audio = sum(1 for p in PROBE_PAIRS if p[1] == "sound")
        assert report["n_pairs"] == (n_audio if student == "trigger" else len(PROBE_PAIRS))
        systems = set(report["figures"])
        assert {"student", "teacher", "student_shuffled_clip", "teacher_shuffled_clip", "question_only",
                "question_scene", "constant_answer"} <= systems
        for control in ("question_only", "question_scene", "constant_answer"):  # one answer for both windows
            assert report["figures"][control][mods[-1]]["pair"]["value"] == 0.0
        student_pairs = report["figures"]["student"][mods[-1]]["pair"]["value"]
        teacher_pairs = report["figures"]["teacher"][mods[-1]]["pair"]["value"]
        assert card.metrics["probe_pair_accuracy"] == pytest.approx(student_pairs)
        assert card.metrics["teacher_probe_pair_accuracy"] == pytest.approx(teacher_pairs)
        retention = report["retention"][mods[-1]]
        assert (retention is None) == (teacher_pairs == 0)
        assert card.metrics["retention"] == (None if retention is None else pytest.approx(student_pairs / teacher_pairs))
        assert card.metrics["probe_targets_met"] in ("true", "false")


def test_a_wrong_background_path_fails_before_any_program_is_built(trigger_run, mlflow_env, tmp_path, monkeypatch):
    """``trigger.background`` pointing nowhere is a config error, named before the long work."""
    import distill.export as export_mod
    from shared.config import UserError
    from tests.helpers.distill_world import _export

    def no_lowering(*a, **k):
        raise AssertionError("a program was built before the background set was checked")

    monkeypatch.setattr(export_mod, "lower_to_pte", no_lowering)
    missing = tmp_path / "no_background"
    with pytest.raises(UserError, match="no_background"):
        _export(trigger_run, mlflow_env, f"trigger.background={missing}", f"out={tmp_path / 'export'}")
