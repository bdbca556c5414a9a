"""`earshot eval`: exact per-category scores, the printed table, the MLflow run."""
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cloud.data import WindowSpec, load_records
from cloud.eval import flat_metrics, score_predictions
from cloud.model.config import ModelConfig
from cloud.model.io import save_teacher
from cloud.model.teacher import AVTeacher
from cloud.model.tokenizer import Tokenizer

from tests.helpers.teacher_world import make_world  # noqa: E402

EARSHOT = str(Path(sys.executable).parent / "earshot")
TINY = dict(audio_channels=16, frame_size_px=32, visual_channels=8, d_model=32, n_heads=2, decoder_layers=1, dropout=0.0)


@pytest.fixture(scope="module")
def qa_dir(tmp_path_factory) -> Path:
    return make_world(tmp_path_factory.mktemp("eval_world"), n_recordings=2)


def test_scores_per_category_evidence_and_snr_are_exact(qa_dir):
    records = load_records(qa_dir, "bench")  # per recording: SSA, AVH, TR, AVDN
    preds = []
    for r in records:
        text = {"SSA": r.answer, "AVH": "yes", "TR": r.answer, "AVDN": r.answer.split(";")[0]}[r.category]
        preds.append({"prediction": text, "reliability": [0.8, 0.6]})
    scores = score_predictions(records, preds)
    # AVH gold is "no" everywhere; AVDN keeps one of two items: F1 = 2 * 1 / (2 + 1).
    assert scores["category"] == pytest.approx({"SSA": 1.0, "AVDN": 2 / 3, "TR": 1.0, "AVH": 0.0})
    assert list(scores["category"]) == ["SSA", "AVDN", "TR", "AVH"]  # the data engine's order
    assert scores["overall"] == pytest.approx((1 + 2 / 3 + 1 + 0) / 4)
    assert scores["evidence"]["audio"] == pytest.approx(0.5)  # SSA right, AVH wrong
    assert set(scores["snr"]) == {"snr_10_20", "snr_ge20"}  # the fixture's recordings: 10 and 20 dB
    metrics = flat_metrics(scores, "bench")
    assert metrics["bench/acc/TR"] == 1.0 and metrics["bench/gate_audio/snr_ge20"] == pytest.approx(0.8)


@pytest.mark.slow  # earshot eval end to end
def test_earshot_eval_prints_the_table_writes_predictions_and_logs_to_mlflow(qa_dir, tmp_path):
    from mlflow import MlflowClient

    records = load_records(qa_dir, "bench")
    tok = Tokenizer.build(t for r in records for t in (r.question, r.answer))
    torch.manual_seed(0)
    model = AVTeacher(ModelConfig(**TINY), len(tok))
    spec = WindowSpec(frame_hz=1.0, frame_size_px=32)
    folder = save_teacher(tmp_path / "model", model, tok, {"data": dataclasses.asdict(spec)})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = subprocess.run(
        [EARSHOT, "eval", f"checkpoint={folder}", f"qa_dir={qa_dir}", "split=bench", f"mlflow.tracking_uri={uri}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    for word in ("SSA", "AVDN", "TR", "AVH", "overall", "by evidence needed", "audio trust"):
        assert word in out.stdout, out.stdout
    lines = [json.loads(l) for l in (folder / "eval_bench.jsonl").read_text().splitlines()]
    assert [l["id"] for l in lines] == [r.id for r in records]
    tr = [l["score"] for l in lines if l["category"] == "TR"]
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("earshot-eval").experiment_id])
    assert run.data.params["split"] == "bench" and run.data.params["n_records"] == str(len(records))
    assert run.data.metrics["bench/acc/TR"] == pytest.approx(sum(tr) / len(tr))
    assert {"bench/acc/SSA", "bench/acc/AVDN", "bench/acc/AVH", "bench/acc/overall"} <= set(run.data.metrics)
    saved = json.loads((folder / "eval_bench.scores.json").read_text())
    assert saved["split"] == "bench" and saved["scores"]["category"]["TR"] == pytest.approx(sum(tr) / len(tr))


def test_eval_reports_a_missing_checkpoint_as_one_line(tmp_path, qa_dir):
    out = subprocess.run([EARSHOT, "eval", f"checkpoint={tmp_path / 'nope'}", f"qa_dir={qa_dir}", "mlflow.enabled=false"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "earshot eval: error:" in out.stderr and "Traceback" not in out.stderr
