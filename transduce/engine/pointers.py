"""A run's ``last`` and ``best`` pointers repaired before a resume: plain folders where
links belong (a run written before checkpoint directories, or copied without its links)
become checkpoint directories again, and lost links point where they did."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from pathlib import Path

from transduce.engine import checkpoint as ckpt
from transduce.errors import DataError

log = logging.getLogger("transduce")


def migrate_pointers(run_dir: Path) -> None:
    """``last/`` and ``best/`` as plain directories (a run written before checkpoint
    directories, or copied without its symlinks) become checkpoint directories again."""
    for pointer in ("last", "best"):
        plain = run_dir / pointer
        if not plain.is_dir() or plain.is_symlink():
            continue
        step = ckpt.weights_metadata(plain / ckpt.FILES[0]).get("step")
        if step is None or not step.isdigit():
            raise DataError(plain / ckpt.FILES[0], None, "no step in the weights' metadata")
        name = ckpt.step_dir_name(int(step))
        target = run_dir / ckpt.CKPT / name
        target.parent.mkdir(exist_ok=True)
        if target.is_symlink():  # files moved through it would leave the run
            raise DataError(target, None, "is a symbolic link: a checkpoint is a folder")
        if target.exists() or not (plain / ckpt.FILES[1]).exists():
            target.mkdir(exist_ok=True)
            for file in plain.iterdir():  # a copy: keep what the checkpoint dir lacks
                if not (target / file.name).exists():
                    os.replace(file, target / file.name)
            shutil.rmtree(plain)
        else:
            os.replace(plain, target)
        os.symlink(f"{ckpt.CKPT}/{name}", plain)


def _complete(step_dir: Path) -> bool:
    """Whether ``ckpt/step_N`` holds its weights and trainer state with the sizes and
    SHA-256 its meta.json records."""
    try:
        ckpt.verify_unit(step_dir)
        return True
    except (DataError, OSError, ValueError):
        return False


def relink_lost_pointers(run_dir: Path) -> None:
    """A run that lost ``last`` / ``best`` (copied without its links): ``last`` points at
    the newest complete checkpoint again and ``best`` where its trainer state says, so
    that the resume continues from it and :func:`clean` prunes none of them. Checkpoints
    with none complete among them are refused in one line, never deleted."""
    root, last, best = run_dir / ckpt.CKPT, run_dir / "last", run_dir / "best"
    if root.is_symlink() or not root.is_dir():
        return
    if not (last.is_symlink() or last.exists()):
        steps = sorted(
            (p for p in root.iterdir() if ckpt.STEP_NAME.fullmatch(p.name) and p.is_dir()),
            reverse=True,
        )
        newest = next((p for p in steps if not p.is_symlink() and _complete(p)), None)
        if newest is None:
            if steps:
                raise DataError(
                    last,
                    None,
                    f"is missing and no checkpoint in {root} is complete ("
                    f"{', '.join(p.name for p in steps[:3])}); not starting afresh over them",
                )
            return
        ckpt.point(last, f"{ckpt.CKPT}/{newest.name}")
        log.warning(
            "%s: `last` was missing (a copy without its links?); it points at %s/%s, the "
            "newest complete checkpoint, again",
            run_dir,
            ckpt.CKPT,
            newest.name,
        )
    target = ckpt.pointed(run_dir, "last")
    if best.is_symlink() or best.exists() or target is None:
        return
    with contextlib.suppress(DataError, KeyError, TypeError, ValueError):
        step = json.loads(ckpt.load_trainer_state(target / ckpt.FILES[1])["best"])["step"]
        found = root / ckpt.step_dir_name(int(step))
        if found.is_dir() and not found.is_symlink() and _complete(found):
            ckpt.point(best, f"{ckpt.CKPT}/{found.name}")
            ckpt.ensure_best_link(run_dir)
