"""Whether each series of a long table is on one regular step (:func:`check_regular`).

A forecasting model reads a series as consecutive steps: its calendar and seasonal inputs
count steps back from the end. A missing row (an hour the logger dropped, a day not
exported) shifts every value before it by one step against the hour or day the model takes
it for, and nothing downstream can tell. So a gap is one error naming its row, as darts
refuses a series whose frequency it cannot infer. Called by
:func:`transduce.forecasting.frames.frame_to_series` (pandas is there).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from transduce.data.corpus import DataError

DAY_US = 86_400_000_000


def check_regular(df: Any, where: str, line) -> None:
    """Each series' ``ds`` (numbers, or dates as pandas parsed them) on one regular step,
    else a DataError naming the table's first irregular row. The step is each series' most
    common one; dates whose step varies with the calendar pass: whole months (quarters,
    years) on one day of the month or on month ends, and whatever else pandas infers a
    frequency for (business days, ...). Series of fewer than three values have no step to
    check."""
    import pandas as pd

    ds = df["ds"]
    dated = pd.api.types.is_datetime64_any_dtype(ds)
    if dated and ds.dt.tz is not None:
        ds = ds.dt.tz_convert("UTC").dt.tz_localize(None)  # instants: no DST jumps
    key = ds.to_numpy().astype("datetime64[us]").astype(np.int64) if dated else ds.to_numpy(float)
    t = pd.DataFrame({"id": df["unique_id"].to_numpy(), "key": key, "row": np.arange(len(df))})
    t = t.sort_values(["id", "key"], kind="stable")
    t["step"] = t.groupby("id", sort=False)["key"].diff()
    steps = t.dropna(subset=["step"])
    if not dated:
        steps = steps.assign(step=steps["step"].round(9))  # decimal steps: 0.1 as 0.1
    counts = steps.groupby(["id", "step"]).size().reset_index(name="n")
    counts = counts.sort_values(["id", "n"], ascending=[True, False], kind="stable")
    usual = counts.drop_duplicates("id").set_index("id")["step"]
    usual = usual[steps.groupby("id").size() >= 2]  # a step to compare with
    expected = steps["id"].map(usual)
    off = expected.notna() & ~np.isclose(steps["step"], expected.fillna(0), rtol=1e-6, atol=0)
    firsts = steps[off].groupby("id", sort=False).head(1).sort_values("row")
    if dated and len(firsts):  # a calendar frequency (months, business days) is one step
        firsts = firsts[~firsts["id"].isin(_calendar_regular(t[t["id"].isin(firsts["id"])]))]
    if firsts.empty:
        return
    first = firsts.iloc[0]  # the table's first irregular row
    row, step, usual_step = int(first["row"]), first["step"], usual[first["id"]]
    if not dated:
        step, usual_step = f"{step:g}", f"{usual_step:g}"
    elif (by_calendar := _calendar_gap(t[t["id"] == first["id"]])) is not None:
        row, step, unit, usual_step = by_calendar  # e.g. months: 28-31 days are one step
        step, usual_step = f"{step} {unit}", f"{usual_step} {unit}"
    else:
        step, usual_step = pd.Timedelta(int(step), "us"), pd.Timedelta(int(usual_step), "us")
    name = repr(str(df["unique_id"].iloc[row])[:40])
    raise DataError(
        where,
        line(row),
        f"row {row}: series {name}: ds {str(df['ds'].iloc[row])[:30]} comes {step} "
        f"after the one before, where its step is {usual_step}: a gap or an irregular step "
        "would shift the values before it against the calendar; fill or resample the "
        "series to one step first",
    )


def _calendar_regular(t: Any) -> set:
    """The series of ``t`` (``id``, ``key`` in microseconds, sorted) on a calendar step:
    whole months on one day of the month (or on month ends) at one time of day, checked
    for all at once; else where pandas infers a frequency, one series at a time."""
    import pandas as pd

    when = pd.to_datetime(t["key"].to_numpy(), unit="us")
    months = pd.DataFrame(
        {
            "id": t["id"].to_numpy(),
            "m": when.year * 12 + when.month,
            "day": np.where(when.is_month_end, 0, when.day),
            "time": t["key"].to_numpy() % DAY_US,
        }
    )
    months["step"] = months.groupby("id", sort=False)["m"].diff()
    g = months.groupby("id", sort=False)
    same = (g["step"].nunique() == 1) & (g["step"].min() > 0)
    same &= (g["day"].nunique() == 1) & (g["time"].nunique() == 1)
    regular = set(same[same].index)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # infer_freq's return type is to change: truth only
        for name, keys in t[~t["id"].isin(regular)].groupby("id", sort=False)["key"]:
            index = pd.DatetimeIndex(keys.to_numpy().astype("datetime64[us]"))
            if pd.infer_freq(index) is not None:
                regular.add(name)
    return regular


def _calendar_gap(t: Any) -> tuple[int, int, str, int] | None:
    """For a series of dates at one time of day, on one day of the month or on weekdays
    only: the row of its first step of other than its usual number of months (business
    days), that step, the unit and the usual step; None for other series."""
    import pandas as pd

    when = pd.to_datetime(t["key"].to_numpy(), unit="us")
    if len(set(t["key"].to_numpy() % DAY_US)) > 1:
        return None
    if len(set(np.where(when.is_month_end, 0, when.day))) == 1:
        steps, unit = np.diff(np.asarray(when.year * 12 + when.month)), "month(s)"
    elif (when.day_of_week < 5).all():
        days = when.to_numpy().astype("datetime64[D]")
        steps, unit = np.busday_count(days[:-1], days[1:]), "business day(s)"
    else:
        return None
    usual = int(np.bincount(steps).argmax()) if len(steps) and steps.min() >= 0 else 0
    off = np.flatnonzero(steps != usual) if usual else []
    return (int(t["row"].iloc[off[0] + 1]), int(steps[off[0]]), unit, usual) if len(off) else None
