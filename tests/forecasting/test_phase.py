"""Where a history ends in steps after its training series ended (``origins``): by the
timestamps, at the series' own step -- hours, months, business days, numbers -- and 0
where it cannot be told (an unknown series, no timestamps, off the step)."""

from __future__ import annotations

import numpy as np
import pytest

from transduce.errors import DataError
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
    (tmp_path / "series_ends.json").write_text("[1, 2]")
    with pytest.raises(DataError, match=r"series_ends\.json: not the series ends"):
        load_ends(tmp_path)


def test_ends_written_as_text_numbers_tenths_and_short_business_day_histories():
    # a long file's numeric stamps are text ("479"): the origin was always 0; tenths
    # missed by float rounding; three business days after a Friday were counted as 5 days
    assert origins({"a": "479"}, ["a"], [["481", "482", "483"]]).tolist() == [4]
    tenths = [f"{47.0 + 0.1 * i:.1f}" for i in range(20)]
    assert origins({"a": 47.9}, ["a"], [tenths]).tolist() == [10]
    week = ["2024-01-08", "2024-01-09", "2024-01-10"]  # Mon-Wed after Fri 5th
    assert origins({"a": "2024-01-05"}, ["a"], [week]).tolist() == [3]


@pytest.mark.parametrize("end", [None, [1], "garbage", float("nan"), 1e300, True])
def test_a_damaged_end_is_one_line_not_a_silent_zero(tmp_path, end):
    import json

    (tmp_path / "series_ends.json").write_text(json.dumps({"ends": {"S0": end}}))
    with pytest.raises(DataError, match=r"series 'S0': .* is not a timestamp"):
        load_ends(tmp_path)


class _Member:
    def __init__(self, ends):
        from transduce.data.windows import WindowSpec

        self.spec, self.ends = WindowSpec(lookback=6, horizon=2, period=3), ends

    def origins(self, ids, timestamps):
        return origins(self.ends, ids, timestamps)


def test_an_ensemble_of_runs_whose_series_ended_apart_is_refused():
    # it took the first member's origins for all: the others read the calendar off
    # (member order changed the forecasts)
    from transduce.forecasting.ensemble import ForecastEnsemble

    stamps = [_hours(5, 8)]
    same = ForecastEnsemble([_Member(ENDS), _Member(ENDS)], names=["a", "b"])
    assert same.origins(["h"], stamps).tolist() == [2]
    apart = ForecastEnsemble([_Member(ENDS), _Member({"h": "2024-01-01T09:00"})], names=["a", "b"])
    with pytest.raises(ValueError, match="ensemble: b and a were trained on series that end"):
        apart.origins(["h"], stamps)


def test_a_zone_on_one_side_only_compares_wall_clocks():
    # a client sending "+00:00" stamps to a run trained on unzoned ones got origin 0
    zoned = ["2024-01-01T11:00:00+00:00", "2024-01-01T12:00:00+00:00"]
    assert origins({"h": "2024-01-01T10:00"}, ["h"], [zoned]).tolist() == [2]
    assert origins({"z": "2024-01-01T10:00+02:00"}, ["z"], [_hours(5, 8)]).tolist() == [2]
