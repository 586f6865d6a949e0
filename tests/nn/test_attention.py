"""Tests for transduce.nn.attention: masked positions get no weight, anywhere in the model."""

from __future__ import annotations

import pytest
import torch

from transduce.inference.search import greedy
from transduce.nn.attention import DotScorer, GeneralScorer, attend, build_scorer


def lengths_mask(lengths: list[int], width: int) -> torch.Tensor:
    return torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]  # [B, S]


def test_attend_zero_weight_at_masked_positions_and_normalised():
    torch.manual_seed(0)
    mask = lengths_mask([6, 3, 1], 6)
    scores = torch.randn(3, 4, 6) * 5
    scores = scores.masked_fill(~mask[:, None, :], 1e4)  # masked scores that would dominate
    values = torch.randn(3, 6, 8)
    context, weights = attend(scores, mask, values)
    assert context.shape == (3, 4, 8) and weights.shape == (3, 4, 6)
    assert (weights.masked_select(~mask[:, None, :]) == 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4))
    torch.testing.assert_close(context, torch.einsum("bts,bsh->bth", weights, values))
    assert torch.equal(weights[2, :, 0], torch.ones(4))  # one real position takes all

    # Values behind the mask cannot leak into the context.
    noisy = values.masked_fill(~mask[:, :, None], 1e6)
    assert torch.equal(attend(scores, mask, noisy)[0], context)

    # Nothing masked: plain softmax.
    full = torch.ones(3, 6, dtype=torch.bool)
    torch.testing.assert_close(attend(scores, full, values)[1], torch.softmax(scores, -1))


def test_attend_with_no_allowed_position_gives_zero_not_nan():
    """A source all padding attends nowhere: zero weights, zero context, finite gradients;
    the other rows are untouched."""
    torch.manual_seed(0)
    mask = lengths_mask([4, 0, 2], 4)
    scores = torch.randn(3, 2, 4, requires_grad=True)
    values = torch.randn(3, 4, 5, requires_grad=True)
    context, weights = attend(scores, mask, values)
    assert torch.equal(weights[1], torch.zeros(2, 4)) and torch.equal(context[1], torch.zeros(2, 5))
    rows = [0, 2]
    again = attend(scores[rows], mask[rows], values[rows])
    assert torch.equal(context[rows], again[0]) and torch.equal(weights[rows], again[1])
    (context.sum() + weights.pow(2).sum()).backward()
    assert torch.isfinite(scores.grad).all() and torch.isfinite(values.grad).all()


def test_general_with_identity_equals_dot():
    torch.manual_seed(0)
    general = GeneralScorer(8, 8)
    with torch.no_grad():
        general.proj.weight.copy_(torch.eye(8))
    query, values = torch.randn(2, 3, 8), torch.randn(2, 5, 8)
    dot = DotScorer()
    expected = dot.score(query, dot.prepare(values))
    assert expected.shape == (2, 3, 5)
    torch.testing.assert_close(general.score(query, general.prepare(values)), expected)


@pytest.mark.parametrize("kind", ["general", "concat", "additive"])
def test_scorers_handle_different_query_and_value_sizes(kind):
    scorer = build_scorer(kind, 8, 12, None)
    scores = scorer.score(torch.randn(2, 3, 8), scorer.prepare(torch.randn(2, 5, 12)))
    assert scores.shape == (2, 3, 5)


def test_dot_with_mismatched_sizes_raises(make_model):
    with pytest.raises(ValueError, match="general"):
        build_scorer("dot", 32, 64, None)
    # a bidirectional encoder doubles the memory size
    with pytest.raises(ValueError, match="dot"):
        make_model("luong", "gru", "dot", encoder={"bidirectional": True})
    with pytest.raises(ValueError, match="unknown"):
        build_scorer("cosine", 8, 8, None)


def test_model_attention_is_zero_at_padded_source(attention_case, trained, task):
    model = trained(attention_case)
    src, mask = task.src, task.src_mask
    padded = ~mask[:, None, :]  # [B, 1, S]
    with torch.no_grad():
        _, attn = model(src, mask, task.tgt_in)
    assert attn.shape == (*task.tgt_in.shape, src.shape[1])
    assert (attn.masked_select(padded) == 0).all()
    torch.testing.assert_close(attn.sum(-1), torch.ones(task.tgt_in.shape))

    hyp = greedy(model, src, mask, max_len=8)
    assert hyp.attention.shape == (*hyp.tokens.shape, src.shape[1])
    assert (hyp.attention.masked_select(padded) == 0).all()
    produced = torch.arange(hyp.tokens.shape[1])[None, :] < hyp.lengths[:, None]  # [B, T]
    torch.testing.assert_close(hyp.attention.sum(-1), produced.float())


def test_greedy_is_padding_invariant(case, trained, task):
    """A sentence decoded alone == the same sentence in a batch of longer ones, padded
    further than the longest (checks packing, masking and the per-row bookkeeping)."""
    model = trained(case)
    src = torch.nn.functional.pad(task.src, (0, 3))  # [B, S + 3]
    mask = src != 0
    batched = greedy(model, src, mask, max_len=8)
    assert batched.tokens.shape[1] >= 4  # the batch holds longer outputs than the short ones
    for i, n in enumerate(mask.sum(1).tolist()):
        if n == task.src.shape[1]:
            continue  # the longest are never padded
        alone = greedy(model, src[i : i + 1, :n], mask[i : i + 1, :n], max_len=8)
        length = int(alone.lengths[0])
        assert int(batched.lengths[i]) == length
        assert torch.equal(batched.tokens[i, :length], alone.tokens[0, :length])
        assert (batched.tokens[i, length:] == 0).all()
        torch.testing.assert_close(batched.scores[i], alone.scores[0], atol=1e-5, rtol=0)
        if alone.attention is not None:
            att = batched.attention[i, :length]
            torch.testing.assert_close(att[:, :n], alone.attention[0, :length], atol=1e-5, rtol=0)
            assert (att[:, n:] == 0).all()
