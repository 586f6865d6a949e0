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
from transduce.forecasting.calendar_steps import analyse, gap_message

DAY_US = 86_400_000_000


def check_regular(df: Any, where: str, line) -> None:
    """Each series' ``ds`` (numbers, or dates as pandas parsed them) on one regular step,
    else a DataError naming the table's first irregular row. The step is each series' most
    common one in elapsed time; dates also pass on a calendar step
    (:mod:`transduce.forecasting.calendar_steps`: whole months on one day of the month,
    business days, a fixed wall-clock step across a change of UTC offset) or wherever
    pandas infers a frequency. Series of fewer than three values have no step to check."""
    import pandas as pd

    ds = df["ds"]
    dated = pd.api.types.is_datetime64_any_dtype(ds)
    wall = ds
    if dated and ds.dt.tz is not None:
        wall = ds.dt.tz_localize(None)  # the local wall clock
        ds = ds.dt.tz_convert("UTC").dt.tz_localize(None)  # instants
    key = _micros(ds) if dated else ds.to_numpy(float)
    t = pd.DataFrame({"id": df["unique_id"].to_numpy(), "key": key, "row": np.arange(len(df))})
    if dated:
        t["wall"] = _micros(wall)
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
    if dated and len(firsts):  # a calendar step (months, business days) is one step
        firsts = firsts[~firsts["id"].isin(_calendar_regular(t[t["id"].isin(firsts["id"])]))]
    for _, first in firsts.iterrows():  # the table's first irregular series first
        row, said = int(first["row"]), None
        if dated:  # described by the calendar: months, business days, or a fixed step
            series = t[t["id"] == first["id"]]
            stamps = pd.to_datetime(df["ds"].iloc[series["row"].to_numpy()])
            step, at, said = analyse(list(stamps.dt.to_pydatetime()))
            if step is not None:
                continue  # regular by the calendar after all
            row = int(series["row"].iloc[at])
        else:
            shown = str(df["ds"].iloc[row])[:30]
            said = gap_message(shown, f"{first['step']:g}", f"{usual[first['id']]:g}")
        name = repr(str(df["unique_id"].iloc[row])[:40])
        raise DataError(where, line(row), f"row {row}: series {name}: ds {said}")


def _micros(ds: Any) -> np.ndarray:
    return ds.to_numpy().astype("datetime64[us]").astype(np.int64)


def _calendar_regular(t: Any) -> set:
    """The series of ``t`` (``id``, ``wall``: local wall-clock microseconds, sorted) on a
    calendar step, checked for all at once: whole months on one day of the month D (on the
    month's last day where it is shorter) at one time of day, or one fixed wall-clock step
    (daily data across a change of UTC offset); else where pandas infers a frequency
    (business days, ...), one series at a time."""
    import pandas as pd

    when = pd.to_datetime(t["wall"].to_numpy(), unit="us")
    cal = pd.DataFrame(
        {
            "id": t["id"].to_numpy(),
            "m": when.year * 12 + when.month,
            "day": when.day,
            "dim": when.days_in_month,
            "time": t["wall"].to_numpy() % DAY_US,
            "wall": t["wall"].to_numpy(),
        }
    )
    g = cal.groupby("id", sort=False)
    anchor = g["day"].transform("max")
    cal["fits"] = cal["day"] == np.minimum(anchor, cal["dim"])
    cal["step"] = g["m"].diff()
    cal["wstep"] = g["wall"].diff()
    g = cal.groupby("id", sort=False)
    months = (g["step"].nunique() == 1) & (g["step"].min() > 0) & g["fits"].all()
    months &= g["time"].nunique() == 1
    fixed = g["wstep"].nunique() == 1
    regular = set(months[months | fixed].index)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # infer_freq's return type is to change: truth only
        for name, keys in t[~t["id"].isin(regular)].groupby("id", sort=False)["wall"]:
            index = pd.DatetimeIndex(keys.to_numpy().astype("datetime64[us]"))
            if pd.infer_freq(index) is not None:
                regular.add(name)
    return regular
