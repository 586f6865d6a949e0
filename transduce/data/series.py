"""Real-valued series: the readers (the windows cut from them: :mod:`transduce.data.windows`).

Two file formats are read into a :class:`SeriesSet`:

- the M4 wide CSV: a header ``"V1","V2",...``, then one series per row, its id in the first
  column and its values in the following ones; rows are ragged (shorter series end in empty
  cells);
- a long CSV with the header ``id,timestamp,value``: one observation per line, the series
  ordered by timestamp (ISO timestamps sort as text).

A bad line (a value that is not a finite number, an empty series, a gap inside a row, a
repeated timestamp) raises :class:`DataError` naming ``file:line``, or is skipped and counted
with ``on_bad_line="skip"``.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from transduce.data.corpus import ReadReport, _check_options, _finish, _reject, collect_records
from transduce.data.lines import _BadLine, _decode, _numbered_lines, _open_bytes
from transduce.errors import DataError

log = logging.getLogger("transduce.data")


@dataclass
class SeriesSet:
    """Named real-valued series of possibly different lengths."""

    ids: list[str]
    values: list[np.ndarray]
    report: ReadReport | None = field(default=None, repr=False)
    timestamps: list[list[str]] | None = field(default=None, repr=False)  # long format only
    # extra columns of a long table (DataFrame, CSV, Parquet): name -> one array per series
    columns: dict[str, list[np.ndarray]] = field(default_factory=dict, repr=False)
    # a DataFrame's ids as given (ints, categories), and their dtype: what forecasts carry
    id_values: list | None = field(default=None, repr=False)
    id_dtype: Any = field(default=None, repr=False)
    # an id,timestamp,value file's line of each value (errors name it)
    lines: list[list[int]] | None = field(default=None, repr=False)

    def covariates(self, names: tuple[str, ...]) -> list[np.ndarray] | None:
        """``[n_i, C]`` per series: the named columns side by side (None for no names)."""
        if not names:
            return None
        missing = [n for n in names if n not in self.columns]
        if missing:
            where = self.report.path if self.report else "the series"
            raise DataError(
                where,
                None,
                f"no covariate column {missing[0]!r} (columns: "
                f"{', '.join(self.columns) or 'none'})",
            )
        return [np.stack([self.columns[n][i] for n in names], -1) for i in range(len(self))]

    def note_unused(self, names: tuple[str, ...], log: logging.Logger) -> list[str]:
        """Warn once about the extra columns a model does not take (they are ignored, and a
        misspelt covariate would be too); returns them."""
        unused = [c for c in self.columns if c not in names]
        if unused:
            where = self.report.path if self.report else "the series"
            takes = f"takes the covariates {list(names)}" if names else "takes no covariates"
            log.warning(
                "%s: column(s) %s ignored: the model %s", where, ", ".join(map(repr, unused)), takes
            )
        return unused

    def __len__(self) -> int:
        return len(self.ids)


def _number(text: str, column: int) -> float:
    try:
        if "_" in text:  # Python reads 1_000 as 1000; a CSV writes no such number
            raise ValueError(text)
        value = float(text)
    except ValueError:
        raise _BadLine("not a number", f"column {column}: {text[:30]!r} is not a number") from None
    if not math.isfinite(value):
        raise _BadLine("not finite", f"column {column}: {text[:30]!r} is not a finite number")
    if abs(value) > MAX_VALUE:
        raise _BadLine(
            "too large",
            f"column {column}: {text[:30]!r} is beyond ±{MAX_VALUE:g} "
            "(a forecast of it would overflow)",
        )
    return value


# Values beyond this overflow float32 once scaled and summed (1e308 gave null forecasts).
MAX_VALUE = 1e15


def _wide_row(row: list[str]) -> tuple[str, np.ndarray]:
    cells = list(row)
    while cells and not cells[-1].strip():
        cells.pop()  # ragged rows: trailing empty cells are the end of a shorter series
    if len(cells) < 2:
        raise _BadLine("empty series", "no values after the id")
    if not cells[0].strip():
        raise _BadLine("empty id", "column 1: empty series id")
    values = []
    for col, text in enumerate(cells[1:], start=2):
        if not text.strip():
            raise _BadLine("gap", f"column {col}: empty cell inside the series")
        values.append(_number(text, col))
    return cells[0], np.asarray(values, dtype=np.float64)


def _cells(raw: bytes, number: int) -> list[str]:
    """One CSV line's cells; the line is decoded on its own, so invalid UTF-8 or an
    oversized cell names its line (and can be skipped) instead of failing the file."""
    text = _decode(raw, number)
    if text.count('"') % 2:  # a quoted field with a line break: half a record per line
        raise _BadLine(
            "not CSV",
            "an unbalanced quote (a quoted field with a line break? one record per line)",
        )
    try:
        return next(csv.reader([text]), [])
    except csv.Error as err:
        raise _BadLine("not CSV", f"not a CSV line: {err}") from None


def read_m4_wide(path: str | os.PathLike, on_bad_line: str = "error") -> SeriesSet:
    """Read an M4-style wide CSV (``V1`` = id, ``V2...`` = values, ragged rows)."""
    _check_options(on_bad_line, None)
    report = ReadReport(os.fspath(path))
    with _open_bytes(path) as f:
        rows = _numbered_lines(f, path)
        first = next(rows, None)  # (1, header line), or None for an empty file
        if first is not None:
            report.lines += 1
            try:
                header = _cells(first[1], 1)
            except _BadLine as bad:
                raise DataError(path, 1, bad.message) from None
            if not header or header[0].strip() != "V1":
                raise DataError(
                    path, 1, f"expected an M4 header starting with V1, got {header[:3]}"
                )
            report.kept += 1
        seen: dict[str, int] = {}

        def parse(raw: bytes, number: int) -> tuple[str, np.ndarray]:
            name, series = _wide_row(_cells(raw, number))
            if name in seen:  # two series under one id: forecasts and actuals mismatch
                raise _BadLine("repeated id", f"series {name[:40]!r} again (line {seen[name]})")
            seen[name] = number
            return name, series

        ids, values = collect_records(rows, parse, path, on_bad_line, report)
    if report.lines <= 1:
        raise DataError(path, None, "no series (only a header, or an empty file)")
    _finish(report, path)
    return SeriesSet(ids, values, report)


def _long_row(raw: bytes, number: int) -> tuple[str, str, float]:
    row = _cells(raw, number)
    if len(row) != 3:
        raise _BadLine("fields", f"expected 3 fields, got {len(row)}")
    name, stamp = row[0].strip(), row[1].strip()
    if not name or not stamp:
        raise _BadLine("empty id/timestamp", "empty id or timestamp")
    return name, stamp, _number(row[2], 3)


def read_long(path: str | os.PathLike, on_bad_line: str = "error") -> SeriesSet:
    """Read ``id,timestamp,value`` lines into series ordered by timestamp (first-seen id order)."""
    _check_options(on_bad_line, None)
    report = ReadReport(os.fspath(path))
    points: dict[str, dict[str, float]] = {}
    with _open_bytes(path) as f:
        for number, raw in _numbered_lines(f, path):
            report.lines += 1
            if number == 1:
                try:
                    row = _cells(raw, 1)
                except _BadLine as bad:
                    raise DataError(path, 1, bad.message) from None
                if [c.strip().lower() for c in row] != ["id", "timestamp", "value"]:
                    raise DataError(path, 1, f"expected the header id,timestamp,value, got {row}")
                report.kept += 1
                continue
            try:
                name, stamp, value = _long_row(raw, number)
                key = _stamp_key(name, stamp, points.get(name, {}))
            except _BadLine as bad:
                _reject(bad, path, number, report, on_bad_line)
                continue
            points.setdefault(name, {})[key] = (stamp, value, number)
            report.kept += 1
    if not points:
        raise DataError(path, None, "no observations")
    _finish(report, path)
    rows = [[p[k] for k in sorted(p)] for p in points.values()]  # in time order
    values = [np.asarray([r[1] for r in row], dtype=np.float64) for row in rows]
    out = SeriesSet(list(points), values, report, [[r[0] for r in row] for row in rows])
    out.lines = [[r[2] for r in row] for row in rows]
    return out


def _stamp_key(name: str, stamp: str, seen: dict[tuple, tuple]) -> tuple:
    """The sort key of one series' timestamp: a number (which must increase down the file),
    an ISO date-time (sorted as times; one time zone per series), else the text. A repeat
    of an earlier time, or a change of kind or time zone, is a _BadLine naming both."""
    try:
        number = float(stamp)
        key: tuple = ("number", number) if math.isfinite(number) else ("text", stamp)
    except ValueError:
        try:
            when = datetime.fromisoformat(stamp)
        except ValueError:
            key = ("text", stamp)
        else:
            if when.tzinfo is None:
                key = ("time (no zone)", when)
            else:  # compared as instants: an offset that changes (summer time) is fine
                try:
                    key = ("time (with a zone)", when.astimezone(UTC).replace(tzinfo=None))
                except OverflowError:
                    raise _BadLine(
                        "out of range",
                        f"series {name}: {stamp[:40]} is out of "
                        "the range of dates (years 1 to 9999 in UTC)",
                    ) from None
    if not seen:
        return key
    last = max(seen)
    if key[0] != last[0]:
        raise _BadLine(
            "mixed timestamps",
            f"series {name}: {stamp} is a {key[0]} timestamp "
            f"after {seen[last][0]}, a {last[0]} one",
        )
    if key in seen:
        first = seen[key][0]
        also = "" if first == stamp else f" (as {first})"
        raise _BadLine("repeated timestamp", f"series {name}: {stamp} appears twice{also}")
    if key[0] == "number" and key < last:
        raise _BadLine(
            "decreasing timestamp",
            f"series {name}: {stamp} after {seen[last][0]}: numeric timestamps must increase",
        )
    return key


def read_series(
    path: str | os.PathLike, fmt: str = "auto", on_bad_line: str = "error"
) -> SeriesSet:
    """Read ``path`` as ``m4`` (wide) or ``long``; ``auto`` looks at the header."""
    if fmt == "auto":
        with _open_bytes(path) as f:
            try:
                head = f.readline(4096).decode("utf-8", errors="replace")
            except (OSError, EOFError, zlib.error) as err:
                raise DataError(path, None, f"cannot read (corrupt or truncated?): {err}") from None
        head = head.strip().lower().replace('"', "").removeprefix("\ufeff")
        fmt = "long" if head.startswith("id,timestamp") else "m4"
    if fmt == "long":
        return read_long(path, on_bad_line)
    if fmt == "m4":
        return read_m4_wide(path, on_bad_line)
    raise ValueError(f"series format must be auto, m4 or long; got {fmt!r}")


def require_positive(data: SeriesSet, scaling: str) -> None:
    """``scaling: log`` models log-ratios: a series with a value <= 0 has none, and would
    be forecast as positive nonsense; refuse it, naming the series."""
    if scaling != "log":
        return
    for name, x in zip(data.ids, data.values, strict=True):
        if len(x) and float(np.min(x)) <= 0:
            path = data.report.path if data.report else "series"
            raise DataError(
                path,
                None,
                f"series {name!r} has a value <= 0 (min "
                f"{float(np.min(x)):g}); series.scaling: log needs positive "
                "values: use scaling level or none",
            )


# The windows and batches moved to transduce.data.windows; their old names still resolve
# here (PEP 562), without importing torch for a reader that needs none.
_MOVED_TO_WINDOWS = frozenset(
    {
        "phase_features",
        "WindowSpec",
        "scale",
        "unscale",
        "left_pad",
        "WindowArrays",
        "make_windows",
        "training_windows",
        "ValueBatch",
        "ArrayData",
    }
)


def __getattr__(name: str) -> object:
    if name in _MOVED_TO_WINDOWS:
        from transduce.data import windows

        return getattr(windows, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
