"""Rewrite a generated block of the README between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``
(the demo's results, the simulator's held-out study), leaving everything else as it is."""
from __future__ import annotations

from pathlib import Path

__all__ = ["replace_block"]


def replace_block(readme: Path, name: str, block: str) -> None:
    """Put ``block`` between the ``name`` markers of ``readme``.

    Raises:
        SystemExit: the file lacks either marker (nothing is written).
    """
    text = readme.read_text()
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start not in text or end not in text:
        raise SystemExit(f"{readme}: no {start} ... {end} block")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{start}\n{block}\n{end}{tail}")
