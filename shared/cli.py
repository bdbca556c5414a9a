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
    # Hydra reads sys.argv itself; present it the verb's view of the command line.
    # Our defaults go first: Hydra's argparse refuses overrides after flags
    # such as `--cfg job`.
    sys.argv = [f"earshot {name.replace('_', ' ')}", *_default_overrides(name, rest), *rest]
    app()
    return 0


if __name__ == "__main__":
    sys.exit(main())
