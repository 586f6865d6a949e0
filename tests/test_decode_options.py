"""Tests for the decoding options of transduce.inference.search beyond plain beam search: the length
penalty and per-token normalisation, n-gram blocking, and sampling (seed, temperature,
top-k, top-p, several samples per sentence)."""

from __future__ import annotations

import math
import re

import pytest
import torch

from transduce.data.vocab import BOS_ID, EOS_ID, PAD_ID
from transduce.inference.decoding import DecodeOptions
from transduce.inference.search import (
    beam_search,
    block_repeated_ngrams,
    filter_logits,
    greedy,
    length_limits,
    length_penalty,
    sample,
)

MAX_LEN = 8


def random_sources(n: int = 12, max_src: int = 9, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, max_src + 1, (n,), generator=gen)
    mask = torch.arange(max_src)[None, :] < lengths[:, None]
    src = torch.randint(4, 12, (n, max_src), generator=gen).masked_fill(~mask, PAD_ID)
    return src, mask


def output_lists(hyp) -> list[list[int]]:
    return [hyp.tokens[i, :n].tolist() for i, n in enumerate(hyp.lengths.tolist())]


def assert_same_hypotheses(a, b):
    assert torch.equal(a.lengths, b.lengths)
    assert torch.equal(a.tokens, b.tokens)
    torch.testing.assert_close(a.scores, b.scores, atol=1e-5, rtol=0)


# ---------------------------------------------------------------------- length penalty


@pytest.mark.parametrize("length", [0, 1, 3, 10, 57])
def test_length_penalty_is_the_gnmt_formula(length):
    assert length_penalty(length, 0.0) == 1.0
    assert length_penalty(float(length), 0.0) == 1.0
    for alpha in (0.2, 0.6, 1.0, 2.0):
        assert math.isclose(length_penalty(length, alpha), ((5 + length) / 6) ** alpha)
    lengths = torch.arange(20)
    torch.testing.assert_close(length_penalty(lengths, 0.7), ((5 + lengths) / 6) ** 0.7)
    assert (length_penalty(lengths, 0.0) == 1).all()


@pytest.mark.parametrize("preset,cell", [("bahdanau", "gru"), ("cho", "lstm")])
def test_beam_scores_are_penalised_log_probs(preset, cell, make_model):
    """score = logprob / lp(n) (or / n with ``normalize``), n = output tokens + 1 for </s> when
    the hypothesis ended with it (``_finish_ended`` passes t + 1 with t tokens of history),
    + 0 when it stopped at its limit (``_finish_at_limit`` passes t + 1 with t + 1 tokens)."""
    model = make_model(preset, cell).eval()
    with torch.no_grad():
        model.head.proj.bias[EOS_ID] += 0.2  # some hypotheses end with </s>, some at the limit
    src, mask = random_sources()
    limits = length_limits(mask, 3)
    ended_seen = set()
    for alpha, normalize in [(0.6, False), (1.5, False), (0.0, True)]:
        nb = beam_search(model, src, mask, 5, 5, 3, None, alpha, normalize)
        for i, hyps in enumerate(nb.tokens):
            assert nb.scores[i] == sorted(nb.scores[i], reverse=True)
            for tokens, score, logprob in zip(hyps, nb.scores[i], nb.logprobs[i], strict=True):
                ended = len(tokens) < int(limits[i])
                ended_seen.add(ended)
                n = len(tokens) + int(ended)
                lp = max(n, 1) if normalize else ((5 + n) / 6) ** alpha
                assert math.isclose(score, logprob / lp, rel_tol=1e-6, abs_tol=1e-6), (i, tokens)
    assert ended_seen == {True, False}


def test_alpha_zero_scores_are_the_log_probs(make_model):
    model = make_model("luong", "gru", "general").eval()
    src, mask = random_sources()
    nb = beam_search(model, src, mask, beam_size=4, nbest=4, max_len=MAX_LEN)
    assert nb.scores == nb.logprobs


# ---------------------------------------------------------------------- n-gram blocking

A, B, C = 5, 7, 9


def changed(before: torch.Tensor, after: torch.Tensor, row: int) -> set[int]:
    """Tokens of a real output whose log-probability the blocking touched (<pad> is where
    ``block_repeated_ngrams`` parks its no-op writes)."""
    return {int(v) for v in (before[row] != after[row]).nonzero().squeeze(1)} - {PAD_ID}


def test_block_repeated_bigrams_forbids_exactly_the_repeat():
    history = torch.tensor([[A, B, A], [A, B, C], [B, B, B]])
    logp = torch.randn(3, 12).log_softmax(-1)
    out = block_repeated_ngrams(logp, history, 2)
    assert out[0, B] == float("-inf")  # a b a + b would repeat "a b"
    assert changed(logp, out, 0) == {B}
    assert changed(logp, out, 1) == set()  # "c" never started a bigram
    assert changed(logp, out, 2) == {B}  # "b b" is there already
    assert torch.isfinite(out[:, 4:]).sum() == 3 * 8 - 2


def test_block_repeated_ngrams_other_orders():
    logp = torch.randn(2, 12).log_softmax(-1)
    history = torch.tensor([[A, B, C, A, B], [A, B, C, A, C]])
    out = block_repeated_ngrams(logp, history, 3)
    assert changed(logp, out, 0) == {C} and changed(logp, out, 1) == set()
    assert changed(logp, block_repeated_ngrams(logp, history, 1), 0) == {A, B, C}
    assert torch.equal(block_repeated_ngrams(logp, history, 0), logp)
    assert torch.equal(block_repeated_ngrams(logp, history[:, :0], 1), logp)
    assert torch.equal(block_repeated_ngrams(logp, history[:, :0], 2), logp)


@pytest.mark.parametrize("n", [2, 3])
def test_block_repeated_ngrams_before_the_first_full_ngram(n):
    logp = torch.randn(2, 12).log_softmax(-1)
    history = torch.tensor([[A, B], [B, B]])[:, : n - 1]  # [R, n - 1]: no n-gram yet
    assert torch.equal(block_repeated_ngrams(logp, history, n), logp)


def repeats(tokens: list[int], n: int) -> bool:
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return len(grams) != len(set(grams))


@pytest.mark.parametrize("n", [2, 3])
def test_beam_with_no_repeat_ngram_never_repeats_one(n, make_model):
    model = make_model("luong", "lstm", "dot").eval()
    with torch.no_grad():
        model.head.proj.bias[EOS_ID] = -1e4  # long outputs: an untrained model loops
    src, mask = random_sources()
    free = beam_search(model, src, mask, 4, 4, max_len=12)
    assert any(repeats(t, n) for hyps in free.tokens for t in hyps)  # the test can fail
    blocked = beam_search(model, src, mask, 4, 4, max_len=12, no_repeat_ngram=n)
    for hyps in blocked.tokens:
        assert len(hyps) == 4
        assert all(len(t) == 12 and not repeats(t, n) for t in hyps)


def test_no_repeat_ngram_applies_at_beam_1_too(make_model):
    """Greedy decoding takes no n-gram blocking: with it, --beam 1 runs a width-1 beam
    search (the CLI, the server and the ONNX runtime all go through search_rows); it
    was silently ignored."""
    from transduce.inference.decoding import search_rows
    from transduce.inference.search import OPS

    model = make_model("luong", "lstm", "dot").eval()
    with torch.no_grad():
        model.head.proj.bias[EOS_ID] = -1e4  # long outputs: an untrained model loops
    src, mask = random_sources()
    with torch.no_grad():
        free = search_rows(OPS, model, src, mask, DecodeOptions(), 12, None)
        blocked = search_rows(OPS, model, src, mask, DecodeOptions(no_repeat_ngram=2), 12, None)
        width1 = beam_search(model, src, mask, 1, 1, max_len=12, no_repeat_ngram=2)
    assert any(repeats(list(rows[0][0]), 2) for rows in free)  # the test can fail
    for rows, wanted in zip(blocked, width1.tokens, strict=True):
        assert list(rows[0][0]) == wanted[0] and not repeats(wanted[0], 2)


# ---------------------------------------------------------------------- sampling


def test_filter_logits_top_k_keeps_exactly_k():
    logits = torch.randn(5, 12)
    for k in (1, 3, 11):
        out = filter_logits(logits, top_k=k)
        assert (torch.isfinite(out).sum(1) == k).all()
        kept = out.isfinite()  # [5, V]
        assert torch.equal(out[kept], logits[kept])
        lowest_kept = logits.masked_fill(~kept, float("inf")).min(1).values
        highest_dropped = logits.masked_fill(kept, float("-inf")).max(1).values
        assert (lowest_kept > highest_dropped).all()
    assert torch.equal(filter_logits(logits, top_k=0), logits)
    assert torch.equal(filter_logits(logits, top_k=12), logits)


@pytest.mark.parametrize(
    "top_p,kept", [(0.3, 1), (0.55, 2), (0.79, 2), (0.81, 3), (0.9, 3), (0.97, 4), (1.0, 5)]
)
def test_filter_logits_top_p_keeps_the_smallest_prefix_reaching_p(top_p, kept):
    probs = torch.tensor([0.15, 0.02, 0.5, 0.03, 0.3])  # sorted: .5 .3 .15 .03 .02
    cumulative = [0.5, 0.8, 0.95, 0.98, 1.0]
    assert kept == next(i + 1 for i, c in enumerate(cumulative) if c >= top_p)
    out = filter_logits(probs.log()[None], top_p=top_p)[0]
    order = probs.argsort(descending=True)
    assert torch.isfinite(out[order[:kept]]).all()
    assert torch.isinf(out[order[kept:]]).all()


def test_sampling_seed_is_reproducible_and_seeds_differ(make_model):
    model = make_model("bahdanau", "gru").eval()
    src, mask = random_sources()
    first = sample(model, src, mask, num_samples=2, seed=1, max_len=MAX_LEN)
    assert_same_hypotheses(first, sample(model, src, mask, num_samples=2, seed=1, max_len=MAX_LEN))
    other = sample(model, src, mask, num_samples=2, seed=2, max_len=MAX_LEN)
    assert output_lists(first) != output_lists(other)


def test_sampling_without_seed_leaves_the_global_generator_alone(make_model):
    model = make_model("bahdanau", "gru").eval()
    src, mask = random_sources(2)
    torch.manual_seed(0)
    expected = torch.rand(4)
    torch.manual_seed(0)
    sample(model, src, mask, seed=None, max_len=3)
    assert torch.equal(torch.rand(4), expected)


def test_temperature_zero_and_top_k_one_are_greedy(case, make_model):
    model = make_model(*case[:3]).eval()
    with torch.no_grad():
        model.head.proj.weight.mul_(10.0)  # no near-ties between the best two tokens
    src, mask = random_sources()
    hyp = greedy(model, src, mask, max_len=MAX_LEN, max_len_ratio=1.0)
    for options in ({"temperature": 0.0}, {"top_k": 1}, {"top_k": 1, "temperature": 3.0}):
        out = sample(model, src, mask, seed=0, max_len=MAX_LEN, max_len_ratio=1.0, **options)
        assert_same_hypotheses(out, hyp)


def test_very_low_temperature_is_greedy_on_trained_models(case, trained, task):
    model = trained(case)
    hyp = greedy(model, task.src, task.src_mask, max_len=MAX_LEN)
    out = sample(model, task.src, task.src_mask, temperature=1e-4, seed=0, max_len=MAX_LEN)
    assert_same_hypotheses(out, hyp)


def test_several_samples_per_sentence_are_rows_i_times_n_plus_j(make_model, sequence_logprob):
    model = make_model("luong", "gru", "concat").eval()
    src, mask = random_sources(6)
    n = 3
    hyp = greedy(model, src, mask, max_len=MAX_LEN)
    argmax = sample(model, src, mask, num_samples=n, temperature=0.0, max_len=MAX_LEN)
    assert argmax.tokens.shape[0] == len(src) * n
    for i in range(len(src)):
        for j in range(n):
            r = i * n + j
            assert argmax.tokens[r, : hyp.lengths[i]].tolist() == output_lists(hyp)[i]
            assert math.isclose(float(argmax.scores[r]), float(hyp.scores[i]), abs_tol=1e-5)
    # Random samples: each row's score is its log-probability given source i = r // n.
    out = sample(model, src, mask, num_samples=n, seed=5, max_len=MAX_LEN, max_len_ratio=1.0)
    rows = torch.arange(len(src)).repeat_interleave(n)
    ended = (out.lengths < length_limits(mask[rows], MAX_LEN, 1.0)).tolist()
    expected = sequence_logprob(model, src[rows], mask[rows], output_lists(out), ended)
    torch.testing.assert_close(out.scores, expected, atol=1e-4, rtol=0)
    assert len({tuple(t) for t in output_lists(out)}) > len(src)  # the samples do differ


@pytest.mark.parametrize(
    "options", [{}, {"temperature": 2.0}, {"top_k": 3}, {"top_p": 0.5}], ids=str
)
def test_sample_scores_are_model_log_probs_before_filtering(options, make_model, sequence_logprob):
    """Scores are the unfiltered model's log-probabilities, and every sampled token (and the
    </s> that ended a sample) lies inside the top-k / top-p set of its step."""
    model = make_model("bahdanau", "lstm").eval()
    src, mask = random_sources()
    out = sample(model, src, mask, num_samples=2, seed=3, max_len=MAX_LEN, **options)
    rows = torch.arange(len(src)).repeat_interleave(2)
    ended = (out.lengths < MAX_LEN).tolist()
    outputs = output_lists(out)
    expected = sequence_logprob(model, src[rows], mask[rows], outputs, ended)
    torch.testing.assert_close(out.scores, expected, atol=1e-4, rtol=0)
    assert any(ended) and not all(ended)
    top_k, top_p = options.get("top_k", 0), options.get("top_p", 1.0)
    for r, (tokens, end) in enumerate(zip(outputs, ended, strict=True)):
        targets = [*tokens, EOS_ID] if end else tokens
        tgt_in = torch.tensor([[BOS_ID, *targets[:-1]]])
        with torch.no_grad():
            logits, _ = model(src[rows[r : r + 1]], mask[rows[r : r + 1]], tgt_in)
        allowed = filter_logits(logits[0].float(), top_k, top_p).isfinite()  # [T, V]
        assert all(allowed[t, tok] for t, tok in enumerate(targets)), (r, targets)


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"beam": 10**6}, "beam: invalid value"),
        ({"max_len": 10**12}, "max_len: invalid value"),
        ({"sample": True, "nbest": 10**6}, "nbest: invalid value"),
        ({"alpha": float("inf")}, "alpha: inf is not float"),
        ({"beam": 2.5}, "beam: 2.5 is not int"),
        ({"beam": "5"}, "beam: '5' is not int"),
        ({"beam": True}, "beam: True is not int"),
        ({"sample": True, "seed": 2**80}, "seed: invalid value"),
    ],
)
def test_decode_options_of_the_wrong_kind_or_size_are_refused_by_name(kwargs, problem):
    """The Python API bounds what the HTTP API caps lower (a beam of a million had hung,
    a max_len of 10**12 asked for 8 TB) and refuses values of the wrong type."""
    with pytest.raises(ValueError, match=re.escape(problem)):
        DecodeOptions(**kwargs)
