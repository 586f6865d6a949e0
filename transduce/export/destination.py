"""Where an export is written: a temporary sibling of ``--out``, renamed into place only
when complete, so a failed export (a missing package, a full disk, an error half way)
leaves no half-written folder and any previous export as it was.

An export lists the entries it wrote in its manifest (``files``). Re-exporting into it
replaces only those: anything else a user put there (notes, folders) is carried into the
new export by hard links before the swap, so it survives and nothing is copied; a name
of the user's that the new export would write is refused in one line, before the swap.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from transduce.atomic import remove_leftovers, tmp_name, write_problem
from transduce.config import ConfigError
from transduce.errors import DataError
from transduce.folderswap import restore_previous, swap_in

EXTRA = "pip install 'transduce[export]'"


def _inside(path: Path, folder: Path) -> bool:
    a, b = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([a, b]) == b


def check_out(out: Path, run_dir: Path) -> None:
    """``--out`` may not be the run, inside it, hold it, a link, or be a foreign folder
    or file."""
    if out.is_symlink():  # the swap would replace the link, not the folder it names
        raise DataError(
            out,
            None,
            f"is a symbolic link (to {os.readlink(out)}): give the folder itself or a new "
            "name; nothing was written",
        )
    if _inside(out, run_dir) or (out.exists() and _inside(run_dir, out)):
        raise DataError(
            out,
            None,
            f"is the run {run_dir} or inside it (or holds it): export to a folder "
            "of its own, e.g. exported/NAME",
        )
    if out.exists() and not out.is_dir():
        raise DataError(out, None, "--out is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not _is_export(out):
        names = ", ".join(sorted(p.name for p in out.iterdir())[:5])
        raise DataError(
            out, None, f"is not empty and not an export (it holds {names}); nothing was written"
        )


EXPORT_FORMATS = ("transduce-onnx", "transduce-ct2")


def _is_export(out: Path) -> bool:
    """Whether ``out`` holds an export: a manifest.json of ours, not merely a file of that
    name (a web app's, a dataset's), whose folder an export would otherwise overwrite."""
    try:
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") in EXPORT_FORMATS


def export_into(out: Path, run_dir: Path, build: Callable[[Path], Path]) -> Path:
    """Run ``build(tmp)`` in a hidden sibling of ``out``, then put it in ``out``'s place
    (a previous export there is replaced only then)."""
    check_out(out, run_dir)
    if not (Path(run_dir) / "config.yaml").is_file():  # before a folder is made for it
        if not Path(run_dir).exists():
            raise DataError(run_dir, None, "no such folder (--model: a training run)")
        if _is_export(Path(run_dir)):
            raise DataError(
                run_dir, None, "is an export, not a training run: export the run it came from"
            )
        raise DataError(run_dir, None, "not a transduce run (no config.yaml)")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # /proc/x/y, a file on the way, a read-only mount
        raise DataError(out, None, f"cannot make its folder: {err.strerror}") from None
    restore_previous(out)  # an export killed between its two renames (no exchange)
    remove_leftovers(out)  # of an export to ``out`` killed outright
    tmp = tmp_name(out)
    try:
        build(tmp)
        _record_files(tmp)
        if out.exists():
            _carry_over(out, tmp)
        swap_in(tmp, out)  # a kill leaves the old export or the new one, never neither
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


def _record_files(tmp: Path) -> None:
    """List the entries the export wrote in its manifest (``files``): what a later export
    into the same folder may replace."""
    path = tmp / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(manifest, dict):
        manifest["files"] = sorted(p.name for p in tmp.iterdir())
        path.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")


def _own_files(out: Path) -> set[str] | None:
    """The entries the export in ``out`` wrote (its manifest's ``files``); None for an
    export written before they were listed."""
    with contextlib.suppress(OSError, ValueError):
        files = json.loads((out / "manifest.json").read_text(encoding="utf-8")).get("files")
        if isinstance(files, list) and all(isinstance(f, str) for f in files):
            return set(files)
    return None


def _carry_over(out: Path, tmp: Path) -> None:
    """Hard-link the entries of ``out`` that its export did not write into the new
    export ``tmp`` (an older export without a list: what the new one does not write)."""
    own = _own_files(out)
    new = {p.name for p in tmp.iterdir()}
    for entry in sorted(out.iterdir()):
        if entry.name in (own if own is not None else new):
            continue
        if entry.name in new:
            raise DataError(
                entry,
                None,
                "was not written by the export, which would replace it: move it away "
                "and export again; nothing was written",
            )
        try:
            _link_tree(entry, tmp / entry.name)
        except OSError as err:
            raise DataError(
                entry, None, f"cannot be kept in the new export ({err.strerror}): move it away"
            ) from None


def _link_tree(src: Path, dst: Path) -> None:
    """``dst`` a tree of hard links to ``src``'s files (links copied, not followed)."""
    if src.is_symlink():
        os.symlink(os.readlink(src), dst)
    elif src.is_dir():
        dst.mkdir()
        for entry in src.iterdir():
            _link_tree(entry, dst / entry.name)
        shutil.copystat(src, dst)
    elif src.is_file():
        os.link(src, dst)
    else:
        raise DataError(src, None, "is not a file or a folder: move it away and export again")
