"""Tests for transduce.search: batched greedy == a naive one-sentence-at-a-time greedy."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from transduce.data.vocab import BOS_ID, EOS_ID, PAD_ID
from transduce.search import greedy, length_limits

MAX_LEN = 8


@torch.no_grad()
def reference_greedy(model, src: torch.Tensor, limit: int):
    """One unpadded sentence ``src [S]``: argmax until </s> or ``limit`` tokens.
    Returns (tokens without </s>, score with </s>, attention rows or None)."""
    memory = model.encode(src[None], torch.ones(1, len(src), dtype=torch.bool))
    state = model.init_state(memory)
    prev, tokens, score, attns = BOS_ID, [], 0.0, []
    for _ in range(limit):
        features, state, attn = model.step(torch.tensor([prev]), state, memory)
        logp = F.log_softmax(model.head(features)[0].float(), dim=-1)  # [V]
        prev = int(logp.argmax())
        score += float(logp[prev])
        if prev == EOS_ID:
            break
        tokens.append(prev)
        attns.append(attn)
    attention = torch.cat(attns) if attns and attns[0] is not None else None
    return tokens, score, attention


def assert_matches_reference(model, src, mask, limits, hyp):
    for i, n in enumerate(mask.sum(1).tolist()):
        tokens, score, attention = reference_greedy(model, src[i, :n], int(limits[i]))
        assert hyp.tokens[i, : len(tokens)].tolist() == tokens
        assert int(hyp.lengths[i]) == len(tokens)
        assert math.isclose(float(hyp.scores[i]), score, abs_tol=1e-4)
        if attention is not None:
            torch.testing.assert_close(hyp.attention[i, : len(tokens), :n], attention)


def random_sources(n: int = 12, max_src: int = 9, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, max_src + 1, (n,), generator=gen)
    mask = torch.arange(max_src)[None, :] < lengths[:, None]
    src = (torch.randint(4, 12, (n, max_src), generator=gen)).masked_fill(~mask, PAD_ID)
    return src, mask


def test_greedy_equals_reference_on_trained_models(case, trained, task):
    model = trained(case)
    hyp = greedy(model, task.src, task.src_mask, max_len=MAX_LEN)
    limits = length_limits(task.src_mask, MAX_LEN)
    assert hyp.lengths.unique().numel() > 1  # sentences leave the batch at different steps
    assert_matches_reference(model, task.src, task.src_mask, limits, hyp)


@pytest.mark.parametrize(
    "preset,cell,score", [("sutskever", "lstm", "auto"), ("bahdanau", "gru", "auto")]
)
@pytest.mark.parametrize("ratio", [0.5, 1.5])
def test_greedy_equals_reference_with_per_sentence_limits(preset, cell, score, ratio, make_model):
    # Untrained: most sentences run into their own limit, a few stop at a random </s>.
    model = make_model(preset, cell, score).eval()
    src, mask = random_sources()
    hyp = greedy(model, src, mask, max_len=MAX_LEN, max_len_ratio=ratio)
    limits = length_limits(mask, MAX_LEN, ratio)
    assert limits.unique().numel() > 1
    assert_matches_reference(model, src, mask, limits, hyp)


def test_length_limits():
    mask = torch.arange(8)[None, :] < torch.tensor([1, 3, 7, 0])[:, None]
    assert length_limits(mask, 12).tolist() == [12, 12, 12, 12]
    # ceil(1.5 * |src|) + 5 = 7, 10, 16 (capped at 12), 5
    assert length_limits(mask, 12, 1.5).tolist() == [7, 10, 12, 5]
    assert length_limits(mask, 12, 1.0).tolist() == [6, 8, 12, 5]


@pytest.mark.parametrize("ratio,n", [(1.2, 25), (0.3, 50), (0.15, 100)])
def test_length_limits_exact_products(ratio, n):
    mask = torch.ones(1, n, dtype=torch.bool)
    assert length_limits(mask, 1000, ratio).tolist() == [round(ratio * n) + 5]


@pytest.mark.parametrize("ratio", [None, 0.5, 1.0, 2.0])
def test_limits_are_reached_exactly_when_eos_never_wins(ratio, make_model):
    model = make_model("luong", "gru", "general").eval()
    with torch.no_grad():
        model.head.proj.bias[EOS_ID] = -1e4  # this model never ends a sentence by itself
    src, mask = random_sources()
    hyp = greedy(model, src, mask, max_len=MAX_LEN, max_len_ratio=ratio)
    expected = [
        min(MAX_LEN, math.ceil(ratio * n) + 5) if ratio else MAX_LEN for n in mask.sum(1).tolist()
    ]
    assert hyp.lengths.tolist() == expected
    assert hyp.tokens.shape == (len(expected), max(expected))


def test_max_len_caps_the_output(case, trained, task):
    model = trained(case)
    full = greedy(model, task.src, task.src_mask, max_len=MAX_LEN)
    for max_len in (0, 1, 2, 3):
        capped = greedy(model, task.src, task.src_mask, max_len=max_len)
        assert capped.tokens.shape[1] <= max_len
        assert torch.equal(capped.lengths, full.lengths.clamp(max=max_len))
        assert torch.equal(capped.tokens, full.tokens[:, : capped.tokens.shape[1]])


@pytest.mark.parametrize("max_len", [3, MAX_LEN])
def test_scores_are_the_log_probs_of_the_chosen_tokens(case, max_len, trained, task):
    """Teacher-force the greedy output (plus </s> where it was produced) through
    ``model.forward`` and add up the log-probabilities of those tokens."""
    model = trained(case)
    hyp = greedy(model, task.src, task.src_mask, max_len=max_len)
    ended = hyp.lengths < length_limits(task.src_mask, max_len)  # stopped by </s>
    bos = torch.full((len(hyp.lengths), 1), BOS_ID)
    tgt_in = torch.cat([bos, hyp.tokens], 1)  # [B, T + 1]
    tgt_out = torch.cat([hyp.tokens, torch.zeros_like(bos)], 1)
    rows = torch.arange(len(hyp.lengths))
    tgt_out[rows[ended], hyp.lengths[ended]] = EOS_ID
    with torch.no_grad():
        logits, _ = model(task.src, task.src_mask, tgt_in)
    logp = F.log_softmax(logits.float(), -1).gather(2, tgt_out[:, :, None]).squeeze(2)
    counted = torch.arange(tgt_out.shape[1])[None, :] < (hyp.lengths + ended.long())[:, None]
    torch.testing.assert_close(hyp.scores, (logp * counted).sum(1), atol=1e-4, rtol=0)
    if max_len == MAX_LEN:
        assert ended.all()  # trained: every sentence ends with </s> well before the cap


def test_output_layout(case, trained, task):
    hyp = greedy(trained(case), task.src, task.src_mask, max_len=MAX_LEN)
    width = hyp.tokens.shape[1]
    assert width == int(hyp.lengths.max())
    produced = torch.arange(width)[None, :] < hyp.lengths[:, None]  # [B, T]
    assert (hyp.tokens[~produced] == PAD_ID).all()  # 0 after each sentence's length
    assert (hyp.tokens[produced] != PAD_ID).all()
    assert not (hyp.tokens == EOS_ID).any()  # </s> is neither kept nor counted
    # the reverse task's outputs are as long as their sources
    assert (hyp.lengths == task.src_mask.sum(1)).float().mean() >= 0.95


def test_greedy_on_an_empty_batch(make_model):
    model = make_model("luong", "gru", "general").eval()
    src = torch.zeros(0, 4, dtype=torch.long)
    hyp = greedy(model, src, src != PAD_ID, max_len=MAX_LEN)
    assert hyp.tokens.shape == (0, 0) and hyp.lengths.shape == (0,) and hyp.scores.shape == (0,)
