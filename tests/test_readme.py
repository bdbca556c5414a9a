"""Run the commands the README documents, as written, so the docs cannot drift.

Blocks preceded by ``<!-- readme-test: NAME -->`` are run line by line in a
fresh directory after the fixture ``SETUP[NAME]`` has made their inputs.
``scripts/demo`` has its own test (tests/test_demo.py); ``scripts/test`` is
what runs this suite, and CI runs it through ``.ci/run``.
"""
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from shared.cli import available_verbs

from tests.helpers.recordings import epic_row, make_media, write_csv

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BIN = Path(sys.executable).parent


def _setup_import(cwd: Path) -> None:
    make_media(cwd / "P01_01.MP4", seconds=2.0)
    write_csv(cwd / "EPIC_Sounds.csv", [epic_row("P01_01_0", "P01_01", 0.2, 0.9, "beep", 4)])


def _setup_nothing(cwd: Path) -> None:
    pass


SETUP = {"import": _setup_import, "world": _setup_nothing, "pipeline": _setup_nothing}
#: Blocks that take more than a few seconds (the pipeline block trains, distils and
#: exports for minutes): they run in the full suite, not in ``scripts/test --fast``.
SLOW_BLOCKS = {"world", "pipeline"}


def readme_blocks() -> dict[str, list[str]]:
    blocks = {}
    for m in re.finditer(r"<!-- readme-test: (\w+) -->\s*```bash\n(.*?)```", README, re.S):
        lines = [l.split("#")[0].strip() for l in m.group(2).splitlines()]
        blocks[m.group(1)] = [l for l in lines if l]
    return blocks


def all_command_lines() -> list[str]:
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        lines += [l.split("#")[0].strip() for l in block.splitlines() if l.split("#")[0].strip()]
    return lines


def test_every_tested_block_has_a_fixture():
    assert readme_blocks(), "README has no readme-test blocks"
    assert set(readme_blocks()) <= set(SETUP)


def test_every_documented_verb_exists():
    verbs = set(available_verbs())
    for line in all_command_lines():
        words = line.split()
        if words[0] == "earshot" and not words[1].startswith(("-", "<")):
            name = words[1] if words[1] in verbs or len(words) < 3 else f"{words[1]}_{words[2]}"  # earshot sim train
            assert name in verbs, f"README documents 'earshot {words[1]}', which is not installed"


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_BLOCKS else n
                                  for n in sorted(readme_blocks())])
def test_readme_block_runs(name, tmp_path):
    SETUP[name](tmp_path)
    for line in readme_blocks()[name]:
        argv = shlex.split(line)
        assert argv[0] == "earshot" and "&" not in argv, line
        out = subprocess.run([str(BIN / "earshot"), *argv[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, f"README command failed: {line}\n{out.stderr}"
    if name == "pipeline":
        assert (tmp_path / "runs" / "teacher" / "model" / "model.safetensors").is_file()
        assert list((tmp_path / "runs" / "kd").rglob("*int8.pte")), "export wrote no int8 program"
        (log,) = (tmp_path / "runs" / "edge").glob("*.jsonl")
        kinds = [json.loads(line)["kind"] for line in log.read_text().splitlines()]
        assert kinds[0] == "start" and kinds[-1] == "end" and "answer" in kinds
        assert len(list((tmp_path / "traces").glob("*.jsonl"))) == 4
        assert (tmp_path / "runs" / "sim_train" / "policy_xnnpack_fp32.pte").is_file()
        rows = json.loads((tmp_path / "runs" / "sim_eval" / "results.json").read_text())
        assert {"always_local", "audio_trigger", "context_aware"} <= {r["policy"] for r in rows}
    if name == "world":
        assert (tmp_path / "kitchen.png").stat().st_size > 10_000


@pytest.mark.slow  # starts the console script three times
def test_help_commands_from_the_readme(tmp_path):
    # Every verb's config composes in tests/test_configs.py; here the three
    # documented forms run once each through the console script.
    for args in (["--help"], ["synth", "--help"], ["synth", "--cfg", "job"]):
        out = subprocess.run([str(BIN / "earshot"), *args], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, f"earshot {' '.join(args)}: {out.stderr}"
        assert ("verbs:" if args == ["--help"] else "world") in out.stdout
