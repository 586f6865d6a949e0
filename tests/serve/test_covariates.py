"""``POST /v1/forecast`` for a model trained with covariates: each series gives them over its
history and the future-known ones over the forecast steps; the answer equals
``Forecaster.predict(futr_df=...)``; a missing, unknown or short covariate is a 422 naming
it, and a model without covariates refuses them."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient

from tests.forecasting.conftest import H, tiny_series_config
from transduce.forecasting.ensemble import ForecastEnsemble
from transduce.forecasting.pipeline import Forecaster
from transduce.serve.app import create_app
from transduce.serve.backend import load_models

pd = pytest.importorskip("pandas")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def served(tmp_path_factory, series_run):
    tmp = tmp_path_factory.mktemp("covariates")
    rng = np.random.default_rng(2)
    promo = (rng.random((6, 50)) < 0.3).astype(float)
    y = 50 + 10 * np.sin(2 * np.pi * np.arange(50) / 6)[None, :] + 30 * promo
    df = pd.DataFrame(
        {
            "unique_id": np.repeat([f"s{i}" for i in range(6)], 50),
            "ds": np.tile(np.arange(50.0), 6),
            "y": y.reshape(-1),
            "promo": promo.reshape(-1),
        }
    )
    cfg = tiny_series_config("unused", covariates=["promo"], scaling="level", stride=1)
    cfg["train"]["max_steps"] = 20
    (tmp / "c.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    forecaster = Forecaster.fit(df, tmp / "c.yaml", tmp / "run")
    run = tmp / "run"
    models = load_models([f"cov={run}", f"plain={series_run}", f"both={run}+{run}"])
    with TestClient(create_app(models)) as client:
        yield client, forecaster, df


def _series(df, i: int, future: list[float]) -> dict:
    rows = df[df["unique_id"] == f"s{i}"]
    return {
        "id": f"s{i}",
        "values": rows["y"].tolist(),
        "covariates": {"promo": rows["promo"].tolist()},
        "future": {"promo": future},
    }


def test_the_served_forecast_equals_predict_with_futr_df(served):
    client, forecaster, df = served
    body = {"model": "cov", "series": [_series(df, i, [1.0] * H) for i in range(6)]}
    got = client.post("/v1/forecast", json=body)
    assert got.status_code == 200, got.text
    future = pd.DataFrame(
        {
            "unique_id": np.repeat([f"s{i}" for i in range(6)], H),
            "ds": np.tile(50.0 + np.arange(H), 6),
        }
    )
    want = forecaster.predict(futr_df=future.assign(promo=1.0))["y"].to_numpy().reshape(6, H)
    for row, f in zip(want, got.json()["forecasts"], strict=True):
        assert f["values"] == pytest.approx(row.tolist(), rel=1e-5)
    off = {"model": "cov", "series": [_series(df, 0, [0.0] * H)], "level": [80]}
    lower = client.post("/v1/forecast", json=off).json()["forecasts"][0]
    assert np.mean(lower["values"]) < np.mean(got.json()["forecasts"][0]["values"])
    assert set(lower["intervals"]) == {"lo-80", "hi-80"}
    both = client.post("/v1/forecast", json={**body, "model": "both"})  # an ensemble
    for a, b in zip(both.json()["forecasts"], got.json()["forecasts"], strict=True):
        assert a["values"] == pytest.approx(b["values"], rel=1e-5)  # its batches differ
    info = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert info["cov"]["covariates"] == ["promo"] == info["cov"]["future_covariates"]
    assert info["plain"]["covariates"] == []


BAD = [
    (lambda s: s.pop("covariates"), "series[0].covariates", "needs the covariates ['promo']"),
    (lambda s: s["covariates"].update(promo=[1.0, 0.0]), "series[0].covariates.promo", "2 values"),
    (
        lambda s: s["covariates"].update(price=[1.0]),
        "series[0].covariates.price",
        "not a covariate",
    ),
    (lambda s: s["future"].update(promo=[1.0]), "series[0].future.promo", f"at least {H}"),
    (lambda s: s.pop("future"), "series[0].future", "needs the covariates"),
    # bounded and typed before validation, as the values are: a million-long future list
    # or a string among them is one 422, not a pydantic list of every item
    (lambda s: s["future"].update(promo=[1.0] * 10_001), "series[0].future.promo", "at most"),
    (
        lambda s: s["covariates"]["promo"].__setitem__(3, "1"),
        "series[0].covariates.promo[3]",
        "number",
    ),
]


@pytest.mark.parametrize(("spoil", "field", "said"), BAD)
def test_a_wrong_covariate_is_a_422_naming_it(served, spoil, field, said):
    client, _, df = served
    series = _series(df, 0, [1.0] * H)
    spoil(series)
    got = client.post("/v1/forecast", json={"model": "cov", "series": [series]})
    assert got.status_code == 422 and got.json()["field"] == field, got.text
    assert said in got.json()["error"]


def test_a_model_without_covariates_refuses_them(served):
    client, _, _ = served
    series = {"id": "a", "values": [5.0, 6.0, 7.0], "covariates": {"promo": [1.0, 0.0, 1.0]}}
    got = client.post("/v1/forecast", json={"model": "plain", "series": [series]})
    assert got.status_code == 422 and got.json()["field"] == "series[0].covariates", got.text


def test_an_ensemble_of_members_with_other_covariates_is_refused(served, series_run):
    _, forecaster, _ = served
    plain = Forecaster.load(series_run)
    with pytest.raises(ValueError, match=r"takes the covariates \[\] \(0 future-known\)"):
        ForecastEnsemble([forecaster, plain], names=["cov", "plain"])
