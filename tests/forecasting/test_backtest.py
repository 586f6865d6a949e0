"""Rolling-origin backtests: windows cut where the definition says, scored as by hand, short
series skipped and counted; the CLI on a trained run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from transduce.commands.cli import main
from transduce.data.series import SeriesSet
from transduce.data.windows import WindowSpec
from transduce.forecasting.backtest import backtest, window_cuts
from transduce.forecasting.metrics import smape


class SeasonalNaive:
    """A real (parameter-free) forecaster: the last season repeated, intervals +-1."""

    def __init__(self, horizon: int, period: int):
        self.spec = WindowSpec(lookback=period, horizon=horizon, period=period)
        self.seen: list[list[np.ndarray]] = []

    def forecast_intervals(self, series, levels, origin=0):
        self.seen.append([np.array(x) for x in series])
        m, h = self.spec.period, self.spec.horizon
        point = np.stack([np.resize(np.asarray(x)[-m:], h) for x in series])
        return point, {f"{lv:g}": (point - 1, point + 1) for lv in levels}


def test_window_cuts_by_definition():
    assert window_cuts(3, 2, 4) == [8, 6, 4]  # oldest first; the last ends at the series end
    with pytest.raises(ValueError):
        window_cuts(0, 1, 4)


def test_backtest_equals_hand_computed_windows():
    x = np.array([1.0, 5, 2, 6, 3, 7, 4, 8, 5, 9, 6, 10])  # n = 12, period 2
    short = np.array([1.0, 2, 3, 4, 5, 6])  # too short for the oldest window
    model = SeasonalNaive(horizon=2, period=2)
    out = backtest(model, SeriesSet(["a", "b"], [x, short]), windows=2, step=3, levels=[80])
    # cuts [5, 2]: window 0 forecasts x[7:9] = [8, 5] from x[:7] (last season [7, 4]);
    # window 1 forecasts x[10:12] = [6, 10] from x[:10] (last season [5, 9])
    assert [w["cut"] for w in out["windows"]] == [5, 2]
    assert np.array_equal(model.seen[0][0], x[:7]) and np.array_equal(model.seen[1][0], x[:10])
    w0, w1 = out["windows"]
    assert (w0["series"], w0["skipped"], w1["series"], w1["skipped"]) == (1, 1, 2, 0)
    assert w0["smape"] == pytest.approx(smape([8, 5], [7, 4]))
    # the short series in window 1: from [1, 2, 3, 4] forecasts [3, 4] for [5, 6]
    assert w1["smape"] == pytest.approx((smape([6, 10], [5, 9]) + smape([5, 6], [3, 4])) / 2)
    # band +-1 around [7, 4] vs [8, 5]: both on the upper bound (inside)
    assert w0["coverage_80"] == 1.0
    # MASE scale of x[:7] with m=2: |2-1|,|6-5|,|3-2|,|7-6|,|4-3| -> 1; errors 1, 1
    assert w0["mase"] == pytest.approx(1.0)
    pooled = [smape([8, 5], [7, 4]), smape([6, 10], [5, 9]), smape([5, 6], [3, 4])]
    assert out["overall"]["smape"] == pytest.approx(np.mean(pooled))


def test_backtest_cli_on_a_trained_run(quantile_run, capsys):
    tmp, _ = quantile_run
    capsys.readouterr()
    args = [
        "backtest",
        "--model",
        str(tmp / "run"),
        "--windows",
        "3",
        "--step",
        "4",
        "--level",
        "80",
        "95",
        "--output",
        str(tmp / "bt.json"),
    ]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert [w["cut"] for w in result["windows"]] == [14, 10, 6]
    assert result["refit"] is False and all(w["series"] == 24 for w in result["windows"])
    for key in ("smape", "mase", "owa", "msis_95", "coverage_80", "acd_95"):
        assert np.isfinite(result["overall"][key])
    assert json.loads((tmp / "bt.json").read_text())["windows"][0]["window"] == 0
    # cuts 14 and 10 are not whole seasons (period 6) before the end: the model's phase
    # input still counts from the series' end, so they score as the last window does (it
    # read the calendar 2 and 4 steps off before: sMAPE ~46 and ~25 against ~4)
    smapes = [w["smape"] for w in result["windows"]]
    assert max(smapes) < 2 * smapes[-1], smapes


def test_backtest_actuals_of_unequal_lengths_are_one_line(quantile_run, tmp_path, capsys):
    from tests.forecasting.conftest import write_wide

    tmp, hist = quantile_run
    write_wide(tmp_path / "in.csv", hist[:, :66])
    after = [row[66:] for row in hist]
    after[5] = after[5][:3]  # one series' actuals short: its windows would shift
    write_wide(tmp_path / "act.csv", after)
    args = ["backtest", "--model", str(tmp / "run"), "--input", str(tmp_path / "in.csv")]
    assert main([*args, "--actuals", str(tmp_path / "act.csv"), "--windows", "1"]) == 2
    err = capsys.readouterr().err
    assert "act.csv: series S5: 3 values, series S0: 6" in err and "\n" not in err.strip()
    after[5] = hist[5][66:]
    write_wide(tmp_path / "act.csv", after)
    assert main([*args, "--actuals", str(tmp_path / "act.csv"), "--windows", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["windows"][0]["cut"] == 6


def test_refit_trains_each_window_on_its_own_history(quantile_run, tmp_path, capsys):
    tmp, hist = quantile_run
    capsys.readouterr()
    args = [
        "backtest",
        "--model",
        str(tmp / "run"),
        "--windows",
        "1",
        "--refit",
        "--out",
        str(tmp_path / "refit"),
    ]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["refit"] is True and np.isfinite(result["overall"]["owa"])
    # the window's run never saw the last horizon values: its training file ends before them
    from transduce.data.series import read_m4_wide

    seen = read_m4_wide(tmp_path / "refit" / "window-0" / "series.csv")
    assert [len(x) for x in seen.values] == [hist.shape[1] - 6] * len(hist)
    np.testing.assert_allclose(seen.values[0], hist[0, :-6], rtol=1e-4)
    assert (tmp_path / "refit" / "window-0" / "run" / "conformal.json").is_file()


KILLED_REFIT = """
import os, signal, sys
from transduce import atomic
from transduce.commands.cli import main

def hook(what):  # SIGKILL at window 1's first checkpoint write
    if what == "trainer state" and os.path.isdir(sys.argv[2] + "/window-1/run"):
        os.kill(os.getpid(), signal.SIGKILL)

atomic.fault_hook = hook
main(["-q", "backtest", "--model", sys.argv[1], "--windows", "2", "--refit", "--out", sys.argv[2]])
"""


def test_a_killed_refit_resumes_where_it_stopped_and_equals_an_uninterrupted_one(
    quantile_run, tmp_path, capsys
):
    import subprocess
    import sys

    tmp, _ = quantile_run
    args = ["backtest", "--model", str(tmp / "run"), "--windows", "2", "--refit"]
    assert main([*args, "--out", str(tmp_path / "whole")]) == 0
    whole = json.loads(capsys.readouterr().out)
    out = tmp_path / "killed"
    # started with a relative --out, resumed from another folder (a requeued job): the
    # windows' runs named their series.csv relative to the first folder
    killed = [sys.executable, "-c", KILLED_REFIT, str(tmp / "run"), "killed"]
    child = subprocess.run(killed, cwd=tmp_path)
    assert child.returncode == -9 and (out / "window-0" / "run" / "best").exists()
    assert main([*args, "--out", str(out)]) == 0  # the same command again: resumes
    assert json.loads(capsys.readouterr().out) == whole
    other = ["backtest", "--model", str(tmp / "run"), "--windows", "1", "--refit"]
    assert main([*other, "--out", str(out)]) == 2
    assert "holds the runs of another backtest --refit" in capsys.readouterr().err
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "refit.json").write_text("[1]")  # not ours after all: one line
    assert main([*args, "--out", str(tmp_path / "odd")]) == 2
    assert "holds the runs of another backtest" in capsys.readouterr().err


def test_no_output_replaces_the_data_the_run_was_trained_on(quantile_run, tmp_path, capsys):
    """backtest without --input reads the run's series.train: --output there replaced it
    (the check ran before the default input was known); forecast --output there too."""
    tmp, _ = quantile_run
    train_csv = tmp / "train.csv"
    before = train_csv.read_bytes()
    run = str(tmp / "run")
    assert main(["backtest", "--model", run, "--windows", "1", "--output", str(train_csv)]) == 2
    assert "is the input" in capsys.readouterr().err
    forecast = ["forecast", "--model", run, "--input", str(train_csv)]
    assert main([*forecast, "--output", str(train_csv)]) == 2
    assert "is an input" in capsys.readouterr().err
    other = tmp_path / "copy.csv"
    other.write_bytes(before)
    assert (
        main(["forecast", "--model", run, "--input", str(other), "--output", str(train_csv)]) == 2
    )
    assert "is the input" in capsys.readouterr().err and train_csv.read_bytes() == before
