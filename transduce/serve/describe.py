"""What ``GET /v1/models`` says of a served training run, whatever its kind: what it is
and how large (:func:`identity`), where its weights come from (:func:`provenance`), and
how its training went (:func:`training_summary` of its ``metrics.jsonl``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transduce.config import Config


def training_summary(run_dir: Path, early_stop_metric: str) -> dict[str, Any]:
    """Steps trained and the best validation record of ``metrics.jsonl`` (empty if none)."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return {}
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:  # JSONDecodeError, or a number too long to read
            continue  # a line cut short by a crash says nothing about the best record
    # a damaged file may hold any JSON: keep records (objects) with numbers where needed
    rows = [r for r in rows if isinstance(r, dict)]
    valid = [r for r in rows if r.get("split") == "valid"]
    valid = [r for r in valid if isinstance(r.get(early_stop_metric), (int, float))]
    steps = [r["step"] for r in rows if isinstance(r.get("step"), int)]
    summary: dict[str, Any] = {"steps": max(steps, default=0)}
    if valid:
        sign = 1 if early_stop_metric == "loss" else -1
        best = min(valid, key=lambda r: sign * r[early_stop_metric])
        summary["best"] = {k: v for k, v in best.items() if k not in ("split", "seconds")}
    return summary


def training(run_dir: Path, members: list[Path] | None, metric: str) -> dict[str, Any]:
    if not members:
        return training_summary(run_dir, metric)
    return {"members": [training_summary(d, metric) for d in members]}


def identity(model: Any, cfg: Config, params: int) -> dict[str, Any]:
    """The first fields of a torch model's description: what it is and how large."""
    return {
        "name": model.name,
        "kind": model.kind,
        "engine": model.engine,
        "preset": cfg.model.preset,
        "cell": None if cfg.model.preset == "transformer" else cfg.model.cell,
        "parameters": params,
    }


def provenance(model: Any, cfg: Config) -> dict[str, Any]:
    """Where a torch model's weights come from: its ensemble members and its training."""
    return {
        "members": [str(d) for d in model.members] if model.members else None,
        "training": training(model.run_dir, model.members, cfg.train.early_stop_metric),
    }
