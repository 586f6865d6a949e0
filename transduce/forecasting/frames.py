"""Long tables of series in Nixtla's convention: one row per observation with the columns
``unique_id, ds, y`` and any covariate columns, as pandas DataFrames, CSV or Parquet files.

pandas (and pyarrow for Parquet) are the optional extra ``transduce[frames]``: imported
here only, so the rest of the toolkit runs without them. Forecasts come back in the same
long layout: ``unique_id, ds, y`` (the point forecast) and ``lo-80, hi-80, ...``.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from transduce.data.corpus import DataError, ReadReport
from transduce.data.series import SeriesSet

KEYS = ("unique_id", "ds", "y")


def pandas():
    try:
        import pandas as pd
    except ImportError:
        raise DataError("DataFrame", None, "pandas is not installed: pip install "
                        "'transduce[frames]'") from None  # fmt: skip
    return pd


def frame_to_series(df: Any, where: str = "DataFrame", need_y: bool = True) -> SeriesSet:
    """A long DataFrame -> :class:`SeriesSet` (first-seen id order, each series sorted by
    ``ds``); numeric columns other than the keys become ``columns`` (covariates). A missing
    key column, a non-finite value or a repeated ``(unique_id, ds)`` raises one
    :class:`DataError` naming the row."""
    pd = pandas()
    keys = KEYS if need_y else KEYS[:2]
    missing = [k for k in keys if k not in df.columns]
    if missing:
        raise DataError(where, None, f"no column {missing[0]!r} (need {', '.join(keys)}; "
                        f"got {', '.join(map(str, df.columns))})")  # fmt: skip
    extra = [c for c in df.columns if c not in KEYS]
    line = lambda row: row + 2 if where != "DataFrame" else None  # noqa: E731 (file: header)
    for col in ([KEYS[2]] if need_y else []) + extra:
        values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            row = int(bad[0])
            raise DataError(where, line(row), f"row {row}: column {col!r}: "
                            f"{str(df[col].iloc[row])[:30]!r} is not a finite number")  # fmt: skip
    dup = df.duplicated(["unique_id", "ds"]).to_numpy()
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        raise DataError(where, line(row), f"row {row}: series {df['unique_id'].iloc[row]!r} "
                        f"at {df['ds'].iloc[row]} appears twice")  # fmt: skip
    df = df.assign(_order=np.arange(len(df)))
    ids = list(dict.fromkeys(df["unique_id"].astype(str)))
    groups = {str(k): g.sort_values("ds") for k, g in df.groupby(df["unique_id"].astype(str))}
    out = SeriesSet(ids, [], ReadReport(where), [])
    out.report.lines = out.report.kept = len(df)
    out.columns = {c: [] for c in extra}
    for name in ids:
        g = groups[name]
        out.values.append(g["y"].to_numpy(dtype=float) if need_y else np.zeros(len(g)))
        out.timestamps.append(list(g["ds"]))
        for c in extra:
            out.columns[c].append(g[c].to_numpy(dtype=float))
    return out


def load_series(path: str | os.PathLike, fmt: str = "auto", on_bad_line: str = "error"):
    """Any series file: a long table (``.parquet``, or a CSV whose header starts with
    ``unique_id``) through pandas, else the M4 wide or ``id,timestamp,value`` readers."""
    from transduce.data.series import read_series

    if fmt == "auto" and Path(path).suffix.lower() in (".parquet", ".pq"):
        return read_table(path)
    if fmt == "auto":
        try:
            with open(path, "rb") as f:
                head = f.readline(4096).decode("utf-8", "replace").lstrip("\ufeff")
        except OSError:
            head = ""  # read_series names the problem
        if head.replace('"', "").lower().startswith("unique_id,"):
            return read_table(path)
    return read_series(path, fmt, on_bad_line)


def read_table(path: str | os.PathLike) -> SeriesSet:
    """A long CSV (header ``unique_id,ds,y,...``) or Parquet file -> :class:`SeriesSet`."""
    pd = pandas()
    path = Path(path)
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path)
    except ImportError as err:
        raise DataError(path, None, f"reading Parquet needs pyarrow: {err}") from None
    except (OSError, ValueError) as err:
        raise DataError(path, None, f"cannot read: {str(err).splitlines()[0][:200]}") from None
    if "ds" in df.columns and not pd.api.types.is_numeric_dtype(df["ds"]):
        parsed = pd.to_datetime(df["ds"], errors="coerce", format="mixed")  # CSV: text dates
        if parsed.isna().any():
            row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
            text = str(df["ds"].iloc[row])[:30]
            raise DataError(path, row + 2, f"row {row}: column 'ds': {text!r} is neither a "
                            "date nor a number")  # fmt: skip
        df["ds"] = parsed
    return frame_to_series(df, os.fspath(path))


def future_ds(stamps: list, horizon: int) -> list:
    """``horizon`` stamps after ``stamps``: pandas' inferred frequency for dates (so months
    stay months), else the most common step (numbers, irregular dates)."""
    pd = pandas()
    if len(stamps) < 2:
        raise ValueError("a series needs two timestamps to continue them")
    if isinstance(stamps[-1], pd.Timestamp | np.datetime64):
        index = pd.DatetimeIndex(stamps[-min(len(stamps), 50) :])
        with warnings.catch_warnings():  # pandas 3 warns that it will return an offset
            warnings.simplefilter("ignore")
            freq = pd.infer_freq(index) if len(index) >= 3 else None
        if freq is not None:
            return list(pd.date_range(index[-1], periods=horizon + 1, freq=freq)[1:])
    step, _ = Counter(b - a for a, b in pairwise(stamps)).most_common(1)[0]
    return [stamps[-1] + step * (k + 1) for k in range(horizon)]


def forecasts_frame(series: SeriesSet, point: np.ndarray, bands: dict | None = None) -> Any:
    """The long forecast table: ``unique_id, ds, y`` then ``lo-L, hi-L`` per level."""
    pd = pandas()
    h = point.shape[1]
    cols: dict[str, list] = {"unique_id": [], "ds": []}
    for name, stamps in zip(series.ids, series.timestamps, strict=True):
        cols["unique_id"] += [name] * h
        cols["ds"] += future_ds(stamps, h)
    cols["y"] = list(point.reshape(-1))
    for key, (lo, hi) in (bands or {}).items():
        cols[f"lo-{key}"], cols[f"hi-{key}"] = list(lo.reshape(-1)), list(hi.reshape(-1))
    return pd.DataFrame(cols)


def write_table(df: Any, path: str | os.PathLike) -> None:
    """CSV, or Parquet for a ``.parquet`` path (the caller refuses to overwrite an input)."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            df.to_parquet(path, index=False)
        else:
            df.to_csv(path, index=False)
    except (OSError, ImportError) as err:
        raise DataError(path, None, f"cannot write: {err}") from None
