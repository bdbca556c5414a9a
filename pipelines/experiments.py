"""`earshot experiment`: the seed's claims as experiments with a results table.

    earshot experiment experiment=data        # vision-only vs joint AV narrations
    earshot experiment experiment=temporal    # 10 s of audio history vs the co-occurring second
    earshot experiment experiment=trust       # context-aware gate vs context-blind fusion
    earshot experiment experiment=trust experiment/preset=tiny out=/tmp/exp results_doc=/tmp/results.md
    earshot experiment report_only=true       # regenerate docs/results.md only

The schema is ``pipelines/experiment_config.py``; the verb is declared in
``pipelines/verbs.py``. This is orchestration: it may import every part
(``pipelines/`` is the one layer that does).

An experiment (``configs/experiment/<name>.yaml``) names two variants as
``earshot train`` overrides (baseline first), the seeds, the world and QA it
needs, and its targets. `run` does, top to bottom:

1. compose every (variant, seed) train config and validate it, so a bad
   override fails before any data is made or any step is trained;
2. make the world (``earshot synth``) and the QA (``earshot instruct``) if
   they are missing, in this process, or check that the existing ones were
   made with the settings the experiment asks for;
3. open (or reopen) a parent MLflow run for the experiment;
4. per seed, the perception phase once (``<out>/perception/seed<k>``), shared
   by every variant of every experiment (they differ after it); then per
   variant and seed: train the QA phase with ``cloud.train``'s recipe in this
   process (skipped when ``<out>/<name>/<variant>/seed<k>`` holds a finished
   run of the same config, reused when another experiment trained it (the
   treatments of all three are the default teacher); resumed when
   interrupted), nest its MLflow run under the parent, answer the bench
   (cached next to the model; the trust experiment corrupts one modality per
   pair, ``cloud/corrupt.py``);
5. the controls (question only, question + scene, constant answer from the
   training records; the treatment on shuffled clips), the seed-averaged
   figures with recording-level intervals, the claim subsets and their paired
   differences, the targets (``cloud/experiment_analysis.py``); write
   ``<out>/<name>/results.json`` and log it to the parent run;
6. regenerate ``results_doc`` from every results.json under ``out``
   (``cloud/results_doc.py``).
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
import sys
from pathlib import Path
from typing import Any

from pipelines.experiment_config import DataSpec, ExperimentConfig
from shared.config import CONFIG_DIR, ConfigError, UserError

__all__ = ["compose_config", "compose_variants", "prepare_data", "train_variant", "answer_bench", "run", "command_line"]

_STATE_FILE = "experiment_state.json"


# --- 1. variants -------------------------------------------------------------------


def compose_config(name: str, overrides: list[str], schema: type, key: str):
    """Compose ``configs/<name>.yaml`` with ``overrides`` into ``schema`` (inside or outside a
    Hydra app), as ``earshot <name>`` would.

    Raises:
        ConfigError: the overrides do not compose or fail validation, named ``<key>: ...``.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from shared.config import register_schema, to_schema

    register_schema(name, schema)  # the verb's module may not be imported in this process
    try:
        if GlobalHydra.instance().is_initialized():  # inside 'earshot experiment': same config tree
            return to_schema(compose(config_name=name, overrides=overrides), schema)
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            return to_schema(compose(config_name=name, overrides=overrides), schema)
    except ConfigError as exc:
        raise ConfigError(f"{key}: {exc}") from None
    except (HydraException, OmegaConfBaseException) as exc:
        msg = str(exc).splitlines()[0].rstrip(".")  # "Could not override 'model.fusionn'"
        if exc.__cause__ is not None:
            msg += ": " + str(exc.__cause__).splitlines()[0]  # "Key 'fusionn' not in 'ModelConfig'"
        raise ConfigError(f"{key}: {msg}") from None


def compose_variants(cfg: ExperimentConfig) -> dict[tuple[str, int], Any]:
    """(variant, seed) -> validated TrainConfig, baseline first, seeds in order.

    Raises:
        ConfigError: a variant's overrides do not compose or fail validation,
            named ``experiment.variants.<name>``.
    """
    from cloud.teacher_config import TrainConfig

    exp = cfg.experiment
    out = {}
    for name, overrides in exp.variants.items():
        for seed in exp.seeds:
            fixed = [
                f"out={Path(cfg.out) / exp.name / name / f'seed{seed}'}",
                f"seed={seed}",
                f"data.qa_dir={exp.data.qa}",
                f"data.dataset={exp.data.world}",
                f"perception.init={perception_dir(cfg, seed)}",
                f"mlflow.enabled={str(cfg.mlflow.enabled).lower()}",
                f"mlflow.experiment={cfg.mlflow.experiment}",
                f"mlflow.run_name={exp.name}/{name}/seed{seed}",
            ]
            if cfg.mlflow.tracking_uri:
                fixed.append(f"mlflow.tracking_uri={cfg.mlflow.tracking_uri}")
            out[(name, seed)] = compose_config("train", [*cfg.train_overrides, *overrides, *fixed], TrainConfig,
                                               f"experiment.variants.{name}")
    return out


def perception_dir(cfg: ExperimentConfig, seed: int) -> Path:
    """Where the shared perception phase of ``seed`` lives (a training out/)."""
    return Path(cfg.out) / "perception" / f"seed{seed}"


def perception_config(cfg: ExperimentConfig, seed: int):
    """The train config that runs the shared perception phase of ``seed``: the default
    teacher's, since phase 1 does not depend on what the variants change after it."""
    from cloud.teacher_config import TrainConfig

    exp = cfg.experiment
    fixed = [f"out={perception_dir(cfg, seed)}", f"seed={seed}", f"data.qa_dir={exp.data.qa}",
             f"data.dataset={exp.data.world}", "mlflow.enabled=false"]
    return compose_config("train", [*cfg.train_overrides, *fixed], TrainConfig, "train_overrides")


# --- 2. data -----------------------------------------------------------------------


def _synth(overrides: list[str]) -> None:
    """``earshot synth <overrides>``, in this process."""
    from sim.world.verbs import run_synth
    from sim.world.world_config import SynthConfig

    print("$ " + " ".join(["earshot synth", *overrides]), flush=True)
    run_synth(compose_config("synth", overrides, SynthConfig, "experiment.data.synth"))


def _instruct(overrides: list[str]) -> None:
    """``earshot instruct <overrides>``, in this process."""
    from cloud.data_engine.instruct_config import InstructConfig
    from cloud.data_engine.verbs import run_instruct

    print("$ " + " ".join(["earshot instruct", *overrides]), flush=True)
    run_instruct(compose_config("instruct", overrides, InstructConfig, "experiment.data.instruct"))


def _mismatches(overrides: list[str], recorded: dict[str, Any]) -> list[str]:
    """Overrides whose value differs from the recorded config of an existing folder."""
    import yaml

    bad = []
    for o in overrides:
        key, value = o.split("=", 1)
        node: Any = recorded
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        want = yaml.safe_load(value)
        if node != want:
            bad.append(f"{key}={value} (recorded: {node!r})")
    return bad


def prepare_data(spec: DataSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """Make or check the world and the QA; returns their manifest and info.json.

    Raises:
        UserError: an existing folder was made with other settings.
        ConfigError: the synth or instruct overrides do not compose or fail validation.
    """
    world, qa = Path(spec.world), Path(spec.qa)
    made_world = False
    if not (world / "manifest.json").is_file():
        _synth([f"out={world}", *spec.synth, "progress=false"])
        made_world = True
    manifest = json.loads((world / "manifest.json").read_text(encoding="utf-8"))
    bad = _mismatches(spec.synth, manifest.get("config", {}))
    if bad:
        raise UserError(f"experiment.data.world: {world} was made with other settings: {', '.join(bad)}; "
                        "delete it (it is regenerated) or point experiment.data.world elsewhere")
    if made_world or not (qa / "info.json").is_file():
        _instruct([f"dataset={world}", f"out={qa}", *spec.instruct, "progress=false"])
    info = json.loads((qa / "info.json").read_text(encoding="utf-8"))
    bad = _mismatches(spec.instruct, info.get("config", {}))
    named = info.get("dataset")
    if named and Path(named).resolve() != world.resolve():
        bad.append(f"dataset={world} (recorded: {named!r})")
    if bad:
        raise UserError(f"experiment.data.qa: {qa} was made with other settings: {', '.join(bad)}; "
                        "delete it (it is regenerated) or point experiment.data.qa elsewhere")
    return manifest, info


# --- 4. train and answer the bench -------------------------------------------------


def _finished(tcfg) -> dict[str, Any] | None:
    """The final checkpoint's state if ``tcfg.out`` holds a finished run of exactly ``tcfg``."""
    from cloud.train import MODEL_DIR, RESUME_MAY_CHANGE, with_saved_defaults
    from shared.training import config_changes, latest_checkpoint, read_state

    ck = latest_checkpoint(tcfg.out)
    if ck is None or not (Path(tcfg.out) / MODEL_DIR / "model.safetensors").is_file():
        return None
    state = read_state(ck)
    # Logging, evaluation and tracking keys do not change the weights (the keys a resume may change).
    ignored = RESUME_MAY_CHANGE - {"max_steps"}
    # A key added since the run was saved reads as its default then (cloud.train.with_saved_defaults).
    then = with_saved_defaults(state["config"])
    same = not config_changes(then, json.loads(json.dumps(dataclasses.asdict(tcfg))), ignored)
    return state if same and state["step"] >= tcfg.max_steps else None


def _same_run_elsewhere(tcfg, root: Path) -> Path | None:
    """Another variant folder under ``root`` (``<root>/<experiment>/<variant>/seed<k>``) that holds a
    finished run of the same config: the experiments share their treatment (the default
    teacher), and a seeded single-process run is deterministic, so it is not trained twice."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return None
    for checkpoints in sorted(root.glob("*/*/seed*/checkpoints")):
        out = checkpoints.parent
        if out.resolve() != Path(tcfg.out).resolve() and _finished(dataclasses.replace(tcfg, out=str(out))):
            return out
    return None


def train_variant(tcfg, root: Path) -> dict[str, Any]:
    """Train, resume, skip (finished here) or reuse (finished under another experiment) one
    variant; returns its training folder, steps, seconds and MLflow run id."""
    import time

    from cloud.train import run as train_run

    done_here = _finished(tcfg)
    elsewhere = None if done_here else _same_run_elsewhere(tcfg, root)
    if done_here or elsewhere:
        out = Path(tcfg.out) if done_here else elsewhere
        state = done_here or _finished(dataclasses.replace(tcfg, out=str(out)))
        print(f"{out}: finished run of the same config, step {state['step']}; not retrained", flush=True)
        summary = out / "experiment_train.json"
        seconds = json.loads(summary.read_text(encoding="utf-8")).get("train_seconds") if summary.is_file() else None
        return {"out": str(out), "reused": elsewhere is not None, "steps": state["step"],
                "train_seconds": seconds, "mlflow_run_id": state.get("mlflow_run_id")}
    from shared.training import latest_checkpoint, read_state

    ck = latest_checkpoint(tcfg.out)
    if ck is not None:
        then = read_state(ck)["config"]["max_steps"]
        # cloud.train resumes across a max_steps change (the schedule then differs from a
        # fresh run's); an experiment compares fresh runs, so refuse instead.
        if then != tcfg.max_steps:
            raise UserError(f"{tcfg.out} holds a run with max_steps={then}, this one asks for {tcfg.max_steps}; "
                            "pick another out (e.g. out=runs/experiments/<scale> results_root=runs/experiments) or delete the folder")
    t0 = time.perf_counter()
    recipe = train_run(tcfg)
    seconds = time.perf_counter() - t0
    # Wall time of this process only (a resumed run counts its last leg).
    (Path(tcfg.out) / "experiment_train.json").write_text(json.dumps({"train_seconds": seconds}) + "\n", encoding="utf-8")
    return {"out": str(tcfg.out), "reused": False, "steps": recipe.step, "train_seconds": seconds,
            "mlflow_run_id": recipe.mlflow_run_id}


def answer_bench(model_dir: Path, records: list, world: Path, batch_size: int, tag: str) -> list[dict[str, Any]]:
    """Predictions of the model in ``model_dir`` on ``records``, cached in
    ``model_dir/../bench_<tag>.json`` while the weights and the records are unchanged."""
    import hashlib

    digest = hashlib.sha256(json.dumps([[r.id, r.recording_id, r.meta.get("corrupt")] for r in records]).encode())
    key = {"weights_mtime_ns": (model_dir / "model.safetensors").stat().st_mtime_ns, "records": digest.hexdigest(),
           "fields": ["prediction", "option_logprobs", "reliability", "tag_probs"]}
    cache = model_dir.parent / f"bench_{tag}.json"
    if cache.is_file():
        cached = json.loads(cache.read_text(encoding="utf-8"))
        if cached.get("key") == key:
            return cached["predictions"]

    from cloud.data import FeatureCache, QADataset, RecordingStore, WindowSpec
    from cloud.eval import predict
    from cloud.model.io import load_teacher

    model, tokenizer, card = load_teacher(model_dir)
    spec = WindowSpec(**card["data"])
    store = RecordingStore(world, spec.frame_size_px, spec.n_mels)
    dataset = QADataset(records, store, tokenizer, spec, model.cfg.max_question_tokens, model.cfg.max_answer_tokens,
                        cache=FeatureCache(model, store))
    predictions = predict(model, tokenizer, dataset, batch_size)
    cache.write_text(json.dumps({"key": key, "predictions": predictions}) + "\n", encoding="utf-8")
    return predictions


def corrupt_bench(records: list, seed: int = 0) -> list:
    """The trust bench: each pair (both windows alike) gets one corruption by a hash of its
    id: a third audio noise, a third video (blur or hands), a third left clean."""
    import dataclasses as dc
    import hashlib

    from cloud.corrupt import AUDIO_CORRUPTIONS, VIDEO_CORRUPTIONS

    out = []
    for r in records:
        unit = str(r.meta.get("pair_id", r.id))
        h = int.from_bytes(hashlib.sha256(f"{unit}|{seed}".encode()).digest()[:8], "big")
        third, pick = h % 3, (h // 3) % 2
        kind = AUDIO_CORRUPTIONS[0] if third == 0 else VIDEO_CORRUPTIONS[pick] if third == 1 else None
        out.append(dc.replace(r, meta={**r.meta, "corrupt": kind}) if kind else r)
    return out


# --- 3 and 5. tracking and results -------------------------------------------------


def _git_commit() -> str:
    """HEAD of the repository this code runs from, read from .git (no git process)."""
    root = Path(__file__).resolve().parents[1]
    git = root / ".git"
    try:
        if git.is_file():  # a worktree: "gitdir: <path>"
            git = Path(git.read_text(encoding="utf-8").split(":", 1)[1].strip())
        head = (git / "HEAD").read_text(encoding="utf-8").strip()
        if not head.startswith("ref:"):
            return head[:12]
        ref = head.split(" ", 1)[1]
        for base in (git, Path((git / "commondir").read_text().strip()) if (git / "commondir").is_file() else git):
            base = base if base.is_absolute() else git / base
            if (base / ref).is_file():
                return (base / ref).read_text(encoding="utf-8").strip()[:12]
            packed = base / "packed-refs"
            if packed.is_file():
                for line in packed.read_text(encoding="utf-8").splitlines():
                    if line.endswith(" " + ref):
                        return line.split()[0][:12]
    except (OSError, IndexError):
        pass
    return "unknown"


def _open_parent_run(cfg: ExperimentConfig, folder: Path):
    """The experiment's parent MLflow run (children: the variants' training runs), reopened
    when ``folder`` names one of this store."""
    from shared.tracking import make_tracker

    tracker = make_tracker(cfg.mlflow)
    if not tracker.enabled:
        return tracker
    state_path = folder / _STATE_FILE
    state = json.loads(state_path.read_text(encoding="utf-8")) if state_path.is_file() else {}
    run_id = state.get("mlflow_parent_run_id")
    if run_id is not None and tracker.has_run(run_id):
        tracker.start(run_id=run_id)
        return tracker
    tracker.start(run_name=cfg.mlflow.run_name or cfg.experiment.name,
                  tags={"earshot.experiment": cfg.experiment.name, "earshot.scale": cfg.scale})
    params = {"experiment": cfg.experiment.name, "scale": cfg.scale, "train_overrides": " ".join(cfg.train_overrides),
              "world": cfg.experiment.data.world, "qa": cfg.experiment.data.qa}
    params.update({f"variant.{n}": " ".join(o) for n, o in cfg.experiment.variants.items()})
    tracker.params({k: v[:500] for k, v in params.items()})
    folder.mkdir(parents=True, exist_ok=True)
    state_path.write_text(json.dumps({"mlflow_parent_run_id": tracker.run_id}) + "\n", encoding="utf-8")
    return tracker


def _finish_parent_run(tracker, results: dict[str, Any], results_path: Path, failed: bool = False) -> None:
    """Log the headline figures and targets of ``results`` (step 0) and the results file; close the run."""
    metrics = {}
    for name, fig in results.get("figures", {}).items():
        for cat, row in fig.items():
            for level, iv in row.items():
                if iv:
                    metrics[f"{name}/{cat}/{level}"] = float(iv["value"])
    for sub in results.get("subsets", []):
        if sub.get("difference"):
            metrics[f"difference/{sub['key']}"] = float(sub["difference"]["value"])
    for i, t in enumerate(results.get("targets", [])):
        metrics[f"target_met/{i}"] = float(t["met"])
    tracker.metrics(metrics, step=0)
    if results_path.is_file():
        tracker.artifact(results_path)
    tracker.end(failed=failed)


def run(cfg: ExperimentConfig, command: str | None = None) -> dict[str, Any] | None:
    """The verb's body (module docstring). Returns the results, or None for ``report_only``."""
    from cloud.results_doc import RESULTS_FILE, RESULTS_SCHEMA_VERSION, write_doc

    if cfg.report_only:
        if cfg.results_doc:
            print(f"wrote {write_doc(cfg.results_root or cfg.out, cfg.results_doc)}")
        return None

    exp = cfg.experiment
    runs = compose_variants(cfg)  # 1: every config error before any work
    perceptions = {seed: perception_config(cfg, seed) for seed in exp.seeds}
    manifest, info = prepare_data(exp.data)  # 2
    folder = Path(cfg.out) / exp.name
    folder.mkdir(parents=True, exist_ok=True)
    tracker = _open_parent_run(cfg, folder)  # 3

    import torch

    from cloud.controls import fit_priors, prior_answers, shuffled_records
    from cloud.data import load_records
    from cloud.data_engine.scoring import score
    from cloud.experiment_analysis import analyse
    from cloud.train import MODEL_DIR, run_perception

    records = load_records(exp.data.qa, "bench", cfg.eval_max_records)
    if exp.corrupt_bench:
        records = corrupt_bench(records)
    train_av = load_records(exp.data.qa, "train_av")  # the question-prior controls learn from it
    baseline, treatment = list(exp.variants)
    roles = {baseline: "baseline", treatment: "treatment"}
    variants: dict[str, Any] = {n: {"role": roles[n], "overrides": list(exp.variants[n]), "runs": []}
                                for n in exp.variants}
    scores: dict[str, list[list[float]]] = {n: [] for n in exp.variants}
    reliability: dict[str, list[list[Any]]] = {n: [] for n in exp.variants}  # the gate's, per record
    shuffled: list[list[float]] = []
    try:
        for seed in exp.seeds:  # 4
            print(f"=== {exp.name}: perception phase, seed {seed}", flush=True)
            run_perception(perceptions[seed])
            for name in exp.variants:
                tcfg = runs[(name, seed)]
                print(f"=== {exp.name}: variant {name} ({roles[name]}), seed {seed}: "
                      f"{' '.join(exp.variants[name])}", flush=True)
                trained = train_variant(tcfg, Path(cfg.out))
                if not trained["reused"]:  # a reused run stays nested under the experiment that trained it
                    tracker.adopt(trained["mlflow_run_id"])
                torch.set_num_threads(cfg.threads or 1)
                model_dir = Path(trained.pop("out")) / MODEL_DIR
                tag = "trust" if exp.corrupt_bench else "bench"
                preds = answer_bench(model_dir, records, Path(exp.data.world), cfg.eval_batch_size, tag)
                scores[name].append([score(r, p["prediction"]) for r, p in zip(records, preds)])
                reliability[name].append([p.get("reliability") for p in preds])
                variants[name]["runs"].append({"seed": seed, "model": str(model_dir), **trained})
                if name == treatment and len({r.recording_id for r in records}) >= 2:
                    moved = shuffled_records(records, seed)
                    preds = answer_bench(model_dir, moved, Path(exp.data.world), cfg.eval_batch_size, f"{tag}_shuffled")
                    shuffled.append([score(r, p["prediction"]) for r, p in zip(records, preds)])
    except BaseException:
        _finish_parent_run(tracker, {}, folder / RESULTS_FILE, failed=True)
        raise

    priors = fit_priors(train_av)  # 5
    controls: dict[str, Any] = {c: [score(r, a) for r, a in zip(records, prior_answers(priors, records, c))]
                                for c in ("question_only", "question_scene", "constant_answer")}
    if shuffled:
        controls["shuffled_clip"] = shuffled
    analysis = analyse(exp.name, records, scores, controls, baseline, treatment, exp.targets,
                       reliability=reliability)
    splits: dict[str, int] = {}
    for r in manifest.get("recordings", []):
        splits[r["split"]] = splits.get(r["split"], 0) + 1
    pairs = {c: len({r.meta["pair_id"] for r in records if r.category == c and "pair_id" in r.meta})
             for c in ("SSA", "TR", "AVH")}
    results = {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "experiment": exp.name,
        "claim": exp.claim,
        "reference": exp.reference,
        "command": command or f"earshot experiment experiment={exp.name}",
        "scale": cfg.scale,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "git_commit": _git_commit(),
        "config": json.loads(json.dumps(dataclasses.asdict(cfg))),
        "world": {"path": exp.data.world, "recordings": len(manifest.get("recordings", [])), "splits": splits},
        "qa": {"path": exp.data.qa, "bench_records": len(records), "pairs": pairs,
               "recordings": len({r.recording_id for r in records}), "corrupted": exp.corrupt_bench},
        "seeds": list(exp.seeds),
        "baseline": baseline,
        "treatment": treatment,
        "variants": variants,
        **analysis,
        "mlflow_parent_run_id": tracker.run_id,
    }
    path = folder / RESULTS_FILE
    path.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    _finish_parent_run(tracker, results, path)

    from cloud.eval import print_bench
    from cloud.results_doc import subset_lines

    print(f"\n{exp.name}: {exp.claim}")
    print_bench(results["figures"], f"{exp.name}: held-out bench, {len(exp.seeds)} seed(s) averaged")
    print("\n".join(subset_lines(results)))
    print()
    for t in results["targets"]:
        print(f"[{'met' if t['met'] else 'NOT met'}] {t['target']}: {t['measured']}")
    print(f"results: {path}")
    if cfg.results_doc:  # 6
        print(f"wrote {write_doc(cfg.results_root or cfg.out, cfg.results_doc)}")
    return results


def command_line() -> str:
    try:
        from hydra.core.hydra_config import HydraConfig

        task = list(HydraConfig.get().overrides.task)
    except Exception:  # not inside a Hydra app
        task = sys.argv[1:]
    return " ".join(["earshot experiment", *task])
