"""Real-valued series: readers, rolling windows, per-series scaling, calendar features.

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
from typing import NamedTuple

import numpy as np
import torch

from transduce.data.corpus import (
    ReadReport,
    _BadLine,
    _check_options,
    _decode,
    _finish,
    _numbered_lines,
    _open_bytes,
    _reject,
    collect_records,
)
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

    def __len__(self) -> int:
        return len(self.ids)


def _number(text: str, column: int) -> float:
    try:
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
    values = []
    for col, text in enumerate(cells[1:], start=2):
        if not text.strip():
            raise _BadLine("gap", f"column {col}: empty cell inside the series")
        values.append(_number(text, col))
    return cells[0], np.asarray(values, dtype=np.float64)


def _cells(raw: bytes, number: int) -> list[str]:
    """One CSV line's cells; the line is decoded on its own, so invalid UTF-8 or an
    oversized cell names its line (and can be skipped) instead of failing the file."""
    try:
        return next(csv.reader([_decode(raw, number)]), [])
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
        ids, values = collect_records(
            rows, lambda raw, n: _wide_row(_cells(raw, n)), path, on_bad_line, report
        )
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
            points.setdefault(name, {})[key] = (stamp, value)
            report.kept += 1
    if not points:
        raise DataError(path, None, "no observations")
    _finish(report, path)
    rows = [[p[k] for k in sorted(p)] for p in points.values()]  # (stamp, value) in time order
    values = [np.asarray([v for _, v in r], dtype=np.float64) for r in rows]
    stamps = [[t for t, _ in r] for r in rows]
    return SeriesSet(list(points), values, report, stamps)


def _stamp_key(name: str, stamp: str, seen: dict[tuple, tuple[str, float]]) -> tuple:
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


# ---------------------------------------------------------------------- windows


def phase_features(positions: np.ndarray, period: int) -> np.ndarray:
    """Position-in-cycle as ``[..., 2]`` (sin, cos) of ``2 pi (position mod period) / period``."""
    angle = 2 * np.pi * (np.asarray(positions) % period) / period
    return np.stack([np.sin(angle), np.cos(angle)], -1)


@dataclass(frozen=True)
class WindowSpec:
    """How series become model inputs.

    ``scaling``: ``log``: log(y / level); ``level``: y / level; ``none``: raw values. The
    level is the mean of the last ``period`` inputs of each window (the last season), so a
    window's scale never sees its own targets. ``calendar`` adds (sin, cos) of the phase
    ``(t - origin) mod period``, with ``origin`` the end of the series' training part: the
    test horizon starts right after it (M4 has no timestamps). ``seasonal`` gives the
    decoder, for each target step, two known values of the same phase: the last season's
    (the seasonal-naive forecast) and the mean over every season in the lookback.
    """

    lookback: int
    horizon: int
    period: int = 24
    scaling: str = "log"
    calendar: bool = True
    seasonal: bool = False
    covariates: int = 0  # future-known covariates: encoder and decoder inputs
    past_covariates: int = 0  # observed up to the origin only: encoder inputs

    @property
    def features(self) -> int:
        """Encoder input features per step: the scaled value (+ phase sin, cos), covariates."""
        return 1 + (2 if self.calendar else 0) + self.covariates + self.past_covariates

    @property
    def exog_features(self) -> int:
        """Decoder features per target step besides the previous value."""
        return (2 if self.calendar else 0) + (2 if self.seasonal else 0) + self.covariates


def _level(inputs: np.ndarray, spec: WindowSpec) -> np.ndarray:
    """``inputs [N, L]`` -> level ``[N]`` (1 with ``scaling: none``)."""
    if spec.scaling == "none":
        return np.ones(len(inputs))
    level = np.abs(inputs[:, -spec.period :]).mean(1)
    return np.where(level > 0, level, 1.0)


def scale(values: np.ndarray, level: np.ndarray, spec: WindowSpec) -> np.ndarray:
    """``values [N, T]`` in the scaled space of rows with ``level [N]``."""
    ratio = values / level[:, None]
    if spec.scaling == "log":
        return np.log(np.maximum(ratio, 1e-6))
    return ratio


def unscale(values: np.ndarray, level: np.ndarray, spec: WindowSpec) -> np.ndarray:
    if spec.scaling == "log":
        values = np.exp(values)
    return values * level[:, None]


def left_pad(x: np.ndarray, length: int) -> np.ndarray:
    """The last ``length`` values; a shorter series is padded with its first value."""
    x = np.asarray(x, float)
    return x[-length:] if len(x) >= length else np.r_[np.full(length - len(x), x[0]), x]


class WindowArrays(NamedTuple):
    """Model-ready windows: ``src [N, L, F]``, ``start [N, 1]``, ``exog [N, H, C]``,
    ``target [N, H, 1]`` (scaled; NaN-free) and the ``level [N]`` that undoes the scaling."""

    src: np.ndarray
    start: np.ndarray
    exog: np.ndarray
    target: np.ndarray | None
    level: np.ndarray


def make_windows(
    histories: np.ndarray,
    origins: np.ndarray,
    spec: WindowSpec,
    targets: np.ndarray | None,
    cov_past: np.ndarray | None = None,
    cov_future: np.ndarray | None = None,
) -> WindowArrays:
    """Windows from ``histories [N, L]`` whose last value sits at position ``origins[i] - 1``
    relative to the series' training end (``origin = 0``: the forecast origin itself).
    Covariates enter as given (unscaled): ``cov_past [N, L, Cf + Cp]`` (future-known
    columns first) beside the encoder's values, ``cov_future [N, H, Cf]`` beside the
    decoder's known features."""
    level = _level(histories, spec)
    src_vals = scale(histories, level, spec)[:, :, None]  # [N, L, 1]
    steps = np.arange(-spec.lookback, spec.horizon)[None, :] + origins[:, None]  # [N, L + H]
    src, exog = src_vals, np.zeros((len(histories), spec.horizon, 0))
    if spec.calendar:
        cal = phase_features(steps, spec.period)  # [N, L + H, 2]
        src = np.concatenate([src_vals, cal[:, : spec.lookback]], -1)
        exog = cal[:, spec.lookback :]
    if spec.seasonal:
        exog = np.concatenate([exog, _seasonal(src_vals[:, :, 0], spec)], -1)
    if spec.covariates + spec.past_covariates:
        src = np.concatenate([src, cov_past], -1)
        exog = np.concatenate([exog, cov_future[:, :, : spec.covariates]], -1)
    tgt = None if targets is None else scale(targets, level, spec)[:, :, None]
    f32 = lambda a: None if a is None else a.astype(np.float32)  # noqa: E731
    return WindowArrays(f32(src), f32(src_vals[:, -1]), f32(exog), f32(tgt), level)


def _seasonal(values: np.ndarray, spec: WindowSpec) -> np.ndarray:
    """``values [N, L]`` (scaled) -> ``[N, H, 2]``: for target step h, the value one season
    before it in the last season, and the mean over all full seasons of the lookback."""
    m, L = spec.period, values.shape[1]
    phase = np.arange(spec.horizon) % m  # [H]
    seasons = values[:, L - (L // m) * m :].reshape(len(values), L // m, m)  # [N, K, m]
    last, mean = seasons[:, -1, phase], seasons.mean(1)[:, phase]  # [N, H] each
    return np.stack([last, mean], -1)


def training_windows(
    series: list[np.ndarray],
    spec: WindowSpec,
    stride: int,
    holdout: int,
    covariates: list[np.ndarray] | None = None,
) -> tuple[WindowArrays, WindowArrays]:
    """Rolling windows ending every ``stride`` steps, back from the last window whose
    target ends ``holdout`` values before each series' end; and the held-out windows (the
    last ``holdout`` values of each series as target, or none with ``holdout=0``).
    ``covariates``: ``[n_i, C]`` per series, aligned with its values."""
    L, H = spec.lookback, spec.horizon
    parts: dict[str, list] = {
        k: [] for k in ("h", "t", "o", "cp", "cf", "vh", "vt", "vo", "vcp", "vcf")
    }
    for i, x in enumerate(series):
        n, cov = len(x), None if covariates is None else covariates[i]
        ends = list(range(n - holdout, L + H - 1, -stride))  # exclusive ends of targets
        kinds = [("", end) for end in ends]
        if holdout and n >= L + holdout:
            kinds.append(("v", n - holdout + H))
        for pre, end in kinds:
            parts[pre + "h"].append(x[end - H - L : end - H])
            parts[pre + "t"].append(x[end - H : end])
            parts[pre + "o"].append(end - H - n)
            if cov is not None:
                parts[pre + "cp"].append(cov[end - H - L : end - H])
                parts[pre + "cf"].append(cov[end - H : end])
    if not parts["h"]:
        raise ValueError(f"no series is long enough for lookback {L} + horizon {H}")

    def windows(pre: str) -> WindowArrays:
        cov = [np.array(parts[pre + k]) if parts[pre + k] else None for k in ("cp", "cf")]
        return make_windows(
            np.array(parts[pre + "h"]),
            np.array(parts[pre + "o"]),
            spec,
            np.array(parts[pre + "t"]),
            *cov,
        )

    train = windows("")
    return (train, train) if not parts["vh"] else (train, windows("v"))


# ---------------------------------------------------------------------- batches


class ValueBatch(NamedTuple):
    """``src [B, S, F]`` (or ids ``[B, S]``), ``tgt_in [B, T, D + C]`` (previous value and
    exogenous features; ids ``[B, T]``), ``tgt_out [B, T, D]`` (ids ``[B, T]``), ``index [B]``."""

    src: torch.Tensor
    tgt_in: torch.Tensor
    tgt_out: torch.Tensor
    index: torch.Tensor

    @property
    def src_mask(self) -> torch.Tensor:  # [B, S]; ids use 0 as padding (mask_zero)
        if self.src.dim() == 2:
            return self.src != 0
        return torch.ones(self.src.shape[:2], dtype=torch.bool, device=self.src.device)

    @property
    def ntokens(self) -> int:
        return self.tgt_out.numel()

    def to(self, device: torch.device | str) -> ValueBatch:
        return ValueBatch(*(t.to(device) for t in self))


class ArrayData:
    """Fixed-shape examples for the trainer: ``src``, the first decoder input ``start``,
    exogenous decoder features ``exog`` and targets ``tgt``; ``tgt_in`` is built per batch
    as [start, tgt[:-1]] (teacher forcing) with ``exog`` appended."""

    def __init__(self, src, start, exog, tgt):
        self.src = torch.as_tensor(src)
        self.start = torch.as_tensor(start)  # [N, D] values, or [N] ids
        self.exog = None if exog is None or exog.shape[-1] == 0 else torch.as_tensor(exog)
        self.tgt = None if tgt is None else torch.as_tensor(tgt)

    @classmethod
    def from_windows(cls, w: WindowArrays) -> ArrayData:
        return cls(w.src, w.start, w.exog, w.target)

    def __len__(self) -> int:
        return len(self.src)

    def batch(self, idx: np.ndarray) -> ValueBatch:
        idx_t = torch.as_tensor(np.asarray(idx, dtype=np.int64))
        tgt = self.tgt[idx_t]
        prev = torch.cat([self.start[idx_t].unsqueeze(1), tgt[:, :-1]], 1)  # shift right
        if self.exog is not None:
            prev = torch.cat([prev, self.exog[idx_t]], -1)
        return ValueBatch(self.src[idx_t], prev, tgt, idx_t)

    def batch_order(
        self, batch_size: int, seed: int, epoch: int, *, rank: int = 0, world: int = 1
    ) -> list[np.ndarray]:
        """Shuffled batches, a pure function of (seed, epoch) for exact resume."""
        order = np.random.default_rng([seed, epoch]).permutation(len(self))
        batches = [order[i : i + batch_size] for i in range(0, len(self), batch_size)]
        usable = len(batches) - len(batches) % world if world > 1 else len(batches)
        return batches[rank:usable:world]

    def iter_batches(self, batch_size: int):
        for i in range(0, len(self), batch_size):
            yield self.batch(np.arange(i, min(i + batch_size, len(self))))
