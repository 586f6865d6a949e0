"""Series with covariates through ``POST /v1/forecast``: a request's series checked against
the covariates its model was trained with, and the items the micro-batcher carries.

A model trained with ``series.covariates`` (future-known) and ``series.past_covariates``
needs, per series, every covariate over the history (one value per history value, by
name) and the future-known ones over the forecast steps (at least ``horizon`` values):
the ``covariates`` and ``future`` objects of a series, as ``transduce forecast`` reads
them from a long table and ``--future``. A model without covariates refuses them, so a
misspelt or misplaced field is never ignored.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from transduce.serve.errors import ApiError


class SeriesItem(NamedTuple):
    """One series: history ``[n]``; for a covariate model its covariates ``[n, C]``
    (future-known first) and the future-known values over the forecast steps ``[H, Ck]``;
    ``origin``: the steps its history ends after the run's training series ended (its
    timestamps told; :mod:`transduce.forecasting.phase`)."""

    values: np.ndarray
    covariates: np.ndarray | None
    future: np.ndarray | None
    origin: int = 0


def covariate_names(forecaster: Any) -> tuple[tuple[str, ...], int]:
    """The model's covariates (future-known first) and how many are future-known (an
    ensemble's members share them)."""
    names = tuple(getattr(forecaster, "covariate_names", ()))
    return names, forecaster.spec.covariates if names else 0


def series_items(series: list[Any], forecaster: Any) -> list[Any]:
    """What the batcher decodes for the request's ``series``: the history arrays, or
    :class:`SeriesItem` for a model with covariates; a missing, unknown or short
    covariate is a 422 naming ``series[i].covariates.NAME`` (or ``.future.NAME``)."""
    names, known = covariate_names(forecaster)
    ids, stamps = [str(x.id) for x in series], [x.timestamps or [] for x in series]
    try:  # histories that end after training's end
        origins = forecaster.origins(ids, stamps)
    except ValueError as err:  # an ensemble of runs whose series ended apart
        raise ApiError(422, "model", str(err)) from None
    out = []
    for i, x in enumerate(series):
        values = np.asarray(x.values, dtype=np.float64)
        if not names:
            for key in ("covariates", "future"):
                if getattr(x, key) is not None:
                    raise ApiError(422, f"series[{i}].{key}", "this model takes no covariates")
            origin = int(origins[i])
            out.append(SeriesItem(values, None, None, origin) if origin else values)
            continue
        past = _columns(x.covariates, names, len(values), f"series[{i}].covariates", "==")
        horizon = forecaster.spec.horizon
        ahead = _columns(x.future, names[:known], horizon, f"series[{i}].future", ">=")
        out.append(SeriesItem(values, past, ahead, int(origins[i])))
    return out


def _columns(
    given: dict[str, list[float]] | None, names: tuple[str, ...], n: int, where: str, how: str
) -> np.ndarray:
    """``given``'s lists for ``names`` side by side, ``[n, len(names)]`` (exactly ``n``
    values each with ``how="=="``, at least ``n`` with ``">="``)."""
    given = given or {}
    if names and not given:
        raise ApiError(422, where, f"this model needs the covariates {list(names)} here")
    for key in given:
        if key not in names:
            raise ApiError(
                422, f"{where}.{key}", f"not a covariate here (the model's: {list(names)})"
            )
    for name in names:
        got = given.get(name)
        if got is None:
            raise ApiError(422, f"{where}.{name}", "missing")
        if (how == "==" and len(got) != n) or len(got) < n:
            need = f"{n} (one per history value)" if how == "==" else f"at least {n}"
            raise ApiError(422, f"{where}.{name}", f"{len(got)} values: {need}")
    if not names:
        return np.zeros((n, 0))
    return np.stack([np.asarray(given[name][:n], dtype=np.float64) for name in names], -1)


def split_items(items: list[Any]) -> tuple[list[np.ndarray], dict[str, Any]]:
    """The batch's histories, and the forecaster's keywords: ``covariates`` / ``future``
    for a covariate model, ``origin`` per series where a history ends after training's."""
    full = [x if isinstance(x, SeriesItem) else SeriesItem(x, None, None) for x in items]
    extra: dict[str, Any] = {}
    if any(x.origin for x in full):  # the batch merges requests: one origin per series
        extra["origin"] = np.array([x.origin for x in full], dtype=np.int64)
    if full and full[0].covariates is not None:
        extra.update(covariates=[x.covariates for x in full], future=[x.future for x in full])
    return [x.values for x in full], extra
