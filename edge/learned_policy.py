"""The learned offloading policy on the glasses: a PPO actor exported to ``.pte``.

``earshot sim train`` trains the actor in the simulator and writes
``policy_xnnpack_fp32.pte`` with a card beside it (``policy_xnnpack_fp32.json``)::

    {"card_version": 1, "kind": "offload_policy", "program": "policy_xnnpack_fp32.pte",
     "size_bytes": ..., "sha256": ..., "obs_size": 74,
     "trigger_labels": [...], "student_labels": [...],      # observation_vector's label lists
     "actions": [{"camera": false, "student": false, "offload": "none"}, ...],   # ACTIONS order
     "inputs": [{"name": "obs", "dtype": "float32", "shape": [1, 74]}],
     "outputs": [{"name": "logits", "dtype": "float32", "shape": [1, 5]}], "extra": {...}}

:class:`LearnedPolicy` follows the ``edge.policy`` protocol: it turns the
:class:`~edge.policy.Observation` into :func:`~edge.policy.observation_vector`
(the same vector the simulator trained on), runs the program in ExecuTorch's
runtime and takes the argmax action (deterministic, as evaluated).

Imports: ``shared``, ``edge`` and the ExecuTorch runtime only (edge/ rules).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.policy import ACTIONS, Action, Observation, observation_vector
from shared.config import UserError
from shared.model_card import file_sha256

__all__ = ["POLICY_CARD_VERSION", "PolicyProgramError", "policy_card_path", "LearnedPolicy"]

POLICY_CARD_VERSION = 1


class PolicyProgramError(UserError, RuntimeError):
    """A policy program or card that cannot be used; the message names the file."""


def policy_card_path(program: str | Path) -> Path:
    """``x.pte`` -> ``x.json``."""
    return Path(program).with_suffix(".json")


@dataclass
class LearnedPolicy:
    """Argmax of the exported actor's logits over :data:`edge.policy.ACTIONS`.

    Args:
        program: the ``.pte`` written by ``earshot sim train`` (its card beside it).

    Raises:
        PolicyProgramError: no card, a file that does not match it, an action
            menu that differs from this runtime's ``ACTIONS``, or a runtime error.
    """

    program: str
    name: str = field(default="learned", init=False)

    def __post_init__(self) -> None:
        path = Path(self.program)
        card_path = policy_card_path(path)
        if not path.is_file() or not card_path.is_file():
            raise PolicyProgramError(f"{path}: needs the program and its card {card_path.name}")
        card = json.loads(card_path.read_text())
        if card.get("card_version") != POLICY_CARD_VERSION or card.get("kind") != "offload_policy":
            raise PolicyProgramError(f"{card_path}: not an offload-policy card (version {POLICY_CARD_VERSION})")
        if card.get("size_bytes") != path.stat().st_size or card.get("sha256") != file_sha256(path):
            raise PolicyProgramError(f"{path}: size or sha256 differs from its card (a different or corrupt program)")
        menu = [dict(camera=a.camera, student=a.student, offload=a.offload) for a in ACTIONS]
        if card.get("actions") != menu:
            raise PolicyProgramError(f"{card_path}: trained on another action menu than edge.policy.ACTIONS")
        self.card = card
        self.trigger_labels: list[str] = list(card["trigger_labels"])
        self.student_labels: list[str] = list(card["student_labels"])
        self._vec = np.zeros((1, int(card["obs_size"])), np.float32)
        try:
            import torch
            from executorch.runtime import Runtime

            self._method = Runtime.get().load_program(path).load_method("forward")
            self._torch = torch
        except Exception as exc:  # the runtime raises bare RuntimeErrors for a bad flatbuffer
            raise PolicyProgramError(f"{path}: cannot load the ExecuTorch program ({exc})") from exc

    def reset(self, seed: int | None = None) -> None:
        pass  # stateless: the observation carries the state

    def params(self) -> dict[str, Any]:
        return {"program": str(self.program)}

    def logits(self, vec: np.ndarray) -> np.ndarray:
        """Action logits [len(ACTIONS)] for one observation vector."""
        self._vec[0] = vec
        out = self._method.execute([self._torch.from_numpy(self._vec)])[0]
        return np.asarray(out.numpy() if hasattr(out, "numpy") else out, np.float32)[0]

    def act_vector(self, vec: np.ndarray) -> int:
        """Index into ``ACTIONS`` for an observation vector (the simulator's fast path)."""
        return int(np.argmax(self.logits(vec)))

    def act(self, obs: Observation) -> Action:
        vec = observation_vector(obs, self.trigger_labels, self.student_labels, out=self._vec[0])
        return ACTIONS[self.act_vector(vec)]
