"""`earshot experiment`: config errors before any work, the tiny experiment end to end
(world, QA, shared perception, two variants x two seeds, controls, results.json, MLflow),
the claim subsets and targets, the generated doc."""
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
from cloud.experiment_analysis import analyse, effective_snr_db, snr_bin_of
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


def _rec(i: int, rid: str, category: str, form: str, answer: str, pair: str, **meta) -> QARecord:
    return QARecord(id=f"{rid}.{i:03d}.av", recording_id=rid, category=category, window_s=[0.0, 10.0],
                    t_query_s=10.0, question=f"q {form} {pair}", answer=answer,
                    answer_type="yes_no" if answer in ("yes", "no") else "label",
                    evidence=meta.pop("evidence", "audio"), narration="av",
                    meta={"form": form, "pair_id": pair, "options": meta.pop("options", ["yes", "no"]), **meta})


def _bench(n_rec: int = 8):
    """Per recording: an off-screen AVH-sound pair, a visual-only pair, a lagged ambiguous cause pair."""
    recs = []
    for k in range(n_rec):
        rid = f"r{k}"
        recs += [_rec(0, rid, "AVH", "sound", "yes", f"{rid}.s", pair_offscreen=True, snr_db=5.0),
                 _rec(1, rid, "AVH", "sound", "no", f"{rid}.s", pair_offscreen=True, snr_db=5.0),
                 _rec(2, rid, "AVH", "action", "yes", f"{rid}.v", evidence="visual", snr_db=5.0),
                 _rec(3, rid, "AVH", "action", "no", f"{rid}.v", evidence="visual", snr_db=5.0)]
        cause = dict(options=["doorbell", "knock", "none"], lag_s=3.0, cause_end_before_query_s=4.0, snr_db=5.0,
                     evidence="audiovisual")
        recs += [_rec(4, rid, "TR", "cause", "doorbell", f"{rid}.c", pair_kind="contrast", **cause),
                 _rec(5, rid, "TR", "cause", "knock", f"{rid}.c", pair_kind="contrast", **cause)]
    return recs


def test_data_and_temporal_subsets_and_their_paired_differences():
    bench = _bench()
    # baseline: always says "no" / "doorbell"; treatment: right everywhere but one visual question per recording
    base = [float(r.answer in ("no", "doorbell")) for r in bench]
    treat = [0.0 if (r.meta["form"] == "action" and r.answer == "yes") else 1.0 for r in bench]
    out = analyse("data", bench, {"visual": [base, base], "av": [treat, treat]}, {}, "visual", "av",
                  {"gain_min_pts": 20.0, "visual_drop_max_pts": 2.0})
    sub = {s["key"]: s for s in out["subsets"]}
    assert sub["offscreen_sound"]["systems"]["av"]["pair"]["value"] == 1.0
    assert sub["offscreen_sound"]["systems"]["visual"]["pair"]["value"] == 0.0
    assert sub["offscreen_sound"]["difference"]["value"] == 1.0 and sub["offscreen_sound"]["difference"]["n"] == 8
    assert sub["visual_only"]["difference"]["value"] == pytest.approx(0.5 - 0.5)
    met = {t["target"].split(":")[0]: t["met"] for t in out["targets"]}
    assert met["off-screen sound pairs"] and met["visual-only questions"]
    # temporal: the lagged ambiguous cause records only
    out = analyse("temporal", bench, {"cooccur": [base], "history": [treat]}, {}, "cooccur", "history",
                  {"gain_min_pts": 20.0})
    (lag,) = out["subsets"]
    assert lag["systems"]["cooccur"]["question"]["value"] == 0.5 and lag["systems"]["history"]["question"]["value"] == 1.0
    assert lag["difference"]["value"] == 0.5 and lag["difference"]["n"] == 16
    assert out["targets"][-1]["met"]
    # a treatment that is no better: the claim is not met
    out = analyse("temporal", bench, {"cooccur": [base], "history": [base]}, {}, "cooccur", "history",
                  {"gain_min_pts": 20.0})
    assert not out["targets"][-1]["met"]


def test_seed_averaging_pairs_and_effective_snr():
    bench = _bench(4)
    right = [1.0] * len(bench)
    half = [1.0 if i % 2 else 0.0 for i in range(len(bench))]  # one record of every pair wrong
    out = analyse("data", bench, {"visual": [half, half], "av": [right, half]}, {}, "visual", "av",
                  {"gain_min_pts": 20.0, "visual_drop_max_pts": 2.0})
    closed = out["figures"]["av"]["closed"]
    assert closed["pair"]["value"] == 0.5 and closed["question"]["value"] == 0.75  # seeds averaged
    noisy = _rec(0, "kitchen_s0_00000", "AVH", "sound", "yes", "p", snr_db=5.0, corrupt="audio_noise")
    assert effective_snr_db(noisy) < -3.0 and snr_bin_of(noisy) == "snr_lt0"
    assert snr_bin_of(_rec(0, "x", "AVH", "sound", "yes", "p", snr_db=25.0)) == "snr_ge20"


def test_trust_diagnostics_say_where_the_gate_moved_and_which_errors_remain():
    from cloud.experiment_analysis import trust_diagnostics
    from cloud.results_doc import trust_lines

    bench = []
    for k in range(4):
        rid = f"kitchen_s0_{k:05d}"
        bench += [_rec(0, rid, "AVH", "sound", "yes", f"{rid}.n", snr_db=2.0, cross_modal=True, corrupt="audio_noise"),
                  _rec(1, rid, "AVH", "sound", "no", f"{rid}.n", snr_db=2.0, cross_modal=True, corrupt="audio_noise"),
                  _rec(2, rid, "AVH", "sound", "yes", f"{rid}.b", snr_db=25.0, cross_modal=True, corrupt="video_blur"),
                  _rec(3, rid, "AVH", "sound", "no", f"{rid}.b", snr_db=25.0, cross_modal=True)]
    # the gate: audio trust falls under noise, visual under blur; blind: one constant
    gate_rel = [[0.3, 0.9] if r.meta.get("corrupt") == "audio_noise" else [0.9, 0.2] if r.meta.get("corrupt")
                else [0.8, 0.8] for r in bench]
    blind_rel = [[0.7, 0.7]] * len(bench)
    # below 0 dB the gate misses every "yes" in seed 0 and none in seed 1; blind says "yes" to every "no"
    gate0 = [0.0 if (r.answer == "yes" and r.meta.get("corrupt") == "audio_noise") else 1.0 for r in bench]
    blind = [0.0 if (r.answer == "no" and r.meta.get("corrupt") == "audio_noise") else 1.0 for r in bench]
    out = trust_diagnostics(bench, {"blind": [blind], "gate": [gate0, [1.0] * len(bench)]},
                            {"blind": [blind_rel], "gate": [gate_rel, gate_rel]})
    g = out["trust"]["gate"]
    assert (g["audio_noise"]["audio"], g["audio_noise"]["visual"]) == (pytest.approx(0.3), pytest.approx(0.9))
    assert g["audio_noise"]["n"] == 8 and g["clean"]["n"] == 4 and g["video_hands"] is None
    assert (g["video_blur"]["visual"], g["clean"]["audio"]) == (pytest.approx(0.2), pytest.approx(0.8))
    assert out["trust"]["blind"]["clean"]["audio"] == pytest.approx(0.7)
    assert out["noisy_errors"]["gate"] == {"yes": {"wrong": 0.5, "n": 4}, "no": {"wrong": 0.0, "n": 4}}
    assert out["noisy_errors"]["blind"] == {"yes": {"wrong": 0.0, "n": 4}, "no": {"wrong": 1.0, "n": 4}}
    text = "\n".join(trust_lines({"trust_diagnostics": out}))
    assert "| gate | 0.80 / 0.80 | 0.30 / 0.90 | 0.90 / 0.20 | - |" in text
    assert "| blind | 0.0% (n=4) | 100.0% (n=4) |" in text
    assert trust_lines({"experiment": "data"}) == []


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
def test_tiny_experiment_writes_results_json_with_both_variants_seeds_controls_and_targets(tiny_run):
    root, results = tiny_run
    on_disk = json.loads((root / "runs" / "trust" / RESULTS_FILE).read_text())
    assert on_disk == json.loads(json.dumps(results))
    assert {"schema_version", "experiment", "claim", "command", "scale", "date", "git_commit", "config", "world", "qa",
            "seeds", "variants", "figures", "subsets", "targets", "mlflow_parent_run_id"} <= set(on_disk)
    assert on_disk["experiment"] == "trust" and on_disk["scale"] == "tiny" and on_disk["seeds"] == [0, 1]
    assert list(on_disk["variants"]) == ["blind", "gate"]
    assert [v["role"] for v in on_disk["variants"].values()] == ["baseline", "treatment"]
    for name, v in on_disk["variants"].items():
        assert [r["seed"] for r in v["runs"]] == [0, 1] and v["overrides"] == [f"model.fusion={name}"]
        for r in v["runs"]:
            assert r["steps"] == 30 and (Path(r["model"]) / "model.safetensors").is_file()
    assert set(on_disk["figures"]) == {"blind", "gate", "question_only", "question_scene", "constant_answer",
                                       "shuffled_clip"}
    for fig in on_disk["figures"].values():
        closed = fig["closed"]
        assert closed["pair"]["n"] == sum(on_disk["qa"]["pairs"].values()) > 0
        assert 0.0 <= closed["question"]["lo"] <= closed["question"]["value"] <= closed["question"]["hi"] <= 1.0
    # the question-only control cannot win a pair, by construction
    assert on_disk["figures"]["question_only"]["closed"]["pair"]["value"] <= 0.05
    assert {s["key"] for s in on_disk["subsets"]} == {"cross_modal_snr_lt0", "cross_modal_snr_0_10",
                                                      "cross_modal_snr_10_20", "cross_modal_snr_ge20"}
    assert all(set(t) == {"target", "measured", "met"} for t in on_disk["targets"])
    assert on_disk["qa"]["corrupted"] and on_disk["world"]["recordings"] == 8
    diag = on_disk["trust_diagnostics"]  # the gate's trust per corruption, from its own predictions
    assert set(diag["trust"]) == {"blind", "gate"} and set(diag["trust"]["gate"]) == {
        "clean", "audio_noise", "video_blur", "video_hands"}
    seen = [row for row in diag["trust"]["gate"].values() if row]
    assert seen and all(0.0 < row["audio"] < 1.0 and 0.0 < row["visual"] < 1.0 and row["n"] > 0 for row in seen)
    # the perception phase ran once per seed and both variants started from it
    for seed in (0, 1):
        assert (root / "runs" / "perception" / f"seed{seed}" / "perception" / "model.safetensors").is_file()
        assert not (root / "runs" / "trust" / "gate" / f"seed{seed}" / "perception").exists()


@pytest.mark.slow  # a tiny experiment end to end
def test_tiny_experiment_nests_variant_runs_under_a_parent_mlflow_run(tiny_run):
    from mlflow import MlflowClient

    root, results = tiny_run
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    parent = client.get_run(results["mlflow_parent_run_id"])
    assert parent.info.status == "FINISHED" and parent.data.tags["earshot.experiment"] == "trust"
    assert "gate/closed/pair" in parent.data.metrics
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert {c.info.run_id for c in children} == {r["mlflow_run_id"] for v in results["variants"].values()
                                                 for r in v["runs"]}


@pytest.mark.slow  # a tiny experiment end to end
def test_rerun_skips_finished_variants_and_reproduces_the_numbers(tiny_run, capsys):
    root, results = tiny_run
    # runs saved before a config key existed (here perception.pos_weight*) are the same config
    # as the key's default: rewrite every saved state without them
    for state in [*(root / "runs").glob("*/*/seed*/checkpoints/*/state.json"),
                  *(root / "runs").glob("perception/seed*/perception/perception_state.json")]:
        saved = json.loads(state.read_text())
        for key in ("pos_weight", "pos_weight_max"):
            saved["config"]["perception"].pop(key)
        state.write_text(json.dumps(saved))
    cfg = compose_experiment([*tiny_overrides(root), "mlflow.enabled=false"])
    cwd = os.getcwd()
    os.chdir(root)
    try:
        again = run(cfg)
    finally:
        os.chdir(cwd)
    assert capsys.readouterr().out.count("finished run of the same config, step 30; not retrained") == 4
    assert again["figures"] == results["figures"] and again["subsets"] == results["subsets"]


@pytest.mark.slow  # a tiny experiment end to end
def test_doc_tables_come_from_results_json(tiny_run, tmp_path):
    root, results = tiny_run
    fake = copy.deepcopy(json.loads(json.dumps(results)))
    fake["figures"]["gate"]["closed"]["pair"] = {"value": 0.4321, "lo": 0.40, "hi": 0.46, "n": 17, "n_groups": 5}
    fake["subsets"][0]["difference"] = {"value": 0.1234, "lo": 0.05, "hi": 0.2, "n": 40, "n_groups": 5, "p_value": 0.01}
    fake["targets"] = [{"target": "a made-up target", "measured": "gate 12.3% vs blind 4.5%", "met": False}]
    (tmp_path / "out" / "trust").mkdir(parents=True)
    (tmp_path / "out" / "trust" / RESULTS_FILE).write_text(json.dumps(fake))
    doc = tmp_path / "results.md"
    doc.write_text(f"old\n{NOTES_BEGIN}\nwhy the gate helps: hand-written\n{NOTES_END}\n")

    write_doc(tmp_path / "out", doc)
    text = doc.read_text()
    assert [r["experiment"] for r in load_results(tmp_path / "out")] == ["trust"]
    gate_rows = [line for line in text.splitlines() if line.startswith("| gate |")]
    assert "43.2 [40.0, 46.0]" in gate_rows[0]
    assert "+12.3 [+5.0, +20.0] p=0.010" in text
    assert "| question_only |" in text and "| shuffled_clip |" in text
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
    assert all(r["reused"] for r in history["runs"])
    assert [r["model"] for r in history["runs"]] == [r["model"] for r in results["variants"]["gate"]["runs"]]
    assert not any(r["reused"] for r in cooccur["runs"]) and "runs/temporal/cooccur" in cooccur["runs"][0]["model"]


@pytest.mark.slow  # a tiny experiment end to end
def test_a_different_max_steps_is_refused_not_resumed(tiny_run):
    from shared.config import UserError

    root, _ = tiny_run
    cfg = compose_experiment([*tiny_overrides(root), "mlflow.enabled=false",
                              "train_overrides=['train/preset=tiny','max_steps=40','eval_every=40','checkpoint_every=40',"
                              "'perception.steps=10','data.corrupt_share=0.3']"])
    with pytest.raises(UserError, match="holds a run with max_steps=30, this one asks for 40"):
        run(cfg)
