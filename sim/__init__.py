"""Earshot simulator: the synthetic world (``sim/world/``) and the offloading
environment ``earshot/Offload-v0`` (``sim/env.py``), registered here with a
string entry point so importing ``sim`` stays cheap (gymnasium only)."""
from gymnasium.envs.registration import register, registry

ENV_ID = "earshot/Offload-v0"

if ENV_ID not in registry:
    register(id=ENV_ID, entry_point="sim.env:OffloadEnv")
