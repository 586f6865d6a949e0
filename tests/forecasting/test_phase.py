"""Where a history ends in steps after its training series ended (``origins``): by the
timestamps, at the series' own step -- hours, months, business days, numbers -- and 0
where it cannot be told (an unknown series, no timestamps, off the step)."""

from __future__ import annotations

import numpy as np

from transduce.forecasting.phase import load_ends, origins, save_ends

ENDS = {
    "h": "2024-01-01T10:00",
    "m": "2024-01-31",
    "b": "2024-01-05",
    "n": 40.0,
    "z": "2024-01-01T10:00+02:00",
}


def _hours(start: int, n: int) -> list[str]:
    return [f"2024-01-01T{h:02d}:00" for h in range(start, start + n)]


def test_steps_after_the_training_end_by_the_series_own_step():
    ids = ["h", "h2", "m", "b", "n", "z", "nostamps", "unknown", "offstep"]
    stamps = [
        _hours(5, 8),  # ends 12:00: 2 hours after 10:00
        _hours(5, 3),  # (another series' key: ends elsewhere)
        ["2023-11-30", "2023-12-31"],  # one month before January's end
        ["2024-01-05", "2024-01-08", "2024-01-09", "2024-01-10", "2024-01-11"],  # Thu: +4
        ["36", "38", "44"],  # step 2 (the most common of the last): (44 - 40) / 2
        ["2024-01-01T08:00:00+00:00", "2024-01-01T09:00:00+00:00"],  # 11:00+02:00: +1
        [],
        ["2024-01-01T01:00", "2024-01-01T02:00"],
        ["2024-01-01T10:30", "2024-01-01T11:30"],  # half an hour off the hourly steps
    ]
    ends = {**ENDS, "h2": "2024-01-01T03:00", "offstep": "2024-01-01T10:00"}
    got = origins(ends, ids, stamps).tolist()
    assert got == [2, 4, -1, 4, 2, 1, 0, 0, 0]
    assert origins(None, ids, stamps).tolist() == [0] * len(ids)


def test_ends_are_saved_as_text_and_numbers_and_read_back(tmp_path):
    import datetime

    stamps = [["2024-01-01", "2024-01-02"], [datetime.datetime(2024, 1, 1, 5)], [1, 2, 3]]
    save_ends(tmp_path, ["a", "b", "c"], stamps)
    assert load_ends(tmp_path) == {"a": "2024-01-02", "b": "2024-01-01T05:00:00", "c": 3.0}
    save_ends(tmp_path / "none", ["a"], None)  # a series file without timestamps
    assert load_ends(tmp_path / "none") is None and np.all(origins(None, ["a"], None) == 0)


def test_damaged_ends_are_one_line_naming_the_file(tmp_path):
    import pytest

    from transduce.errors import DataError

    (tmp_path / "series_ends.json").write_text("[1, 2]")
    with pytest.raises(DataError, match=r"series_ends\.json: not the series ends"):
        load_ends(tmp_path)
