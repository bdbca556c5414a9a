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
import os
import sys
from pathlib import Path
from typing import Any, Callable, TypeVar

__all__ = ["CONFIG_DIR", "ConfigError", "UserError", "register_schema", "to_schema", "verb", "check"]

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
