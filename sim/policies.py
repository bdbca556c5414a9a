"""Policies the evaluation runs: ``edge.policy``'s, plus ``random``, ``oracle`` and ``learned``.

The heuristic policies and the controls (``never_on``, ``query_only``) are the
edge's own objects (what is evaluated is what runs). ``learned`` is
:class:`edge.learned_policy.LearnedPolicy`: the exported ``.pte`` run by the
ExecuTorch runtime, as on the glasses. Two references live only here:

- ``random``: a uniform draw from the action menu (the floor PPO must beat).
- ``oracle``: hindsight. When a recording starts it reads the trace and the
  drawn link and plans, for each query, the cheapest way to answer it right:
  nothing (the trigger's memory is right), an audio, light or full offload at
  the question (in time), the student on the hops that matter, or the camera
  on over the fewest segments of the 5 s before the question whose frames make
  a full offload right (``shared/trace.py``, "Window masks"); an important event the trigger will not catch gets the student or
  the cheapest offload that catches it. Not deployable; a near-upper bound on
  these traces (it ignores budgets it could plan around, such as the power cap).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from edge.policy import ACTIONS, LOOK, OFF, OFFLOAD_AUDIO, OFFLOAD_FULL, OFFLOAD_LIGHT, Action, Observation, make_policy
from shared.trace import N_MASKS, window_segments
from sim.traces import VARIANTS

__all__ = ["RandomPolicy", "OraclePolicy", "make_sim_policy", "SIM_ONLY_POLICIES"]

SIM_ONLY_POLICIES = ("random", "oracle", "learned")
_V = {v: k for k, v in enumerate(VARIANTS)}
_ACTION_OF = {"light": OFFLOAD_LIGHT, "full_now": OFFLOAD_FULL, "full_warm": OFFLOAD_FULL, "audio": OFFLOAD_AUDIO}


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
    """Hindsight policy bound to one (unwrapped) :class:`sim.env.OffloadEnv` (see the module docstring)."""

    name = "oracle"

    def __init__(self, env) -> None:
        self.env = env
        self._seg = None
        self._plan: dict[int, Action] = {}

    def reset(self, seed: int | None = None) -> None:
        self._seg = None

    def params(self) -> dict[str, Any]:
        return {}

    def _in_time(self, v: int, i: int, q: int | None = None) -> bool:
        env, s = self.env, self.env.segment
        if not (s.link_up[i] and s.ok[v][i]) or env.latency_if_sent_ms(v, i) > env.budget.deadline_ms:
            return False
        return q is None or s.st.cloud_correct[v][q]

    @staticmethod
    def _mask_hops(m: int, hq: int, window_hops: int) -> list[int]:
        """The hops before ``hq`` the camera must be on at for window mask ``m``."""
        return [h for k, (lo, hi) in enumerate(window_segments(hq, window_hops)) if m >> k & 1
                for h in range(lo, hi) if h != hq]

    def _plan_segment(self) -> None:
        """For each query of the recording, the cheapest action schedule that answers it right."""
        s = self.env.segment
        tr, ts = s.trace, s.st
        plan: dict[int, Action] = {}
        for q, hq in enumerate(tr.query_hop.tolist()):
            if ts.query_at[hq] != q:
                continue  # asked after the last hop: only the device answers it
            if tr.local_correct(q, [False] * tr.n_hops):
                continue
            cheap = next((v for v in ("audio", "light", "full_now") if self._in_time(_V[v], hq, q)), None)
            if cheap is not None:
                plan[hq] = _ACTION_OF[cheap]
                continue
            hops = tr.student_hops_that_matter(q)
            ran = [False] * tr.n_hops
            for h in hops:
                ran[h] = True
            if tr.local_correct(q, ran):
                for h in hops:
                    plan.setdefault(h, LOOK)
                plan.setdefault(hq, LOOK)
                continue
            if self._in_time(_V["full_warm"], hq, None):
                # the cheapest window coverage that answers it (shared/trace.py, "Window masks")
                masks = [(len(self._mask_hops(m, hq, ts.window_hops)), m) for m in range(1, N_MASKS)
                         if ts.mask_correct[q][m]]
                if masks:
                    for h in self._mask_hops(min(masks)[1], hq, ts.window_hops):
                        if plan.get(h, OFF) in (OFF, OFFLOAD_AUDIO):
                            plan[h] = LOOK
                    plan[hq] = OFFLOAD_FULL
        self._plan = plan

    def act(self, obs: Observation) -> Action:
        env = self.env
        s = env.segment
        if s is not self._seg:
            self._seg = s
            self._plan_segment()
        i = env.hop_index
        planned = self._plan.get(i)
        if planned is not None:
            return planned
        ts = s.st
        t = ts.t[i]
        for ev in ts.ev_active[i]:
            if env._detected[ev] or ts.ev_free[ev]:
                continue  # caught already, or the free trigger will catch it
            if env._student_fits and ts.ev_stud[ev][i]:
                return LOOK
            for name in ("audio", "light", "full_now"):
                v = _V[name]
                if self._in_time(v, i) and ts.ev_cloud[ev][v][i] and \
                        t + env.latency_if_sent_ms(v, i) / 1000.0 <= ts.ev_deadline_s[ev]:
                    return _ACTION_OF[name]
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
        from edge.learned_policy import LearnedPolicy, PolicyProgramError

        policy = LearnedPolicy(**params)
        if env is not None:
            card = policy.card
            if (card["obs_size"], card["trigger_labels"], card["student_labels"]) != (
                    env.observation_space.shape[0], env.trigger_labels, env.student_labels):
                raise PolicyProgramError(
                    f"{policy.program}: trained on another observation (size {card['obs_size']}, its label lists) "
                    f"than these traces give ({env.observation_space.shape[0]}); retrain it with 'earshot sim train'")
        return policy
    return make_policy(name, **params)
