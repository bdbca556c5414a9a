"""Keep ARCHITECTURE.md section 2 true: who may import whom, and no pickle.

| folder   | may import (of the project) |
| shared/  | nothing                     |
| sim/     | shared, edge                |
| cloud/   | shared                      |
| distill/ | shared, cloud               |
| edge/    | shared                      |
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("shared", "sim", "cloud", "distill", "edge")
ALLOWED = {
    "shared": set(),
    "sim": {"shared", "edge"},
    "cloud": {"shared"},
    "distill": {"shared", "cloud"},
    "edge": {"shared"},
}
# Serialisation that can execute code on load: never on the wire or for models.
FORBIDDEN_MODULES = {"pickle", "cPickle", "dill", "cloudpickle", "shelve", "marshal"}


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, top-level module) for every import in a file, nested ones included."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split(".")[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: stays inside its own package
                continue
            out.append((node.lineno, (node.module or "").split(".")[0]))
    return out


def files_of(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def violations(package: str, allowed: set[str]) -> list[str]:
    bad = []
    for path in files_of(package):
        for line, mod in imports_of(path):
            if mod in PACKAGES and mod != package and mod not in allowed:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {mod}")
    return bad


@pytest.mark.parametrize("package", PACKAGES)
def test_import_boundaries(package):
    assert files_of(package), f"{package}/ has no Python files"
    assert violations(package, ALLOWED[package]) == []


def test_the_checker_catches_a_violation(tmp_path, monkeypatch):
    # A test that cannot fail proves nothing: plant a bad import and see it caught.
    fake_root = tmp_path
    (fake_root / "edge").mkdir()
    (fake_root / "edge" / "bad.py").write_text("def f():\n    from cloud.model import Teacher\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", fake_root)
    assert violations("edge", ALLOWED["edge"]) == ["edge/bad.py:2 imports cloud"]


def test_no_pickle_and_safe_torch_load():
    bad = []
    for package in PACKAGES:
        for path in files_of(package):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for line, mod in imports_of(path):
                if mod in FORBIDDEN_MODULES:
                    bad.append(f"{path.relative_to(ROOT)}:{line} imports {mod}")
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "load"
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "torch"
                ):
                    safe = any(
                        k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                        for k in node.keywords
                    )
                    if not safe:
                        bad.append(f"{path.relative_to(ROOT)}:{node.lineno} torch.load without weights_only=True")
    assert bad == []
