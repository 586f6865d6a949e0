"""Luong local attention: windows, normalisation, and that the models still learn."""

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import padded_batch
from transduce.config import AttentionConfig, DecoderConfig, EncoderConfig, ModelConfig
from transduce.inference.search import beam_search, greedy
from transduce.nn.attention import LocalWindow, attend
from transduce.nn.models import build_model


def tiny(preset="luong", window="local-m", width=2, feed=True, cell="gru"):
    torch.manual_seed(0)
    cfg = ModelConfig(
        preset=preset,
        cell=cell,
        encoder=EncoderConfig(16, 32, 1),
        decoder=DecoderConfig(16, 32, 1),
        attention=AttentionConfig(window=window, width=width, input_feeding=feed),
    )
    return build_model(cfg, 20, 14)


def batch():
    return padded_batch(12)


@pytest.mark.parametrize("window", ["local-m", "local-p"])
@pytest.mark.parametrize("preset", ["luong", "bahdanau"])
def test_weights_zero_outside_window_and_sum_to_one(window, preset):
    model = tiny(preset, window, width=2).eval()
    src, mask = batch()
    tgt = torch.randint(4, 14, (4, 9))
    with torch.no_grad():
        _, attn = model(src, mask, tgt)  # [B, T, S]
    assert torch.allclose(attn.sum(-1), torch.ones(4, 9), atol=1e-5)
    assert (attn[~mask[:, None, :].expand_as(attn)] == 0).all()
    assert ((attn > 0).sum(-1) <= 2 * 2 + 1).all()  # at most 2D + 1 positions
    if window == "local-m":
        lengths = mask.sum(1)
        for b in range(4):
            for t in range(9):
                center = min(t, int(lengths[b]) - 1)
                outside = [s for s in range(12) if abs(s - center) > 2]
                assert (attn[b, t, outside] == 0).all()


def test_window_function_directly():
    window = LocalWindow("local-p", 3, query_size=8)
    mask = torch.tensor([[True] * 10 + [False] * 5])
    bias, allowed = window(torch.randn(1, 4, 8), torch.arange(4)[None], mask)
    _, weights = attend(torch.randn(1, 4, 15) + bias, allowed, torch.randn(1, 15, 6))
    assert torch.allclose(weights.sum(-1), torch.ones(1, 4))
    assert (weights[..., 10:] == 0).all()
    # the Gaussian bias peaks at the predicted position and is never positive
    assert (bias <= 0).all()
    with pytest.raises(ValueError, match="at least 1"):
        LocalWindow("local-m", 0, 8)
    with pytest.raises(ValueError, match="unknown attention window"):
        LocalWindow("local-x", 2, 8)


def test_predicted_position_is_learned():
    model = tiny("luong", "local-p", width=2)
    src, mask = batch()
    logits, _ = model(src, mask, torch.randint(4, 14, (4, 5)))
    logits.sum().backward()
    grads = [p.grad for p in model.decoder.window.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("window", ["local-m", "local-p"])
@pytest.mark.parametrize("feed", [True, False])
def test_step_equals_teacher_forced_and_beam_one_equals_greedy(window, feed):
    model = tiny("luong", window, feed=feed).eval()
    src, mask = batch()
    tgt = torch.randint(4, 14, (4, 6))
    with torch.no_grad():
        logits, _ = model(src, mask, tgt)
        memory = model.encode(src, mask)
        state, steps = model.init_state(memory), []
        for t in range(6):
            features, state, _ = model.step(tgt[:, t], state, memory)
            steps.append(model.head(features))
    assert torch.allclose(logits, torch.stack(steps, 1), atol=1e-5)
    g = greedy(model, src, mask, max_len=10)
    b = beam_search(model, src, mask, beam_size=1, max_len=10)
    assert [g.tokens[i, : g.lengths[i]].tolist() for i in range(4)] == [x[0] for x in b.tokens]


@pytest.mark.parametrize("window", ["local-m", "local-p"])
def test_local_attention_learns_a_copy_task(window):
    torch.manual_seed(1)
    model = tiny("luong", window, width=2)
    src = torch.randint(4, 12, (48, 6))
    tgt_in = torch.cat([torch.ones(48, 1, dtype=torch.long), src], 1)
    tgt_out = torch.cat([src, torch.full((48, 1), 2)], 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        logits, _ = model(src, src != 0, tgt_in)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    hyp = greedy(model.eval(), src, src != 0, max_len=8)
    exact = (hyp.tokens[:, :6] == src).all(1) & (hyp.lengths == 6)
    assert exact.float().mean() >= 0.9


def test_window_needs_attention_preset():
    cfg = ModelConfig(preset="sutskever", attention=AttentionConfig(window="local-m"))
    with pytest.raises(ValueError, match="needs a preset with attention"):
        build_model(cfg, 10, 10)
