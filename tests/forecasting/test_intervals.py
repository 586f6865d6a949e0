"""MSIS / ACD / coverage / pinball against hand-computed values from the M4 formula, and
the official Naive Hourly figures (RESULTS.md section D) from the random-walk interval."""

from __future__ import annotations

import numpy as np
import pytest

from transduce.config import data_root
from transduce.data.series import read_m4_wide
from transduce.forecasting.intervals import (
    acd,
    coverage,
    interval_scores,
    msis,
    naive_interval,
    pinball,
)


def test_msis_by_hand():
    # history 1..6, m=2: seasonal differences all 2 -> scale 2
    # step 1: y=5 in [4, 6]: width 2; step 2: y=9 above [5, 7]: 2 + (2/0.05)*2 = 82
    # step 3: y=1 below [3, 4]: 1 + 40*2 = 81 -> mean (2 + 82 + 81)/3 = 55, / 2 = 27.5
    x = [1, 2, 3, 4, 5, 6]
    assert msis(x, [5, 9, 1], [4, 5, 3], [6, 7, 4], m=2) == pytest.approx(27.5)
    # an 80% interval (a = 0.2): penalty factor 10 -> (2 + 22 + 21)/3/2 = 7.5
    assert msis(x, [5, 9, 1], [4, 5, 3], [6, 7, 4], m=2, a=0.2) == pytest.approx(7.5)


def test_acd_and_coverage_count_every_step_of_every_series_once():
    actuals = [np.array([1.0, 2.0, 3.0]), np.array([10.0])]
    lo = [np.array([0.0, 2.0, 4.0]), np.array([11.0])]
    hi = [np.array([2.0, 2.0, 5.0]), np.array([12.0])]
    assert coverage(actuals, lo, hi) == pytest.approx(2 / 4)  # bounds count as inside
    assert acd(actuals, lo, hi) == pytest.approx(0.45)
    assert acd(actuals, lo, hi, a=0.5) == pytest.approx(0.0)


def test_pinball_by_hand():
    # q=0.9: under-forecast by 2 costs 1.8, over-forecast by 1 costs 0.1
    assert pinball([3.0, 1.0], [1.0, 2.0], 0.9) == pytest.approx((1.8 + 0.1) / 2)
    assert pinball([3.0, 1.0], [1.0, 2.0], 0.5) == pytest.approx(0.75)  # half the MAE


def test_naive_interval_widens_with_the_square_root_of_the_step():
    lo, hi = naive_interval(np.array([1.0, 2.0, 1.0, 2.0]), 4, 95.0)  # sigma = 1
    assert hi - 2.0 == pytest.approx(1.959964 * np.sqrt([1, 2, 3, 4]), rel=1e-6)
    assert np.allclose(2.0 - lo, hi - 2.0)


@pytest.mark.skipif(not (data_root() / "m4/Hourly-test.csv").exists(), reason="no M4 data")
def test_official_naive_hourly_msis_and_acd_reproduced():
    train = read_m4_wide(data_root() / "m4/Hourly-train.csv")
    test = read_m4_wide(data_root() / "m4/Hourly-test.csv")
    bands = [naive_interval(x, 48) for x in train.values]
    got = interval_scores(
        train.values, test.values, [b[0] for b in bands], [b[1] for b in bands], 24, 95.0
    )
    assert round(got["msis"], 3) == 71.245  # RESULTS.md section D
    assert round(got["acd"], 3) == 0.011
