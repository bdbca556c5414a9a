"""``earshot``: one console script, one verb per Hydra app.

Usage::

    earshot --help                 # the verbs this installation has
    earshot <verb> key=value ...   # run a verb (Hydra overrides)
    earshot sim train ...          # two words name the verb sim_train
    earshot <verb> --help          # the verb's config, from Hydra
    earshot <verb> --cfg job       # print the composed config and exit

Verbs are discovered through the ``earshot.verbs`` entry-point group, so each
package (cloud, distill, edge, sim) declares its own verbs in pyproject.toml
and this dispatcher never imports them by name: ``shared`` stays free of the
rest of the project (ARCHITECTURE.md section 2), and a verb is listed only
once it is installed and importable.
"""
from __future__ import annotations

import sys
from importlib.metadata import entry_points

__all__ = ["main", "available_verbs"]

_GROUP = "earshot.verbs"


def available_verbs() -> dict[str, object]:
    """Verb name -> entry point, sorted by name."""
    eps = entry_points(group=_GROUP)
    return {ep.name: ep for ep in sorted(eps, key=lambda e: e.name)}


def _usage(verbs: dict[str, object]) -> str:
    lines = [
        "usage: earshot <verb> [key=value ...] [--help | --cfg job | -m]",
        "",
        "Earshot: an edge-to-cloud audio-visual assistant stack for AR glasses.",
        "Each verb is a Hydra app configured by configs/<verb>.yaml.",
        "",
        "verbs:",
    ]
    width = max((len(v) for v in verbs), default=0)
    for name, ep in verbs.items():
        shown = name.replace("_", " ")
        try:
            summary = getattr(ep.load(), "summary", "")
        except Exception as exc:  # a broken verb must not hide the others
            summary = f"(unavailable: {type(exc).__name__}: {exc})"
        lines.append(f"  {shown.ljust(width)}  {summary}")
    lines += ["", "Run 'earshot <verb> --help' for a verb's options."]
    return "\n".join(lines)


def _default_overrides(verb: str, args: list[str]) -> list[str]:
    """Keep Hydra's per-run logs under runs/logs/<verb>/ unless told otherwise."""
    extra = []
    if not any(a.startswith(("hydra.run.dir=", "++hydra.run.dir=")) for a in args):
        extra.append(f"hydra.run.dir=runs/logs/{verb}/${{now:%Y-%m-%d_%H-%M-%S}}")
    if not any(a.startswith(("hydra.sweep.dir=", "++hydra.sweep.dir=")) for a in args):
        extra.append(f"hydra.sweep.dir=runs/logs/{verb}-multirun/${{now:%Y-%m-%d_%H-%M-%S}}")
    return extra


#: Hydra flags that take a value (the next argument unless written --flag=value).
_VALUE_FLAGS = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name", "-cn",
                "--config-dir", "-cd", "--experimental-rerun"}
#: Hydra flags whose value is optional (taken when the next argument is not an override).
_OPTIONAL_VALUE_FLAGS = {"--info", "-i"}


def _split_flags(args: list[str]) -> tuple[list[str], list[str]]:
    """(flags with their values, overrides), each in the user's order.

    A Hydra override never starts with "-" (``key=v``, ``+key=v``, ``~key``),
    so every argument that does is a flag.
    """
    flags, overrides = [], []
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("-"):
            flags.append(a)
            nxt = args[i + 1] if i + 1 < len(args) else None
            takes = a in _VALUE_FLAGS or (a in _OPTIONAL_VALUE_FLAGS and nxt is not None
                                          and "=" not in nxt and not nxt.startswith("-"))
            if takes and nxt is not None:
                flags.append(nxt)
                i += 1
        else:
            overrides.append(a)
        i += 1
    return flags, overrides


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbs = available_verbs()
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage(verbs))
        return 0
    name, rest = argv[0], argv[1:]
    # Two-word verbs: ``earshot sim train`` is the verb ``sim_train``.
    if name not in verbs and rest and f"{name}_{rest[0]}" in verbs:
        name, rest = f"{name}_{rest[0]}", rest[1:]
    if name not in verbs:
        print(f"earshot: unknown verb {name!r}; verbs: {', '.join(verbs) or '(none installed)'}", file=sys.stderr)
        return 2
    app = verbs[name].load()
    # Hydra reads sys.argv itself; present it the verb's view of the command line:
    # its flags first (with their values), then our defaults, then the user's
    # overrides. Hydra's argparse takes the overrides as one positional list, so
    # an override after a flag (`-m a=1,2`, `a=1 --cfg job b=2`) must not split it.
    flags, overrides = _split_flags(rest)
    sys.argv = [f"earshot {name.replace('_', ' ')}", *flags, *_default_overrides(name, rest), *overrides]
    app()
    return 0


if __name__ == "__main__":
    sys.exit(main())
