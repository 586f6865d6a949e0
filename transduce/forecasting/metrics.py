"""Point-forecast scores and baselines exactly as the M4 competition defines them.

Makridakis, Spiliotis & Assimakopoulos (2018), "The M4 Competition: Results, findings,
conclusion and way forward", IJF 34(4), section 2.2: sMAPE and MASE are computed per series
and averaged over series; OWA averages the two, each relative to the Naive2 benchmark.
Naive2 is the naive forecast of the seasonally adjusted series (classical multiplicative
decomposition), used only where a 90% autocorrelation test at lag m finds seasonality.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

TCRIT_90 = 1.645  # one-sided 90% normal quantile used by the M4 seasonality test


def smape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """sMAPE of one series in percent: ``mean(200 |y - f| / (|y| + |f|))``."""
    y, f = np.asarray(actual, float), np.asarray(forecast, float)
    return float(np.mean(200.0 * np.abs(y - f) / (np.abs(y) + np.abs(f))))


def mase(insample: np.ndarray, actual: np.ndarray, forecast: np.ndarray, m: int) -> float:
    """MASE of one series: forecast MAE over the in-sample MAE of the seasonal naive
    forecast with period ``m`` (``m = 1`` for the plain naive scale)."""
    x = np.asarray(insample, float)
    scale = np.mean(np.abs(x[m:] - x[:-m]))
    return float(np.mean(np.abs(np.asarray(actual, float) - np.asarray(forecast, float))) / scale)


def acf(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Sample autocorrelations at lags ``1..max_lag`` (the biased estimator R's ``acf`` uses)."""
    x = np.asarray(x, float) - np.mean(x)
    denom = np.dot(x, x)
    return np.array([np.dot(x[k:], x[:-k]) / denom for k in range(1, max_lag + 1)])


def is_seasonal(x: np.ndarray, m: int) -> bool:
    """The M4 test: ``|r_m| > 1.645 sqrt((1 + 2 sum_{k<m} r_k^2) / n)``; needs ``n >= 3m``."""
    n = len(x)
    if m <= 1 or n < 3 * m:
        return False
    r = acf(x, m)
    limit = TCRIT_90 / np.sqrt(n) * np.sqrt(1.0 + 2.0 * np.sum(r[: m - 1] ** 2))
    return bool(abs(r[m - 1]) > limit)


def seasonal_indices(x: np.ndarray, m: int) -> np.ndarray:
    """Classical multiplicative decomposition: the ``m`` seasonal indices, by position
    ``i % m`` of the observation (mean 1). The trend is the centred moving average
    (a 2 x m average for even ``m``), as in R's ``decompose``."""
    x = np.asarray(x, float)
    # even m: a 2 x m average, so the window is centred on an observation
    weights = np.r_[0.5, np.ones(m - 1), 0.5] / m if m % 2 == 0 else np.ones(m) / m
    half = len(weights) // 2
    trend = np.full(len(x), np.nan)
    trend[half : len(x) - half] = np.convolve(x, weights, mode="valid")
    ratio = x / trend
    figure = np.array([np.nanmean(ratio[k::m]) for k in range(m)])
    return figure / figure.mean()


def naive(x: np.ndarray, h: int) -> np.ndarray:
    """The last value, repeated ``h`` times."""
    return np.full(h, float(np.asarray(x)[-1]))


def seasonal_naive(x: np.ndarray, h: int, m: int) -> np.ndarray:
    """The last season (``m`` values) repeated to ``h`` steps."""
    last = np.asarray(x, float)[-m:]
    return np.resize(last, h)


def naive2(x: np.ndarray, h: int, m: int) -> np.ndarray:
    """Naive on the seasonally adjusted series, re-seasonalised (M4's Naive2 benchmark)."""
    x = np.asarray(x, float)
    if not is_seasonal(x, m):
        return naive(x, h)
    index = seasonal_indices(x, m)
    adjusted = x / index[np.arange(len(x)) % m]
    return adjusted[-1] * index[np.arange(len(x), len(x) + h) % m]


BASELINES = {
    "Naive": lambda x, h, m: naive(x, h),
    "sNaive": seasonal_naive,
    "Naive2": naive2,
}


def score(
    insample: Sequence[np.ndarray],
    actuals: Sequence[np.ndarray],
    forecasts: Sequence[np.ndarray],
    m: int,
) -> dict[str, float]:
    """Mean sMAPE and MASE over series (``insample[i]`` is series i's history)."""
    if not len(insample) == len(actuals) == len(forecasts):
        raise ValueError(
            f"{len(insample)} histories, {len(actuals)} actuals, {len(forecasts)} forecasts"
        )
    for i, (y, f) in enumerate(zip(actuals, forecasts, strict=True)):
        if np.shape(y) != np.shape(f):
            raise ValueError(f"series {i}: actual shape {np.shape(y)} != forecast {np.shape(f)}")
    s = [smape(y, f) for y, f in zip(actuals, forecasts, strict=True)]
    q = [mase(x, y, f, m) for x, y, f in zip(insample, actuals, forecasts, strict=True)]
    return {"smape": float(np.mean(s)), "mase": float(np.mean(q))}


def owa(scores: dict[str, float], reference: dict[str, float]) -> float:
    """Overall weighted average relative to the Naive2 ``reference`` scores."""
    return 0.5 * (scores["smape"] / reference["smape"] + scores["mase"] / reference["mase"])


def baseline_scores(
    insample: Sequence[np.ndarray], actuals: Sequence[np.ndarray], m: int
) -> dict[str, dict[str, float]]:
    """sMAPE, MASE and OWA of Naive, sNaive and Naive2 on the same series."""
    out = {}
    for name, fn in BASELINES.items():
        fc = [fn(x, len(y), m) for x, y in zip(insample, actuals, strict=True)]
        out[name] = score(insample, actuals, fc, m)
    for name in out:
        out[name]["owa"] = owa(out[name], out["Naive2"])
    return out
