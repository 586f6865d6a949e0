"""Whether a resumed run may train with a config: the keys that fix a run's model, data
and trajectory may not change (:data:`RESUMABLE_TRAIN_KEYS` may), whether through ``--set``
on resume or by editing the run's config.yaml between a kill and the resume (the last
checkpoint records the config it was trained with; older checkpoints without it are not
checked)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from transduce.config import Config, ConfigError, to_dict

log = logging.getLogger("transduce")

# Train keys a resumed run may change: budgets, stopping and logging. Everything else fixes
# the trajectory (optimizer, schedule, batches, seed) and would make the resume inexact.
RESUMABLE_TRAIN_KEYS = (
    "epochs",
    "max_steps",
    "max_seconds",
    "patience",
    "log_every",
    "progress",
    "device",
    "threads",
    "keep_checkpoints",
)


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(_flat(value, f"{prefix}.{key}" if prefix else key))
    return out


def frozen_changes(saved: dict, new: dict, common: bool = False) -> str:
    """The keys whose value a resume may not change (see RESUMABLE_TRAIN_KEYS) that differ
    between two configs' dicts, shown with both values ("" when none); ``common``: only
    keys both have (a config recorded by an older version lacks newer ones)."""
    old, cur = _flat(saved), _flat(new)
    keys = old.keys() & cur.keys() if common else old.keys() | cur.keys()
    keys = sorted(k for k in keys if old.get(k) != cur.get(k))
    frozen = [k for k in keys if k.split(".")[0] in ("model", "data", "series")]
    frozen += [
        k for k in keys if k.startswith("train.") and k.split(".")[1] not in RESUMABLE_TRAIN_KEYS
    ]
    return ", ".join(f"{k} ({old.get(k)!r} -> {cur.get(k)!r})" for k in frozen[:6])


def check_compatible(saved: Config, new: Config, run_dir: Path) -> None:
    shown = frozen_changes(to_dict(saved), to_dict(new))
    if shown:
        raise ConfigError(
            f"{run_dir}: --resume cannot change {shown}: they fix the model, its data or its "
            f"trajectory; start a new run instead (train keys that may change on resume: "
            f"{', '.join(RESUMABLE_TRAIN_KEYS)})"
        )


def recorded_config(run_dir: Path) -> dict | None:
    """The config the run's last checkpoint was trained with: its meta.json's, else its
    weights' metadata (a meta.json deleted skipped the check); None: not recorded."""
    for read in (_from_meta, _from_weights):
        try:
            return json.loads(read(run_dir / "last"))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # no checkpoint, or an older one: restore() verifies what it loads
    return None


def _from_meta(last: Path) -> str:
    return json.loads((last / "meta.json").read_text(encoding="utf-8"))["config"]


def _from_weights(last: Path) -> str:
    from transduce.engine.checkpoint import FILES, weights_metadata

    return weights_metadata(last / FILES[0])["config"]


def check_recorded(cfg: Config, run_dir: Path) -> None:
    """Refuse to resume with a config.yaml changed (by hand) since the last checkpoint in
    keys that fix the run: the resume would not continue the run it claims to."""
    recorded = recorded_config(run_dir)
    if recorded is None:
        return
    shown = frozen_changes(recorded, to_dict(cfg), common=True)
    if shown:
        raise ConfigError(
            f"{run_dir / 'config.yaml'}: {shown} changed since the last checkpoint was "
            "saved: they fix the model, its data or its trajectory, so --resume would not "
            "continue this run; put them back, or start a new run"
        )


def say_ignored(given: Config | None, cfg: Config, run_dir: Path, started: bool) -> None:
    """``train CONFIG --out RUN --resume`` of a started run trains on with RUN's own
    config.yaml: where CONFIG says otherwise, say so (it was ignored without a word)."""
    if given is None or not started:
        return
    new, old = _flat(to_dict(given)), _flat(to_dict(cfg))
    keys = sorted(k for k in new.keys() | old.keys() if new.get(k) != old.get(k))
    if keys:
        log.warning(
            "%s: resumes with its own config.yaml; the CONFIG given differs in %s and is "
            "not used (change what may change with --set)",
            run_dir,
            ", ".join(keys[:5]) + (", ..." if len(keys) > 5 else ""),
        )
