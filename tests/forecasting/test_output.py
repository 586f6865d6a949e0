"""Forecast output: long input gives long output with the future timestamps at the
inferred frequency; short series are warned about; the JSON summary is rounded."""

from __future__ import annotations

import csv
import json
import logging
from datetime import timedelta

import numpy as np
import pytest
import yaml

from transduce.commands.cli import main
from transduce.data.series import SeriesSet
from transduce.forecasting.output import (
    describe_frequency,
    future_stamps,
    infer_frequency,
    warn_short_series,
    write_forecasts,
    write_long_forecasts,
)

H, M = 4, 6


@pytest.mark.parametrize(
    "stamps,step,name,after",
    [
        (
            ["2024-03-01 22:00", "2024-03-01 23:00"],
            timedelta(hours=1),
            "1h",
            ["2024-03-02 00:00", "2024-03-02 01:00"],
        ),
        (
            ["2024-02-27", "2024-02-28", "2024-03-01"],
            timedelta(days=1),
            "1d",
            ["2024-03-02", "2024-03-03"],
        ),  # one missing day: the most common step wins
        (
            ["2023-11-30T00:15:00", "2023-11-30T00:30:00"],
            timedelta(minutes=15),
            "15min",
            ["2023-11-30T00:45:00", "2023-11-30T01:00:00"],
        ),
        (
            ["2023-11-01", "2023-12-01", "2024-01-01"],
            "month",
            "month",
            ["2024-02-01", "2024-03-01"],
        ),
        (
            ["2023-11-30", "2023-12-31", "2024-01-31"],
            "month",
            "month",
            ["2024-02-29", "2024-03-31"],
        ),
        (
            ["2023-07-01", "2023-10-01", "2024-01-01"],
            "3month",
            "3month",
            ["2024-04-01", "2024-07-01"],
        ),
        (["2024-01-04", "2024-01-05", "2024-01-08"], "bday", "bday", ["2024-01-09", "2024-01-10"]),
        (
            ["2022-12-28", "2023-01-28", "2023-02-28"],
            "month",
            "month",
            ["2023-03-28", "2023-04-28"],
        ),
        (
            ["2024-03-30T00:00+01:00", "2024-03-31T00:00+01:00", "2024-04-01T00:00+02:00"],
            timedelta(days=1),
            "1d",
            ["2024-04-02T00:00+02:00", "2024-04-03T00:00+02:00"],
        ),  # daily across a change of UTC offset: one wall-clock day, written as given
        (
            ["2024-01-01T00:00:30+02:00", "2024-01-01T01:00:30+02:00"],
            timedelta(hours=1),
            "1h",
            ["2024-01-01T02:00:30+02:00", "2024-01-01T03:00:30+02:00"],
        ),  # a zone's colons hid the seconds: they were dropped
        (
            ["2024-01-01T00:00:00.000", "2024-01-01T00:00:00.500"],
            timedelta(milliseconds=500),
            "500ms",
            ["2024-01-01T00:00:01.000", "2024-01-01T00:00:01.500"],
        ),  # half seconds: "0d", and every stamp written twice
        (
            ["2024-01-01T00:00Z", "2024-01-01T01:00Z"],
            timedelta(hours=1),
            "1h",
            ["2024-01-01T02:00Z", "2024-01-01T03:00Z"],
        ),
        (["0", "1", "2"], 1, "1", ["3", "4"]),  # integer time steps continue as numbers
        (["10", "20", "40", "50"], 10, "10", ["60", "70"]),
    ],
)
def test_frequency_is_inferred_and_continued(stamps, step, name, after):
    assert infer_frequency(stamps) == step
    assert describe_frequency(step) == name
    assert future_stamps(stamps, 2, step) == after


def test_frequency_errors():
    with pytest.raises(ValueError, match="from 1 timestamp"):
        infer_frequency(["2024-01-01"])
    with pytest.raises(ValueError, match="not an ISO 8601"):
        infer_frequency(["yesterday", "today"])


GAPS = [
    ["7"],
    ["3", "2", "1"],
    ["yesterday", "today"],
    ["10", "20", "40", "50"],  # a missing step: the values before it would shift
    ["2024-02-27", "2024-02-28", "2024-03-01"],  # 2024-02-29 missing
    ["2024-01-01", "2024-02-01", "2024-04-01"],  # a missing month
]


@pytest.mark.parametrize("stamps", GAPS)
def test_timestamps_that_do_not_continue_name_the_file_before_the_model_runs(stamps):
    from transduce.errors import DataError
    from transduce.forecasting.output import check_timestamps

    s = SeriesSet(["ok", "x"], [np.ones(2), np.ones(len(stamps))], None, [["0", "1"], stamps])
    with pytest.raises(DataError, match=r"^in\.csv: series x: "):
        check_timestamps("in.csv", s)


def test_short_series_are_named_in_a_warning(caplog):
    s = SeriesSet(["a", "b", "c"], [np.ones(3), np.ones(30), np.ones(5)])
    with caplog.at_level(logging.WARNING, logger="transduce.forecast"):
        assert warn_short_series(s, 10) == 2
    assert "2 of 3 series are shorter than the lookback of 10" in caplog.text
    assert "a, c" in caplog.text


def test_long_writer_rows(tmp_path):
    s = SeriesSet(["x"], [np.ones(2)], None, [["2024-01-01 00:00", "2024-01-01 01:00"]])
    freq = write_long_forecasts(tmp_path / "f.csv", s, np.array([[1.5, 2.25]]))
    assert freq == "1h"
    assert (tmp_path / "f.csv").read_text().splitlines() == [
        "id,timestamp,value",
        "x,2024-01-01 02:00,1.5",
        "x,2024-01-01 03:00,2.25",
    ]


def test_ids_with_commas_quotes_and_line_breaks_read_back_as_written(tmp_path):
    names = ["a,b", 'q"uote', "new\nline", "plain"]
    stamps = [["2024-01-01 00:00", "2024-01-01 01:00"]] * 4
    s = SeriesSet(names, [np.ones(2)] * 4, None, stamps)
    write_long_forecasts(tmp_path / "long.csv", s, np.ones((4, 2)), {"80": (np.zeros((4, 2)),) * 2})
    with open(tmp_path / "long.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert [r[0] for r in rows[1::2]] == names and {len(r) for r in rows} == {5}
    write_forecasts(tmp_path / "m4.csv", names, np.ones((4, 3)))
    with open(tmp_path / "m4.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert [r[0] for r in rows[1:]] == names and {len(r) for r in rows} == {4}


def _write_long(path, series: dict[str, np.ndarray]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "timestamp", "value"])
        for name, values in series.items():
            for t, v in enumerate(values):
                w.writerow([name, f"2024-01-{1 + t // 24:02d} {t % 24:02d}:00", f"{v:.4f}"])


def test_forecast_cli_long_in_long_out(tmp_path, capsys, caplog):
    rng = np.random.default_rng(0)
    t = np.arange(60)
    data = {
        f"S{i}": 50 * (1.2 + np.sin(2 * np.pi * t / M)) * rng.uniform(0.97, 1.03, 60)
        for i in range(3)
    }
    _write_long(tmp_path / "train.csv", data)
    cfg = {
        "series": {
            "format": "long",
            "train": str(tmp_path / "train.csv"),
            "horizon": H,
            "lookback": 12,
            "period": M,
            "stride": 2,
        },
        "model": {
            "preset": "luong",
            "cell": "gru",
            "encoder": {"embed_size": 8, "hidden_size": 8},
            "decoder": {"embed_size": 8, "hidden_size": 8},
        },
        "train": {
            "max_steps": 10,
            "epochs": 100,
            "valid_every": 10,
            "valid_exact": False,
            "log_every": 0,
            "progress": False,
            "threads": 1,
        },
    }
    (tmp_path / "fc.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    assert main(["-q", "train", str(tmp_path / "fc.yaml"), "--out", str(tmp_path / "run")]) == 0
    _write_long(tmp_path / "hist.csv", {**data, "short": data["S0"][:5]})
    capsys.readouterr()
    out = tmp_path / "fc.csv"
    args = [
        "forecast",
        "--model",
        str(tmp_path / "run"),
        "--input",
        str(tmp_path / "hist.csv"),
        "--output",
        str(out),
    ]
    with caplog.at_level(logging.WARNING, logger="transduce.forecast"):
        assert main(args) == 0
    assert "1 of 4 series are shorter than the lookback of 12" in caplog.text
    result = json.loads(capsys.readouterr().out)
    assert result["frequency"] == "1h" and result["horizon"] == H
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["id", "timestamp", "value"] and len(rows) == 1 + 4 * H
    # S0 ends at hour 59 (2024-01-03 11:00): its forecast starts at 12:00
    assert [r[1] for r in rows[1 : 1 + H]] == [f"2024-01-03 {h}:00" for h in (12, 13, 14, 15)]
    assert next(r[1] for r in rows if r[0] == "short") == "2024-01-01 05:00"
    assert all(np.isfinite(float(r[2])) for r in rows[1:])
    numeric = tmp_path / "steps.csv"  # integer time steps, as the long reader accepts them
    numeric.write_text(
        "id,timestamp,value\n" + "".join(f"S0,{t},{v:.4f}\n" for t, v in enumerate(data["S0"]))
    )
    assert main([*args[:4], str(numeric), "--output", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["frequency"] == "1"
    assert [r[1] for r in csv.reader(out.open())][1:] == ["60", "61", "62", "63"]
    # Parquet is written for long tables (unique_id, ds, y); here it would be CSV inside
    assert main([*args[:6], str(tmp_path / "fc.parquet")]) == 2
    assert "give --output a .csv name" in capsys.readouterr().err
    assert not (tmp_path / "fc.parquet").exists()


def test_future_stamps_past_year_9999_are_one_line():
    import datetime

    import pytest

    from transduce.forecasting.output import future_stamps

    with pytest.raises(ValueError, match="past year 9999"):
        future_stamps(["9999-12-31T22:00"], 5, datetime.timedelta(hours=1))
    with pytest.raises(ValueError, match="past year 9999"):
        future_stamps(["9999-11-01"], 3, "month")


def test_non_finite_forecasts_are_refused_not_written_as_nulls():
    import numpy as np
    import pytest

    from transduce.forecasting.output import check_finite

    check_finite(["a"], np.ones((1, 3)))
    with pytest.raises(ValueError, match="series b: the forecast is not a finite number"):
        check_finite(["a", "b"], np.array([[1.0, 2.0], [np.inf, np.nan]]))


@pytest.mark.parametrize(
    ("rows", "line"),
    [
        ("a,2024-01-01 00:00,1\nb,1,5\na,2024-01-01 01:00,2\na,2024-01-01 03:00,3\n", 5),
        ("a,1,1\nb,1,5\na,2,2\nb,2,6\na,4,3\nb,3,7\n", 6),
    ],
)
def test_a_gap_in_an_id_timestamp_value_file_names_its_line(tmp_path, rows, line):
    """It named the series and the stamp, not the line to go to in the file."""
    from transduce.data.series import read_long
    from transduce.errors import DataError
    from transduce.forecasting.output import check_timestamps

    (tmp_path / "g.csv").write_text("id,timestamp,value\n" + rows)
    series = read_long(tmp_path / "g.csv")
    with pytest.raises(DataError, match=rf"g\.csv:{line}: series a: .* comes 2"):
        check_timestamps(tmp_path / "g.csv", series)
