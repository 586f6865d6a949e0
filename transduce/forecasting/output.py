"""Forecast files: the M4 wide layout (``id,F1..FH``) or, for series read from a long
``id,timestamp,value`` file, the same long layout with the future timestamps continued at
the series' own frequency."""

from __future__ import annotations

import csv
import logging
import os
import re
from collections import Counter
from datetime import datetime, timedelta
from itertools import pairwise

import numpy as np

from transduce.atomic import atomic_output
from transduce.data.series import SeriesSet
from transduce.forecasting.calendar_steps import (
    Step,
    analyse,
    continue_dates,
    month_anchor,
    number_gap,
)
from transduce.forecasting.metrics import baseline_scores, owa, score

log = logging.getLogger("transduce.forecast")


def parse_stamp(text: str) -> datetime:
    """An ISO 8601 date or date-time (``2024-01-31``, ``2024-01-31 13:00``, ``...T13:00:00``)."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"timestamp {text!r} is not an ISO 8601 date or date-time") from None


def _numeric(stamps: list[str]) -> bool:
    """Time steps written as integers (``0, 1, 2``), which the long reader accepts."""
    return all(s.strip().lstrip("-").isdigit() for s in stamps)


def infer_frequency(stamps: list[str]) -> timedelta | str | int:
    """The step between consecutive timestamps: an integer for integer time steps;
    ``"month"`` (``"3month"``) for dates on one day of the month (or month ends) whole
    months apart, ``"bday"`` for business days, else a fixed step
    (:func:`transduce.forecasting.calendar_steps.calendar_step`); for an irregular series,
    its most common difference. Needs two."""
    return _frequency(stamps)[0]


def _frequency(stamps: list[str]) -> tuple[timedelta | str | int, str | None, int | None]:
    """:func:`infer_frequency`, where the stamps leave that step (a gap) described, and
    the index of the stamp after the gap (None, None: no gap)."""
    if len(stamps) < 2:
        raise ValueError(f"cannot infer a frequency from {len(stamps)} timestamp(s)")
    if _numeric(stamps):
        values = [int(t) for t in stamps]
        step = Counter(b - a for a, b in pairwise(values)).most_common(1)[0][0]
        if step <= 0:
            raise ValueError(f"time steps do not increase ({stamps[0][:40]} ...)")
        gap = number_gap(values, stamps)
        return (step, gap[1], gap[0]) if gap else (step, None, None)
    times = [parse_stamp(t) for t in stamps]
    if len({t.utcoffset() is None for t in times}) > 1:
        raise ValueError(f"timestamps with and without a time zone ({stamps[0][:40]} ...)")
    if any(b <= a for a, b in pairwise(times)):
        raise ValueError(f"timestamps do not increase ({stamps[0][:40]} ...)")
    found, at, why = analyse(times)
    if found is None:
        return Counter(b - a for a, b in pairwise(times)).most_common(1)[0][0], why, at
    if found.kind == "month":
        return ("month" if found.size == 1 else f"{found.size}month"), None, None
    return ("bday" if found.kind == "bday" else found.size), None, None


def describe_frequency(step: timedelta | str | int) -> str:
    """``1h``, ``15min``, ``1d``, ``month``, ``1`` (integer time steps), ... for the JSON
    summary."""
    if isinstance(step, str):
        return step
    if isinstance(step, int):
        return str(step)
    micro = step // timedelta(microseconds=1)
    if micro % 1_000_000:  # under a second, or not whole seconds (0.5 s said "0d")
        return f"{micro // 1000}ms" if micro % 1000 == 0 else f"{micro}us"
    seconds = micro // 1_000_000
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def future_stamps(stamps: list[str], horizon: int, step: timedelta | str | int) -> list[str]:
    """``horizon`` timestamps after the last one, written like the input's (integer time
    steps continue as integers)."""
    if isinstance(step, int):
        return [str(int(stamps[-1]) + k * step) for k in range(1, horizon + 1)]
    times = [parse_stamp(t) for t in stamps]
    if step == "bday":
        found = Step("bday", 1)
    elif isinstance(step, str):  # "month", "3month": on the series' day of the month
        anchor = month_anchor(times) or times[-1].day
        found = Step("month", int(step[: -len("month")] or 1), anchor)
    else:
        found = Step("fixed", step)
    try:
        return [_like(when, stamps[-1]) for when in continue_dates(times, found, horizon)]
    except (OverflowError, ValueError):
        steps = "step runs" if horizon == 1 else f"{horizon} steps run"
        raise ValueError(
            f"the {steps} after {stamps[-1][:40]} past year 9999, the last date this can write"
        ) from None


def check_timestamps(path: str | os.PathLike, series: SeriesSet) -> None:
    """Before the model runs: each series' timestamps continue (a frequency, ISO 8601
    dates or integer steps), else one line naming the file and the series."""
    from transduce.errors import DataError

    for name, stamps in zip(series.ids, series.timestamps or [], strict=False):
        if not stamps or not isinstance(stamps[0], str):
            return  # a pandas table: its own dates
        try:
            step, gap, at = _frequency(stamps)
            future_stamps(stamps, 1, step)
        except ValueError as err:
            raise DataError(path, None, f"series {name[:40]}: {err}") from None
        if gap is not None:
            lines = series.lines[series.ids.index(name)] if series.lines else None
            line = lines[at] if lines and at is not None else None  # the row after the gap
            raise DataError(path, line, f"series {name[:40]}: {gap}")


def check_finite(ids: list[str], forecasts: np.ndarray) -> None:
    """Refuse forecasts that overflowed (values too large for the model's scaling)
    rather than writing them as nulls."""
    bad = [name for name, row in zip(ids, forecasts, strict=True) if not np.isfinite(row).all()]
    if bad:
        raise ValueError(
            f"series {', '.join(b[:40] for b in bad[:3])}: the forecast is not a "
            "finite number (values too large for this model?)"
        )


def _like(when: datetime, example: str) -> str:
    """``when`` written as ``example`` is: a date, or date and time to the minute, the
    second or a fraction of it, with the example's separator and its zone written the same
    way (``Z`` stays ``Z``)."""
    if len(example) == 10:  # a date
        return when.date().isoformat()
    sep = "T" if "T" in example else " "
    clock = example.split(sep, 1)[-1]
    zone = re.search(r"(Z|[+-]\d\d:?\d\d)$", clock)
    clock = clock[: zone.start()] if zone else clock
    if "." in clock:  # 00:00:00.5 and 00:00:00.500 keep their fraction (0.5 s steps)
        spec = "milliseconds" if len(clock.split(".", 1)[1]) <= 3 else "microseconds"
    else:
        spec = "seconds" if clock.count(":") == 2 else "minutes"
    out = when.isoformat(sep=sep, timespec=spec)
    if zone and zone.group(1) == "Z" and out.endswith("+00:00"):
        out = out[: -len("+00:00")] + "Z"
    return out


def write_long_forecasts(
    path: str | os.PathLike, series: SeriesSet, forecasts: np.ndarray, bands: dict | None = None
) -> str:
    """``id,timestamp,value`` rows after each series' last timestamp (``id,step,value``,
    steps 1..H, for series without timestamps), then ``lo-L,hi-L`` per interval level in
    ``bands`` (``{"80": (lo [N, H], hi [N, H])}``); returns the frequency (of the first
    series; each series steps at its own)."""
    bands = bands or {}
    head = ["id", "timestamp" if series.timestamps is not None else "step", "value"]
    rows = [head + [f"{side}-{k}" for k in bands for side in ("lo", "hi")]]
    first = None
    for i, (name, row) in enumerate(zip(series.ids, forecasts, strict=True)):
        stamps = [str(k) for k in range(1, len(row) + 1)]
        if series.timestamps is not None:
            try:
                step = infer_frequency(series.timestamps[i])
            except ValueError as err:
                raise ValueError(f"series {name}: {err}") from None
            first = first or describe_frequency(step)
            stamps = future_stamps(series.timestamps[i], len(row), step)
        for h, (stamp, value) in enumerate(zip(stamps, row, strict=True)):
            cells = [f"{x[i, h]:.6g}" for lo, hi in bands.values() for x in (lo, hi)]
            rows.append([name, stamp, f"{value:.6g}", *cells])
    _write_rows(path, rows)
    return first or ""


def _write_rows(path: str | os.PathLike, rows: list[list[str]]) -> None:
    """CSV rows to ``path`` like ``translate --output`` (a FIFO written through, a file
    replaced when done); a cell with a comma, quote or line break is quoted (RFC 4180), so
    any series id reads back as written."""
    with atomic_output(path) as f:
        csv.writer(f, lineterminator="\n").writerows(rows)


def warn_short_series(series: SeriesSet, lookback: int) -> int:
    """Log a warning naming the series shorter than the model's ``lookback`` (they are
    left-padded with their first value); returns how many there are."""
    short = [name for name, x in zip(series.ids, series.values, strict=True) if len(x) < lookback]
    if short:
        names = ", ".join(short[:5]) + (" ..." if len(short) > 5 else "")
        log.warning(
            "%d of %d series are shorter than the lookback of %d values and are left-padded: %s",
            len(short),
            len(series),
            lookback,
            names,
        )
    return len(short)


def interval_records(point: np.ndarray, bands: dict) -> list[dict[str, list[float]]]:
    """Per series, ``{"lo-80": [...], "hi-80": [...], ...}`` from ``forecast_intervals``'
    bands: the ``intervals`` field of a ``/v1/forecast`` response (serve/schemas.py)."""
    return [
        {
            f"{side}-{key}": b[j][i].tolist()
            for key, b in bands.items()
            for j, side in enumerate(("lo", "hi"))
        }
        for i in range(len(point))
    ]


def evaluate_forecasts(
    history: SeriesSet, actuals: SeriesSet, forecasts: np.ndarray, period: int
) -> dict[str, float | dict]:
    """sMAPE, MASE and OWA of ``forecasts`` and of the Naive/sNaive/Naive2 baselines."""
    if history.ids != actuals.ids:
        raise ValueError("the actuals' series ids differ from the history's (same order needed)")
    h = forecasts.shape[1]
    longer = sum(len(a) > h for a in actuals.values)
    if longer:  # not silently: the history itself passed as --actuals would score too
        logging.getLogger("transduce.forecast").warning(
            "%d of %d actual series have more than the horizon's %d values: scored on their "
            "first %d (were the actuals meant to be the values that followed?)",
            longer,
            len(actuals.values),
            h,
            h,
        )
    truth = [a[:h] for a in actuals.values]
    if any(len(a) < h for a in truth):
        raise ValueError(f"every actual series needs {h} values")
    base = baseline_scores(history.values, truth, period)
    ours = score(history.values, truth, list(forecasts), period)
    ours["owa"] = owa(ours, base["Naive2"])
    return {**ours, "baselines": base}


def write_forecasts(path: str | os.PathLike, ids: list[str], forecasts: np.ndarray) -> None:
    """``id,F1..FH`` (the M4 submission layout), to ``path`` like ``translate --output``."""
    header = ["id", *(f"F{i + 1}" for i in range(forecasts.shape[1]))]
    rows = [[name, *(f"{v:.6g}" for v in row)] for name, row in zip(ids, forecasts, strict=True)]
    _write_rows(path, [header, *rows])
