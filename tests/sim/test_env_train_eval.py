"""`earshot sim train` (PPO -> safetensors + .pte) and `earshot sim eval` (vectorized sweep, multirun)."""
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from edge.learned_policy import LearnedPolicy, PolicyProgramError
from shared.config import CONFIG_DIR, to_schema
from sim.config import SimEvalConfig, SimTrainConfig
from sim.evaluate import pareto_front

from tests.helpers.trace_double import make_trace_dir  # noqa: E402

EARSHOT = Path(sys.executable).parent / "earshot"


def _cfg(name, schema, overrides):
    import sim.verbs  # noqa: F401  (registers the schemas)

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return to_schema(compose(config_name=name, overrides=overrides), schema)


@pytest.fixture(scope="module")
def traces(tmp_path_factory):
    return make_trace_dir(tmp_path_factory.mktemp("traces"), n=3)


@pytest.fixture(scope="module")
def trained(traces, tmp_path_factory):
    from sim.train import run

    out = tmp_path_factory.mktemp("sim_train")
    cfg = _cfg("sim_train", SimTrainConfig, ["sim/train=tiny", f"env.traces={traces}", f"out={out}", "env.split=all"])
    scratch, before = tmp_path_factory.mktemp("tmpdir"), tempfile.tempdir
    tempfile.tempdir = str(scratch)  # where SB3's default logger would make its SB3-<date> folder
    try:
        result = run(cfg)
    finally:
        tempfile.tempdir = before
    return {**result, "tmp_left": sorted(p.name for p in scratch.iterdir())}


@pytest.mark.slow  # PPO training / Hydra multirun
def test_ppo_beats_random_and_exports_a_pte(trained):
    out = Path(trained["out"])
    assert trained["eval_return_mean"] > trained["random_return_mean"] + 0.3, trained
    assert (out / "policy.safetensors").is_file() and (out / "policy_xnnpack_fp32.pte").is_file()
    assert not list(out.glob("*.zip")) and not list(out.glob("*.pkl"))  # no pickle anywhere
    assert trained["max_abs_logit_diff_pte_vs_torch"] < 1e-4
    assert len(trained["reward_curve"]) > 10
    assert not [n for n in trained["tmp_left"] if n.startswith("SB3-")]  # no stray SB3 logger folder


@pytest.mark.slow  # PPO training / Hydra multirun
def test_safetensors_reload_gives_the_same_actor(trained):
    import torch

    from sim.train import load_actor

    actor, meta = load_actor(Path(trained["out"]) / "policy.safetensors")
    policy = LearnedPolicy(trained["program"])
    x = np.random.default_rng(0).uniform(0, 1, (1, meta["obs_size"])).astype(np.float32)
    with torch.no_grad():
        ref = actor(torch.from_numpy(x)).numpy()[0]
    assert np.allclose(ref, policy.logits(x[0]), atol=1e-5)


@pytest.mark.slow  # PPO training / Hydra multirun
def test_learned_policy_refuses_a_changed_program(trained, tmp_path):
    import shutil

    pte = tmp_path / "policy_xnnpack_fp32.pte"
    shutil.copy(trained["program"], pte)
    shutil.copy(Path(trained["program"]).with_suffix(".json"), pte.with_suffix(".json"))
    pte.write_bytes(pte.read_bytes() + b"\0")
    with pytest.raises(PolicyProgramError, match="sha256"):
        LearnedPolicy(str(pte))


@pytest.mark.slow  # PPO training / Hydra multirun
def test_eval_table_files_intervals_and_targets(traces, trained, tmp_path):
    from sim.evaluate import run

    out = tmp_path / "eval"
    cfg = _cfg("sim_eval", SimEvalConfig, [f"env.traces={traces}", f"out={out}", "grid.power_cap_mw=[300,1000]",
                                           "env.split=all", "env.day_h=0.25", "env.active_share=0.2", "days=2"])
    spec = type(cfg.policies[0])
    cfg.policies += [spec(name="learned", params={"program": trained["program"]}),
                     spec(name="learned", params={"program": trained["program"]})]  # two "seeds", pooled
    summary = run(cfg)
    rows = json.loads((out / "results.json").read_text())
    labels = list(dict.fromkeys(p.label or p.name for p in cfg.policies))
    assert len(rows) == 2 * len(labels) and summary["rows"] == len(rows)
    assert (out / "pareto.png").stat().st_size > 5000 and (out / "results.csv").is_file()
    assert (out / "queries.csv").is_file() and "query success" in (out / "report.md").read_text()
    by = {(r["policy"], r["power_cap_mw"]): r for r in rows}
    assert by[("always_local", 1000.0)]["mb_per_h"] == 0.0
    assert by[("always_cloud", 1000.0)]["frames_share"]["value"] == pytest.approx(1.0)
    assert by[("learned", 1000.0)]["days"] == 4 and by[("never_on", 1000.0)]["days"] == 2
    for r in rows:
        iv = r["query_acc"]
        assert 0.0 <= iv["lo"] <= iv["value"] <= iv["hi"] <= 1.0 and iv["n_groups"] == 3 and r["power_mw"]["value"] > 0
    # capture matters on the doubles: the never-on camera cannot answer the visual question
    never, cloud = by[("never_on", 1000.0)]["query_acc"]["value"], by[("always_cloud", 1000.0)]["query_acc"]["value"]
    assert never < cloud and by[("oracle", 1000.0)]["query_acc"]["value"] >= cloud - 1e-9
    t = next(t for t in summary["targets"] if t["budget"]["power_cap_mw"] == 1000.0)
    assert t["never_on_vs_cloud"]["value"] == pytest.approx(never / cloud)
    assert t["best_heuristic"] in ("always_cloud", "query_only", "context_aware", "audio_trigger", "periodic",
                                   "confidence_threshold", "always_local", "never_on")
    assert set(t["learned_minus_best"]) >= {"value", "lo", "hi", "p_value"}
    # the always-cloud target is vacuous while never-on's interval reaches 95% of always-cloud
    assert t["learned_cloud_target_vacuous"] == (t["never_on_vs_cloud"]["hi"] >= 0.95)
    assert not (t["learned_cloud_target_vacuous"] and t["learned_cloud_target_met"])


def test_kind_table_lists_each_kind_with_its_count_per_policy():
    from sim.evaluate import kind_table

    def ci(v, lo, hi, n):
        return {"value": v, "lo": lo, "hi": hi, "n": n, "n_groups": 2, "p_value": None}

    rows = [{"policy": "never_on", "by_kind_ci": {"count": ci(0.5, 0.25, 0.75, 4), "yes_no": ci(1.0, 1.0, 1.0, 2)}},
            {"policy": "always_cloud", "by_kind_ci": {"count": ci(0.25, 0.0, 0.5, 4), "yes_no": ci(0.0, 0.0, 0.0, 2)}},
            {"policy": "random", "by_kind_ci": {"count": ci(1.0, 1.0, 1.0, 4)}}]
    table = kind_table(rows).splitlines()
    assert table[0] == "| question kind | n | never_on | always_cloud |"  # the controls, in their order
    assert table[2] == "| count | 4 | 50.0 [25.0, 75.0] | 25.0 [0.0, 50.0] |"
    assert table[3] == "| yes_no | 2 | 100.0 [100.0, 100.0] | 0.0 [0.0, 0.0] |"
    assert kind_table([]) == ""


def test_markdown_table_gives_the_events_figure_with_its_count():
    """The events column is over the important events the always-on trigger misses; it says how many,
    so a 0.0 over 27 such events reads differently from one over none (``-``)."""
    from sim.evaluate import EVENTS_COLUMN, markdown_table

    def ci(v, lo, hi, n):
        return {"value": v, "lo": lo, "hi": hi, "n": n, "n_groups": 2, "p_value": None}

    base = {"power_cap_mw": 500.0, "deadline_ms": 300.0, "query_acc": ci(0.5, 0.4, 0.6, 30),
            "power_mw": ci(100.0, 90.0, 110.0, 8), "battery_out": 0.0, "throttled": 0.0,
            "frames_share": ci(0.1, 0.05, 0.15, 8), "p95_ms": 120.0}
    table = markdown_table([{**base, "policy": "oracle", "events": ci(0.0, 0.0, 0.0, 27)},
                            {**base, "policy": "never_on", "events": None}]).splitlines()
    assert EVENTS_COLUMN in table[0] and table[0].count("|") == table[2].count("|")
    assert table[2].split(" | ")[4] == "0.0 [0.0, 0.0] (27)"
    assert table[3].split(" | ")[4] == "-"


def test_pareto_front():
    pts = [(1.0, 0.5), (2.0, 0.9), (3.0, 0.8), (0.5, 0.1), (2.0, 0.7)]
    assert pareto_front(pts) == [3, 0, 1]


@pytest.mark.slow  # PPO training / Hydra multirun
def test_multirun_over_budgets_with_joblib(traces, tmp_path):
    proc = subprocess.run(
        # (-m last: shared/cli.py puts its default hydra.* overrides before the user's arguments)
        [str(EARSHOT), "sim", "eval", "budget.power_cap_mw=300,600", f"env.traces={traces}", "env.split=all", "days=1",
         f"out={tmp_path / 'sweep'}", "plot=false", "policies=[{name: always_local},{name: audio_trigger}]",
         "hydra/launcher=joblib", f"hydra.sweep.dir={tmp_path / 'multirun'}", "-m"],
        cwd=tmp_path, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted(p.name for p in (tmp_path / "sweep").iterdir())
    assert jobs == ["budget.power_cap_mw=300", "budget.power_cap_mw=600"]
    caps = {json.loads((tmp_path / "sweep" / j / "results.json").read_text())[0]["power_cap_mw"] for j in jobs}
    assert caps == {300.0, 600.0}
    assert "JoblibLauncher" in proc.stdout + proc.stderr or (tmp_path / "multirun").is_dir()
