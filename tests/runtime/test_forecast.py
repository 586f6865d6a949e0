"""An exported forecasting run forecasts like its PyTorch run: through
:class:`transduce.runtime.forecast.ExportedForecaster`, through ``transduce forecast`` on the
export and through ``python -m transduce.runtime forecast`` where torch (and everything the
runtime extra does not install) cannot be imported."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.helpers import BLOCK_TORCH
from transduce.commands.cli import main
from transduce.data.series import read_series
from transduce.forecasting.pipeline import Forecaster
from transduce.runtime.forecast import ExportedForecaster

ROOT = Path(__file__).resolve().parents[2]
H, M = 4, 4


def _write_wide(path: Path, rows: np.ndarray) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow([f"V{i + 1}" for i in range(rows.shape[1] + 1)])
        for i, r in enumerate(rows):
            w.writerow([f"S{i}", *(f"{v:.4f}" for v in r)])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fcx")
    rng = np.random.default_rng(0)
    t = np.arange(40 + H)
    x = rng.uniform(20, 90, (5, 1)) * (1.5 + np.sin(2 * np.pi * t / M))[None, :]
    x *= rng.uniform(0.95, 1.05, x.shape)  # noise: a seasonal-naive MASE scale above 0
    _write_wide(tmp / "hist.csv", x[:, :40])
    _write_wide(tmp / "next.csv", x[:, 40:])
    cfg = {
        "series": {
            "format": "m4",
            "train": str(tmp / "hist.csv"),
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
            "lr": 0.01,
            "batch_size": 16,
            "max_steps": 6,
            "epochs": 10,
            "valid_every": 3,
            "log_every": 0,
            "progress": False,
            "threads": 1,
        },
    }
    (tmp / "fc.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    assert main(["-q", "train", str(tmp / "fc.yaml"), "--out", str(tmp / "run")]) == 0
    assert main(["-q", "export", "onnx", "--model", str(tmp / "run"), "--out", str(tmp / "x")]) == 0
    return tmp


def test_export_forecasts_like_the_run(exported):
    series = read_series(exported / "hist.csv", "m4").values
    ours = ExportedForecaster.load(exported / "x", threads=1).forecast(series)
    ref = Forecaster.load(exported / "run").forecast(series)
    assert ours.shape == ref.shape == (5, H)
    np.testing.assert_allclose(ours, ref, rtol=1e-4)


def test_runtime_forecast_runs_where_torch_cannot_be_imported(exported, capsys):
    common = ["--input", str(exported / "hist.csv"), "--actuals", str(exported / "next.csv")]
    assert (
        main(
            [
                "forecast",
                "--model",
                str(exported / "run"),
                *common,
                "--output",
                str(exported / "torch.csv"),
            ]
        )
        == 0
    )
    ref = json.loads(capsys.readouterr().out)
    script = (
        BLOCK_TORCH
        + "\nimport runpy\nsys.argv = sys.argv[1:]\n"
        + ("runpy.run_module(sys.argv[0], run_name='__main__')")
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for i, prog in enumerate([["transduce.runtime"], ["transduce"]]):
        out = exported / f"rt{i}.csv"
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                script,
                *prog,
                "forecast",
                "--model",
                str(exported / "x"),
                *common,
                "--output",
                str(out),
                "--threads",
                "1",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert proc.returncode == 0, proc.stderr
        got = json.loads(proc.stdout)
        assert got["series"] == 5 and got["smape"] == pytest.approx(ref["smape"], rel=1e-3)
        ours = np.loadtxt(out, delimiter=",", skiprows=1, usecols=range(1, H + 1))
        theirs = np.loadtxt(
            exported / "torch.csv", delimiter=",", skiprows=1, usecols=range(1, H + 1)
        )
        np.testing.assert_allclose(ours, theirs, rtol=1e-4)


def test_a_text_export_is_refused_in_one_line(exported, tmp_path, capsys):
    from transduce.runtime.__main__ import main as runtime_main

    text = tmp_path / "text"
    for f in (exported / "x").iterdir():  # the same graphs, a manifest saying "text"
        (text / f.name).parent.mkdir(exist_ok=True)
        (text / f.name).write_bytes(f.read_bytes())
    manifest = json.loads((text / "manifest.json").read_text())
    (text / "manifest.json").write_text(json.dumps({**manifest, "kind": "text"}))
    args = [
        "forecast",
        "--model",
        str(text),
        "--input",
        str(exported / "hist.csv"),
        "--output",
        str(tmp_path / "o.csv"),
    ]
    assert runtime_main(args) == 2
    err = capsys.readouterr().err  # refused by the manifest's checks or by the forecaster
    assert str(text) in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o.csv").exists()
