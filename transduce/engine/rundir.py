"""Create, resume and verify a run directory: the one place that decides what a run
directory may hold when training starts (checkpoint.py writes and reads the checkpoints).

At every start and resume the leftovers of interrupted writes are removed. A resume
refuses a config whose model, data or series sections differ from the run's, and train
keys outside :data:`RESUMABLE_TRAIN_KEYS`; it verifies that the weights, trainer state and
checkpoint description it loads belong to one step; and it drops metrics written after
that step (a cut last line, as a full disk leaves, is dropped with a note).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # not on Windows: no run lock there
    fcntl = None  # type: ignore[assignment]

from transduce import locks
from transduce.atomic import TMP_NAME, pid_space, writer_gone
from transduce.config import (
    Config,
    ConfigError,
    clip,
    cut,
    from_dict,
    load_config,
    read_config_data,
)
from transduce.engine import checkpoint as ckpt
from transduce.engine import pointers
from transduce.engine.compat import check_compatible, check_recorded, say_ignored
from transduce.errors import DataError

log = logging.getLogger("transduce.tasks.train")


LOCK = ".lock"  # held by the process training into the run (rank 0 under torchrun)


@contextlib.contextmanager
def locked(run_dir: Path, rank0: bool = True):
    """Rank 0 holds an exclusive lock on ``RUN/.lock`` while it starts and trains: a second
    ``transduce train`` (or ``--resume``) into the same run is refused in one line, where
    it would interleave checkpoints with the first and clean away its temporary files. The
    kernel drops the lock when the process ends, ``kill -9`` included, so nothing is
    stale. A lock file (and an empty folder) this start made is removed again when the
    start fails."""
    if not rank0 or fcntl is None or (run_dir.exists() and not run_dir.is_dir()):
        yield  # other ranks; no flock here; a file as --out (start() refuses it)
        return
    made_dir = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK
    made = not path.exists()
    fd = locks.open_lock(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            made = False  # the other process's
            raise FileExistsError(
                f"{run_dir}: another transduce process (pid {locks.holder(fd)}) is training "
                "into this run; wait for it to end or stop it, or train into another --out"
            ) from None
        except OSError as err:  # a file system without locks (some network mounts)
            log.warning("%s: not locked (%s): nothing stops a second trainer", path, err.strerror)
        if not locks.still_at(fd, path):
            made = False  # the file was replaced while we locked it: another start's now
            raise FileExistsError(f"{run_dir}: another transduce process is starting in it")
        locks.claim(fd)
        yield
    except BaseException:
        if made and not has_checkpoint(run_dir):
            path.unlink(missing_ok=True)  # made by this start, which failed
            if made_dir:
                with contextlib.suppress(OSError):
                    run_dir.rmdir()  # only when empty
        raise
    finally:
        os.close(fd)


def has_checkpoint(run_dir: Path) -> bool:
    return (run_dir / "last" / ckpt.FILES[1]).exists()


def _left_by_the_dead(name: str) -> bool:
    """Whether an atomic write's temporary ``name`` is a leftover: its writer -- of this
    pid space -- no longer runs. A live one (``transduce average`` writing while a resume
    starts: the run lock is the trainer's alone) keeps its file."""
    match = TMP_NAME.fullmatch(name)  # what an interrupted atomic write leaves
    if match is None:
        return False
    pid, space = int(match["pid"]), match["space"]
    if pid == os.getpid() and space in (None, pid_space()):
        return True  # ours: a write that failed before now
    return writer_gone(pid, space)


def clean(run_dir: Path) -> int:
    """Remove the temporary files of interrupted writes (named as :mod:`transduce.atomic`
    names them, nothing else), and checkpoint directories no pointer holds
    (:func:`transduce.engine.checkpoint.prune`); a pre-pointer ``last/`` directory becomes a
    checkpoint. Links are never followed out of the run."""
    if not run_dir.is_dir():
        return 0
    removed = 0
    real_run = os.path.realpath(run_dir)
    for folder in (run_dir, run_dir / "checkpoints", run_dir / "averaged", run_dir / "last"):
        if folder != run_dir and (folder.is_symlink() or not folder.is_dir()):
            continue  # a linked folder is not the run's own
        if os.path.commonpath([os.path.realpath(folder), real_run]) != real_run:
            continue
        for tmp in folder.iterdir():
            if _left_by_the_dead(tmp.name) and (tmp.is_symlink() or tmp.is_file()):
                tmp.unlink(missing_ok=True)  # the entry itself: a link is not followed
                removed += 1
    pointers.migrate_pointers(run_dir)
    removed += len(ckpt.prune(run_dir))
    if removed:
        log.info("%s: removed %d leftover(s) of an interrupted write", run_dir, removed)
    return removed


def refuse_linked_folder(run_dir: Path, name: str) -> None:
    """A folder of the run that is a link would make the run write and delete outside
    itself (``ckpt``, the kept ``checkpoints``, ``averaged``): refused in one line."""
    root = run_dir / name
    if root.is_symlink():
        raise DataError(
            root,
            None,
            f"is a symbolic link (to {cut(os.readlink(root))}); a run's {name}/ must be "
            "a folder of its own: move its files back or use another --out",
        )


def refuse_symlinked_ckpt(run_dir: Path) -> None:
    """``ckpt`` and ``checkpoints`` (kept weights, trimmed as training goes) are the
    run's own folders, never links."""
    for name in (ckpt.CKPT, "checkpoints"):
        refuse_linked_folder(run_dir, name)


def refuse_foreign(run_dir: Path, begun: bool = True) -> None:
    """Refuse a fresh run in a folder holding anything but what a run writes before its
    first checkpoint (a run killed that early is started afresh). ``begun``: whether a
    start left its lock file there (written first, so a run killed that early has it);
    without it, a config.yaml or metrics.jsonl there is a user's, not a run's."""
    if not run_dir.exists():
        return
    if not run_dir.is_dir():
        raise FileExistsError(f"{run_dir}: --out is a file, not a folder")
    # A run killed before its first checkpoint (started afresh) holds only what a start
    # writes, its config.yaml a whole transduce config; anything else is someone's folder
    # (a config.yaml of another tool there was overwritten)
    config = run_dir / "config.yaml"
    if config.exists() and not _ours(config):
        raise FileExistsError(
            f"{run_dir} is not a transduce run: its config.yaml is not one a run writes "
            "(all of data, model, train, decode); train into a new or empty --out"
        )
    names = sorted(
        p.name
        for p in run_dir.iterdir()
        if not TMP_NAME.fullmatch(p.name)
        and (p.name not in STARTUP_FILES or not begun)
        and p.name != LOCK
    )
    if names:
        shown = ", ".join(clip(n, 40) for n in names[:5]) + (", ..." if len(names) > 5 else "")
        raise FileExistsError(
            f"{run_dir} is not empty and not a transduce run (it holds {shown}): "
            "train into a new or empty --out"
        )


def _ours(config: Path) -> bool:
    """Whether ``config`` reads as the config.yaml a run writes: every section, valid."""
    try:
        data = read_config_data(config)
        if not {"data", "model", "train", "decode"} <= set(data):
            return False
        from_dict(Config, data)
    except ConfigError:
        return False
    return True


def start(
    cfg: Config | None, run_dir: Path, resume: bool, overrides: list[str], begun: bool = True
) -> tuple[Config, bool]:
    """The config to train and whether to resume. ``--resume`` of a run killed before its
    first complete checkpoint starts it afresh (from its config.yaml, or from ``cfg``
    when the kill came before even that), saying so in one line: a job script under a
    scheduler that requeues can always pass ``--resume``."""
    rank0 = os.environ.get("RANK", "0") == "0"
    refuse_symlinked_ckpt(run_dir)
    if resume:
        if not (run_dir / "config.yaml").exists():
            if cfg is None:
                raise FileNotFoundError(
                    f"{run_dir}: nothing to resume (no config.yaml): start "
                    "it with transduce train CONFIG --out DIR (--resume may stay)"
                )
            return _afresh(cfg, run_dir, rank0, begun)
        given = cfg  # CONFIG of `train CONFIG --resume`: for a run not started yet only
        saved = load_config(run_dir / "config.yaml")
        cfg = load_config(run_dir / "config.yaml", overrides)
        check_compatible(saved, cfg, run_dir)
        if rank0:  # first: the edit check reads the config `last` recorded
            pointers.relink_lost_pointers(run_dir)  # before clean: it prunes what no pointer holds
        check_recorded(cfg, run_dir)
        if rank0:
            clean(run_dir)
            say_ignored(given, cfg, run_dir, has_checkpoint(run_dir))
        last = run_dir / "last"
        if not has_checkpoint(run_dir) and (last.is_symlink() or last.exists()):
            target = cut(os.readlink(last)) if last.is_symlink() else "a folder"
            problem = f"points at {target}, which holds no complete checkpoint"
            raise DataError(last, None, f"{problem} (deleted or damaged); not starting afresh")
        if not has_checkpoint(run_dir):
            log.warning(
                "%s: no complete checkpoint yet (killed before the first); starting "
                "the run afresh from its config.yaml",
                run_dir,
            )
            return cfg, False
        return cfg, True
    if cfg is None:
        raise ValueError("train() needs a config unless resuming")
    if has_checkpoint(run_dir) or (run_dir / "last").is_symlink():
        raise FileExistsError(f"{run_dir} already holds a run: use --resume or another --out")
    refuse_foreign(run_dir, begun)
    if rank0:
        clean(run_dir)
    return cfg, False


def _afresh(cfg: Config, run_dir: Path, rank0: bool, begun: bool) -> tuple[Config, bool]:
    refuse_foreign(run_dir, begun)
    if rank0:
        clean(run_dir)
    log.warning("%s: no checkpoint to resume (killed before the first); starting afresh", run_dir)
    return cfg, False


# What a run writes before its first checkpoint: removed again when its start fails.
STARTUP_FILES = (
    LOCK,
    "config.yaml",
    "metrics.jsonl",
    "vocab.src.json",
    "vocab.tgt.json",
    "spm.src.model",
    "spm.tgt.model",
    "spm.joint.model",
    "series.json",
    "series.csv",
)


def undo_failed_start(run_dir: Path, created: bool) -> None:
    """A start that failed before the first checkpoint (a missing corpus, a model too big
    to allocate) leaves no run directory behind: the files it wrote go, then the folder,
    if this start created it and nothing else is in it."""
    if not created or not run_dir.is_dir() or has_checkpoint(run_dir):
        return
    if any(p.name not in STARTUP_FILES for p in run_dir.iterdir()):
        return  # training had begun (checkpoints/, ckpt/): what it wrote stays for --resume
    metrics = run_dir / "metrics.jsonl"
    if metrics.is_file() and metrics.stat().st_size > 0:
        return  # it trained and reported before failing: its record stays
    for name in STARTUP_FILES:
        path = run_dir / name
        if path.is_file() and not path.is_symlink():
            path.unlink()
    with contextlib.suppress(OSError):
        run_dir.rmdir()  # only when empty


def restore(trainer, run_dir: Path, write: bool = True) -> None:
    """Load the verified ``last`` checkpoint into ``trainer`` (model and state); rank 0
    (``write``) repoints ``best`` where a crash left it behind and trims metrics.jsonl."""
    last, state = ckpt.read_checkpoint(run_dir)
    ckpt.load_weights(trainer.model, last / ckpt.FILES[0])
    try:
        trainer.restore(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        if isinstance(err, ValueError) and "process" in str(err):
            raise
        raise DataError(last / ckpt.FILES[1], None, f"damaged trainer state ({err!r})") from None
    _forget_damaged_best(trainer, run_dir, last, write)
    if write:
        _reconcile_best(run_dir, trainer.best)
        truncate_metrics(run_dir / "metrics.jsonl", trainer.step)


def _forget_damaged_best(trainer, run_dir: Path, last: Path, write: bool) -> None:
    """A ``best`` checkpoint other than ``last`` that is damaged or gone (bit rot, a hand
    edit) is forgotten, loudly: ``best`` (and model.safetensors) point at ``last`` and the
    next validation names a new best, instead of the run ending on weights no command loads."""
    if not trainer.best:
        return
    step_dir = run_dir / ckpt.CKPT / ckpt.step_dir_name(int(trainer.best["step"]))
    last_name = os.path.basename(os.path.realpath(last))
    if step_dir.name == last_name:
        return  # verified as ``last``
    try:
        if not step_dir.is_dir():
            raise DataError(step_dir, None, "missing")
        if (step_dir / "meta.json").exists():  # runs before meta.json are not verifiable
            ckpt.verify_unit(step_dir)
    except (DataError, OSError, ValueError) as err:  # damaged, unreadable (EIO), garbled
        log.warning(
            "%s: the best checkpoint (step %s) is forgotten; 'best' points at the last until "
            "the next validation names a new one",
            err,
            trainer.best["step"],
        )
        trainer.best = None
        if write:
            ckpt.point(run_dir / "best", f"{ckpt.CKPT}/{last_name}")
            ckpt.ensure_best_link(run_dir)


def _reconcile_best(run_dir: Path, best: dict[str, Any] | None) -> None:
    """A crash between switching ``last`` and ``best`` leaves ``best`` one step behind
    the state that says which step was best: point it where the state says."""
    if not best:
        return
    name = ckpt.step_dir_name(int(best["step"]))
    current = ckpt.pointed(run_dir, "best")
    if (current is None or current.name != name) and (run_dir / ckpt.CKPT / name).is_dir():
        ckpt.point(run_dir / "best", f"{ckpt.CKPT}/{name}")
        ckpt.ensure_best_link(run_dir)
        ckpt.prune(run_dir)


def truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines written after ``step`` (the checkpoint we resume from). A last
    line cut short (no newline, not JSON) is dropped with a note; any other bad line is a
    DataError naming the line."""
    if not path.exists():
        return
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    keep = []
    for number, line in enumerate(lines, 1):
        record = _metric(line, path, number)
        if record is not None and record.get("step", 0) <= step:
            keep.append(line.decode("utf-8"))
    if tail:
        try:
            record = _metric(tail, path, len(lines) + 1)
        except DataError:
            log.warning(
                "%s:%d: dropped a cut last line (a write interrupted by a crash or a full disk)",
                path,
                len(lines) + 1,
            )
            record = None
        if record is not None and record.get("step", 0) <= step:
            keep.append(tail.decode("utf-8"))
    ckpt.atomic_write_text(path, "".join(ln + "\n" for ln in keep))


def _metric(line: bytes, path: Path, number: int) -> dict[str, Any] | None:
    if not line.strip():
        return None
    try:
        record = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise DataError(path, number, "not a JSON metrics record") from None
    if not isinstance(record, dict) or not isinstance(record.get("step", 0), int):
        raise DataError(path, number, "not a metrics record (a JSON object with a step)")
    return record
