"""Quantile outputs: monotone by construction, the pinball objective, interval metrics at
every validation, the run's conformal calibration, ``forecast --level`` and the ONNX export."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from tests.forecasting.conftest import H
from transduce.commands.cli import main
from transduce.nn.heads import QuantileHead, quantile_levels
from transduce.tasks.series import pinball_loss


def test_quantile_columns_are_the_median_then_narrow_to_wide_pairs():
    assert quantile_levels((95, 80)) == pytest.approx([0.5, 0.1, 0.9, 0.025, 0.975])


@pytest.mark.parametrize("scale", [0.1, 10.0, 1000.0])
def test_quantile_head_is_monotone_for_any_weights(scale):
    torch.manual_seed(0)
    head = QuantileHead(8, 3)
    with torch.no_grad():
        for p in head.parameters():
            p.normal_(0, scale)
    out = head(torch.randn(64, 5, 8) * scale)  # [B, T, 1 + 2K]
    assert out.shape == (64, 5, 7)
    lows, highs = out[..., 1::2], out[..., 2::2]  # narrow -> wide
    median = out[..., :1]
    assert (lows <= median).all() and (highs >= median).all()
    assert (lows[..., 1:] <= lows[..., :-1]).all() and (highs[..., 1:] >= highs[..., :-1]).all()


def test_pinball_loss_by_hand_and_its_median_term_is_the_mae():
    gold = torch.tensor([[[3.0], [1.0]]])  # [1, 2, 1]
    pred = torch.tensor([[[2.0, 1.0, 5.0], [2.0, 0.0, 4.0]]])  # median, q=0.1, q=0.9
    # median: |1| + |1| = 2 (doubled 0.5 pinball); q=0.1: 2*(0.1*2 + 0.1*1) = 0.6;
    # q=0.9: 2*(0.1*2 + 0.1*3) = 1.0
    assert float(pinball_loss(pred, gold, [0.5, 0.1, 0.9])) == pytest.approx(3.6)
    mae = torch.nn.functional.l1_loss(pred[..., :1], gold, reduction="sum")
    assert float(pinball_loss(pred[..., :1], gold, [0.5])) == pytest.approx(float(mae))


def test_every_validation_reports_interval_metrics_and_the_run_holds_its_calibration(quantile_run):
    tmp, _ = quantile_run
    records = [json.loads(x) for x in (tmp / "run" / "metrics.jsonl").open()]
    valid = [r for r in records if r.get("split") == "valid"]
    assert len(valid) == 2
    for r in valid:
        for key in ("msis_80", "acd_80", "coverage_80", "msis_95", "acd_95", "coverage_95"):
            assert key in r and np.isfinite(r[key])
        assert r["pinball"] > 0 and 0 <= r["coverage_80"] <= r["coverage_95"] <= 1
    calib = json.loads((tmp / "run" / "conformal.json").read_text())
    assert calib["windows"] == 24 and calib["levels"] == [80.0, 95.0]
    assert set(calib["cqr"]) == {"80", "95"} and {"50", "80", "90", "95", "99"} <= set(
        calib["residual"]
    )
    assert all(len(v) == H for v in [*calib["cqr"].values(), *calib["residual"].values()])


def test_forecast_level_writes_nested_bands_around_the_point(quantile_run, capsys):
    tmp, _ = quantile_run
    out = tmp / "bands.csv"
    args = [
        "forecast",
        "--model",
        str(tmp / "run"),
        "--input",
        str(tmp / "train.csv"),
        "--output",
        str(out),
        "--level",
        "80",
        "95",
        "50",
    ]
    assert main(args) == 0
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["id", "step", "value", "lo-80", "hi-80", "lo-95", "hi-95", "lo-50", "hi-50"]
    v = np.array([[float(c) for c in r[2:]] for r in rows[1:]])
    assert len(v) == 24 * H
    # the 50% band comes from the residual calibration, 80/95 from the learned quantiles
    assert (v[:, 3] <= v[:, 1]).all() and (v[:, 1] <= v[:, 2]).all() and (v[:, 2] <= v[:, 4]).all()
    assert (v[:, 1] < v[:, 0]).mean() > 0.9 and (v[:, 2] > v[:, 0]).mean() > 0.9


def test_a_level_the_run_did_not_calibrate_is_refused_in_one_line(quantile_run, capsys):
    tmp, _ = quantile_run
    args = [
        "forecast",
        "--model",
        str(tmp / "run"),
        "--input",
        str(tmp / "train.csv"),
        "--output",
        str(tmp / "x.csv"),
        "--level",
        "73",
    ]
    assert main(args) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "level 73" in err[0] and "Traceback" not in err[0]


def test_onnx_export_carries_the_quantile_head(quantile_run):
    pytest.importorskip("onnxruntime")
    from transduce.export.onnx import export_onnx
    from transduce.forecasting.pipeline import Forecaster
    from transduce.inference import searchcore as core
    from transduce.runtime.model import OPS, OnnxModel

    tmp, hist = quantile_run
    out = export_onnx(tmp / "run", tmp / "onnx")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["series"]["levels"] == [80.0, 95.0] and (out / "conformal.json").is_file()
    forecaster = Forecaster.load(tmp / "run")
    w = forecaster.windows(list(hist))
    ref = forecaster.rollout_windows(w)  # [N, H, 5]
    tgt_in = np.concatenate([np.repeat(w.start[:, None], H, 1), w.exog], -1).astype(np.float32)
    mask = np.ones(w.src.shape[:2], dtype=bool)
    got, _ = core.rollout(OPS, OnnxModel(out, threads=1), w.src, mask, tgt_in, 1)
    assert ref.shape == got.shape == (24, H, 5)
    np.testing.assert_allclose(got, ref, atol=1e-4)


def test_forecast_never_overwrites_its_input(quantile_run, capsys):
    tmp, _ = quantile_run
    before = (tmp / "train.csv").read_bytes()
    args = [
        "forecast",
        "--model",
        str(tmp / "run"),
        "--input",
        str(tmp / "train.csv"),
        "--output",
        str(tmp / "." / "train.csv"),
        "--level",
        "80",
    ]
    assert main(args) != 0
    assert "is an input" in capsys.readouterr().err
    assert (tmp / "train.csv").read_bytes() == before


@pytest.mark.parametrize("levels", [[120], [0], [80, 80]])
def test_bad_levels_are_refused_in_one_line(levels):
    from transduce.config import ConfigError, SeriesConfig
    from transduce.forecasting.pipeline import window_spec

    with pytest.raises(ConfigError, match=r"series\.levels"):
        window_spec(SeriesConfig(levels=tuple(levels)))
