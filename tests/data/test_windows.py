"""Rolling windows over series: the held-out end, exact unscaling, calendar features and
covariates beside the values."""

from __future__ import annotations

import numpy as np

from transduce.data.windows import WindowSpec, training_windows, unscale


def test_training_windows_hold_out_the_end_and_unscale_exactly():
    rng = np.random.default_rng(0)
    series = [rng.uniform(5, 10, 100), rng.uniform(50, 90, 130)]
    spec = WindowSpec(lookback=24, horizon=8, period=12, scaling="log", calendar=True)
    train, valid = training_windows(series, spec, stride=4, holdout=8)
    assert train.src.shape[1:] == (24, 3) and train.exog.shape[1:] == (8, 2)
    assert valid.src.shape[0] == 2
    # the validation targets are each series' last 8 values, recovered by unscale
    for i, x in enumerate(series):
        got = unscale(valid.target[i : i + 1, :, 0].astype(float), valid.level[i : i + 1], spec)
        np.testing.assert_allclose(got[0], x[-8:], rtol=1e-5)
    # no training target reaches into the held-out values: origins end 8 before the end
    assert np.isclose(train.target[:, :, 0], valid.target[0, :, 0]).all(1).sum() == 0
    # the calendar phase of the first validation target step is (-8 mod 12)
    angle = 2 * np.pi * ((-8) % 12) / 12
    np.testing.assert_allclose(valid.exog[0, 0], [np.sin(angle), np.cos(angle)], atol=1e-6)


def test_covariates_ride_beside_the_encoder_values_and_the_decoder_features():
    """Column 0 future-known (encoder and decoder), column 1 past-only (encoder alone);
    each window sees exactly the rows of its own steps."""
    n, L, H = 40, 6, 3
    x = np.arange(1.0, n + 1)
    cov = np.stack([np.arange(n) * 10.0, -np.arange(n) * 1.0], -1)  # [n, 2]: row = step
    spec = WindowSpec(
        L, H, period=3, scaling="none", calendar=False, covariates=1, past_covariates=1
    )
    assert (spec.features, spec.exog_features) == (3, 1)
    train, valid = training_windows([x], spec, stride=5, holdout=H, covariates=[cov])
    for w in (train, valid):
        for i in range(len(w.src)):
            first = int(w.src[i, 0, 0]) - 1  # values are 1..n, so the value names its step
            np.testing.assert_array_equal(w.src[i, :, 1:], cov[first : first + L])
            np.testing.assert_array_equal(w.exog[i, :, 0], cov[first + L : first + L + H, 0])
    assert int(valid.src[0, 0, 0]) == n - H - L + 1
