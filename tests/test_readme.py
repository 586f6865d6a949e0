"""The README runs as pasted: every Python block runs as written (in a fresh interpreter,
from a scratch directory that sees the recipe configs), every `transduce` command line in
it parses with the real parser, and no command needs a variable a fresh shell lacks."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from transduce.cli import build_parser
from transduce.cli_options import check_decode_args

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```(\w*)\n(.*?)^```", README, flags=re.M | re.S)
PYTHON = [code for lang, code in BLOCKS if lang == "python"]
SHELL = [code for lang, code in BLOCKS if lang in ("", "sh", "bash")]
DATA = Path(os.environ.get("TRANSDUCE_DATA") or ROOT.parent / "shared" / "data").resolve()


def _first_line(code: str) -> str:
    return code.strip().splitlines()[0][:60]


@pytest.mark.parametrize("code", PYTHON, ids=[_first_line(c) for c in PYTHON])
def test_python_block_runs_as_written(code, tmp_path):
    if "configs/tatoeba" in code and not (DATA / "tatoeba").is_dir():
        pytest.skip(f"no Tatoeba data under {DATA}")
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    env = {**os.environ, "TRANSDUCE_DATA": str(DATA), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]


def _commands() -> list[tuple[str, set[str]]]:
    """The `transduce ...` command lines of the shell blocks, continuations joined, each
    with the variables its block exported before it (``export NAME=...``)."""
    lines = []
    for code in SHELL:
        exported: set[str] = set()
        for line in code.replace("\\\n", " ").splitlines():
            if m := re.match(r"\s*export (\w+)=", line):
                exported.add(m.group(1))
            line = line.split(" | ")[-1].strip()
            if " -m transduce " in line:
                line = "transduce " + line.split(" -m transduce ", 1)[1]
            words = line.split()
            # "transduce train: interrupted ..." is output shown in a block, not a command
            if words[:1] == ["transduce"] and len(words) > 1 and not words[1].endswith(":"):
                lines.append((line, set(exported)))
    return lines


COMMANDS = _commands()


def test_the_readme_has_commands_to_check():
    assert len(COMMANDS) > 30 and len(PYTHON) >= 3


@pytest.mark.parametrize("line", [line for line, _ in COMMANDS])
def test_command_line_parses(line):
    argv = shlex.split(line, comments=True)[1:]
    if argv in (["--help"], ["--version"]):
        return
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as err:
        pytest.fail(f"README command does not parse (exit {err.code}): {line}")
    if hasattr(args, "sample"):  # the decoding flags must also make sense together
        check_decode_args(args)


def test_no_command_needs_an_unset_variable():
    for line, exported in COMMANDS:
        for match in re.finditer(r"\$\{?(\w+)(:-)?", line):
            name = match.group(1)
            assert match.group(2) or name in exported, f"${name} is not set for: {line}"


def test_config_paths_in_the_readme_exist():
    for path in set(re.findall(r"configs/[\w.]+\.yaml", README)):
        assert (ROOT / path).is_file() or (ROOT / "benchmarks/peers" / Path(path).name).is_file(), (
            path
        )
