"""Long tables of series in Nixtla's convention: one row per observation with the columns
``unique_id, ds, y`` and any covariate columns, as pandas DataFrames, CSV or Parquet files.

pandas (and pyarrow for Parquet) are the optional extra ``transduce[frames]``: imported
here only, so the rest of the toolkit runs without them. Forecasts come back in the same
long layout: ``unique_id, ds, y`` (the point forecast) and ``lo-80, hi-80, ...``.
"""

from __future__ import annotations

import io
import os
import warnings
from collections import Counter
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from transduce.data.corpus import DataError, ReadReport
from transduce.data.series import SeriesSet
from transduce.forecasting.calendar_steps import calendar_step, continue_dates
from transduce.forecasting.columns import check_numbers, name_of, text_column
from transduce.forecasting.regular import check_regular, local_times, written_offsets

KEYS = ("unique_id", "ds", "y")


def pandas():
    try:
        import pandas as pd
    except ImportError:
        raise DataError(
            "DataFrame", None, "pandas is not installed: pip install 'transduce[frames]'"
        ) from None
    return pd


def frame_to_series(df: Any, where: str = "DataFrame", need_y: bool = True) -> SeriesSet:
    """A long DataFrame -> :class:`SeriesSet` (first-seen id order, each series sorted by
    ``ds``); numeric columns other than the keys become ``columns`` (covariates). The checks
    of the CSV readers (:mod:`transduce.data.series`) apply: a missing key column, an empty
    table, an empty id, a value that is not a finite number or beyond ±1e15, a repeated
    ``(unique_id, ds)``, numeric timestamps that decrease, dates and numbers mixed, zoned and
    unzoned dates mixed in one series, dates past 9999: one :class:`DataError` naming the
    row. Dates with zones are compared (and returned) as UTC instants."""
    pd = pandas()
    if not isinstance(df, pd.DataFrame):
        raise DataError(where, None, f"expected a pandas DataFrame, got {type(df).__name__}")
    keys = KEYS if need_y else KEYS[:2]
    missing = [k for k in keys if k not in df.columns]
    if missing:
        raise DataError(
            where,
            None,
            f"no column {missing[0]!r} (need {', '.join(keys)}; "
            f"got {', '.join(map(str, df.columns))[:80]})",
        )
    if len(df) == 0:
        raise DataError(where, None, "no observations (an empty table)")
    twice = [str(c) for c in df.columns[df.columns.duplicated()]]
    if twice:
        raise DataError(where, None, f"column {twice[0][:40]!r} appears twice")
    df = df.reset_index(drop=True)
    extra = [c for c in df.columns if c not in KEYS and not text_column(df, c, where)]
    line = lambda row: row + 2 if where not in ("DataFrame", "futr_df") else None  # noqa: E731
    empty = df["unique_id"].isna().to_numpy() | (df["unique_id"].astype(str).str.strip() == "")
    if empty.any():
        row = int(np.flatnonzero(empty)[0])
        raise DataError(where, line(row), f"row {row}: column 'unique_id' is empty")
    for col in ([KEYS[2]] if need_y else []) + extra:
        check_numbers(df, col, where, line)
    raw_ds = df["ds"]
    df["ds"] = _stamps(df, where, line)
    dated = "datetime" in str(df["ds"].dtype)
    offsets = written_offsets(raw_ds, df["ds"], df["unique_id"]) if dated else None
    raw_ids = df["unique_id"]
    df["unique_id"] = _names(raw_ids, where)
    dup = df.duplicated(["unique_id", "ds"]).to_numpy()
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        raise DataError(
            where,
            line(row),
            f"row {row}: series {name_of(df, row)} at {df['ds'].iloc[row]} appears twice",
        )
    check_regular(df, where, line, offsets)
    df = df.assign(_order=np.arange(len(df)))
    if offsets is not None:  # the dates go on as written: on their own UTC offsets
        df["ds"] = pandas().Series(local_times(df["ds"], offsets), index=df.index, dtype=object)
    ids = list(dict.fromkeys(df["unique_id"].astype(str)))
    groups = {str(k): g.sort_values("ds") for k, g in df.groupby(df["unique_id"].astype(str))}
    out = SeriesSet(ids, [], ReadReport(where), [])
    out.report.lines = out.report.kept = len(df)
    out.columns = {c: [] for c in extra}
    given = pandas().DataFrame({"name": df["unique_id"], "id": raw_ids}).drop_duplicates("name")
    as_given = dict(zip(given["name"], given["id"], strict=True))
    out.id_values, out.id_dtype = [as_given[name] for name in ids], raw_ids.dtype
    for name in ids:
        g = groups[name]
        out.values.append(g["y"].to_numpy(dtype=float) if need_y else np.zeros(len(g)))
        out.timestamps.append(list(g["ds"]))
        for c in extra:
            out.columns[c].append(g[c].to_numpy(dtype=float))
    return out


def _first(mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if len(hits) else None


def _names(raw: Any, where: str) -> Any:
    """The ids as text, the series' names -- refused where two ids would merge as one (0
    and "0") or a cell holds a list."""
    names = raw.astype(str)
    try:
        distinct = raw.nunique()
    except TypeError:  # lists, dicts: no id
        raise DataError(where, None, "column 'unique_id' holds lists, not ids") from None
    if distinct != names.nunique():  # (the per-row search only then)
        clash = raw.map(repr).groupby(names).nunique()
        name = str(clash[clash > 1].index[0])
        raise DataError(
            where,
            None,
            f"unique_id {name[:40]!r} is written two ways (e.g. 0 and '0'): the series "
            "would merge; give each series one id",
        )
    return names


def _stamps(df: Any, where: str, line) -> Any:
    """``ds`` as one comparable kind: finite numbers increasing down each series, or dates
    (text parsed; zoned ones as UTC instants) within years 1 to 9999."""
    pd = pandas()
    ds, ids = df["ds"], df["unique_id"].astype(str)
    if pd.api.types.is_bool_dtype(ds):
        raise DataError(where, None, "column 'ds' holds booleans, not dates or numbers")
    text = ds.dtype == object or pd.api.types.is_string_dtype(ds)
    numbers = pd.to_numeric(ds, errors="coerce") if text else ds
    if pd.api.types.is_numeric_dtype(ds) or (text and numbers.notna().all()):
        values = np.asarray(numbers, dtype=float)
        if (row := _first(~np.isfinite(values))) is not None:
            raise DataError(
                where,
                line(row),
                f"row {row}: series {name_of(df, row)}: column "
                f"'ds': {str(ds.iloc[row])[:30]!r} is not a finite number",
            )
        step = pd.Series(values).groupby(ids.to_numpy(), sort=False).diff().to_numpy()
        if (row := _first(step < 0)) is not None:
            raise DataError(
                where,
                line(row),
                f"row {row}: series {name_of(df, row)}: ds "
                f"{values[row]:g} after {values[row] - step[row]:g}: numeric "
                "timestamps must increase",
            )
        return pd.Series(values if text else ds.to_numpy(), index=df.index)
    if text and (row := _first(numbers.notna().to_numpy())) is not None:
        raise DataError(
            where,
            line(row),
            f"row {row}: series {name_of(df, row)}: ds "
            f"{str(ds.iloc[row])[:30]!r} is a number among dates",
        )
    parsed = ds if pd.api.types.is_datetime64_any_dtype(ds) else _dates(df, where, line)
    if (row := _first(parsed.isna().to_numpy())) is not None:
        raise DataError(
            where,
            line(row),
            f"row {row}: column 'ds': {str(ds.iloc[row])[:30]!r}"
            " is neither a date nor a number (or past the year 9999)",
        )
    years = parsed.dt.year.to_numpy()
    if (row := _first((years < 1) | (years > 9999))) is not None:
        raise DataError(
            where,
            line(row),
            f"row {row}: series {name_of(df, row)}: {str(ds.iloc[row])[:30]} is past the year 9999",
        )
    return parsed


def _dates(df: Any, where: str, line) -> Any:
    """Text or datetime objects -> datetime64; zones mixed across the table are converted to
    UTC, zoned and unzoned dates in one series are refused."""
    pd = pandas()
    ds = df["ds"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            parsed = pd.to_datetime(ds, errors="coerce", format="mixed")
            if not parsed.isna().any():
                return parsed
        except (ValueError, TypeError, OverflowError):
            pass  # zones differ (or zoned and unzoned mixed): one element at a time
    zoned = np.array([_zoned(x) for x in ds])
    first = pd.Series(zoned).groupby(df["unique_id"].astype(str).to_numpy(), sort=False)
    mixed = zoned != first.transform("first").to_numpy()
    if (row := _first(mixed)) is not None:
        kind = "with a zone" if zoned[row] else "without a zone"
        raise DataError(
            where,
            line(row),
            f"row {row}: series {name_of(df, row)}: "
            f"{str(ds.iloc[row])[:40]} is a date {kind} among dates "
            f"{'without' if zoned[row] else 'with'} one",
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return pd.to_datetime(ds, errors="coerce", format="mixed", utc=True)
        except (ValueError, TypeError, OverflowError) as err:
            raise DataError(where, None, f"column 'ds': {str(err)[:80]}") from None


def _zoned(value: Any) -> bool:
    pd = pandas()
    try:
        return pd.Timestamp(value).tzinfo is not None
    except (ValueError, TypeError, OverflowError):
        return False


def load_series(
    path: str | os.PathLike, fmt: str = "auto", on_bad_line: str = "error", need_y: bool = True
):
    """Any series file: a long table (``.parquet``, or a CSV whose header starts with
    ``unique_id``) through pandas, else the M4 wide or ``id,timestamp,value`` readers.
    ``need_y=False``: a table of future covariates (``unique_id, ds`` and the columns)."""
    from transduce.data.series import read_series

    if fmt == "auto" and Path(path).suffix.lower() in (".parquet", ".pq"):
        return read_table(path, need_y)
    if fmt == "auto":
        try:
            with open(path, "rb") as f:
                head = f.readline(4096).decode("utf-8", "replace").lstrip("\ufeff")
        except OSError:
            head = ""  # read_series names the problem
        if head.replace('"', "").lower().startswith("unique_id,"):
            return read_table(path, need_y)
    if not need_y:
        if not os.path.exists(path):
            raise DataError(path, None, "file not found")
        raise DataError(path, None, "future covariates: give a long table (unique_id, ds, ...)")
    return read_series(path, fmt, on_bad_line)


def read_table(path: str | os.PathLike, need_y: bool = True) -> SeriesSet:
    """A long CSV (header ``unique_id,ds,y,...``) or Parquet file -> :class:`SeriesSet`."""
    pd = pandas()
    path = Path(path)
    if path.exists() and not path.is_file():  # a folder, a FIFO or a device: pandas would hang
        raise DataError(path, None, "not a regular file")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path)
    except ImportError as err:
        raise DataError(path, None, f"reading Parquet needs pyarrow: {err}") from None
    except (OSError, ValueError) as err:
        raise DataError(path, None, f"cannot read: {str(err).splitlines()[0][:200]}") from None
    return frame_to_series(df, os.fspath(path), need_y)


def future_ds(stamps: list, horizon: int) -> list:
    """``horizon`` stamps after ``stamps``: pandas' inferred frequency for dates (so months
    stay months, days stay days across daylight saving), else the calendar's step (months
    on one day of the month, business days, a wall-clock step for dates written on several
    UTC offsets: :mod:`transduce.forecasting.calendar_steps`), else the most common step
    (numbers, to nine decimals, as the gap check reads them)."""
    pd = pandas()
    if len(stamps) < 2:
        raise ValueError("a series needs two timestamps to continue them")
    recent, freq, step = stamps[-min(len(stamps), 50) :], None, None
    if isinstance(stamps[-1], pd.Timestamp | np.datetime64):
        with warnings.catch_warnings():  # pandas 3 warns that it will return an offset
            warnings.simplefilter("ignore")
            try:
                index = pd.DatetimeIndex(recent)
                freq = pd.infer_freq(index) if len(index) >= 3 else None
            except ValueError:  # dates on several UTC offsets: no pandas frequency
                pass
        if freq is None:
            step = calendar_step([pd.Timestamp(t).to_pydatetime() for t in recent])[0]
    try:
        if freq is not None:
            out = list(pd.date_range(index[-1], periods=horizon + 1, freq=freq)[1:])
        elif step is not None:
            last = pd.Timestamp(stamps[-1]).to_pydatetime()
            out = [pd.Timestamp(t) for t in continue_dates([last], step, horizon)]
        elif isinstance(stamps[-1], pd.Timestamp | np.datetime64):
            gap, _ = Counter(b - a for a, b in pairwise(stamps)).most_common(1)[0]
            out = [stamps[-1] + gap * (k + 1) for k in range(horizon)]
        else:
            gap, _ = Counter(round(b - a, 9) for a, b in pairwise(stamps)).most_common(1)[0]
            out = [round(stamps[-1] + gap * (k + 1), 9) for k in range(horizon)]
        if isinstance(out[-1], pd.Timestamp) and out[-1].year > 9999:
            raise OverflowError  # what the CSV readers and JSON dates cannot hold
        return out
    except (OverflowError, pd.errors.OutOfBoundsDatetime, ValueError):
        raise DataError(
            "forecast",
            None,
            f"{horizon} steps after {str(stamps[-1])[:40]} pass the last date that can be held",
        ) from None


def future_rows(
    history: SeriesSet,
    fut: SeriesSet,
    names: tuple[str, ...],
    horizon: int,
    where: str,
    needed: int | None = None,
) -> list[np.ndarray]:
    """Each history series' future-known covariates ``names`` over its next ``horizon``
    steps, aligned by ``ds`` as Nixtla's ``futr_df`` is: the future table's rows after the
    series' last stamp, which must be the next stamps (rows before them, of the history's
    span, are ignored). ``needed`` (default ``horizon``): the steps to be reported; the
    model's later steps, which cannot reach back to them (its decoder is causal), repeat
    the last row given. A series missing, short or off its step is one DataError naming it."""
    needed = horizon if needed is None else needed
    rows = fut.covariates(names)
    index = {name: k for k, name in enumerate(fut.ids)}
    if (
        history.timestamps
        and fut.timestamps
        and _kind(history.timestamps[0][-1]) != _kind(fut.timestamps[0][0])
    ):
        raise DataError(
            where,
            None,
            f"its ds are {_kind(fut.timestamps[0][0])}, the history's "
            f"{_kind(history.timestamps[0][-1])}: give the future the history's kind of ds",
        )
    steps: dict[tuple, list] = {}  # the next stamps, by the last stamps (most series share)
    out = []
    for name, stamps in zip(history.ids, history.timestamps or [], strict=True):
        if name not in index:
            raise DataError(where, None, f"no future rows for series {name[:40]!r}")
        k = index[name]
        later = [j for j, t in enumerate(fut.timestamps[k]) if t > stamps[-1]][:horizon]
        if len(later) < needed:
            raise DataError(
                where,
                None,
                f"series {name[:40]!r}: {len(later)} future row(s) after its last ds "
                f"{str(stamps[-1])[:30]}, the forecast needs {needed}",
            )
        key = tuple(stamps[-50:])  # what future_ds reads of a regular series
        if key not in steps:
            steps[key] = future_ds(stamps, horizon)
        for j, want in zip(later, steps[key][: len(later)], strict=True):
            got = fut.timestamps[k][j]
            same = np.isclose(got, want) if isinstance(want, float) else got == want
            if not same:
                raise DataError(
                    where,
                    None,
                    f"series {name[:40]!r}: future ds {str(got)[:30]} where the forecast "
                    f"step is {str(want)[:30]} (its ds continue the history's, one step each)",
                )
        given = rows[k][later]
        out.append(np.concatenate([given, np.repeat(given[-1:], horizon - len(later), 0)]))
    return out


def _kind(stamp: Any) -> str:
    """``numbers``, ``dates with a zone`` or ``dates without a zone``: what compares."""
    if not hasattr(stamp, "tzinfo"):
        return "numbers"
    return "dates with a zone" if stamp.tzinfo is not None else "dates without a zone"


def forecasts_frame(series: SeriesSet, point: np.ndarray, bands: dict | None = None) -> Any:
    """The long forecast table: ``unique_id, ds, y`` then ``lo-L, hi-L`` per level."""
    pd = pandas()
    h = point.shape[1]
    cols: dict[str, list] = {"unique_id": [], "ds": []}
    given = series.id_values or series.ids  # a DataFrame's ids come back as they were given
    for name, stamps, as_given in zip(series.ids, series.timestamps, given, strict=True):
        cols["unique_id"] += [as_given] * h
        try:
            cols["ds"] += future_ds(stamps, h)
        except ValueError as err:  # which series, of many
            raise ValueError(f"series {str(name)[:40]!r}: {err}") from None
    cols["y"] = list(point.reshape(-1))
    for key, (lo, hi) in (bands or {}).items():
        cols[f"lo-{key}"], cols[f"hi-{key}"] = list(lo.reshape(-1)), list(hi.reshape(-1))
    out = pd.DataFrame(cols)
    if series.id_values is not None and isinstance(series.id_dtype, pd.CategoricalDtype):
        out["unique_id"] = out["unique_id"].astype(series.id_dtype)
    return out


def write_table(df: Any, path: str | os.PathLike) -> None:
    """CSV, or Parquet for a ``.parquet`` path (the caller refuses to overwrite an input)."""
    from transduce.atomic import write_output

    path = Path(path)
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            buffer = io.BytesIO()
            df.to_parquet(buffer, index=False)
            data = buffer.getvalue()
        else:
            data = df.to_csv(index=False).encode("utf-8")
    except ImportError as err:
        raise DataError(path, None, f"cannot write: {err}") from None
    write_output(path, data)  # a failure leaves any previous file untouched
