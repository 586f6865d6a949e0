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
from datetime import timedelta, timezone
from typing import Any

import numpy as np

from transduce.data.corpus import DataError
from transduce.forecasting.calendar_steps import analyse, gap_message

DAY_US = 86_400_000_000


def written_offsets(raw: Any, parsed: Any, ids: Any) -> np.ndarray | None:
    """Per row, the UTC offset (microseconds) each date of ``raw`` was written with, where
    they differ across the table and pandas therefore gave UTC instants (``parsed``): a zone
    with daylight saving written as text (``-05:00`` in winter, ``-04:00`` in summer). The
    calendar (a daily step, month ends) is read on the wall clock they give back, as the
    ``id,timestamp,value`` reader does. None where the wall clock is at hand already, or
    where it would not advance with the instants in some series (dates from several
    zones: then the instants are the series' time)."""
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(raw) or str(getattr(parsed.dt, "tz", "")) != "UTC":
        return None
    offsets = np.zeros(len(raw), dtype=np.int64)
    text = raw.astype(str)
    ends = text.str[-6:]  # "+01:00", "-0500": one parse per way the dates end, in bulk
    groups = ends.groupby(ends.to_numpy(), sort=False).indices
    if len(groups) > 64:  # many endings (no zone, seconds): one date at a time
        groups = {None: np.arange(len(raw))}
    for end, rows in groups.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                part = pd.to_datetime(text.iloc[rows], format="mixed")
            except (ValueError, TypeError):
                part = None
        if part is not None and part.dt.tz is not None:
            offsets[rows] = part.iloc[0].utcoffset() // pd.Timedelta(microseconds=1)
        elif part is None or end is None:
            offsets[rows] = [_offset_us(x) for x in raw.iloc[rows]]
    if len(np.unique(offsets)) == 1:
        return None
    t = pd.DataFrame({"id": np.asarray(ids), "utc": _micros(parsed.dt.tz_localize(None))})
    t["wall"] = t["utc"] + offsets
    t = t.sort_values(["id", "utc"], kind="stable")
    forward = (t.groupby("id", sort=False)["wall"].diff().dropna() > 0).all()
    return offsets if forward else None


def _offset_us(value: Any) -> int:
    import pandas as pd

    offset = pd.Timestamp(value).utcoffset()
    return 0 if offset is None else offset // pd.Timedelta(microseconds=1)


def local_times(stamps: Any, offsets: np.ndarray | None) -> list:
    """UTC instants as datetimes on the offsets they were written with (as they are without)."""
    import pandas as pd

    if offsets is None:
        return list(stamps)
    instants = pd.DatetimeIndex(pd.to_datetime(stamps, utc=True))
    out = np.empty(len(offsets), dtype=object)
    for o in np.unique(offsets):
        rows = np.flatnonzero(offsets == o)
        zone = timezone(timedelta(microseconds=int(o)))
        out[rows] = list(instants[rows].tz_convert(zone))
    return list(out)


def check_regular(df: Any, where: str, line, offsets: np.ndarray | None = None) -> None:
    """Each series' ``ds`` (numbers, or dates as pandas parsed them) on one regular step,
    else a DataError naming the table's first irregular row. The step is each series' most
    common one in elapsed time; dates also pass on a calendar step
    (:mod:`transduce.forecasting.calendar_steps`: whole months on one day of the month,
    business days, a fixed wall-clock step across a change of UTC offset) or wherever
    pandas infers a frequency. Series of fewer than three values have no step to check.
    ``offsets``: the UTC offsets the dates were written with (:func:`written_offsets`)."""
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
        t["wall"] = _micros(wall) + (0 if offsets is None else offsets)
    t = t.sort_values(["id", "key"], kind="stable")
    t["step"] = t.groupby("id", sort=False)["key"].diff()
    steps = t.dropna(subset=["step"])
    if steps.empty:  # one value per series: no step to check (forecasting says more)
        return
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
            rows = series["row"].to_numpy()
            stamps = pd.to_datetime(df["ds"].iloc[rows])
            written = None if offsets is None else offsets[rows]
            step, at, said = analyse(local_times(stamps.dt.to_pydatetime(), written))
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
