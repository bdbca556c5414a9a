"""Hydra plumbing shared by every ``earshot`` verb.

Every verb is a Hydra app whose primary config ``configs/<verb>.yaml`` starts
from a structured schema (a dataclass registered in Hydra's ConfigStore as
``<verb>_schema``). That gives two layers of checking, both before any work:

1. Hydra/OmegaConf reject unknown keys and values of the wrong type while
   composing (``earshot synth n_recordingz=3`` fails, naming the key).
2. :func:`to_schema` turns the composed config into the dataclass, which runs
   its ``__post_init__`` checks (ranges, cross-field rules); a failure is
   reported as ``config error: <field>: <problem>`` with exit code 2.

Use :func:`verb` to declare a verb::

    @dataclass
    class InspectConfig:
        path: str = MISSING

    @verb("inspect", InspectConfig)
    def inspect_main(cfg: InspectConfig) -> None:
        '''Summarise a recording folder.'''
"""
from __future__ import annotations

import functools
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

__all__ = [
    "CONFIG_DIR", "MAX_THREADS", "ConfigError", "UserError", "register_schema", "to_schema", "verb",
    "check", "check_range", "check_choice", "check_threads", "check_recipe_loop", "TrackingConfig", "OptimConfig",
]

#: Root of the Hydra configs. The repository's ``configs/`` for a source or
#: editable install; ``EARSHOT_CONFIG_DIR`` points elsewhere (a packaged
#: deployment, or your own config tree).
CONFIG_DIR = Path(
    os.environ.get("EARSHOT_CONFIG_DIR", Path(__file__).resolve().parents[1] / "configs")
)

T = TypeVar("T")


class UserError(Exception):
    """An error the user can fix (bad input or config). Verbs print its message
    without a traceback and exit with status 2."""


class ConfigError(UserError, ValueError):
    """A config value that fails validation; the message starts with the key."""


def check(ok: bool, key: str, msg: str) -> None:
    """Raise :class:`ConfigError` ``"<key>: <msg>"`` unless ``ok`` (for ``__post_init__``)."""
    if not ok:
        raise ConfigError(f"{key}: {msg}")


def _num(x: float) -> str:
    """A bound as people write it: 4096, 0.25, 1e7, 2^31."""
    if isinstance(x, int) and not isinstance(x, bool):
        if x >= 100_000 and 10 ** round(math.log10(x)) == x:
            return f"1e{round(math.log10(x))}"
        if x >= 65_536 and x & (x - 1) == 0:
            return f"2^{x.bit_length() - 1}"
        return str(x)
    return f"{x:g}"


def check_range(key: str, value: float, lo: float | None = None, hi: float | None = None, *,
                lo_open: bool = False, hi_open: bool = False, unit: str = "", note: str = "") -> None:
    """Raise :class:`ConfigError` unless ``lo <= value <= hi`` (``<`` on an open side).

    The message names the key, the range, its unit and an optional note, then the
    value: ``"optim.lr: must be in (0, 1], got 2.0"``, ``"grad_clip: must be >= 0
    (0 = off), got -1"``, ``"window_s: must be in [2, 10] s, got 12"``. A NaN fails.
    Either bound may be None (no bound on that side).
    """
    above = lo is None or (value > lo if lo_open else value >= lo)
    below = hi is None or (value < hi if hi_open else value <= hi)
    if above and below and not (isinstance(value, float) and math.isnan(value)):
        return
    if lo is not None and hi is not None:
        rng = f"in {'(' if lo_open else '['}{_num(lo)}, {_num(hi)}{')' if hi_open else ']'}"
    elif lo is not None:
        rng = f"{'>' if lo_open else '>='} {_num(lo)}"
    else:
        rng = f"{'<' if hi_open else '<='} {_num(hi)}"  # type: ignore[arg-type]
    raise ConfigError(f"{key}: must be {rng}{' ' + unit if unit else ''}{f' ({note})' if note else ''}, got {value}")


def check_choice(key: str, value: Any, options: Iterable[Any]) -> None:
    """Raise :class:`ConfigError` ``"<key>: must be one of (...), got 'x'"`` unless ``value in options``."""
    options = tuple(options)
    check(value in options, key, f"must be one of {options}, got {value!r}")


#: Upper bound of every ``threads`` setting (0 means: let the verb pick, see its YAML).
MAX_THREADS = 256


def check_threads(value: int, key: str = "threads") -> None:
    """The one ``threads`` rule: 0 (the verb's default, see its YAML) .. MAX_THREADS."""
    check_range(key, value, 0, MAX_THREADS, note="0 = the verb's default")


@dataclass
class TrackingConfig:
    """Where a verb's runs are tracked (MLflow; ``shared/tracking.py``).

    The store is ``tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else
    ``sqlite:///mlflow.db`` in the working directory. A new experiment keeps its
    artifacts in ``artifact_location``, else ``mlruns/`` beside an sqlite store's
    database file.
    """

    enabled: bool = True
    tracking_uri: str | None = None
    experiment: str = "earshot"
    run_name: str | None = None
    artifact_location: str | None = None

    def __post_init__(self) -> None:
        check(bool(str(self.experiment).strip()), "mlflow.experiment", "must name an MLflow experiment")


@dataclass
class OptimConfig:
    """AdamW with linear warm-up and cosine decay (``shared.training.lr_at``)."""

    lr: float = 2e-3
    weight_decay: float = 0.05
    beta1: float = 0.9
    beta2: float = 0.98
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        p = "optim."
        check_range(p + "lr", self.lr, 0.0, 1.0, lo_open=True)
        check_range(p + "weight_decay", self.weight_decay, 0.0, 1.0)
        check_range(p + "beta1", self.beta1, 0.0, 1.0, hi_open=True)
        check_range(p + "beta2", self.beta2, 0.0, 1.0, hi_open=True)
        check_range(p + "warmup_steps", self.warmup_steps, 0)
        check_range(p + "min_lr_ratio", self.min_lr_ratio, 0.0, 1.0)
        check_range(p + "grad_clip", self.grad_clip, 0.0, note="0 = off")


def register_schema(name: str, schema: type) -> None:
    """Store ``schema`` in Hydra's ConfigStore as ``<name>_schema``."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name=f"{name}_schema", node=schema)


def to_schema(cfg: Any, schema: type[T]) -> T:
    """Turn a composed DictConfig into an instance of ``schema``.

    Raises:
        ConfigError: the schema's own validation failed.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        obj = OmegaConf.to_object(cfg)
    except ConfigError:
        raise
    except OmegaConfBaseException as exc:
        cause = exc.__cause__
        if isinstance(cause, ConfigError):
            raise cause from None
        raise ConfigError(str(exc).splitlines()[0]) from exc
    if not isinstance(obj, schema):
        raise ConfigError(f"config did not compose to {schema.__name__} (got {type(obj).__name__})")
    return obj


def verb(name: str, schema: type[T]) -> Callable[[Callable[[T], Any]], Callable[[], Any]]:
    """Declare an ``earshot <name>`` verb backed by ``configs/<name>.yaml``.

    The wrapped function receives the validated schema instance. A
    :class:`UserError` raised anywhere in the verb is printed as one line,
    ``earshot <name>: error: <message>``, with exit status 2.
    """
    register_schema(name, schema)

    def wrap(fn: Callable[[T], Any]) -> Callable[[], Any]:
        import hydra

        @functools.wraps(fn)
        def task(cfg: Any) -> Any:
            try:
                return fn(to_schema(cfg, schema))
            except ConfigError as exc:
                print(f"earshot {name}: config error: {exc}", file=sys.stderr)
                sys.exit(2)
            except UserError as exc:
                print(f"earshot {name}: error: {exc}", file=sys.stderr)
                sys.exit(2)

        main = hydra.main(config_path=str(CONFIG_DIR), config_name=name, version_base="1.3")(task)
        main.verb_name = name  # type: ignore[attr-defined]
        main.summary = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""  # type: ignore[attr-defined]
        return main

    return wrap


def check_recipe_loop(cfg: Any) -> None:
    """The loop settings both training recipes share (``earshot train``, ``earshot distill``):
    ``out``, ``seed``, ``max_steps``, ``batch_size``, the ``*_every`` periods, ``keep_checkpoints``,
    ``threads``."""
    check(bool(str(cfg.out).strip()), "out", "must name a folder")
    check_range("seed", cfg.seed, 0, 2**31, hi_open=True)
    check_range("max_steps", cfg.max_steps, 1, 10_000_000)
    check_range("batch_size", cfg.batch_size, 1, 4096)
    for key in ("log_every", "eval_every", "checkpoint_every", "keep_checkpoints"):
        check_range(key, getattr(cfg, key), 1)
    check_threads(cfg.threads)
