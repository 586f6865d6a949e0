"""The step of a dated series, by the calendar, without pandas: what the forecast's stamps
continue and where a series leaves its step (a gap). Shared by the ``id,timestamp,value``
writer (:mod:`transduce.forecasting.output`), the server's ``/v1/forecast``
(:mod:`transduce.serve.routes.forecast`) and the long-table check
(:mod:`transduce.forecasting.regular`).

A series steps by whole **months** when every date falls on one day of the month D, or on
its last day where the month is shorter (the 31st: month ends; the 30th: February's last
day), at one wall-clock time; by **business days** when every date is a weekday at one
time and a step crosses a weekend; else by one **fixed** step, measured as elapsed time or,
for dates whose UTC offset changes (daylight saving), as wall-clock time.
"""

from __future__ import annotations

import calendar
import math
from collections import Counter
from datetime import datetime, timedelta
from itertools import pairwise
from typing import NamedTuple

import numpy as np


class Step(NamedTuple):
    kind: str  # "month", "bday" or "fixed"
    size: int | timedelta  # months, business days, or the fixed step
    anchor: int = 0  # "month": the day of the month D the dates keep


def wall_clock(t: datetime) -> datetime:
    """``t`` as its clock on the wall reads, without its zone."""
    return t.replace(tzinfo=None)


def month_anchor(times: list[datetime]) -> int | None:
    """D when every date is on day min(D, days in its month) at one wall time, else None."""
    if len({wall_clock(t).time() for t in times}) > 1:
        return None
    day = max(t.day for t in times)
    fits = all(t.day == min(day, calendar.monthrange(t.year, t.month)[1]) for t in times)
    return day if fits else None


def _months(times: list[datetime]) -> list[int] | None:
    if month_anchor(times) is None:
        return None
    steps = [(b.year - a.year) * 12 + b.month - a.month for a, b in pairwise(times)]
    return steps if steps and min(steps) > 0 else None


def _business_days(times: list[datetime]) -> list[int] | None:
    if any(t.weekday() >= 5 for t in times) or len({wall_clock(t).time() for t in times}) > 1:
        return None
    days = np.array([t.date() for t in times], dtype="datetime64[D]")
    return np.busday_count(days[:-1], days[1:]).tolist()


def _usual(steps: list) -> tuple[object, int | None]:
    """The most common step and the index of the first step that is not it (or None)."""
    usual = Counter(steps).most_common(1)[0][0]
    return usual, next((k for k, s in enumerate(steps) if s != usual), None)


def _misfits(steps: list) -> int:
    usual = Counter(steps).most_common(1)[0][0]
    return sum(s != usual for s in steps)


def calendar_step(times: list[datetime]) -> tuple[Step | None, str | None]:
    """``(step, None)`` for a regular series (two dates at least, increasing), or
    ``(None, why)``: the first date after a gap or an irregular step, described."""
    step, _, why = analyse(times)
    return step, why


def analyse(times: list[datetime]) -> tuple[Step | None, int | None, str | None]:
    """:func:`calendar_step`, with the index in ``times`` of the date after the gap."""
    months, bdays = _months(times), _business_days(times)
    instant = [b - a for a, b in pairwise(times)]
    wall = [wall_clock(b) - wall_clock(a) for a, b in pairwise(times)]
    if months is not None and len(set(months)) == 1:
        return Step("month", months[0], month_anchor(times)), None, None
    if bdays is not None and set(bdays) == {1} and max(wall) > timedelta(days=1):
        return Step("bday", 1), None, None
    for steps in (instant, wall):  # elapsed time, else wall-clock time (an offset changed)
        if len(set(steps)) == 1:
            return Step("fixed", steps[0]), None, None
    unit, steps = "", min(instant, wall, key=_misfits)  # the clock the series keeps best
    if months is not None:
        unit, steps = " month(s)", months
    elif bdays is not None:
        unit, steps = " business day(s)", bdays
    usual, k = _usual(steps)
    k = 0 if k is None else k
    return None, k + 1, gap_message(times[k + 1].isoformat(), steps[k], usual, unit)


def gap_message(stamp: str, step: object, usual: object, unit: str = "") -> str:
    """The one description of a gap, for every reader of series and the server."""
    return (
        f"{stamp} comes {step}{unit} after the one before, where the step is {usual}{unit}: "
        "a gap or an irregular step would shift the values before it against the calendar; "
        "fill or resample the series to one step first"
    )


def number_gap(values: list[float], shown: list[str]) -> tuple[int, str] | None:
    """For increasing numeric stamps (``shown`` as written): the index of the first one
    after a step other than the most common (within rounding), and its description; None
    when every step is the one."""
    steps = [b - a for a, b in pairwise(values)]
    usual = Counter(round(d, 9) for d in steps).most_common(1)[0][0]
    for k, step in enumerate(steps):
        if not math.isclose(step, usual, rel_tol=1e-9, abs_tol=1e-12):
            return k + 1, gap_message(shown[k + 1][:40], _number(step), _number(usual))
    return None


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def continue_dates(times: list[datetime], step: Step, horizon: int) -> list[datetime]:
    """``horizon`` dates after the last of ``times`` at ``step`` (OverflowError or
    ValueError past year 9999)."""
    last = times[-1]
    if step.kind == "month":
        out = []
        for k in range(1, horizon + 1):
            year, month = divmod(last.month - 1 + step.size * k, 12)
            year += last.year
            day = min(step.anchor, calendar.monthrange(year, month + 1)[1])
            out.append(last.replace(year=year, month=month + 1, day=day))
        return out
    if step.kind == "bday":
        first = np.datetime64(last.date(), "D")
        days = np.busday_offset(first, np.arange(1, horizon + 1), roll="forward")
        if days[-1] > np.datetime64("9999-12-31"):
            raise OverflowError("past year 9999")
        return [datetime.combine(d.astype(object), last.timetz()) for d in days]
    return [last + step.size * k for k in range(1, horizon + 1)]


def steps_between(first: datetime, last: datetime, step: Step) -> int | None:
    """How many steps ``last`` is after ``first`` (negative: before), or None when it
    is not a whole number of them (or one date has a zone and the other not)."""
    if (first.utcoffset() is None) != (last.utcoffset() is None):
        return None
    if step.kind == "month":
        months = (last.year - first.year) * 12 + last.month - first.month
        return months // step.size if months % step.size == 0 else None
    if step.kind == "bday":
        return int(np.busday_count(first.date(), last.date()))
    for a, b in ((first, last), (wall_clock(first), wall_clock(last))):  # elapsed, else wall-clock
        if (b - a) % step.size == timedelta(0):
            return (b - a) // step.size
    return None
