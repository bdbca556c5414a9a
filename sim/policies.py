"""Policies the evaluation runs: ``edge.policy``'s, plus ``random``, ``oracle`` and ``learned``.

The heuristic policies are the edge's own objects (what is evaluated is what
runs). ``learned`` is :class:`edge.learned_policy.LearnedPolicy`: the exported
``.pte`` run by the ExecuTorch runtime, as on the glasses. Two references
live only here:

- ``random``: a uniform draw from the action menu (the floor PPO must beat).
- ``oracle``: hindsight. It reads the trace (it knows each query's answers and
  each hop's simulated latency) and spends only where that pays: a query goes
  to the cheapest offload that is right and in time, or stays local when the
  device is right; an important event that the free trigger will not catch in
  its window gets the student or the cheapest offload that catches it. Not
  deployable; it bounds what a policy could reach on these traces.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from sim.traces import KINDS
from edge.policy import ACTIONS, LOOK, OFF, OFFLOAD_AUDIO, OFFLOAD_FULL, OFFLOAD_LIGHT, Action, Observation, make_policy

__all__ = ["RandomPolicy", "OraclePolicy", "make_sim_policy"]

_BY_KIND = {"light": OFFLOAD_LIGHT, "full": OFFLOAD_FULL, "audio": OFFLOAD_AUDIO}


class RandomPolicy:
    """Uniform over :data:`edge.policy.ACTIONS`, seeded by ``reset``."""

    name = "random"

    def __init__(self) -> None:
        self._rng = np.random.default_rng(0)

    def reset(self, seed: int | None = None) -> None:
        self._rng = np.random.default_rng(seed)

    def act(self, obs: Observation) -> Action:
        return ACTIONS[int(self._rng.integers(len(ACTIONS)))]

    def params(self) -> dict[str, Any]:
        return {}


class OraclePolicy:
    """Hindsight policy bound to one (unwrapped) :class:`sim.env.OffloadEnv`."""

    name = "oracle"

    def __init__(self, env) -> None:
        self.env = env

    def reset(self, seed: int | None = None) -> None:
        pass

    def params(self) -> dict[str, Any]:
        return {}

    def _cheapest(self, i: int, good) -> Action | None:
        env = self.env
        if not env._link_up[i]:
            return None
        kinds = [k for k in range(len(env._tx)) if good(k)]
        if not kinds:
            return None
        return _BY_KIND[KINDS[min(kinds, key=lambda k: env._tx[k][i])]]  # fewest bytes: least radio energy

    def act(self, obs: Observation) -> Action:
        env = self.env
        i, t = env._i, env._t_list[env._i]
        q = env._query_at[i]
        if q >= 0 and not env._local_correct[q]:
            deadline = env.budget.deadline_ms
            a = self._cheapest(i, lambda k: env._ok[k][i] and env._cloud_correct[k][q] and env.latency_if_sent_ms(k, i) <= deadline)
            if a is not None:
                return a
        for ev in env._ev_active[i]:
            if env._detected[ev]:
                continue
            h0, h1 = env._ev_hops[ev]
            if any(env._ev_trig[ev][h] for h in range(i, h1 + 1)):
                continue  # the free trigger will catch it
            if env._student_fits and env._ev_stud[ev][i]:
                return LOOK
            a = self._cheapest(i, lambda k: env._ok[k][i] and env._ev_cloud[ev][k][i]
                               and t + env.latency_if_sent_ms(k, i) / 1000.0 <= env._ev_deadline_s[ev])
            if a is not None:
                return a
        return OFF


def make_sim_policy(name: str, params: dict[str, Any], env=None):
    """Build a policy by name (``oracle`` needs the unwrapped env it will act in)."""
    if name == "random":
        return RandomPolicy()
    if name == "oracle":
        if env is None:
            raise ValueError("oracle: needs the environment it acts in")
        return OraclePolicy(env)
    if name == "learned":
        from edge.learned_policy import LearnedPolicy

        return LearnedPolicy(**params)
    return make_policy(name, **params)
