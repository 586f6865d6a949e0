"""transduce's dropout: torch.nn.Dropout's distribution and scaling, from uniform numbers."""

import math

import pytest
import torch

from transduce.nn.dropout import Dropout, dropout


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_keeps_each_element_with_probability_one_minus_p_and_rescales(p):
    torch.manual_seed(0)
    x = torch.ones(400_000)
    y = dropout(x, p)
    kept = (y != 0).double().mean().item()
    n = x.numel()
    assert abs(kept - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)  # 5 standard errors
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / (1 - p)))
    assert abs(y.mean().item() - 1.0) < 0.01  # unbiased in expectation


def test_the_gradient_is_the_mask_times_the_scale():
    torch.manual_seed(1)
    x = torch.randn(64, 33, requires_grad=True)
    y = dropout(x, 0.3)
    y.sum().backward()
    expected = (y.detach() != 0).float() / 0.7
    assert torch.equal(x.grad, expected)


def test_evaluation_p0_and_p1():
    x = torch.randn(5, 7)
    module = Dropout(0.4).eval()
    assert module(x) is x
    assert dropout(x, 0.0) is x
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))
    with pytest.raises(ValueError, match="dropout probability"):
        Dropout(1.5)


def test_bf16_inputs_stay_bf16_and_are_dropped_at_the_same_rate():
    torch.manual_seed(2)
    x = torch.ones(200_000, dtype=torch.bfloat16)
    y = dropout(x, 0.3)
    assert y.dtype == torch.bfloat16
    assert abs((y != 0).float().mean().item() - 0.7) < 0.005


def test_the_masks_follow_torchs_seed():
    x = torch.ones(1000)
    torch.manual_seed(3)
    a = dropout(x, 0.5)
    torch.manual_seed(3)
    assert torch.equal(a, dropout(x, 0.5))
