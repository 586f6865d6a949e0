import math

import pytest

from transduce.config import TrainConfig
from transduce.engine.optim import lr_factor


def test_constant_and_warmup():
    cfg = TrainConfig(lr_schedule="constant", warmup_steps=4)
    assert [lr_factor(cfg, s, 100) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_inverse_sqrt_peaks_after_warmup_then_decays():
    cfg = TrainConfig(lr_schedule="inverse_sqrt", warmup_steps=100)
    assert lr_factor(cfg, 99, 0) == pytest.approx(1.0)
    assert lr_factor(cfg, 100, 0) == pytest.approx(math.sqrt(100 / 101))
    assert lr_factor(cfg, 399, 0) == pytest.approx(0.5)


def test_cosine_goes_from_lr_to_lr_min():
    cfg = TrainConfig(lr_schedule="cosine", lr=1e-3, lr_min=1e-5, warmup_steps=10)
    assert lr_factor(cfg, 10, 110) == pytest.approx(1.0)
    assert lr_factor(cfg, 60, 110) == pytest.approx((1 + 0.01) / 2)
    assert lr_factor(cfg, 110, 110) == pytest.approx(0.01)
    assert lr_factor(cfg, 500, 110) == pytest.approx(0.01)  # stays at the floor
