"""The README and every page of the documentation (docs/**/*.md) run as pasted.

- every Python block runs as written, in a fresh interpreter, from a scratch directory that
  sees the recipe configs;
- every shell block is valid bash (``bash -n``), every `transduce` command line in it parses
  with the real parser (and its decoding flags make sense together), every `benchmarks/`
  script it names exists, and no line needs a variable a fresh shell lacks;
- the blocks of one page pasted in order never train, export or generate twice into one
  folder (the second would be refused), and the README's tour does not write where a page
  of the docs does.

Blocks marked ```text (illustrative output, file layouts) are not run.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from transduce.commands.cli import build_parser
from transduce.commands.options import check_decode_args

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
DATA = Path(os.environ.get("TRANSDUCE_DATA") or ROOT.parent / "shared" / "data").resolve()
SHELL_LANGS = ("", "sh", "bash", "shell", "console")
# what a fresh login shell has: anything else must be exported by the block that uses it
FRESH_SHELL = {"HOME", "PATH", "PWD", "USER"}


def _name(page: Path) -> str:
    return str(page.relative_to(ROOT))


def _blocks(page: Path) -> list[tuple[str, str]]:
    text = page.read_text(encoding="utf-8")
    return re.findall(r"^ {0,4}```(\w*)[^\n]*\n(.*?)^ {0,4}```", text, flags=re.M | re.S)


BLOCKS = {_name(p): _blocks(p) for p in PAGES}
PYTHON = [
    (page, code)
    for page, blocks in BLOCKS.items()
    for lang, code in blocks
    if lang in ("python", "py")
]
SHELL = [
    (page, code) for page, blocks in BLOCKS.items() for lang, code in blocks if lang in SHELL_LANGS
]


def _id(item: tuple[str, str]) -> str:
    page, code = item
    return f"{page}:{code.strip().splitlines()[0][:50]}"


@pytest.mark.parametrize("item", PYTHON, ids=[_id(i) for i in PYTHON])
def test_python_block_runs_as_written(item, tmp_path):
    page, code = item
    if "configs/tatoeba" in code and not (DATA / "tatoeba").is_dir():
        pytest.skip(f"no Tatoeba data under {DATA}")
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    env = {**os.environ, "TRANSDUCE_DATA": str(DATA), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"{page}: {proc.stderr[-3000:]}"


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_shell_blocks_are_valid_bash():
    for page, code in SHELL:
        proc = subprocess.run(["bash", "-n"], input=code, capture_output=True, text=True)
        assert proc.returncode == 0, f"{page}: {proc.stderr.strip()}\n{code}"


def _lines(code: str) -> list[str]:
    """Logical lines: continuations joined, comments and leading ``VAR=value`` dropped."""
    out = []
    for line in code.replace("\\\n", " ").splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        line = re.sub(r"^(\w+=\S*\s+)+", "", line)
        if line:
            out.append(line)
    return out


def _commands() -> list[tuple[str, str, set[str]]]:
    """Each shell line as (page, line, the variables its block set before it)."""
    found = []
    for page, code in SHELL:
        exported: set[str] = set()
        for line in _lines(code):
            found.append((page, line, set(exported)))
            exported.update(re.findall(r"(?:^|export\s+|;\s*)(\w+)=", line))
    return found


def _transduce_argv(line: str) -> list[str] | None:
    """The argv of the line's `transduce` command (after the last pipe; `python -m
    transduce` and `torchrun ... -m transduce` count), or None."""
    line = line.split(" | ")[-1].strip()
    if " -m transduce " in line:
        line = "transduce " + line.split(" -m transduce ", 1)[1]
    words = line.split()
    # "transduce train: interrupted ..." is output shown in a block, not a command
    if words[:1] != ["transduce"] or len(words) < 2 or words[1].endswith(":"):
        return None
    return shlex.split(line, comments=True)[1:]


COMMANDS = _commands()
TRANSDUCE = [
    (page, line, argv) for page, line, _ in COMMANDS if (argv := _transduce_argv(line)) is not None
]


def test_the_docs_have_commands_to_check():
    assert len(TRANSDUCE) > 60 and len(PYTHON) >= 4
    assert {page for page, *_ in TRANSDUCE} >= {"README.md", "docs/getting-started.md"}


@pytest.mark.parametrize("item", TRANSDUCE, ids=[f"{p}:{line[:70]}" for p, line, _ in TRANSDUCE])
def test_command_line_parses(item):
    page, line, argv = item
    if argv in (["--help"], ["--version"]):
        return
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as err:
        pytest.fail(f"{page}: command does not parse (exit {err.code}): {line}")
    if hasattr(args, "sample"):  # the decoding flags must also make sense together
        check_decode_args(args)


def test_no_command_needs_an_unset_variable():
    for page, line, exported in COMMANDS:
        unquoted = re.sub(r"'[^']*'", "''", line)  # no expansion inside single quotes
        for match in re.finditer(r"\$\{?(\w+)(:-)?", unquoted):
            name = match.group(1)
            ok = match.group(2) or name in exported or name in FRESH_SHELL
            assert ok, f"{page}: ${name} is not set for: {line}"


def test_benchmark_scripts_named_exist():
    for page, line, _ in COMMANDS:
        for path in re.findall(r"\b(benchmarks/[\w/]+\.py)\b", line):
            assert (ROOT / path).is_file(), f"{page}: {path} does not exist: {line}"


def _written_folder(argv: list[str]) -> str | None:
    """The folder a command creates and refuses to create twice (train without --resume,
    export, generate), or None."""
    if not argv or argv[0] not in ("train", "export", "generate") or "--resume" in argv:
        return None
    return argv[argv.index("--out") + 1] if "--out" in argv[:-1] else None


def test_blocks_pasted_in_order_do_not_collide():
    written: dict[str, dict[str, str]] = {}
    for page, line, argv in TRANSDUCE:
        if (folder := _written_folder(argv)) is None:
            continue
        seen = written.setdefault(page, {})
        assert folder not in seen, f"{page}: {folder} written twice:\n{seen[folder]}\n{line}"
        seen[folder] = line
    readme = written.pop("README.md", {})
    for page, folders in written.items():
        both = set(readme) & set(folders)
        assert not both, f"README.md and {page} both write {sorted(both)}"


def test_config_paths_in_the_docs_exist():
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for path in set(re.findall(r"configs/[\w.]+\.yaml", text)):
            peer = ROOT / "benchmarks/peers" / Path(path).name
            assert (ROOT / path).is_file() or peer.is_file(), f"{_name(page)}: {path}"
