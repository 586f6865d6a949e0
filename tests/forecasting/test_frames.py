"""Long DataFrames (unique_id, ds, y[, covariates]): reading, bad tables in one line, the
fit/predict round trip, CSV and Parquet through the CLI, and covariates that determine the
target moving the forecasts."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import numpy as np
import pytest
import yaml

from tests.forecasting.conftest import H, tiny_series_config, toy_series
from transduce.atomic import pid_space
from transduce.commands.cli import main
from transduce.configcheck import ConfigError
from transduce.data.corpus import DataError

pd = pytest.importorskip("pandas")

from transduce.forecasting.frames import forecasts_frame, frame_to_series  # noqa: E402
from transduce.forecasting.pipeline import Forecaster  # noqa: E402


def _frame(values: np.ndarray, start="2024-01-01", **columns) -> pd.DataFrame:
    n, t = values.shape
    stamps = pd.date_range(start, periods=t, freq="h")
    df = pd.DataFrame(
        {
            "unique_id": np.repeat([f"s{i}" for i in range(n)], t),
            "ds": np.tile(stamps, n),
            "y": values.reshape(-1),
        }
    )
    for name, v in columns.items():
        df[name] = v.reshape(-1)
    return df


def test_frame_to_series_sorts_each_series_and_keeps_first_seen_ids():
    df = _frame(np.array([[1.0, 2, 3], [4, 5, 6]]), promo=np.array([[0, 1, 0], [1, 1, 0]]))
    shuffled = df.iloc[[4, 0, 2, 1, 5, 3]]  # s1 seen first
    s = frame_to_series(shuffled)
    assert s.ids == ["s1", "s0"]
    assert s.values[1].tolist() == [1, 2, 3] and s.values[0].tolist() == [4, 5, 6]
    assert s.columns["promo"][1].tolist() == [0, 1, 0]
    assert s.covariates(("promo",))[0].shape == (3, 1)


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda d: d.drop(columns="y"), "no column 'y'"),
        (lambda d: d.assign(y=[1.0, np.nan, 3, 4, 5, 6]), "row 1: column 'y': 'nan'"),
        (lambda d: pd.concat([d, d.iloc[[1]]]), "row 6: series 's0' at .* appears twice"),
    ],
)
def test_a_bad_table_is_one_error_naming_the_row(change, message):
    with pytest.raises(DataError, match=message):
        frame_to_series(change(_frame(np.array([[1.0, 2, 3], [4, 5, 6]]))))


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("frames")
    df = _frame(toy_series(24, 72))
    cfg = tiny_series_config("unused", levels=[80])
    (tmp / "c.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return tmp, df, Forecaster.fit(df, tmp / "c.yaml", tmp / "run")


def test_fit_predict_round_trip_in_the_long_format(fitted):
    _, df, forecaster = fitted
    out = forecaster.predict(h=4, level=[80])
    assert list(out.columns) == ["unique_id", "ds", "y", "lo-80", "hi-80"]
    assert len(out) == 24 * 4 and out["unique_id"].unique().tolist() == [f"s{i}" for i in range(24)]
    last = df["ds"].max()
    assert out[out.unique_id == "s3"]["ds"].tolist() == list(
        pd.date_range(last, periods=5, freq="h")[1:]
    )
    assert (out["lo-80"] <= out["y"]).all() and (out["y"] <= out["hi-80"]).all()
    again = frame_to_series(out[["unique_id", "ds", "y"]])  # the output reads back as input
    assert again.ids == forecaster.history.ids and all(len(v) == 4 for v in again.values)
    with pytest.raises(Exception, match="h=7"):
        forecaster.predict(h=H + 1)


def test_csv_and_parquet_tables_through_the_cli(fitted, capsys):
    pytest.importorskip("pyarrow")
    tmp, df, forecaster = fitted
    df.to_parquet(tmp / "in.parquet", index=False)
    df.to_csv(tmp / "in.csv", index=False)
    for name in ("in.parquet", "in.csv"):
        out = tmp / f"out-{name}"
        args = [
            "forecast",
            "--model",
            str(tmp / "run"),
            "--input",
            str(tmp / name),
            "--output",
            str(out),
            "--level",
            "80",
        ]
        assert main(args) == 0
        got = pd.read_parquet(out) if name.endswith("parquet") else pd.read_csv(out)
        ref = forecaster.predict(level=[80])
        assert list(got.columns) == list(ref.columns)
        assert got["unique_id"].tolist() == ref["unique_id"].tolist()
        np.testing.assert_allclose(got["y"].to_numpy(float), ref["y"].to_numpy(), rtol=1e-5)
        np.testing.assert_allclose(got["hi-80"].to_numpy(float), ref["hi-80"].to_numpy(), rtol=1e-5)


def test_future_known_covariates_move_the_forecasts(tmp_path):
    """The target is a seasonal level plus 30 whenever ``promo`` is 1: with the promotion
    announced over the forecast steps the forecasts must rise by about that much."""
    rng = np.random.default_rng(0)
    t = np.arange(80)
    promo = (rng.random((12, 80)) < 0.3).astype(float)
    y = 50 + 10 * np.sin(2 * np.pi * t / 6)[None, :] + 30 * promo + rng.normal(0, 0.5, (12, 80))
    df = _frame(y, promo=promo)
    cfg = tiny_series_config("unused", covariates=["promo"], scaling="level", stride=1)
    cfg["train"]["max_steps"] = 120
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    forecaster = Forecaster.fit(df, tmp_path / "c.yaml", tmp_path / "run")
    future = forecasts_frame(forecaster.history, np.zeros((12, H)))[["unique_id", "ds"]]
    on = forecaster.predict(futr_df=future.assign(promo=1.0))["y"].to_numpy()
    off = forecaster.predict(futr_df=future.assign(promo=0.0))["y"].to_numpy()
    assert 15 < (on - off).mean() < 45
    with pytest.raises(Exception, match="futr_df"):
        forecaster.predict()
    # rows of the history's span in futr_df are ignored: its rows are matched by ds
    both = pd.concat([df[["unique_id", "ds", "promo"]], future.assign(promo=1.0)])
    assert np.allclose(forecaster.predict(futr_df=both)["y"].to_numpy(), on)
    later = future.assign(promo=1.0, ds=future["ds"] + pd.Timedelta(hours=2))
    with pytest.raises(DataError, match=r"series 's0': future ds .* where the forecast step"):
        forecaster.predict(futr_df=later)
    # h steps need h future rows, not the whole horizon's (the decoder cannot look ahead)
    first = future.assign(promo=1.0).groupby("unique_id").head(2)
    short = forecaster.predict(h=2, futr_df=first)["y"].to_numpy()
    assert np.allclose(short, on.reshape(12, -1)[:, :2].reshape(-1), atol=1e-5)
    with pytest.raises(DataError, match=r"^futr_df: series 's0': 1 future row.*needs 2$"):
        forecaster.predict(h=2, futr_df=first.groupby("unique_id").head(1))


def test_the_cli_reads_future_covariates_by_ds(tmp_path, capsys):
    """``forecast --future FILE`` (unique_id, ds and the covariates: no y) equals
    ``predict(futr_df=...)``; a future table off the history's steps is one line."""
    rng = np.random.default_rng(1)
    promo = (rng.random((4, 60)) < 0.3).astype(float)
    df = _frame(50 + 30 * promo + rng.normal(0, 0.5, (4, 60)), promo=promo)
    cfg = tiny_series_config("unused", covariates=["promo"], scaling="level", stride=1)
    cfg["train"]["max_steps"] = 10
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    forecaster = Forecaster.fit(df, tmp_path / "c.yaml", tmp_path / "run")
    future = forecasts_frame(forecaster.history, np.zeros((4, H)))[["unique_id", "ds"]]
    future = future.assign(promo=1.0)
    df.to_csv(tmp_path / "hist.csv", index=False)
    future.to_csv(tmp_path / "fut.csv", index=False)
    args = ["forecast", "--model", str(tmp_path / "run"), "--input", str(tmp_path / "hist.csv")]
    assert (
        main([*args, "--future", str(tmp_path / "fut.csv"), "--output", str(tmp_path / "o.csv")])
        == 0
    )
    got = pd.read_csv(tmp_path / "o.csv")["y"].to_numpy()
    assert np.allclose(got, forecaster.predict(futr_df=future)["y"].to_numpy(), rtol=1e-5)
    future[future["unique_id"] != "s2"].to_csv(tmp_path / "fut3.csv", index=False)
    capsys.readouterr()
    assert (
        main([*args, "--future", str(tmp_path / "fut3.csv"), "--output", str(tmp_path / "p.csv")])
        == 2
    )
    assert "fut3.csv: no future rows for series 's2'" in capsys.readouterr().err
    future.assign(ds=future["ds"].dt.tz_localize("UTC")).to_csv(tmp_path / "z.csv", index=False)
    assert (
        main([*args, "--future", str(tmp_path / "z.csv"), "--output", str(tmp_path / "q.csv")]) == 2
    )
    assert (
        "z.csv: its ds are dates with a zone, the history's dates without"
        in capsys.readouterr().err
    )
    # backtest --actuals on a long table keeps its covariates: split equals whole
    cut = df["ds"].min() + pd.Timedelta(hours=50)
    df[df["ds"] < cut].to_csv(tmp_path / "a.csv", index=False)
    df[df["ds"] >= cut].to_csv(tmp_path / "b.csv", index=False)
    back = ["backtest", "--model", str(tmp_path / "run"), "--windows", "2"]
    assert main([*back, "--input", str(tmp_path / "hist.csv")]) == 0
    whole = json.loads(capsys.readouterr().out)
    assert (
        main([*back, "--input", str(tmp_path / "a.csv"), "--actuals", str(tmp_path / "b.csv")]) == 0
    )
    assert json.loads(capsys.readouterr().out) == whole


def test_a_table_file_with_a_bad_date_names_its_line(tmp_path):
    from transduce.forecasting.frames import read_table

    (tmp_path / "t.csv").write_text("unique_id,ds,y\na,2024-01-01,1\na,notadate,2\n")
    with pytest.raises(DataError, match=r"t.csv:3: row 1: column 'ds': 'notadate'"):
        read_table(tmp_path / "t.csv")


def test_ids_written_two_ways_are_refused_not_merged():
    """0 and "0" name one series once read as text: refused, not interleaved into one."""
    ds = pd.date_range("2024-01-01", periods=3, freq="h")
    df = pd.DataFrame({"unique_id": [0] * 3 + ["0"] * 3, "ds": list(ds) * 2, "y": range(6)})
    with pytest.raises(DataError, match="written two ways"):
        frame_to_series(df)


def test_predict_refuses_h_and_level_of_the_wrong_kind(fitted):
    forecaster = fitted[2]
    for kwargs in ({"h": 0}, {"h": 2.5}, {"h": "3"}, {"level": 80}, {"level": ["80"]}):
        with pytest.raises(ConfigError, match=r"predict: (h|level)="):
            forecaster.predict(**kwargs)


def test_a_one_row_series_is_named_and_an_unused_futr_df_is_said(fitted, caplog):

    _, df, forecaster = fitted
    first = df["unique_id"].iloc[0]
    short = pd.concat([df, df[df["unique_id"] == first].iloc[:1].assign(unique_id="lone")])
    with pytest.raises(ValueError, match="series 'lone': a series needs two timestamps"):
        forecaster.predict(df=short)
    with caplog.at_level(logging.WARNING, logger="transduce.forecast"):
        forecaster.predict(futr_df=df)
    assert "futr_df is not used" in caplog.text


def test_the_cli_names_ignored_columns_and_refuses_a_gap(fitted, capsys, caplog):
    tmp, df, _ = fitted
    df.assign(promo=1.0).to_csv(tmp / "extra.csv", index=False)
    args = ["forecast", "--model", str(tmp / "run"), "--output", str(tmp / "o.csv")]
    with caplog.at_level(logging.WARNING, logger="transduce.forecast"):
        assert main([*args, "--input", str(tmp / "extra.csv")]) == 0
    said = "extra.csv: column(s) 'promo' ignored: the model takes no covariates"
    assert said in caplog.text
    capsys.readouterr()
    df.drop(index=30).to_csv(tmp / "gap.csv", index=False)  # one hour of s0 missing
    assert main([*args, "--input", str(tmp / "gap.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert "gap.csv:32: row 30: series 's0'" in err  # the row after the gap and "a gap" in err
    assert "\n" not in err


def test_fit_without_a_run_dir_leaves_nothing_and_never_writes_into_a_run(
    fitted, tmp_path, monkeypatch
):
    import tempfile

    tmp, df, _ = fitted
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the temporary run goes
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead = (
        tmp_path / f"transduce-fit-{int(gone.stdout)}@{pid_space()}-abc123"
    )  # a fit killed outright
    (dead / "run").mkdir(parents=True)
    live = (
        tmp_path / f"transduce-fit-1@{pid_space()}-abc123"
    )  # pid 1 runs: a fit at work, for all we know
    live.mkdir()
    small = df[df["unique_id"].isin(["s0", "s1"])]
    again = Forecaster.fit(small, tmp / "c.yaml", overrides=["train.max_steps=2"])
    assert len(again.predict(h=2)) == 4
    assert list(tmp_path.iterdir()) == [live]  # the temporary run went once loaded
    before = (tmp / "run" / "series.csv").read_bytes()
    with pytest.raises(FileExistsError, match="a new or empty folder"):
        Forecaster.fit(small, tmp / "c.yaml", tmp / "run")
    assert (tmp / "run" / "series.csv").read_bytes() == before  # its input, untouched


def test_a_history_ending_before_or_after_the_training_end_keeps_its_phase(fitted):
    # the phase input counts from each training series' end (series_ends.json): a history
    # cut 2 hours short (or 2 hours longer, new values appended) used to count from its own
    # end, reading the hour-of-cycle 2 steps off (period 6): sMAPE ~40 instead of ~4
    from fastapi.testclient import TestClient

    from transduce.forecasting.metrics import smape
    from transduce.serve.app import create_app
    from transduce.serve.backend import load_models

    tmp, df, forecaster = fitted
    assert (tmp / "run" / "series_ends.json").is_file()
    short = df.groupby("unique_id").head(70)  # every series ends 2 hours before training's
    truth = df.groupby("unique_id").nth([70, 71])["y"].to_numpy().reshape(24, 2)
    got = forecaster.predict(df=short)["y"].to_numpy().reshape(24, H)[:, :2]
    ends = forecaster.ends
    forecaster.ends = None  # as before: each history's own end
    try:
        blind = forecaster.predict(df=short)["y"].to_numpy().reshape(24, H)[:, :2]
    finally:
        forecaster.ends = ends
    kept = np.mean([smape(t, p) for t, p in zip(truth, got, strict=True)])
    shifted = np.mean([smape(t, p) for t, p in zip(truth, blind, strict=True)])
    assert kept < 10 and shifted > 2 * kept, (kept, shifted)
    # the server, told the history's timestamps, forecasts the same
    rows = short[short.unique_id == "s3"]
    series = {"id": "s3", "values": rows["y"].tolist()}
    stamps = [t.isoformat() for t in rows["ds"]]
    with TestClient(create_app(load_models([str(tmp / "run")]))) as client:
        told = client.post("/v1/forecast", json={"series": [{**series, "timestamps": stamps}]})
        untold = client.post("/v1/forecast", json={"series": [series]})
    want = forecaster.predict(df=short)
    want = want[want.unique_id == "s3"]["y"].tolist()
    assert told.json()["forecasts"][0]["values"] == pytest.approx(want, rel=1e-5)
    assert untold.json()["forecasts"][0]["values"] != pytest.approx(want, rel=1e-3)


def test_predict_refuses_a_history_log_scaling_cannot_read(fitted):
    """A log-scaled model given a negative history forecast positive values (the sign was
    lost in the scale's clamp) without a word; fit refused such data already."""
    _, df, forecaster = fitted
    with pytest.raises(DataError, match="DataFrame: series 's0' has a value <= 0"):
        forecaster.predict(df=df.assign(y=-df["y"]))


def test_a_failed_fit_leaves_no_run_behind_to_block_a_retry(fitted, tmp_path):
    tmp, df, _ = fitted
    short = df.groupby("unique_id").head(5)  # too short for lookback + horizon
    for run in (tmp_path / "new", tmp_path / "empty"):
        if run.name == "empty":
            run.mkdir()
        with pytest.raises(ValueError):
            Forecaster.fit(short, tmp / "c.yaml", run)
        assert not run.exists() or not any(run.iterdir())
    assert (tmp_path / "empty").is_dir()  # the user's empty folder stays
    small = df[df["unique_id"].isin(["s0", "s1"])]
    Forecaster.fit(small, tmp / "c.yaml", tmp_path / "new", overrides=["train.max_steps=2"])


def test_ids_come_back_of_the_kind_given(fitted):
    """Integer ids came back as text: merging the forecasts on unique_id failed."""
    _, df, forecaster = fitted
    numbered = df.assign(unique_id=df["unique_id"].str[1:].astype("int64"))
    out = forecaster.predict(df=numbered, h=2)
    assert out["unique_id"].dtype == np.int64 and out["unique_id"].iloc[0] == 0
    assert len(numbered.merge(out, on=["unique_id"])) > 0
    kinds = df.assign(unique_id=df["unique_id"].astype("category"))
    assert isinstance(forecaster.predict(df=kinds, h=2)["unique_id"].dtype, pd.CategoricalDtype)


def test_a_table_of_one_row_series_is_one_error():
    one = pd.DataFrame({"unique_id": ["a", "b"], "ds": pd.date_range("2024-01-01", periods=2)})
    series = frame_to_series(one.assign(y=[1.0, 2.0]))  # it crashed inside numpy
    with pytest.raises(ValueError, match="series 'a': a series needs two timestamps"):
        forecasts_frame(series, np.zeros((2, 3)))


def test_fit_into_a_link_is_refused_in_one_line(fitted, tmp_path):
    _, df, _ = fitted
    (tmp_path / "link").symlink_to(tmp_path / "nowhere")  # dangling: mkdir said "File exists"
    with pytest.raises(FileExistsError, match=r"link: a symbolic link .*nowhere"):
        Forecaster.fit(df, fitted[0] / "c.yaml", tmp_path / "link")
    assert not (tmp_path / "nowhere").exists()
