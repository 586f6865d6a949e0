"""The fused token cross-entropy equals torch's, value and gradient, with and without
label smoothing and ignored targets."""

import pytest
import torch
import torch.nn.functional as F

from transduce.engine.losses import token_cross_entropy


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("ignore_index", [0, -100])
def test_value_and_gradient_equal_torchs(eps, ignore_index):
    torch.manual_seed(0)
    logits = torch.randn(97, 53) * 3
    target = torch.randint(0, 53, (97,))
    target[::7] = ignore_index if ignore_index >= 0 else -100
    ours_in = logits.clone().requires_grad_()
    theirs_in = logits.clone().requires_grad_()
    ours = token_cross_entropy(ours_in, target, eps, ignore_index)
    theirs = F.cross_entropy(
        theirs_in, target, ignore_index=ignore_index, label_smoothing=eps, reduction="sum"
    )
    (2.5 * ours).backward()
    (2.5 * theirs).backward()
    assert torch.allclose(ours, theirs, rtol=1e-5, atol=1e-4)
    assert torch.allclose(ours_in.grad, theirs_in.grad, rtol=1e-5, atol=1e-6)
    assert ours_in.grad[::7].abs().sum() == 0  # ignored rows get nothing


def test_gradcheck_in_double():
    torch.manual_seed(1)
    logits = torch.randn(6, 5, dtype=torch.double, requires_grad=True)
    target = torch.tensor([1, 0, 4, 2, 0, 3])

    def loss(x):
        return token_cross_entropy(x, target, 0.2, ignore_index=0).double()

    assert torch.autograd.gradcheck(loss, (logits,), eps=1e-6, atol=1e-4)


def test_bf16_logits_get_a_bf16_gradient_of_the_float32_loss():
    torch.manual_seed(2)
    logits = torch.randn(40, 30).to(torch.bfloat16).requires_grad_()
    target = torch.randint(1, 30, (40,))
    loss = token_cross_entropy(logits, target, 0.1, ignore_index=0)
    assert loss.dtype == torch.float32
    loss.backward()
    assert logits.grad.dtype == torch.bfloat16
    reference = F.cross_entropy(
        logits.detach().float(), target, label_smoothing=0.1, reduction="sum"
    )
    assert torch.allclose(loss, reference)


def test_smoothing_out_of_range_is_refused():
    with pytest.raises(ValueError, match="label smoothing"):
        token_cross_entropy(torch.zeros(2, 3), torch.tensor([1, 2]), 1.0)
