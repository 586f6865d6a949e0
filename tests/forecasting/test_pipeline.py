"""Forecasting end to end through the CLI: train a config with a ``series`` section, forecast
a series file to CSV, score it against actuals, resume, plot."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import yaml

from tests.forecasting.conftest import tiny_series_config, write_wide
from transduce.commands.cli import main

H, M = 6, 6  # horizon and seasonal period of the toy series


def _series(n_series: int = 6, length: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Noisy positive seasonal series: history ``[N, length]`` and what follows, ``[N, H]``."""
    rng = np.random.default_rng(0)
    t = np.arange(length + H)
    level = rng.uniform(20, 200, (n_series, 1))
    noise = rng.uniform(0.97, 1.03, (n_series, length + H))
    x = level * (1 + 0.4 * np.sin(2 * np.pi * t / M)[None, :]) * noise
    return x[:, :length], x[:, length:]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fc")
    hist, nxt = _series()
    write_wide(tmp / "train.csv", [h[: 50 + 2 * i] for i, h in enumerate(hist)])  # ragged
    write_wide(tmp / "hist.csv", hist)
    write_wide(tmp / "test.csv", nxt)
    options = {"batch_size": 16, "valid_every": 20, "keep_checkpoints": 3}
    cfg = tiny_series_config(str(tmp / "train.csv"), options, format="m4")
    (tmp / "fc.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    assert main(["-q", "train", str(tmp / "fc.yaml"), "--out", str(tmp / "run")]) == 0
    return tmp


def test_train_writes_a_model_directory(run):
    names = {p.name for p in (run / "run").iterdir()}
    assert {"config.yaml", "model.safetensors", "metrics.jsonl", "last"} <= names
    records = [json.loads(line) for line in (run / "run" / "metrics.jsonl").open()]
    assert [r["step"] for r in records if r["split"] == "valid"] == [20, 40, 60]


def test_forecast_cli_writes_csv_and_scores(run, capsys):
    capsys.readouterr()
    out = run / "fc.csv"
    args = [
        "forecast",
        "--model",
        str(run / "run"),
        "--input",
        str(run / "hist.csv"),
        "--output",
        str(out),
        "--actuals",
        str(run / "test.csv"),
    ]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["id"] + [f"F{i}" for i in range(1, H + 1)]
    assert [r[0] for r in rows[1:]] == [f"S{i}" for i in range(6)]
    values = np.array([[float(v) for v in r[1:]] for r in rows[1:]])
    assert np.isfinite(values).all() and (values > 0).all()
    assert result["baselines"]["Naive2"]["owa"] == pytest.approx(1.0)
    # a strongly seasonal toy: the model must beat the non-seasonal naive forecast
    assert result["smape"] < result["baselines"]["Naive"]["smape"]


def test_forecast_with_averaged_checkpoints(run, tmp_path, capsys):
    """`transduce average` then `forecast --checkpoint averaged`: the average of the one last
    kept checkpoint forecasts exactly as the last weights; of three, something else."""

    def forecast(checkpoint: str) -> np.ndarray:
        out = tmp_path / f"{checkpoint}.csv"
        args = [
            "-q",
            "forecast",
            "--model",
            str(run / "run"),
            "--input",
            str(run / "hist.csv"),
            "--output",
            str(out),
            "--checkpoint",
            checkpoint,
        ]
        assert main(args) == 0
        return np.array([[float(v) for v in r[1:]] for r in list(csv.reader(out.open()))[1:]])

    assert main(["-q", "average", "--model", str(run / "run"), "--last", "1"]) == 0
    assert np.array_equal(forecast("averaged"), forecast("last"))
    assert main(["-q", "average", "--model", str(run / "run"), "--last", "3"]) == 0
    averaged = forecast("averaged")
    assert np.isfinite(averaged).all() and not np.array_equal(averaged, forecast("last"))
    shutil.rmtree(run / "run" / "averaged")


def test_resume_continues_exactly(run, tmp_path):
    """Resuming the 60-step run to 80 steps gives the weights of a straight 80-step run."""
    from safetensors.torch import load_file

    shutil.copytree(run / "run", tmp_path / "resumed")
    args = [
        "-q",
        "train",
        "--resume",
        "--out",
        str(tmp_path / "resumed"),
        "--set",
        "train.max_steps=80",
    ]
    assert main(args) == 0
    records = [json.loads(line) for line in (tmp_path / "resumed" / "metrics.jsonl").open()]
    assert [r["step"] for r in records if r["split"] == "valid"] == [20, 40, 60, 80]
    args = [
        "-q",
        "train",
        str(run / "fc.yaml"),
        "--out",
        str(tmp_path / "straight"),
        "--set",
        "train.max_steps=80",
    ]
    assert main(args) == 0
    a = load_file(str(tmp_path / "resumed" / "last" / "model.safetensors"))
    b = load_file(str(tmp_path / "straight" / "last" / "model.safetensors"))
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)


def test_plot_forecast(run):
    out = run / "fc.png"
    args = [
        "plot",
        "forecast",
        "--model",
        str(run / "run"),
        "--input",
        str(run / "hist.csv"),
        "--actuals",
        str(run / "test.csv"),
        "--series",
        "S1,S3",
        "--output",
        str(out),
    ]
    assert main(args) == 0 and out.stat().st_size > 1000
    assert main([*args[:-4], "--series", "nope", "--output", str(out)]) == 2
    # actuals of other series are refused, not drawn as these series' (they paired by row)
    lines = (run / "test.csv").read_text().splitlines()
    (run / "other.csv").write_text(
        "\n".join([lines[0], *(x.replace("S", "X", 1) for x in lines[1:])])
    )
    swapped = [*args[:6], "--actuals", str(run / "other.csv"), *args[8:]]
    assert main(swapped) == 2
    # the same id 60 times drew 60 panels (485 MB); 414 ids took 148 s and 1.9 GB
    many = ",".join(f"S{i}" for i in range(25))
    assert main([*args[:-4], "--series", many, "--output", str(out)]) == 2
    again = ",".join(["S1"] * 60)
    assert main([*args[:-4], "--series", again, "--output", str(run / "again.png")]) == 0


def test_forecast_errors_are_clear(run, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text('"V1","V2","V3"\n"A","1","x"\n', encoding="utf-8")
    args = [
        "forecast",
        "--model",
        str(run / "run"),
        "--input",
        str(bad),
        "--output",
        str(tmp_path / "o.csv"),
    ]
    assert main(args) == 2
    assert "bad.csv:2" in capsys.readouterr().err


def test_validation_reports_smape_mase_owa_of_the_held_out_values(run):
    """The metrics logged while training are the M4 scores of forecasting each training
    series' last H values from what precedes them, with the checkpoint of that step."""
    from transduce.data.series import SeriesSet, read_series
    from transduce.forecasting.pipeline import Forecaster, evaluate_forecasts

    records = [json.loads(line) for line in (run / "run" / "metrics.jsonl").open()]
    last = [r for r in records if r["split"] == "valid"][-1]
    assert {"smape", "mase", "owa"} <= set(last)
    data = read_series(run / "train.csv", "m4", "error")
    history = SeriesSet(data.ids, [x[:-H] for x in data.values])
    actuals = SeriesSet(data.ids, [x[-H:] for x in data.values])
    forecasts = Forecaster.load(run / "run", "last").forecast(history.values)
    scores = evaluate_forecasts(history, actuals, forecasts, M)
    for key in ("smape", "mase", "owa"):
        assert last[key] == pytest.approx(scores[key], rel=1e-4), key


def test_actuals_longer_than_the_horizon_are_scored_on_it_with_a_warning(caplog):
    """The history passed as --actuals by mistake would score: the first H values are
    scored, and a warning counts the series that had more."""
    import logging

    from transduce.data.series import SeriesSet
    from transduce.forecasting.output import evaluate_forecasts

    rng = np.random.default_rng(0)
    history = SeriesSet(["a", "b"], [rng.random(60) + 1, rng.random(60) + 1])
    actuals = SeriesSet(["a", "b"], [rng.random(4) + 1, rng.random(9) + 1])
    forecasts = np.ones((2, 4))
    with caplog.at_level(logging.WARNING, logger="transduce.forecast"):
        got = evaluate_forecasts(history, actuals, forecasts, 12)
    exact = evaluate_forecasts(
        history, SeriesSet(["a", "b"], [a[:4] for a in actuals.values]), forecasts, 12
    )
    assert got["smape"] == exact["smape"]
    assert "1 of 2 actual series have more than the horizon's 4 values" in caplog.text


def test_a_holdout_shorter_than_the_horizon_is_one_line(tmp_path, capsys):
    """series.holdout 1..horizon-1 ended in a 55-line traceback (tensor sizes differ):
    the validation window ran past each series' end."""
    from tests.forecasting.conftest import toy_series

    write_wide(tmp_path / "train.csv", toy_series())
    cfg = tiny_series_config(str(tmp_path / "train.csv"), holdout=2)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    assert main(["train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "series.holdout: 2: 0 (no validation) or at least series.horizon" in err
    assert err.count("\n") == 1 and not (tmp_path / "run").exists()
