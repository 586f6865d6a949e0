"""Split-conformal prediction intervals for multi-step forecasts, calibrated per horizon step
on the validation windows a forecasting run already holds.

Stankeviciute, Alaa & van der Schaar (2021), "Conformal Time-Series Forecasting" (NeurIPS):
a forecaster trained on one part of the series set and a calibration set of held-out
windows give, for each horizon step h, the empirical quantile of the nonconformity scores
of step h, and the interval at level ``1 - a`` is the point forecast +- that quantile
(they also Bonferroni-correct for joint coverage of all steps; M4 scores each step, so the
correction is per step without it). With quantile outputs the score is that of conformalized
quantile regression (Romano, Patterson & Candes 2019, "Conformalized Quantile Regression"):
``max(lo - y, y - hi)``, added to both bounds, so a too-narrow (wide) learned band widens
(narrows). Scores are computed in the model's scaled space (log ratios to the window's
level), so series of different sizes share one calibration.

The calibration is written once after training (``conformal.json`` in the run) and read
by every forecast: nothing is recomputed at forecast time.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from transduce.atomic import atomic_write_text
from transduce.errors import DataError

CALIBRATION = "conformal.json"
GRID = (50.0, 80.0, 90.0, 95.0, 99.0)  # residual-calibrated levels every run offers


def label(level: float) -> str:
    """``80`` -> ``"80"``, ``97.5`` -> ``"97.5"``: the key and the ``lo-80`` column suffix."""
    return f"{float(level):g}"


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """The ``ceil((n + 1) level) / n`` empirical quantile of ``scores [n]`` (the finite-
    sample correction of split conformal); ``inf`` when ``n`` is too small for ``level``."""
    n = len(scores)
    k = math.ceil((n + 1) * level / 100)
    return float("inf") if k > n else float(np.sort(scores)[k - 1])


def levels_of(calibration: dict | None, finite: bool = False) -> list[str]:
    """The levels (``"80"``...) a calibration holds, ascending; with ``finite``, only those
    whose bounds are finite at every step: a level needs about 1 / (1 - level) windows
    (95%: 20), so a run on a few series has its 50% and 80% bands and not its 95%."""
    if not isinstance(calibration, dict):
        return []
    kinds = [calibration.get("cqr", {}), calibration.get("residual", {})]
    keys = sorted({k for kind in kinds for k in kind}, key=float)
    if not finite:
        return keys
    ok = lambda q: q is not None and bool(np.isfinite(np.asarray(q, float)).all())  # noqa: E731
    return [k for k in keys if any(ok(kind.get(k)) for kind in kinds)]


def calibrate(pred: np.ndarray, target: np.ndarray, levels: tuple[float, ...]) -> dict:
    """``pred [N, H, D]`` (median first, then ``(lo, hi)`` per trained level, narrowest
    first) and ``target [N, H]``, both scaled -> the per-step corrections of every level."""
    residual = np.abs(target - pred[:, :, 0])  # [N, H]
    per_step = lambda s, lv: [conformal_quantile(s[:, h], lv) for h in range(s.shape[1])]  # noqa: E731
    out = {"windows": len(pred), "levels": [float(v) for v in sorted(levels)]}
    out["residual"] = {label(lv): per_step(residual, lv) for lv in sorted({*GRID, *levels})}
    out["cqr"] = {}
    for k, lv in enumerate(sorted(levels)):
        lo, hi = pred[:, :, 1 + 2 * k], pred[:, :, 2 + 2 * k]
        out["cqr"][label(lv)] = per_step(np.maximum(lo - target, target - hi), lv)
    return out


def bands(pred: np.ndarray, calibration: dict, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The calibrated ``(lo, hi)`` ``[N, H]`` at ``level`` from ``pred [N, H, D]`` (scaled):
    the learned quantiles widened by their CQR correction where the model learned the
    level, else the median +- the residual quantile."""
    key = label(level)
    if float(key) != float(level):  # 99.999999 printed as "100": not a level of the run
        key = repr(float(level))
    if key in calibration["cqr"]:
        k = [label(v) for v in calibration["levels"]].index(key)
        c = np.asarray(calibration["cqr"][key])[None, : pred.shape[1]]
        return pred[:, :, 1 + 2 * k] - c, pred[:, :, 2 + 2 * k] + c
    if key in calibration["residual"]:
        c = np.asarray(calibration["residual"][key])[None, : pred.shape[1]]
        return pred[:, :, 0] - c, pred[:, :, 0] + c
    have = sorted({*calibration["residual"], *calibration["cqr"]}, key=float)
    raise ValueError(f"level {key} is not calibrated in this run (calibrated: {', '.join(have)})")


def save(run_dir: str | os.PathLike, calibration: dict) -> Path:
    path = Path(run_dir) / CALIBRATION
    text = json.dumps(calibration, allow_nan=True)  # inf: too few windows for that level
    atomic_write_text(path, text + "\n")
    return path


def load(run_dir: str | os.PathLike) -> dict | None:
    """The run's calibration, or None where it has none; a file of another shape (damaged,
    or overwritten by something else) is one DataError naming it."""
    path = Path(run_dir) / CALIBRATION
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_bytes()[: 64 << 20].decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        raise DataError(path, None, "damaged calibration (not JSON)") from None
    good = isinstance(data, dict) and isinstance(data.get("levels"), list)
    good = good and all(isinstance(data.get(k), dict) for k in ("residual", "cqr"))
    if not good:
        raise DataError(path, None, "damaged calibration (expected levels, residual, cqr)")
    return data
