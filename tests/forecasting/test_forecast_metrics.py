"""M4 metrics and baselines: hand-computed cases, and Naive2 on the real Hourly data."""

from __future__ import annotations

import numpy as np
import pytest

from transduce.config import data_root
from transduce.data.series import read_m4_wide
from transduce.forecasting.metrics import (
    acf,
    baseline_scores,
    is_seasonal,
    mase,
    naive,
    naive2,
    owa,
    score,
    seasonal_indices,
    seasonal_naive,
    smape,
)


def test_smape_by_hand():
    # 200*10/210 = 9.5238..., 200*20/380 = 10.5263...
    assert smape([100, 200], [110, 180]) == pytest.approx((2000 / 210 + 4000 / 380) / 2)
    assert smape([5, 5], [5, 5]) == 0.0
    assert smape([1.0], [0.0]) == pytest.approx(200.0)  # the bound


def test_mase_by_hand():
    # seasonal differences with m=2: |3-1|, |4-2|, |5-3|, |6-4| = 2; forecast MAE (1+2)/2
    assert mase([1, 2, 3, 4, 5, 6], [7, 8], [6, 10], m=2) == pytest.approx(0.75)
    # m=1: in-sample MAE of the naive forecast: mean(|diff|) = 1
    assert mase([1, 2, 3, 4], [5, 5], [4, 7], m=1) == pytest.approx(1.5)


def test_owa_by_hand():
    assert owa({"smape": 10.0, "mase": 1.0}, {"smape": 20.0, "mase": 2.0}) == 0.5
    # The M4 sheet's own check for ES-RNN on Hourly
    ref = {"smape": 18.383, "mase": 2.395}
    assert owa({"smape": 9.328, "mase": 0.893}, ref) == pytest.approx(0.440, abs=5e-4)


def test_acf_matches_definition():
    x = np.array([1.0, 3.0, 2.0, 5.0, 4.0])
    d = x - x.mean()
    assert acf(x, 2)[1] == pytest.approx(np.sum(d[2:] * d[:-2]) / np.sum(d * d))


def test_seasonality_test():
    t = np.arange(96)
    assert is_seasonal(10 + np.sin(2 * np.pi * t / 24), 24)
    noise = np.random.default_rng(0).normal(10, 1, 96)
    assert not is_seasonal(noise, 24)
    assert not is_seasonal(10 + np.sin(2 * np.pi * t[:60] / 24), 24)  # shorter than 3m


def test_decomposition_recovers_a_multiplicative_pattern_and_naive2_continues_it():
    pattern = np.array([0.5, 1.5, 1.2, 0.8])
    x = 10 * np.tile(pattern, 6)
    np.testing.assert_allclose(seasonal_indices(x, 4), pattern)
    np.testing.assert_allclose(naive2(x, 6, 4), 10 * np.resize(pattern, 6))
    # odd period: plain moving average
    odd = np.array([0.7, 1.1, 1.2])
    np.testing.assert_allclose(seasonal_indices(5 * np.tile(odd, 5), 3), odd)


def test_simple_baselines():
    x = np.arange(1.0, 11.0)
    np.testing.assert_array_equal(naive(x, 3), [10, 10, 10])
    np.testing.assert_array_equal(seasonal_naive(x, 5, 3), [8, 9, 10, 8, 9])
    np.testing.assert_array_equal(naive2(x, 3, 4), naive(x, 3))  # no seasonality: naive


def test_score_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="series 0"):
        score([np.ones(10)], [np.ones(3)], [np.ones(4)], 1)


M4 = data_root() / "m4"


@pytest.mark.skipif(not (M4 / "Hourly-test.csv").exists(), reason="M4 Hourly data not present")
def test_naive2_and_snaive_reproduce_the_official_m4_hourly_figures():
    train = read_m4_wide(M4 / "Hourly-train.csv")
    test = read_m4_wide(M4 / "Hourly-test.csv")
    assert len(train) == len(test) == 414
    scores = baseline_scores(train.values, test.values, 24)
    official = {"Naive2": (18.383, 2.395), "sNaive": (13.912, 1.193), "Naive": (43.003, 11.608)}
    for name, (s, m) in official.items():
        assert round(scores[name]["smape"], 3) == s, name
        assert round(scores[name]["mase"], 3) == m, name
    assert scores["sNaive"]["owa"] == pytest.approx(0.627, abs=1e-3)  # M4 sheet: 0.627
