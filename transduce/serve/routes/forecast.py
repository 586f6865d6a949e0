"""``POST /v1/forecast``: series through a forecasting model's micro-batcher."""

from __future__ import annotations

import itertools
import math
import time
from datetime import datetime
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Request

from transduce.data.series import MAX_VALUE
from transduce.forecasting.calendar_steps import calendar_step, continue_dates, number_gap
from transduce.serve import schemas as s
from transduce.serve.errors import ApiError
from transduce.serve.limits import ServeLimits
from transduce.serve.routes.common import (
    ERRORS,
    BoundedState,
    arrived,
    decode_or_give_up,
    raw_json,
)
from transduce.serve.routes.translate import pick
from transduce.serve.series_items import series_items
from transduce.serve.state import ServeState

router = APIRouter(tags=["forecast"])


def numbers_first(request: Request, state: BoundedState) -> ServeState:
    """Dependency: every series' values -- and its ``covariates`` and ``future`` lists --
    are numbers and within ``max_values``, checked in one cheap pass before validation
    (pydantic would list each of a million bad values, which costs seconds)."""
    body = raw_json(request)
    series = body.get("series") if isinstance(body, dict) else None
    for i, x in enumerate(series if isinstance(series, list) else ()):
        if not isinstance(x, dict):
            continue  # pydantic says what is wrong
        _numbers(x.get("values"), f"series[{i}].values", state.limits.max_values)
        for key in ("covariates", "future"):
            given = x.get(key)
            for name, values in given.items() if isinstance(given, dict) else ():
                _numbers(values, f"series[{i}].{key}.{name}", state.limits.max_values)
    return state


def _numbers(values: Any, where: str, most: int) -> None:
    """A list of at most ``most`` numbers (JSON numbers, not strings or booleans)."""
    if not isinstance(values, list):
        return  # pydantic says what is wrong
    if len(values) > most:
        raise ApiError(422, where, f"at most {most} values")
    for j, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ApiError(422, f"{where}[{j}]", "must be a number")
        if v != v:  # NaN (sent as NaN, which Python's JSON reads)
            raise ApiError(422, f"{where}[{j}]", "not a number (NaN): give a finite value")
        if not -MAX_VALUE <= v <= MAX_VALUE:  # as the CLI's readers: the scaling overflows
            raise ApiError(422, f"{where}[{j}]", "beyond ±1e15")


@router.post("/v1/forecast", response_model=s.ForecastResponse, responses=ERRORS)
async def forecast(
    body: s.ForecastRequest,
    request: Request,
    state: Annotated[ServeState, Depends(numbers_first)],
) -> s.ForecastResponse:
    arrived(request)
    name, model = pick(state.models, body.model, "series")
    check_series(body.series, state.limits)
    _positive_for_log(body.series, model)
    levels = _levels(body.level, model, body.interval_method)
    if levels and body.interval_method == "normalized":
        _long_enough(body.series, model.forecaster.spec.horizon)
    items = series_items(body.series, model.forecaster)  # with covariates, where it has them
    start = time.perf_counter()
    options = (levels, body.interval_method) if levels else ()
    work = state.batchers[name].submit(items, options)
    preds = await decode_or_give_up(request, state, name, work)
    ms = (time.perf_counter() - start) * 1000
    out = []
    for i, (series, got) in enumerate(zip(body.series, preds, strict=True)):
        pred, bands = got if levels else (got, None)
        if not np.all(np.isfinite(pred)):  # values beyond what the model can scale
            raise ApiError(
                422,
                f"series[{i}].values",
                "the forecast is not finite: the values "
                "are too large (or too varied) for this model",
            )
        for key, bound in (bands or {}).items():
            if not np.all(np.isfinite(bound)) and body.interval_method == "normalized":
                raise ApiError(  # the series' own errors, which scale its band, overflow
                    422,
                    f"series[{i}].values",
                    "the interval is not finite: the values are too large (or too varied) "
                    "for this model",
                )
            if not np.all(np.isfinite(bound)):  # too few calibration windows for the level
                raise ApiError(
                    422,
                    "level",
                    f"the run's calibration cannot bound a "
                    f"{key[3:]}% interval (too few calibration windows): ask for a "
                    "lower level",
                )
        stamps = None
        if series.timestamps is not None:
            stamps = continue_timestamps(series.timestamps, len(pred), f"series[{i}]")
        intervals = {k: v.tolist() for k, v in bands.items()} if bands is not None else None
        out.append(
            s.SeriesForecast(
                id=series.id, values=pred.tolist(), timestamps=stamps, intervals=intervals
            )
        )
    ms = round(ms, 3)
    return s.ForecastResponse(model=name, horizon=len(out[0].values), forecasts=out, decode_ms=ms)


def _levels(levels: list[float], model: Any, method: str = "conformal") -> tuple[float, ...]:
    """The requested interval levels, checked: each strictly between 0 and 100, and a
    model calibrated for intervals by ``method`` (its batcher groups requests by these)."""
    if not levels:
        return ()
    if method == "normalized":
        have = model.levels(method="normalized") if hasattr(model, "levels") else []
        if not have:
            raise ApiError(
                422,
                "interval_method",
                "this model has no normalized calibration (runs trained with interval "
                "levels and no covariates have one): ask for conformal",
            )
    else:
        have = model.levels() if hasattr(model, "levels") else []
    if not have:
        raise ApiError(
            422,
            "level",
            "this model has no conformal calibration (runs trained "
            "before intervals existed, or one stopped before it finished): resume or retrain "
            "it, or ask for no level",
        )
    for k, level in enumerate(levels):
        # conformal.label's form, and the level itself: 79.9999999 printed as "80"
        if f"{float(level):g}" not in have or float(f"{float(level):g}") != float(level):
            raise ApiError(
                422, f"level[{k}]", f"not calibrated in this run; calibrated: {', '.join(have)}"
            )
    return tuple(sorted(set(map(float, levels))))


def _positive_for_log(series: list[s.SeriesInput], model: Any) -> None:
    """A model trained with ``series.scaling: log`` forecasts log ratios: a series with a
    value <= 0 has none, and would come back as positive nonsense (as ``transduce forecast``
    refuses it: :func:`transduce.data.series.require_positive`)."""
    forecaster = getattr(model, "forecaster", None)
    members = getattr(forecaster, "members", [forecaster])  # an ensemble: any member's
    if not any(getattr(getattr(m, "spec", None), "scaling", None) == "log" for m in members):
        return
    for i, x in enumerate(series):
        if x.values and (low := min(x.values)) <= 0:
            raise ApiError(
                422,
                f"series[{i}].values",
                f"a value <= 0 (min {low:g}): this model forecasts log ratios "
                "(series.scaling: log) and needs positive values",
            )


def _long_enough(series: list[s.SeriesInput], horizon: int) -> None:
    """Normalized bands scale each series by the model's errors on its own past: every
    series needs two horizons (so that one request's bands never depend on another's
    series in the same batch)."""
    for i, x in enumerate(series):
        if len(x.values) < 2 * horizon:
            raise ApiError(
                422,
                f"series[{i}].values",
                f"{len(x.values)} values: normalized intervals need at least {2 * horizon} "
                "(two horizons), or ask for conformal",
            )


def check_series(series: list[s.SeriesInput], limits: ServeLimits) -> None:
    if len(series) > limits.max_texts:
        raise ApiError(422, "series", f"{len(series)} series: at most {limits.max_texts}")
    for i, x in enumerate(series):
        if isinstance(x.id, str):
            try:
                x.id.encode("utf-8")
            except UnicodeEncodeError:
                raise ApiError(422, f"series[{i}].id", "not valid Unicode text") from None
        if len(x.values) > limits.max_values:
            raise ApiError(422, f"series[{i}].values", f"at most {limits.max_values} values")
        if x.timestamps is not None and len(x.timestamps) != len(x.values):
            raise ApiError(422, f"series[{i}].timestamps", "one timestamp per value needed")


def continue_timestamps(stamps: list[str | float], horizon: int, where: str) -> list[str | float]:
    """The ``horizon`` timestamps after ``stamps`` at their step (ISO 8601 or numbers): a
    fixed step, whole months, or business days (:mod:`transduce.forecasting.
    calendar_steps`). Every mistake -- mixed kinds or time zones, no increase, a gap or an
    irregular step (which would shift the values against the calendar, as ``transduce
    forecast`` refuses it), a date past year 9999 -- is a 422 naming the field."""
    field = f"{where}.timestamps"
    if len(stamps) < 2:
        raise ApiError(422, field, "need at least two timestamps to continue them")
    kinds = {isinstance(t, str) for t in stamps}
    if len(kinds) > 1:
        raise ApiError(422, field, "mixes numbers and strings: give one kind")
    if kinds == {False}:
        return _continue_numbers([float(t) for t in stamps], horizon, field)
    try:
        times = [datetime.fromisoformat(str(t)) for t in stamps]
    except ValueError:
        raise ApiError(422, field, "timestamps must be ISO 8601 strings or numbers") from None
    if len({t.utcoffset() is None for t in times}) > 1:
        raise ApiError(422, field, "mixes timestamps with and without a time zone")
    if any(b <= a for a, b in itertools.pairwise(times)):
        raise ApiError(422, field, "timestamps must increase")
    step, why = calendar_step(times)
    if step is None:
        raise ApiError(422, field, why)
    try:
        return [t.isoformat() for t in continue_dates(times, step, horizon)]
    except (OverflowError, ValueError):
        raise ApiError(422, field, "the forecast's timestamps would pass year 9999") from None


def _continue_numbers(stamps: list[float], horizon: int, field: str) -> list[float]:
    if any(b <= a for a, b in itertools.pairwise(stamps)):
        raise ApiError(422, field, "timestamps must increase")
    steps = [b - a for a, b in itertools.pairwise(stamps)]
    if not all(math.isfinite(d) for d in steps):
        raise ApiError(422, field, "the forecast's timestamps would overflow")
    if (gap := number_gap(stamps, [f"{t:g}" for t in stamps])) is not None:
        raise ApiError(422, field, gap[1])
    step = steps[-1]
    out = [stamps[-1] + step * (k + 1) for k in range(horizon)]
    if not all(math.isfinite(t) for t in out) or not math.isfinite(step):
        raise ApiError(422, field, "the forecast's timestamps would overflow")
    return out
