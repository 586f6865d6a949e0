"""Normalized conformal intervals: each series' band scaled by the forecaster's recent
errors on it, the scale of a calibration quotient."""

from __future__ import annotations

import csv
import json
import logging

import numpy as np
import pytest

from tests.forecasting.conftest import H
from transduce.commands.cli import main
from transduce.forecasting.normalized import normalized_intervals


def naive(series):
    """The last value, repeated for 3 steps."""
    return np.array([np.full(3, x[-1]) for x in series])


def test_a_hand_computed_example():
    # horizon 2, one scale window. Series a: [1, 2, 4, 4, 5, 9]; the calibration origin
    # after [1, 2, 4, 4] forecasts 4, 4 against 5, 9: errors 1, 5. Its scale there: the
    # window before, [1, 2] -> 2, 2 against 4, 4: RMS error 2. The forecast origin's scale
    # is the calibration window's RMS error, sqrt((1 + 25) / 2).
    a = np.array([1.0, 2, 4, 4, 5, 9])
    b = np.array([10.0, 10, 10, 12, 12, 11])  # calibration errors 0, 1; its window's 0, 2
    point, bands = normalized_intervals(naive, [a, b], 2, [50], windows=1, steps=0)
    assert point.tolist() == [[9, 9], [11, 11]]
    # quotients per step: a (1/2, 5/2), b (0, 1/sqrt(2)); the 50% conformal quantile of two
    # scores is the ceil(3 * 0.5) = 2nd smallest: step 1 -> 0.5, step 2 -> 2.5
    lo, hi = bands["50"]
    scale_a, scale_b = np.sqrt(13), np.sqrt(0.5)
    assert np.allclose(hi - point, [[0.5 * scale_a, 2.5 * scale_a], [0.5 * scale_b, 2.5 * scale_b]])
    assert np.allclose(point - lo, hi - point)


def test_a_hand_computed_example_with_a_scale_per_step():
    # the series above, a scale per horizon step. a: the calibration errors 1, 5 against
    # the window before's 2, 2; b: 0, 1 against 0, 2. Quotients a (1/2, 5/2), b (0, 1/2):
    # q = (0.5, 2.5). The forecast origin's scales: a (1, 5), b (0, 1).
    a = np.array([1.0, 2, 4, 4, 5, 9])
    b = np.array([10.0, 10, 10, 12, 12, 11])
    point, bands = normalized_intervals(naive, [a, b], 2, [50], windows=1, steps=1)
    hi = bands["50"][1]
    assert np.allclose(hi - point, [[0.5 * 1, 2.5 * 5], [0.5 * 0, 2.5 * 1]])
    # steps=3 (the default): squared errors averaged over 3 neighbouring steps, the edges
    # repeated. Calibration scales a: (4, 4, 4, 4) -> 2, 2; b: (0, 0, 4, 4) -> sqrt(4/3),
    # sqrt(8/3); quotients a (1/2, 5/2), b (0, 1/sqrt(8/3)): q = (0.5, 2.5) again. Forecast
    # origin: a (1, 1, 25, 25) -> sqrt(9), sqrt(17); b (0, 0, 1, 1) -> sqrt(1/3), sqrt(2/3).
    point, bands = normalized_intervals(naive, [a, b], 2, [50], windows=1)
    hi = bands["50"][1]
    expected = [[0.5 * 3, 2.5 * np.sqrt(17)], [0.5 * np.sqrt(1 / 3), 2.5 * np.sqrt(2 / 3)]]
    assert np.allclose(hi - point, expected)


def test_a_band_widens_where_a_series_errors_grow_with_the_lead_time():
    """Two kinds of series, equally noisy over the horizon on average: errors flat in
    the lead time, and errors growing with it. Per-step scales give each kind its own
    shape, and cover each kind near the nominal level at the first and last steps."""
    rng = np.random.default_rng(1)
    n, horizon, length = 400, 6, 200
    growth = np.linspace(0.2, 1.8, horizon)  # mean square ~ 1.2 of the flat kind's 1.1
    kinds = np.arange(n) % 2

    def path(kind):  # a series whose k-step-ahead error has spread sigma_k
        sigma = growth if kind else np.full(horizon, 1.1)
        return np.concatenate(
            [rng.standard_normal(horizon) * sigma for _ in range(length // horizon)]
        )

    history = [10 + path(k) for k in kinds]
    future = np.array([10 + path(k)[:horizon] for k in kinds])

    def zero_mean(series):
        return np.full((len(series), horizon), 10.0)

    _, bands = normalized_intervals(zero_mean, history, horizon, [90], windows=20, steps=1)
    lo, hi = bands["90"]
    width = hi - lo
    grow = kinds == 1
    assert width[grow, -1].mean() > 3 * width[grow, 0].mean()  # widens with the lead time
    assert abs(width[~grow, -1].mean() / width[~grow, 0].mean() - 1) < 0.35  # stays flat
    inside = (future >= lo) & (future <= hi)
    for kind in (grow, ~grow):
        for step in (0, horizon - 1):
            assert abs(inside[kind, step].mean() - 0.90) < 0.06


def test_coverage_is_nominal_and_width_follows_each_series_noise():
    rng = np.random.default_rng(0)
    n, horizon = 600, 4
    sigma = rng.uniform(0.1, 5.0, n)
    history = [10 + s * rng.standard_normal(60) for s in sigma]
    future = np.array([10 + s * rng.standard_normal(horizon) for s in sigma])

    def mean_forecast(series):
        return np.array([np.full(horizon, np.mean(x[-20:])) for x in series])

    _, bands = normalized_intervals(mean_forecast, history, horizon, [90], windows=8)
    lo, hi = bands["90"]
    covered = ((future >= lo) & (future <= hi)).mean()
    assert abs(covered - 0.90) < 0.03
    width = (hi - lo)[:, 0]
    assert np.corrcoef(width, sigma)[0, 1] > 0.9  # one band for all would correlate 0


def test_short_series_take_a_typical_scale_and_all_short_is_refused():
    long = [np.arange(40, dtype=float) % 5 + 10 for _ in range(30)]
    short = np.array([10.0, 11, 12])  # not even two horizons: no window of its own
    point, bands = normalized_intervals(naive, [*long, short], 3, [80], windows=4)
    lo, hi = bands["80"]
    assert np.isfinite(lo).all() and np.isfinite(hi).all()
    assert np.allclose(hi[-1] - point[-1], np.median(hi[:-1] - point[:-1], axis=0))
    with pytest.raises(ValueError, match="shorter than two horizons"):
        normalized_intervals(naive, [short], 3, [80])
    with pytest.raises(ValueError, match="needs at least 19 series"):
        normalized_intervals(naive, long[:5], 3, [95])
    with pytest.raises(ValueError, match="windows"):
        normalized_intervals(naive, long, 3, [80], windows=0)
    with pytest.raises(ValueError, match="steps"):
        normalized_intervals(naive, long, 3, [80], steps=-1)


def test_forecast_interval_method_normalized(quantile_run, tmp_path):
    tmp, _ = quantile_run
    out = tmp_path / "n.csv"
    args = ["forecast", "--model", str(tmp / "run"), "--input", str(tmp / "train.csv")]
    args += ["--output", str(out), "--level", "80", "95", "--interval-method", "normalized"]
    assert main([*args, "--scale-windows", "3"]) == 0
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["id", "step", "value", "lo-80", "hi-80", "lo-95", "hi-95"]
    v = np.array([[float(c) for c in r[2:]] for r in rows[1:]])
    assert len(v) == 24 * H
    assert (v[:, 3] <= v[:, 1]).all() and (v[:, 1] <= v[:, 0]).all()
    assert (v[:, 0] <= v[:, 2]).all() and (v[:, 2] <= v[:, 4]).all()


def test_flags_of_normalized_bands_without_them_are_refused(quantile_run, tmp_path, capsys):
    """--scale-steps / --scale-windows without --interval-method normalized, and that
    method without --level, were ignored without a word."""
    tmp, _ = quantile_run
    args = ["forecast", "--model", str(tmp / "run"), "--input", str(tmp / "train.csv")]
    args += ["--output", str(tmp_path / "n.csv")]
    assert main([*args, "--level", "80", "--scale-steps", "0"]) == 2
    assert "--scale-steps applies to --interval-method normalized only" in capsys.readouterr().err
    assert main([*args, "--interval-method", "normalized"]) == 2
    assert "give the bands' --level" in capsys.readouterr().err
    assert not (tmp_path / "n.csv").exists()


def _noisy(n=60, horizon=4, seed=0):
    rng = np.random.default_rng(seed)
    sigma = rng.uniform(0.1, 5.0, n)
    history = [10 + s * rng.standard_normal(60) for s in sigma]

    def mean_forecast(series):
        return np.array([np.full(horizon, np.mean(x[-20:])) for x in series])

    return history, mean_forecast


def test_a_stored_calibration_gives_one_series_the_band_it_gets_among_all(tmp_path):
    """calibrate + apply is normalized_intervals; apply needs only the series asked about
    (what a server does with a run's stored calibration); save/load round trip."""
    from transduce.errors import DataError
    from transduce.forecasting.normalized import apply, calibrate, load, save

    history, f = _noisy()
    point, bands = normalized_intervals(f, history, 4, [80, 90], windows=6)
    cal = calibrate(f, history, 4, [80, 90], windows=6)
    save(tmp_path, cal)
    assert load(tmp_path) == cal and load(tmp_path / "nothing") is None
    p2, b2 = apply(f, history, load(tmp_path), [90, 80])
    assert np.allclose(p2, point) and all(np.allclose(b2[k], bands[k]) for k in bands)
    p3, b3 = apply(f, [history[7]], cal, [90])
    assert np.allclose(p3[0], point[7]) and np.allclose(b3["90"][1][0], bands["90"][1][7])
    with pytest.raises(ValueError, match="two horizons"):
        apply(f, [history[0][:5]], cal, [90])
    with pytest.raises(ValueError, match="not calibrated"):
        apply(f, history, cal, [95])
    (tmp_path / "normalized.json").write_text('{"levels": {"90": [1]}, "horizon": 4}')
    with pytest.raises(DataError, match="damaged normalized calibration"):
        load(tmp_path)


def test_a_run_with_levels_stores_it_and_its_forecaster_export_and_server_use_it(
    quantile_run, tmp_path
):
    from fastapi.testclient import TestClient

    from transduce.export.onnx import export_onnx
    from transduce.forecasting.pipeline import Forecaster
    from transduce.runtime.forecast import ExportedForecaster
    from transduce.serve.app import create_app
    from transduce.serve.series_model import SeriesModel

    tmp, hist = quantile_run
    run = tmp / "run"
    assert (run / "normalized.json").is_file()
    one = [np.asarray(hist[3], float)]
    point, bands = Forecaster.load(run).forecast_intervals(one, [80, 95], method="normalized")
    (lo80, hi80), (lo95, hi95) = bands["80"], bands["95"]
    assert np.isfinite(lo95).all() and (lo95 <= lo80).all() and (lo80 <= point).all()
    assert (point <= hi80).all() and (hi80 <= hi95).all()
    assert not np.allclose(hi95 - lo95, (hi95 - lo95)[:, :1])  # a width per step
    out = export_onnx(run, tmp_path / "onnx")
    assert (out / "normalized.json").is_file()
    p2, b2 = ExportedForecaster.load(out).forecast_intervals(one, [95], method="normalized")
    assert np.allclose(p2, point, rtol=1e-4) and np.allclose(b2["95"][1], hi95, rtol=1e-4)
    with TestClient(create_app({"q": SeriesModel.load("q", run)})) as client:
        (info,) = client.get("/v1/models").json()["models"]
        assert info["normalized_levels"] == ["80", "95"]
        body = {"series": [{"id": "a", "values": hist[3].tolist()}], "level": [95]}
        got = client.post("/v1/forecast", json={**body, "interval_method": "normalized"})
        assert got.status_code == 200, got.text
        assert got.json()["forecasts"][0]["intervals"]["hi-95"] == pytest.approx(hi95[0])
        short = {"series": [{"id": "a", "values": hist[3][:10].tolist()}], "level": [95]}
        got = client.post("/v1/forecast", json={**short, "interval_method": "normalized"})
        assert got.status_code == 422 and got.json()["field"] == "series[0].values"
        got = client.post("/v1/forecast", json={**body, "interval_method": "nope"})
        assert got.status_code == 422
        huge = {"series": [{"id": "a", "values": (hist[3] * 1e200).tolist()}], "level": [95]}
        got = client.post("/v1/forecast", json={**huge, "interval_method": "normalized"})
        # refused before the model runs, as the CLI's readers refuse it (beyond ±1e15)
        assert got.status_code == 422 and got.json()["field"] == "series[0].values[0]", got.text
        assert "beyond" in got.json()["error"] and "calibration" not in got.json()["error"]


def test_too_few_series_for_a_level_use_the_runs_stored_calibration(
    quantile_run, tmp_path, capsys, caplog
):
    """Three series cannot calibrate a 95% band (19 are needed): the command says so in a
    warning and uses the run's normalized.json, which gives each series the band the
    Python API gives it; a run without that file is refused in one line."""
    import shutil

    from tests.forecasting.conftest import write_wide
    from transduce.forecasting.pipeline import Forecaster

    tmp, hist = quantile_run
    write_wide(tmp_path / "three.csv", hist[:3])
    out = tmp_path / "three_out.csv"
    args = ["forecast", "--input", str(tmp_path / "three.csv"), "--output", str(out)]
    args += ["--level", "95", "--interval-method", "normalized"]
    with caplog.at_level(logging.WARNING, logger="transduce.forecast"):
        assert main([*args, "--model", str(tmp / "run")]) == 0
    assert "needs at least 19" in caplog.text and "stored normalized calibration" in caplog.text
    rows = list(csv.reader(out.open()))[1:]
    series = [np.asarray(x, float) for x in hist[:3]]
    _, bands = Forecaster.load(tmp / "run").forecast_intervals(series, [95], method="normalized")
    assert np.allclose([float(r[4]) for r in rows], bands["95"][1].ravel(), rtol=1e-4)
    bare = tmp_path / "bare"
    shutil.copytree(tmp / "run", bare)
    (bare / "normalized.json").unlink()
    assert main([*args, "--model", str(bare)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert "needs at least 19" in err[-1] and "Traceback" not in "".join(err)


def test_a_served_normalized_batch_is_bounded_in_forecasts_not_series(quantile_run):
    """A normalized band costs ``windows + 1`` forecasts of a series: the server's batches
    hold ``max_batch_size / (windows + 1)`` such series (every model shares one decode
    thread), plain forecasts still ``max_batch_size``, and each series gets the band it
    gets alone."""
    from fastapi.testclient import TestClient

    from transduce.forecasting.pipeline import Forecaster
    from transduce.serve.app import create_app
    from transduce.serve.limits import ServeLimits
    from transduce.serve.series_model import SeriesModel

    tmp, hist = quantile_run
    run = tmp / "run"
    windows = json.loads((run / "normalized.json").read_text())["windows"]
    limits = ServeLimits(max_batch_size=2 * (windows + 1))
    series = [{"id": str(i), "values": hist[i].tolist()} for i in range(5)]
    body = {"series": series, "level": [95]}
    with TestClient(create_app({"q": SeriesModel.load("q", run)}, limits)) as client:
        batcher = client.app.state.serve.batchers["q"]
        got = client.post("/v1/forecast", json={**body, "interval_method": "normalized"})
        assert got.status_code == 200, got.text
        assert (batcher.calls, batcher.items) == (3, 5)  # 2 + 2 + 1 series
        got2 = client.post("/v1/forecast", json=body)
        assert got2.status_code == 200 and batcher.calls == 4
    forecaster = Forecaster.load(run)
    for i, f in enumerate(got.json()["forecasts"]):
        one = [np.asarray(hist[i], float)]
        _, bands = forecaster.forecast_intervals(one, [95], method="normalized")
        assert f["intervals"]["hi-95"] == pytest.approx(bands["95"][1][0].tolist(), rel=1e-4)
