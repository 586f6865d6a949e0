"""Where a forecast's histories end, in steps from where their series ended in training.

The model's calendar input is the phase ``(t - origin) mod period`` of each step, counted
from the end of each training series (M4 has no timestamps; :mod:`transduce.data.windows`).
A history that ends ``k`` steps later -- values appended since training, or a client's
recent window sent to the server an hour later -- read the calendar ``k mod period`` steps
off: on M4 Hourly, OWA 0.97 instead of 0.42 at 12 hours off. Where the series have
timestamps, training writes each series' last one (``series_ends.json``), and a forecast
from histories with timestamps starts the phase ``k`` steps on (``origin=k`` of
:meth:`~transduce.forecasting.windowed.WindowForecaster.windows`). Series the run did not
see, or histories without timestamps, count from their own end, as before.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from transduce.data.series import MAX_VALUE
from transduce.forecasting.calendar_steps import calendar_step, steps_between, wall_clock

ENDS = "series_ends.json"


def save_ends(run_dir: str | os.PathLike, ids: list[str], timestamps: list[list] | None) -> None:
    """Each training series' last timestamp (dates as ISO 8601, steps as numbers) into
    ``run_dir/series_ends.json``; nothing for series without timestamps."""
    from transduce.atomic import atomic_write_text

    if not timestamps:
        return
    ends = {name: _plain(stamps[-1]) for name, stamps in zip(ids, timestamps, strict=True)}
    atomic_write_text(Path(run_dir) / ENDS, json.dumps({"ends": ends}))


def load_ends(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The ends a run (or its export) recorded, or None (a run without timestamps, or
    trained before they were kept)."""
    from transduce.errors import DataError

    path = Path(folder) / ENDS
    if not path.is_file():
        return None
    try:
        ends = json.loads(path.read_text(encoding="utf-8")[: 1 << 26])["ends"]
    except (OSError, ValueError, KeyError, TypeError):
        ends = None
    if not isinstance(ends, dict):  # damaged: said, not a silent fall back to own ends
        raise DataError(path, None, 'not the series ends a run writes ({"ends": {...}})')
    for name, end in ends.items():
        if not _valid(end):
            shown = repr(end)[:40]
            raise DataError(path, None, f"series {name[:40]!r}: {shown} is not a timestamp")
    return ends


def _valid(end: Any) -> bool:
    """An end as :func:`save_ends` writes it: ISO 8601 text or a finite number."""
    if isinstance(end, bool):
        return False
    if isinstance(end, int | float):
        return math.isfinite(end) and abs(end) <= MAX_VALUE
    if isinstance(end, str):
        try:
            datetime.fromisoformat(end)
            return True
        except ValueError:
            return _number(end) and abs(float(end)) <= MAX_VALUE
    return False


def origins(ends: dict[str, Any] | None, ids: list[str], timestamps: list[list] | None):
    """Per series, how many steps its history ends after its training series ended (0 for
    a series the run did not see, without timestamps, or off the step): ``[N]``."""
    out = np.zeros(len(ids), dtype=np.int64)
    if not ends or not timestamps:
        return out
    for i, (name, stamps) in enumerate(zip(ids, timestamps, strict=True)):
        if name in ends and len(stamps) >= 2:
            out[i] = _steps(ends[name], stamps[-8:])
    return out


def _plain(stamp: Any) -> str | float:
    if isinstance(stamp, str):
        return stamp
    if isinstance(stamp, int | float | np.integer | np.floating):
        return float(stamp)
    return stamp.isoformat()  # a pandas Timestamp, a datetime


def _steps(end: Any, recent: list) -> int:
    """Steps from ``end`` to the last of ``recent`` (the history's last few stamps) at their
    step; 0 where that is not a whole number of steps or the kinds differ. The step is read
    from the stamps with the end among them where they continue it (three business days
    after a Friday look daily alone), else from the stamps alone."""
    if _number(end) and all(_number(t) for t in recent):  # "479" too: a long file's text
        values = [float(t) for t in recent]
        step = Counter(round(b - a, 9) for a, b in pairwise(values)).most_common(1)[0][0]
        k = (values[-1] - float(end)) / step if step > 0 else 0.5
        return round(k) if abs(k - round(k)) < 1e-6 else 0  # 0.1 steps: rounding
    try:
        times = [_when(t) for t in recent]
        first = _when(end)
    except (TypeError, ValueError):
        return 0
    if len({t.utcoffset() is None for t in [first, *times]}) > 1:  # zoned on one side only:
        first, times = wall_clock(first), [wall_clock(t) for t in times]  # compare those
    step = calendar_step(sorted({first, *times}))[0] if first not in times else None
    step = step or calendar_step(times)[0]
    k = steps_between(first, times[-1], step) if step is not None else None
    return k or 0


def _number(t: Any) -> bool:
    if isinstance(t, str):
        return t.strip().lstrip("-").replace(".", "", 1).isdigit()
    return isinstance(t, int | float | np.integer | np.floating)


def _when(t: Any) -> datetime:
    if isinstance(t, str):
        return datetime.fromisoformat(t)
    if isinstance(t, datetime):  # a pandas Timestamp is one
        return t.to_pydatetime() if hasattr(t, "to_pydatetime") else t
    raise TypeError(f"not a date: {t!r}")
