"""Where an export is written: a temporary sibling of ``--out``, renamed into place only
when complete, so a failed export (a missing package, a full disk, an error half way)
leaves no half-written folder and any previous export as it was."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from transduce.atomic import tmp_name, write_problem
from transduce.config import ConfigError
from transduce.errors import DataError

EXTRA = "pip install 'transduce[export]'"


def _inside(path: Path, folder: Path) -> bool:
    a, b = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([a, b]) == b


def check_out(out: Path, run_dir: Path) -> None:
    """``--out`` may not be the run, inside it, hold it, or be a foreign folder or file."""
    if _inside(out, run_dir) or (out.exists() and _inside(run_dir, out)):
        raise DataError(
            out,
            None,
            f"is the run {run_dir} or inside it (or holds it): export to a folder "
            "of its own, e.g. exported/NAME",
        )
    if out.exists() and not out.is_dir():
        raise DataError(out, None, "--out is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "manifest.json").is_file():
        names = ", ".join(sorted(p.name for p in out.iterdir())[:5])
        raise DataError(
            out, None, f"is not empty and not an export (it holds {names}); nothing was written"
        )


def export_into(out: Path, run_dir: Path, build: Callable[[Path], Path]) -> Path:
    """Run ``build(tmp)`` in a hidden sibling of ``out``, then put it in ``out``'s place
    (a previous export there is replaced only then)."""
    check_out(out, run_dir)
    if not (Path(run_dir) / "config.yaml").is_file():  # before a folder is made for it
        raise DataError(run_dir, None, "not a transduce run (no config.yaml)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(out)
    try:
        build(tmp)
        if out.exists():
            old = tmp_name(out)
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)
    except ImportError as err:
        name = (err.name or str(err)).split(".")[0]
        raise ConfigError(f"export needs the package {name!r}: {EXTRA}") from None
    except OSError as err:
        raise write_problem(out, err) from None
    finally:
        with contextlib.suppress(OSError):
            if tmp.exists():
                shutil.rmtree(tmp)
    return out
