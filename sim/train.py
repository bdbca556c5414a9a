"""``earshot sim train``: PPO (Stable-Baselines3) on ``earshot/Offload-v0``, exported to ``.pte``.

The recipe, top to bottom: build ``n_envs`` copies of the environment (one
seed each) in SB3's vectorized wrapper, train PPO with an MLP actor-critic,
log the episode reward curve to MLflow, then hand the actor to the edge:

    out/policy.safetensors         actor weights (obs -> logits), safetensors (no pickle)
    out/policy_xnnpack_fp32.pte    torch.export -> XNNPACK -> ExecuTorch program
    out/policy_xnnpack_fp32.json   its card (edge/learned_policy.py documents it)
    out/train.json                 config, reward curve, greedy-policy evaluation

The ``.pte`` is loaded back through :class:`edge.learned_policy.LearnedPolicy`
and compared with the torch actor on the evaluation observations, so what the
glasses run is what was trained. SB3's own ``.zip`` (pickle inside) is never
written or read.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from edge.policy import ACTIONS
from sim.config import SimTrainConfig, make_env_kwargs, write_profiles
from sim.env import ENV_ID

__all__ = ["Actor", "actor_from_sb3", "save_actor", "load_actor", "export_actor", "run"]

PROGRAM = "policy_xnnpack_fp32.pte"


def _torch():
    import torch

    return torch


def Actor(obs_size: int, hidden: list[int], n_actions: int):
    """The deployed network: ``obs [1, obs_size] -> logits [1, n_actions]`` (tanh MLP, SB3's default)."""
    nn = _torch().nn
    layers: list[Any] = []
    width = obs_size
    for h in hidden:
        layers += [nn.Linear(width, h), nn.Tanh()]
        width = h
    layers.append(nn.Linear(width, n_actions))
    return nn.Sequential(*layers)


def actor_from_sb3(model, obs_size: int, hidden: list[int]):
    """Copy the SB3 policy's actor path (``mlp_extractor.policy_net`` + ``action_net``) into :func:`Actor`."""
    actor = Actor(obs_size, hidden, len(ACTIONS))
    src = [m for m in model.policy.mlp_extractor.policy_net if hasattr(m, "weight")] + [model.policy.action_net]
    dst = [m for m in actor if hasattr(m, "weight")]
    for s, d in zip(src, dst, strict=True):
        d.weight.data.copy_(s.weight.data)
        d.bias.data.copy_(s.bias.data)
    return actor.eval()


def save_actor(actor, path: Path, meta: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in actor.state_dict().items()}, str(path),
              metadata={k: json.dumps(v) for k, v in meta.items()})


def load_actor(path: Path):
    """An :func:`Actor` from ``policy.safetensors`` (its sizes are in the file's metadata)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), "pt") as f:
        meta = {k: json.loads(v) for k, v in (f.metadata() or {}).items()}
    actor = Actor(meta["obs_size"], meta["hidden"], meta["n_actions"])
    actor.load_state_dict(load_file(str(path)))
    return actor.eval(), meta


def export_actor(actor, obs_size: int, path: Path, card: dict[str, Any]) -> Path:
    """torch.export -> XNNPACK delegate -> ``.pte``, plus the policy card beside it."""
    torch = _torch()
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    from edge.learned_policy import POLICY_CARD_VERSION, policy_card_path
    from shared.model_card import file_sha256

    example = (torch.zeros(1, obs_size),)
    exported = torch.export.export(actor.eval(), example)
    program = to_edge_transform_and_lower(exported, partitioner=[XnnpackPartitioner()]).to_executorch()
    path.write_bytes(program.buffer)
    full = {
        "card_version": POLICY_CARD_VERSION, "kind": "offload_policy", "program": path.name,
        "size_bytes": path.stat().st_size, "sha256": file_sha256(path), "obs_size": obs_size,
        "actions": [dict(camera=a.camera, student=a.student, offload=a.offload) for a in ACTIONS],
        "inputs": [{"name": "obs", "dtype": "float32", "shape": [1, obs_size],
                    "description": "edge.policy.observation_vector"}],
        "outputs": [{"name": "logits", "dtype": "float32", "shape": [1, len(ACTIONS)],
                     "description": "argmax = index into edge.policy.ACTIONS"}],
        **card,
    }
    policy_card_path(path).write_text(json.dumps(full, indent=2) + "\n")
    return path


def _make_vec_env(kwargs: dict[str, Any], n_envs: int, seed: int):
    import gymnasium as gym
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    import sim  # noqa: F401  (registers the env id)

    def make(k: int):
        def thunk():
            env = Monitor(gym.make(ENV_ID, **kwargs))
            env.reset(seed=seed + k)
            return env

        return thunk

    venv = DummyVecEnv([make(k) for k in range(n_envs)])
    venv.seed(seed)
    return venv


def greedy_returns(policy_fn, kwargs: dict[str, Any], episodes: int, seed: int) -> list[float]:
    """Undiscounted returns of ``policy_fn(obs_vector) -> action index`` over seeded episodes."""
    import gymnasium as gym

    import sim  # noqa: F401

    env = gym.make(ENV_ID, **kwargs).unwrapped
    out = []
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + 10_000 + k)
        total, done = 0.0, False
        while not done:
            obs, r, term, trunc, _ = env.step(policy_fn(obs))
            total += r
            done = term or trunc
        out.append(total)
    return out


def run(cfg: SimTrainConfig) -> dict[str, Any]:
    """The verb's body. Returns the summary written to ``out/train.json``."""
    torch = _torch()
    torch.set_num_threads(cfg.threads or max(1, os.cpu_count() or 1))
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.logger import Logger as SB3Logger

    from edge.learned_policy import LearnedPolicy
    from shared.tracking import make_tracker

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device, network = write_profiles(cfg.device, cfg.network, out)
    kwargs = make_env_kwargs(cfg.env, cfg.budget, cfg.reward, device, network)
    venv = _make_vec_env(kwargs, cfg.ppo.n_envs, cfg.seed)
    probe = venv.envs[0].unwrapped
    obs_size = int(probe.observation_space.shape[0])

    tracker = make_tracker(cfg.mlflow)
    tracker.start(run_name=cfg.mlflow.run_name or "sim-train")
    tracker.params({"seed": cfg.seed, "device": probe.device.name, "network": probe.network.name,
                    "recordings": len(probe.traces), **{f"ppo.{k}": v for k, v in asdict(cfg.ppo).items()},
                    **{f"budget.{k}": v for k, v in asdict(cfg.budget).items()},
                    **{f"reward.{k}": v for k, v in asdict(cfg.reward).items()}})

    curve: list[tuple[int, float]] = []

    class RewardCurve(BaseCallback):
        """Episode returns from the Monitor wrappers -> the reward curve (MLflow ``episode_reward``)."""

        def _on_step(self) -> bool:
            for info in self.locals.get("infos", []):
                ep = info.get("episode")
                if ep is not None:
                    curve.append((self.num_timesteps, float(ep["r"])))
                    tracker.metrics({"episode_reward": float(ep["r"])}, step=self.num_timesteps)
            return True

        def _on_rollout_end(self) -> None:
            tracker.flush()

    p = cfg.ppo
    model = PPO("MlpPolicy", venv, n_steps=p.n_steps, batch_size=p.batch_size, n_epochs=p.n_epochs,
                learning_rate=p.learning_rate, gamma=p.gamma, gae_lambda=p.gae_lambda, clip_range=p.clip_range,
                ent_coef=p.ent_coef, seed=cfg.seed, device="cpu", verbose=0,
                policy_kwargs={"net_arch": {"pi": list(p.net_arch), "vf": list(p.net_arch)}})
    # Metrics go to MLflow (the callback above); SB3's own default logger would leave an empty
    # /tmp/SB3-<date> folder behind on every run.
    model.set_logger(SB3Logger(folder=None, output_formats=[]))
    t0 = time.perf_counter()
    model.learn(total_timesteps=p.total_timesteps, callback=RewardCurve(), progress_bar=True)
    train_s = time.perf_counter() - t0

    # Hand-off to the edge: the actor alone, as safetensors and as an ExecuTorch program.
    actor = actor_from_sb3(model, obs_size, list(p.net_arch))
    labels = {"trigger_labels": probe.trigger_labels, "student_labels": probe.student_labels}
    save_actor(actor, out / "policy.safetensors",
               {"obs_size": obs_size, "hidden": list(p.net_arch), "n_actions": len(ACTIONS), **labels})
    pte = export_actor(actor, obs_size, out / PROGRAM,
                       {**labels, "extra": {"mlflow_run_id": tracker.run_id, "total_timesteps": p.total_timesteps,
                                            "seed": cfg.seed, "network": probe.network.name}})
    learned = LearnedPolicy(str(pte))

    # Greedy returns of the exported program next to a random policy, and torch/pte parity.
    rng = np.random.default_rng(cfg.seed)
    seen: list[np.ndarray] = []

    def pte_act(obs: np.ndarray) -> int:
        seen.append(obs.copy())
        return learned.act_vector(obs)

    returns = greedy_returns(pte_act, kwargs, cfg.eval_episodes, cfg.seed)
    random_returns = greedy_returns(lambda o: int(rng.integers(len(ACTIONS))), kwargs, cfg.eval_episodes, cfg.seed)
    with torch.no_grad():
        batch = np.stack(seen[:512])
        torch_logits = actor(torch.from_numpy(batch)).numpy()
    pte_logits = np.stack([learned.logits(v) for v in batch])
    summary = {
        "out": str(out.resolve()), "program": str(pte.resolve()), "train_seconds": round(train_s, 2),
        "total_timesteps": p.total_timesteps, "episodes_seen": len(curve),
        "eval_return_mean": float(np.mean(returns)), "random_return_mean": float(np.mean(random_returns)),
        "max_abs_logit_diff_pte_vs_torch": float(np.abs(torch_logits - pte_logits).max()),
        "reward_curve": curve, "mlflow_run_id": tracker.run_id,
    }
    tracker.metrics({"eval_return_mean": summary["eval_return_mean"], "random_return_mean": summary["random_return_mean"],
                     "max_abs_logit_diff_pte_vs_torch": summary["max_abs_logit_diff_pte_vs_torch"],
                     "train_seconds": train_s}, step=p.total_timesteps)
    (out / "train.json").write_text(json.dumps(summary, indent=1) + "\n")
    for f in (pte, pte.with_suffix(".json"), out / "policy.safetensors", out / "train.json"):
        tracker.artifact(f, "policy")
    tracker.end()
    venv.close()
    return summary
