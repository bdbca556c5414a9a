"""`earshot experiment`: config errors before any work, the tiny experiment end to end
(world, QA, two trainings, results.json, MLflow), breakdown numbers, the generated doc."""
import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException

import pipelines.verbs  # noqa: F401  (registers experiment_schema)
from cloud.data_engine.records import QARecord
from cloud.experiment_analysis import breakdown, check_targets, prior_agreement, question_prior
from cloud.results_doc import NOTES_BEGIN, NOTES_END, RESULTS_FILE, load_results, write_doc
from pipelines.experiment_config import ExperimentConfig
from pipelines.experiments import run
from shared.config import CONFIG_DIR, ConfigError, to_schema

EARSHOT = str(Path(sys.executable).parent / "earshot")


def compose_experiment(overrides: list[str]) -> ExperimentConfig:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return to_schema(compose(config_name="experiment", overrides=overrides), ExperimentConfig)


def tiny_overrides(root: Path, name: str = "trust") -> list[str]:
    return [
        f"experiment={name}", "experiment/preset=tiny", f"out={root / 'runs'}", f"results_doc={root / 'results.md'}",
        f"experiment.data.world={root / 'world'}", f"experiment.data.qa={root / 'qa'}",
        f"mlflow.tracking_uri=sqlite:///{root / 'mlflow.db'}",
    ]


# --- config errors: before any data is made or any step is trained ----------------


def test_unknown_experiment_name_is_refused_at_compose():
    with pytest.raises(ConfigCompositionException, match="experiment/nope"):
        compose_experiment(["experiment=nope"])


@pytest.mark.parametrize("override, message", [
    ("['model.fusion=nope']", "experiment.variants.gate: model.fusion: must be one of"),
    ("['model.fusionn=gate']", "experiment.variants.gate: .*model.fusionn"),
    ("['data.audio_history_s=0.3']", "experiment.variants.gate: data.audio_history_s"),
])
def test_bad_variant_override_fails_before_any_work(tmp_path, override, message):
    cfg = compose_experiment([*tiny_overrides(tmp_path), f"experiment.variants.gate={override}"])
    with pytest.raises(ConfigError, match=message):
        run(cfg)
    assert not (tmp_path / "world").exists() and not (tmp_path / "runs").exists()


def test_reserved_and_malformed_overrides_fail_validation(tmp_path):
    with pytest.raises(ConfigError, match="experiment.variants.gate: 'out=x': out is set by the experiment"):
        compose_experiment([*tiny_overrides(tmp_path), "experiment.variants.gate=['out=x']"])
    with pytest.raises(ConfigError, match="experiment.targets: trust needs exactly"):
        compose_experiment([*tiny_overrides(tmp_path), "+experiment.targets.avh_max=1.0"])
    with pytest.raises(ConfigError, match="experiment.variants: must name exactly two"):
        compose_experiment([*tiny_overrides(tmp_path), "+experiment.variants.third=['model.fusion=gate']"])


def test_cli_reports_a_bad_variant_as_a_config_error(tmp_path):
    done = subprocess.run(
        [EARSHOT, "experiment", *tiny_overrides(tmp_path), "experiment.variants.blind=['model.d_model=7']"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "earshot experiment: config error: experiment.variants.blind: model.d_model" in done.stderr
    assert not (tmp_path / "world").exists()


# --- the numbers ---------------------------------------------------------------------


def _tr(i: int, lag: float | None, form: str, answer: str = "doorbell", t_query: float = 10.0) -> QARecord:
    meta = {"form": form, "snr_db": -2.0 if i % 2 else 25.0, "event_ids": [f"e{i}"]}
    if lag is not None:
        meta["lag_s"] = lag
    return QARecord(id=f"r.w00.tr{i:02d}.av", recording_id="r", category="TR", window_s=[0.0, t_query],
                    t_query_s=t_query, question="what caused open_door?", answer=answer, answer_type="label",
                    evidence="audiovisual", narration="av", meta=meta)


def test_breakdown_buckets_tr_by_lag_and_sound_age():
    records = [_tr(0, 1.5, "cause"), _tr(1, 1.7, "response"), _tr(2, 3.2, "cause"), _tr(3, 0.2, "cause"), _tr(4, None, "first")]
    right = ["doorbell", "doorbell", "knock", "doorbell", "doorbell"]
    preds = [{"prediction": p, "reliability": [0.2 + 0.1 * i, 0.9]} for i, p in enumerate(right)]
    # e0 and e3 are sounds that ended 8 s before the query; e4 ended inside the last second.
    offsets = {"e0": [2.0], "e3": [2.0], "e4": [9.5]}
    b = breakdown(records, preds, lambda r: offsets.get(r.meta["event_ids"][0], []))
    assert b["tr"]["all"] == {"value": 4 / 5, "n": 5}
    assert b["tr"]["lagged"] == {"value": 2 / 3, "n": 3}  # the 0.2 s lag is not a 1-5 s chain
    assert b["tr"]["cause"] == {"value": 1 / 2, "n": 2}
    assert b["tr"]["lag_1_2"] == {"value": 1.0, "n": 2} and b["tr"]["lag_3_4"] == {"value": 0.0, "n": 1}
    assert b["tr"]["old_sound"] == {"value": 1.0, "n": 2}
    assert b["snr"]["snr_lt0"]["n"] == 2 and b["snr"]["snr_ge20"] == {"value": 2 / 3, "n": 3}
    assert b["gate_audio"]["snr_lt0"]["value"] == pytest.approx((0.3 + 0.5) / 2)
    assert b["category"]["overall"]["value"] == pytest.approx(0.8)


def test_question_prior_answers_each_question_with_its_training_majority():
    def avh(i, question, answer):
        return QARecord(id=f"r.w00.avh{i:02d}.av", recording_id="r", category="AVH", window_s=[0.0, 10.0], t_query_s=10.0,
                        question=question, answer=answer, answer_type="yes_no", evidence="audio", narration="av", meta={})

    train = [avh(0, "did you hear knock?", "no"), avh(1, "did you hear knock?", "no"), avh(2, "did you hear knock?", "yes"),
             avh(3, "did you hear speech?", "yes"), avh(4, "did you hear alarm?", "no"), avh(5, "did you hear alarm?", "no")]
    bench = [avh(6, "did you hear knock?", "no"), avh(7, "did you hear speech?", "no"), avh(8, "did you hear horn?", "no")]
    assert question_prior(train, bench, lambda r: True) == {"value": 2 / 3, "n": 3}  # unseen 'horn': the majority, no
    said = [{"prediction": "No."}, {"prediction": "yes"}, {"prediction": "yes"}]  # 'horn' was never asked in train
    assert prior_agreement(train, bench, said) == {"agree": {"value": 1.0, "n": 2}, "prior_right": {"value": 1.0, "n": 1},
                                                   "prior_wrong": {"value": 0.0, "n": 1}}


def test_targets_compare_the_two_variants():
    def scores(ssa, visual, avh):
        return {"category": {"SSA": {"value": ssa, "n": 10}, "AVH": {"value": avh, "n": 10}},
                "evidence": {"visual": {"value": visual, "n": 10}}}

    targets = {"ssa_ratio_min": 2.0, "visual_drop_max_pts": 2.0, "avh_min": 0.9}
    met = check_targets("data", targets, "visual", "av", {"visual": scores(0.3, 0.80, 0.6), "av": scores(0.6, 0.785, 0.9)})
    assert [t["met"] for t in met] == [True, True, True]
    met = check_targets("data", targets, "visual", "av", {"visual": scores(0.3, 0.80, 0.6), "av": scores(0.59, 0.77, 0.89)})
    assert [t["met"] for t in met] == [False, False, False]
    assert "0.59" not in met[0]["measured"] and "59.0%" in met[0]["measured"]


# --- end to end on the tiny preset ---------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The tiny trust experiment, from no world to results.json and a doc (in a tmp dir)."""
    root = tmp_path_factory.mktemp("experiment")
    cwd = os.getcwd()
    os.chdir(root)  # whatever the run writes relative to the working directory stays here
    try:
        results = run(compose_experiment(tiny_overrides(root)), command="earshot experiment experiment=trust (test)")
    finally:
        os.chdir(cwd)
    return root, results


@pytest.mark.slow  # a tiny experiment end to end
def test_tiny_experiment_writes_results_json_with_both_variants_and_targets(tiny_run):
    root, results = tiny_run
    on_disk = json.loads((root / "runs" / "trust" / RESULTS_FILE).read_text())
    assert on_disk == json.loads(json.dumps(results))
    assert {"schema_version", "experiment", "claim", "command", "scale", "date", "git_commit", "config", "world", "qa",
            "variants", "targets", "no_look_baselines", "mlflow_parent_run_id"} <= set(on_disk)
    assert on_disk["experiment"] == "trust" and on_disk["scale"] == "tiny"
    assert list(on_disk["variants"]) == ["blind", "gate"]
    assert [v["role"] for v in on_disk["variants"].values()] == ["baseline", "treatment"]
    for name, v in on_disk["variants"].items():
        assert v["steps"] == 30 and v["overrides"] == [f"model.fusion={name}"]
        assert (Path(v["model"]) / "model.safetensors").is_file()
        s = v["scores"]
        assert {"category", "evidence", "snr", "snr_audio", "gate_audio", "ssa", "avh", "tr"} <= set(s)
        assert s["category"]["overall"]["n"] == on_disk["qa"]["bench_records"] > 0
        for cells in s.values():
            for cell in cells.values():
                assert cell["n"] > 0 and 0.0 <= cell["value"] <= 1.0
    assert [set(t) for t in on_disk["targets"]] == [{"target", "measured", "met"}] * 2
    assert on_disk["world"]["recordings"] == 4 and (root / "qa" / "bench.jsonl").is_file()


@pytest.mark.slow  # a tiny experiment end to end
def test_tiny_experiment_nests_variant_runs_under_a_parent_mlflow_run(tiny_run):
    from mlflow import MlflowClient

    root, results = tiny_run
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    parent = client.get_run(results["mlflow_parent_run_id"])
    assert parent.info.status == "FINISHED" and parent.data.tags["earshot.experiment"] == "trust"
    assert "gate/category/overall" in parent.data.metrics
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert {c.info.run_id for c in children} == {v["mlflow_run_id"] for v in results["variants"].values()}


@pytest.mark.slow  # a tiny experiment end to end
def test_rerun_skips_finished_variants_and_reproduces_the_numbers(tiny_run, capsys):
    root, results = tiny_run
    cfg = compose_experiment([*tiny_overrides(root), "mlflow.enabled=false"])
    cwd = os.getcwd()
    os.chdir(root)
    try:
        again = run(cfg)
    finally:
        os.chdir(cwd)
    assert "finished run of the same config, step 30; not retrained" in capsys.readouterr().out
    assert again["variants"]["gate"]["scores"] == results["variants"]["gate"]["scores"]


@pytest.mark.slow  # a tiny experiment end to end
def test_doc_tables_come_from_results_json(tiny_run, tmp_path):
    root, results = tiny_run
    fake = copy.deepcopy(json.loads(json.dumps(results)))
    fake["variants"]["gate"]["scores"]["snr"]["snr_0_10"] = {"value": 0.4321, "n": 17}
    fake["variants"]["blind"]["scores"]["snr"]["snr_0_10"]["n"] = 17  # the header counts come from the baseline
    fake["variants"]["blind"]["scores"]["category"]["AVH"] = {"value": 0.8766, "n": 9}
    fake["targets"] = [{"target": "a made-up target", "measured": "gate 12.3% vs blind 4.5%", "met": False}]
    (tmp_path / "out" / "trust").mkdir(parents=True)
    (tmp_path / "out" / "trust" / RESULTS_FILE).write_text(json.dumps(fake))
    doc = tmp_path / "results.md"
    doc.write_text(f"old\n{NOTES_BEGIN}\nwhy the gate helps: hand-written\n{NOTES_END}\n")

    write_doc(tmp_path / "out", doc)
    text = doc.read_text()
    assert [r["experiment"] for r in load_results(tmp_path / "out")] == ["trust"]
    gate_rows = [line for line in text.splitlines() if line.startswith("| gate |")]
    blind_rows = [line for line in text.splitlines() if line.startswith("| blind |")]
    assert "| 43.2 |" in gate_rows[0] and "0-10 dB (n=17)" in text  # the SNR table: first of trust
    assert "| 87.7 |" in blind_rows[0] and "AVH (n=9)" in text
    assert "| a made-up target | gate 12.3% vs blind 4.5% | **no** |" in text
    assert "why the gate helps: hand-written" in text and "old" not in text.splitlines()[0]
    assert f"`{results['command']}`" in text and results["git_commit"] in text and "`tiny`" in text


@pytest.mark.slow  # a tiny experiment end to end
def test_a_variant_trained_by_another_experiment_is_reused(tiny_run, capsys):
    # temporal's treatment (10 s of history) is the default teacher: trust's gate variant.
    root, results = tiny_run
    cwd = os.getcwd()
    os.chdir(root)
    try:
        temporal = run(compose_experiment([*tiny_overrides(root, "temporal"), "mlflow.enabled=false"]))
    finally:
        os.chdir(cwd)
    history, cooccur = temporal["variants"]["history"], temporal["variants"]["cooccur"]
    assert history["reused"] and Path(history["model"]) == Path(results["variants"]["gate"]["model"])
    assert not cooccur["reused"] and "runs/temporal/cooccur" in cooccur["model"]
    assert history["scores"]["category"] == results["variants"]["gate"]["scores"]["category"]


@pytest.mark.slow  # a tiny experiment end to end
def test_a_different_max_steps_is_refused_not_resumed(tiny_run):
    from shared.config import UserError

    root, _ = tiny_run
    cfg = compose_experiment([*tiny_overrides(root), "mlflow.enabled=false",
                              "train_overrides=['train/preset=tiny','max_steps=40','eval_every=40','checkpoint_every=40']"])
    with pytest.raises(UserError, match="holds a run with max_steps=30, this one asks for 40"):
        run(cfg)
