"""``/v1/forecast`` from a forecasting run's ONNX export (no torch in its decode path)
answers as the run itself does: point forecasts, intervals and the description."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from transduce.export.onnx import export_onnx
from transduce.serve.app import create_app
from transduce.serve.backend import load_models


@pytest.fixture(scope="module")
def client(series_run, tmp_path_factory):
    export = export_onnx(series_run, tmp_path_factory.mktemp("fc_export") / "onnx")
    models = load_models([f"run={series_run}", f"onnx={export}"], threads=1)
    with TestClient(create_app(models)) as c:
        yield c


def test_an_exported_forecaster_is_served_like_its_run(client, series_run):
    """It was refused ("serve its training run"), which needs torch, though the docs say
    exports are served by the install that has none."""
    history = [{"id": "a", "values": [50.0 + (i % 6) * 10 for i in range(30)]}]
    levels = [80] if (series_run / "conformal.json").exists() else []
    got = {}
    for name in ("run", "onnx"):
        reply = client.post(
            "/v1/forecast", json={"model": name, "series": history, "level": levels}
        )
        assert reply.status_code == 200, reply.text
        got[name] = reply.json()["forecasts"][0]
    assert got["onnx"]["values"] == pytest.approx(got["run"]["values"], rel=1e-4, abs=1e-4)
    for key, bound in (got["run"]["intervals"] or {}).items():
        assert got["onnx"]["intervals"][key] == pytest.approx(bound, rel=1e-4, abs=1e-4)
    described = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert described["onnx"]["engine"] == "onnx" and described["onnx"]["kind"] == "series"
    assert described["onnx"]["horizon"] == described["run"]["horizon"]
    assert described["onnx"]["levels"] == described["run"]["levels"]
