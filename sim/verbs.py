"""Simulator verbs: ``earshot sim train`` and ``earshot sim eval``.

    earshot sim train env.traces=traces out=runs/sim_train
    earshot sim train sim/preset=tiny env.traces=traces out=/tmp/sim_train        # seconds, for tests
    earshot sim eval env.traces=traces policies='[...]'                            # see configs/sim_eval.yaml
    earshot sim eval budget.power_cap_mw=300,600 network=wifi,bluetooth -m      # Hydra multirun (joblib)

The schemas live in ``sim/config.py``; the YAML files carry the defaults and
the trade-off comments. Torch and SB3 are imported only inside the verbs.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from shared.config import verb
from sim.config import SimEvalConfig, SimTrainConfig

__all__ = ["sim_train_main", "sim_eval_main"]


def _job_out(out: str) -> str:
    """Under a Hydra multirun, each job writes to ``out/<its overrides>`` (else ``out``)."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
        if hc.mode == RunMode.MULTIRUN:
            return str(Path(out) / (hc.job.override_dirname or f"job{hc.job.num}"))
    except (ValueError, ImportError):  # not under Hydra (called from Python)
        pass
    return out


@verb("sim_train", SimTrainConfig)
def sim_train_main(cfg: SimTrainConfig) -> None:
    """Train a PPO offloading policy in the simulator and export it to .pte."""
    from sim.train import run

    s = run(replace(cfg, out=_job_out(cfg.out)))
    print(f"PPO {s['total_timesteps']} steps in {s['train_seconds']:.1f} s: greedy return {s['eval_return_mean']:.3f} "
          f"(random {s['random_return_mean']:.3f}); .pte vs torch max |diff| {s['max_abs_logit_diff_pte_vs_torch']:.2e}")
    print(f"program: {s['program']}")


@verb("sim_eval", SimEvalConfig)
def sim_eval_main(cfg: SimEvalConfig) -> None:
    """Evaluate policies x budgets x recordings: table, CSV/JSON and a Pareto plot."""
    from sim.evaluate import run

    run(replace(cfg, out=_job_out(cfg.out)))
