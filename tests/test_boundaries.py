"""Keep ARCHITECTURE.md section 2 and docs/architecture.md true: who may import whom, no
import cycles, no verb run as a subprocess by a library package, and no pickle.

| folder     | may import (of the project) |
| shared/    | nothing                     |
| sim/       | shared, edge                |
| cloud/     | shared                      |
| distill/   | shared, cloud               |
| edge/      | shared                      |
| pipelines/ | everything (orchestration)  |
"""
import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("shared", "sim", "cloud", "distill", "edge", "pipelines")
#: The library packages: everything but the orchestration layer.
LIBRARIES = ("shared", "sim", "cloud", "distill", "edge")
ALLOWED = {
    "shared": set(),
    "sim": {"shared", "edge"},
    "cloud": {"shared"},
    "distill": {"shared", "cloud"},
    "edge": {"shared"},
    "pipelines": set(LIBRARIES),
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
    monkeypatch.setattr(sys.modules[__name__], "ROOT", fake_root)
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


# --- import cycles -------------------------------------------------------------------


def module_name(path: Path, root: Path) -> str:
    """shared/config.py -> shared.config; cloud/model/__init__.py -> cloud.model."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path, packages=PACKAGES) -> dict[str, set[str]]:
    """Module -> project modules it imports (nested imports too: a lazy import still ties two
    modules together). ``from a.b import c`` counts as ``a.b.c`` when that is a module, else ``a.b``."""
    modules = {module_name(p, root): p for pkg in packages for p in sorted((root / pkg).rglob("*.py"))}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: resolve against this module's package
                    pkg = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    pkg = pkg[: len(pkg) - node.level + 1]
                    base = ".".join(pkg + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for t in targets:
                while t and t not in modules:  # `import a.b.c` of a non-module attribute: its module
                    t = t.rpartition(".")[0]
                if t and t != mod:
                    graph[mod].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_no_import_cycles():
    assert cycles(import_graph(ROOT)) == []


def test_the_cycle_finder_catches_a_cycle(tmp_path):
    (tmp_path / "cloud").mkdir()
    (tmp_path / "cloud" / "__init__.py").write_text("")
    (tmp_path / "cloud" / "verbs.py").write_text("from cloud.train import run\n")
    (tmp_path / "cloud" / "train.py").write_text("def run():\n    from cloud import verbs\n")
    (tmp_path / "cloud" / "eval.py").write_text("from . import train\n")
    graph = import_graph(tmp_path, ("cloud",))
    assert graph["cloud.eval"] == {"cloud.train"}
    assert cycles(graph) == [["cloud.train", "cloud.verbs"]]


# --- library packages run no verbs ---------------------------------------------------------

_SPAWN = {"run", "Popen", "call", "check_call", "check_output"}


def verb_subprocesses(package: str) -> list[str]:
    """Subprocess calls in ``package`` that start the ``earshot`` console script, ``shared.cli``
    or a Python script (``sys.executable``): orchestration, which belongs in ``pipelines/``."""
    bad = []
    for path in files_of(package):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _SPAWN
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "subprocess"):
                continue
            inner = list(ast.walk(node))
            words = [n.value for n in inner if isinstance(n, ast.Constant) and isinstance(n.value, str)]
            python = any(isinstance(n, ast.Attribute) and n.attr == "executable" for n in inner)
            if python or any(w == "earshot" or "shared.cli" in w for w in words):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno} runs a verb or a Python script")
    return bad


@pytest.mark.parametrize("package", LIBRARIES)
def test_library_packages_run_no_verbs(package):
    assert verb_subprocesses(package) == []


def test_the_subprocess_check_catches_a_verb(tmp_path, monkeypatch):
    (tmp_path / "cloud").mkdir()
    (tmp_path / "cloud" / "x.py").write_text(
        "import subprocess, sys\n"
        "def f():\n    subprocess.run(['earshot', 'synth'])\n"
        "def g():\n    subprocess.run([sys.executable, '-m', 'shared.cli', 'instruct'])\n"
        "def h():\n    subprocess.run(['espeak-ng', '--version'])\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert verb_subprocesses("cloud") == ["cloud/x.py:3 runs a verb or a Python script",
                                          "cloud/x.py:5 runs a verb or a Python script"]
