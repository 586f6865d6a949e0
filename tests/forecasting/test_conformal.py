"""Split-conformal calibration: the finite-sample quantile, and coverage of fresh data within
a tolerance of the nominal level, per horizon step, for residual and CQR bands."""

from __future__ import annotations

import numpy as np
import pytest

from transduce.forecasting import conformal
from transduce.forecasting.conformal import bands, calibrate, conformal_quantile

H = 4
SIGMA = np.array([0.5, 1.0, 1.5, 2.0])  # the noise grows with the step


def _draw(n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Windows whose truth is the point forecast plus step-dependent Gaussian noise."""
    mean = rng.normal(0, 3, (n, H))
    return mean, mean + rng.normal(0, 1, (n, H)) * SIGMA


def test_conformal_quantile_is_the_ceil_n_plus_one_order_statistic():
    scores = np.arange(1.0, 10.0)  # n = 9
    assert conformal_quantile(scores, 80) == 8.0  # ceil(10 * 0.8) = 8th smallest
    assert conformal_quantile(scores, 50) == 5.0
    assert conformal_quantile(scores, 95) == float("inf")  # ceil(9.5) = 10 > n


@pytest.mark.parametrize("level", [80.0, 90.0, 95.0])
def test_residual_bands_cover_fresh_data_at_the_nominal_level_per_step(level):
    rng = np.random.default_rng(0)
    mean, truth = _draw(2000, rng)
    calib = calibrate(mean[:, :, None], truth, ())
    test_mean, test_truth = _draw(20000, rng)
    lo, hi = bands(test_mean[:, :, None], calib, level)
    covered = ((test_truth >= lo) & (test_truth <= hi)).mean(0)  # [H]
    assert np.all(np.abs(covered - level / 100) < 0.025), covered
    widths = (hi - lo).mean(0)
    assert np.all(np.diff(widths) > 0)  # per-step calibration follows the growing noise


@pytest.mark.parametrize("spread", [0.3, 3.0])  # learned bands too narrow, too wide
def test_cqr_corrects_miscalibrated_learned_quantiles(spread):
    rng = np.random.default_rng(1)

    def pred_of(mean):  # median, then a symmetric learned 80% band of the wrong width
        half = spread * SIGMA[None, :] * 1.2816
        return np.stack([mean, mean - half, mean + half], -1)

    mean, truth = _draw(2000, rng)
    calib = calibrate(pred_of(mean), truth, (80.0,))
    test_mean, test_truth = _draw(20000, rng)
    pred = pred_of(test_mean)
    raw = ((test_truth >= pred[..., 1]) & (test_truth <= pred[..., 2])).mean()
    lo, hi = bands(pred, calib, 80.0)
    covered = ((test_truth >= lo) & (test_truth <= hi)).mean()
    assert abs(raw - 0.8) > 0.1  # the learned band alone is off
    assert abs(covered - 0.8) < 0.02


def test_an_uncalibrated_level_is_refused_with_the_calibrated_ones():
    rng = np.random.default_rng(2)
    mean, truth = _draw(50, rng)
    calib = calibrate(mean[:, :, None], truth, ())
    with pytest.raises(ValueError, match=r"level 73 is not calibrated.*50, 80, 90, 95, 99"):
        bands(mean[:, :, None], calib, 73)


def test_levels_of_lists_finite_levels_only_where_enough_windows_exist():
    rng = np.random.default_rng(0)
    pred, target = rng.normal(size=(6, 4, 1)), rng.normal(size=(6, 4))  # 6 windows, 4 steps
    cal = conformal.calibrate(pred, target, ())
    assert conformal.levels_of(cal) == ["50", "80", "90", "95", "99"]
    # 6 windows give ceil(7 * 0.8) = 6th order statistic for 80%, none for 90% and above
    assert conformal.levels_of(cal, finite=True) == ["50", "80"]
    many = conformal.calibrate(rng.normal(size=(400, 4, 1)), rng.normal(size=(400, 4)), ())
    assert conformal.levels_of(many, finite=True) == conformal.levels_of(many)
    assert conformal.levels_of(None) == []
