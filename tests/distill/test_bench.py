"""scripts/bench_edge_models.py: one run measures every variant of both students on one thread."""
import importlib.util
import json
from pathlib import Path

import pytest

from distill.tflite import tflite_status

pytestmark = pytest.mark.slow  # needs the tiny distill runs and their exports (minutes)

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_edge_models.py"


def test_bench_measures_every_variant_in_one_run(trigger_export, av_export, trigger_run, av_run, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_edge_models", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.json"
    bench.main([str(trigger_run.out), str(av_run.out), "--calls", "6", "--warmup", "2", "--rounds", "2", "--json", str(out)])
    results = json.loads(out.read_text())
    with_tflite = tflite_status()[0]
    assert results["threads"] == 1
    for student in results["students"]:
        if student["student"] == "trigger":
            assert [r["variant"] for r in student["rows"]] == ["eager fp32", "pte fp32", "pte int8"] + ["tflite fp32"] * with_tflite
        else:  # the av export fixture builds the int8 program only
            assert [r["variant"] for r in student["rows"]] == ["eager fp32", "pte int8"]
        assert student["input"] == "real test window" and student["macs"] > 0
        assert all(r["median_ms"] > 0 for r in student["rows"])
        assert ("realtime_factor" in student["rows"][0]) == (student["student"] == "trigger")
    table = capsys.readouterr().out
    assert "| trigger |" in table and "| av |" in table and "real-time factor" in table
