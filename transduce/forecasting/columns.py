"""What the value columns of a long table hold (:func:`transduce.forecasting.frames.
frame_to_series` reads them): numbers -- finite, within ±1e15, real -- or, for a column of
text alone, not a covariate at all. pandas is there (the caller checked)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from transduce.data.corpus import DataError
from transduce.data.series import MAX_VALUE

log = logging.getLogger("transduce.forecast")


def name_of(df: Any, row: int) -> str:
    return repr(str(df["unique_id"].iloc[row])[:40])


def check_numbers(df: Any, col: str, where: str, line) -> None:
    """Every value of ``col`` a finite number within ±MAX_VALUE (as the CSV readers)."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(df[col]) and col == "y":
        raise DataError(where, None, "column 'y' holds booleans, not numbers")
    kind = df[col].dtype
    if pd.api.types.is_complex_dtype(kind) or pd.api.types.is_timedelta64_dtype(kind):
        # read as their real part, or as nanoseconds: refused, not cast
        what = "complex numbers" if pd.api.types.is_complex_dtype(kind) else "durations"
        raise DataError(where, None, f"column {str(col)[:40]!r} holds {what}, not real numbers")
    values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        bad = np.flatnonzero(~np.isfinite(values) | (np.abs(values) > MAX_VALUE))
    if len(bad):
        row = int(bad[0])
        text = str(df[col].iloc[row])[:30]
        what = "beyond ±1e15" if np.isfinite(values[row]) else "not a finite number"
        raise DataError(
            where,
            line(row),
            f"row {row}: column {str(col)[:40]!r}: {text!r} is {what} (series {name_of(df, row)})",
        )


def text_column(df: Any, col: Any, where: str) -> bool:
    """Whether ``col`` holds text and no number at all (a name, a category as strings):
    not a covariate; ignored with a warning, as columns a model does not take are. A
    column of numbers with some text among them is a bad value (refused, named)."""
    import pandas as pd

    column = df[col]
    if pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype):
        return False
    texts = pd.api.types.is_object_dtype(column.dtype) or pd.api.types.is_string_dtype(column)
    if not texts and not isinstance(column.dtype, pd.CategoricalDtype):
        return False
    if pd.to_numeric(column.astype(object), errors="coerce").notna().any():
        return False
    log.warning("%s: column %r holds text, not numbers: not a covariate, ignored", where, col)
    return True
