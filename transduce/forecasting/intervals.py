"""Prediction-interval scores as the M4 competition defines them, and the pinball loss.

Makridakis, Spiliotis & Assimakopoulos (2020), "The M4 Competition: 100,000 time series
and 61 forecasting methods", IJF 36(1), section 2.3 (after Gneiting & Raftery 2007): the
mean scaled interval score of a series with history ``x`` (length n, period m), interval
``[L, U]`` at level ``1 - a`` and actuals ``Y`` over h steps is

    MSIS = (1/h) sum_t [(U_t - L_t) + (2/a)(L_t - Y_t) 1{Y_t < L_t} + (2/a)(Y_t - U_t) 1{Y_t > U_t}]
           / ((1/(n - m)) sum_{t=m+1}^{n} |x_t - x_{t-m}|)

averaged over series; ACD is the absolute difference between the coverage (the share of
all series' actuals inside their intervals, every step of every series counted once) and
the nominal ``1 - a``. The competition scored 95% intervals (a = 0.05).
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import NormalDist

import numpy as np


def seasonal_scale(insample: np.ndarray, m: int) -> float:
    """MASE's denominator: the in-sample MAE of the seasonal naive forecast."""
    x = np.asarray(insample, float)
    return float(np.mean(np.abs(x[m:] - x[:-m])))


def interval_score(lo, hi, actual, a: float) -> np.ndarray:
    """The interval score per step (Gneiting & Raftery 2007, eq. 43), unscaled."""
    lo, hi, y = (np.asarray(v, float) for v in (lo, hi, actual))
    return (hi - lo) + (2 / a) * (lo - y) * (y < lo) + (2 / a) * (y - hi) * (y > hi)


def msis(insample, actual, lo, hi, m: int, a: float = 0.05) -> float:
    """MSIS of one series (see the module docstring)."""
    return float(np.mean(interval_score(lo, hi, actual, a)) / seasonal_scale(insample, m))


def coverage(actuals: Sequence, lo: Sequence, hi: Sequence) -> float:
    """Share of all steps of all series whose actual lies in ``[lo, hi]`` (bounds count)."""
    inside = [
        (np.asarray(y) >= lo_) & (np.asarray(y) <= hi_)
        for y, lo_, hi_ in zip(actuals, lo, hi, strict=True)
    ]
    return float(np.mean(np.concatenate(inside)))


def acd(actuals: Sequence, lo: Sequence, hi: Sequence, a: float = 0.05) -> float:
    """Absolute coverage difference: ``|coverage - (1 - a)|`` over all series and steps."""
    return abs(coverage(actuals, lo, hi) - (1 - a))


def interval_scores(
    insample: Sequence, actuals: Sequence, lo: Sequence, hi: Sequence, m: int, level: float
) -> dict[str, float]:
    """Mean MSIS over series, ACD and coverage of intervals at ``level`` percent."""
    a = 1 - level / 100
    with np.errstate(divide="ignore", invalid="ignore"):  # a flat history: scale 0
        per = [
            msis(x, y, lo_, hi_, m, a)
            for x, y, lo_, hi_ in zip(insample, actuals, lo, hi, strict=True)
        ]
    finite = [v for v in per if np.isfinite(v)]
    return {
        "msis": float(np.mean(finite)) if finite else float("nan"),
        "acd": acd(actuals, lo, hi, a),
        "coverage": coverage(actuals, lo, hi),
    }


def pinball(actual: np.ndarray, predicted: np.ndarray, q: float) -> float:
    """Mean pinball (quantile) loss of quantile ``q`` predictions (Koenker & Bassett 1978):
    ``max(q (y - p), (q - 1)(y - p))``."""
    diff = np.asarray(actual, float) - np.asarray(predicted, float)
    return float(np.mean(np.maximum(q * diff, (q - 1) * diff)))


def naive_interval(x: np.ndarray, h: int, level: float = 95.0) -> tuple[np.ndarray, np.ndarray]:
    """The random-walk interval of the Naive benchmark, as R's ``forecast::naive`` builds
    it (the M4 benchmarks' package): last value ``+- z sigma sqrt(k)`` at step k, with
    ``sigma^2`` the mean squared one-step naive residual."""
    x = np.asarray(x, float)
    sigma = np.sqrt(np.mean(np.diff(x) ** 2))
    half = NormalDist().inv_cdf(0.5 + level / 200) * sigma * np.sqrt(np.arange(1, h + 1))
    return x[-1] - half, x[-1] + half
