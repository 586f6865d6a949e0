"""Tests for transduce.inference.search: batched greedy == a naive one-sentence-at-a-time greedy;
beam
search against greedy, against itself one sentence at a time, and against teacher forcing."""

from __future__ import annotations

import math
from typing import NamedTuple

import pytest
import torch
import torch.nn.functional as F

from transduce.data.vocab import BOS_ID, EOS_ID, PAD_ID
from transduce.inference.search import NBest, beam_search, greedy, length_limits

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


# ---------------------------------------------------------------------- beam search


def model_and_sources(case, is_trained: bool, trained, make_model, task):
    """A trained preset with the task's sources, or the untrained preset with random ones.
    Untrained logits are scaled up: near-uniform ones tie to the last bit now and then, and
    greedy and beam may break an exact tie differently."""
    if is_trained:
        return trained(case), task.src, task.src_mask
    model = make_model(*case[:3]).eval()
    with torch.no_grad():
        model.head.proj.weight.mul_(10.0)
    return model, *random_sources()


def flatten(nb: NBest, limits: torch.Tensor):
    """Every n-best hypothesis as (sentence, tokens, ended with </s>): a hypothesis shorter than
    its sentence's limit stopped at </s>; one that reached the limit did not produce it."""
    return [
        (i, tokens, len(tokens) < int(limits[i]))
        for i, hyps in enumerate(nb.tokens)
        for tokens in hyps
    ]


@pytest.mark.parametrize("is_trained", [True, False], ids=["trained", "untrained"])
def test_beam_of_one_is_greedy(case, is_trained, trained, make_model, task):
    model, src, mask = model_and_sources(case, is_trained, trained, make_model, task)
    for ratio in (None, 0.5, 1.5):
        hyp = greedy(model, src, mask, max_len=MAX_LEN, max_len_ratio=ratio)
        nb = beam_search(model, src, mask, beam_size=1, max_len=MAX_LEN, max_len_ratio=ratio)
        for i, n in enumerate(hyp.lengths.tolist()):
            assert nb.tokens[i] == [hyp.tokens[i, :n].tolist()], (ratio, i)
            assert math.isclose(nb.logprobs[i][0], float(hyp.scores[i]), abs_tol=1e-5)
            assert nb.scores[i] == nb.logprobs[i]  # alpha = 0: the score is the log-probability
            if hyp.attention is not None and n > 0:
                torch.testing.assert_close(nb.attention[i][0], hyp.attention[i, :n])


def test_nbest_is_sorted_distinct_and_does_not_change_the_search(case, trained, task):
    model = trained(case)
    full = beam_search(model, task.src, task.src_mask, beam_size=5, nbest=5, max_len=MAX_LEN)
    for tokens, scores in zip(full.tokens, full.scores, strict=True):
        assert len(tokens) == 5
        assert scores == sorted(scores, reverse=True)
        assert len({tuple(t) for t in tokens}) == len(tokens)  # pairwise distinct
    for nbest in (3, 4):
        part = beam_search(model, task.src, task.src_mask, 5, nbest, max_len=MAX_LEN)
        assert part.tokens == [t[:nbest] for t in full.tokens]
        assert part.scores == [s[:nbest] for s in full.scores]


@pytest.mark.parametrize("alpha,normalize", [(0.0, False), (1.0, False), (0.0, True)])
def test_nbest_sorted_by_ranking_score_on_untrained_models(alpha, normalize, make_model):
    model = make_model("bahdanau", "lstm").eval()
    src, mask = random_sources()
    nb = beam_search(model, src, mask, 5, 5, MAX_LEN, 1.0, alpha, normalize)
    for tokens, scores in zip(nb.tokens, nb.scores, strict=True):
        assert len(tokens) == 5 and scores == sorted(scores, reverse=True)
        assert len({tuple(t) for t in tokens}) == 5


@pytest.mark.parametrize("beam,nbest", [(3, 4), (1, 2), (5, 0)])
def test_nbest_outside_one_to_beam_is_rejected(beam, nbest, make_model):
    model = make_model("luong", "gru", "general").eval()
    src, mask = random_sources(2)
    with pytest.raises(ValueError, match="nbest"):
        beam_search(model, src, mask, beam_size=beam, nbest=nbest)


def test_beam_never_scores_below_greedy(case, trained, task):
    model = trained(case)
    hyp = greedy(model, task.src, task.src_mask, max_len=MAX_LEN)
    nb = beam_search(model, task.src, task.src_mask, beam_size=5, max_len=MAX_LEN)
    best = torch.tensor([lp[0] for lp in nb.logprobs])
    assert (best >= hyp.scores - 1e-4).all(), (best - hyp.scores).min()


class _Rows(NamedTuple):
    x: torch.Tensor  # [B, ...]

    def select(self, index: torch.Tensor) -> _Rows:
        return _Rows(self.x.index_select(0, index))


class Scripted:
    """The step contract over a fixed table, whatever the source or prefix: the state counts
    the steps taken; token 4 is likely for ``length`` steps and </s> after, and </s> is the
    runner-up before that, with every other token far behind."""

    def __init__(self, length: int, vocab: int = 12):
        self.length, self.vocab = length, vocab

    def encode(self, src, src_mask):
        return _Rows(src)

    def init_state(self, memory):
        return _Rows(torch.zeros(memory.x.shape[0], dtype=torch.long))

    def step(self, prev, state, memory):
        return state.x, _Rows(state.x + 1), None  # features = steps taken

    def head(self, steps):
        early = steps < self.length  # [b]
        logits = torch.zeros(len(steps), self.vocab)
        logits[:, 4] = torch.where(early, 5.0, 0.0)
        logits[:, EOS_ID] = torch.where(early, 2.0, 5.0)
        return logits


@pytest.mark.parametrize("beam", [2, 5])
def test_beam_does_not_stop_before_its_best_hypothesis_ends(beam):
    # Greedy: 4 4 4 4 4 </s>, log-prob -0.63. Beam k collects k hypotheses ending in </s>
    # (each -3.1 or worse) in its first k steps and, as written, stops there.
    model, src = Scripted(length=5), torch.tensor([[4, 5]])
    hyp = greedy(model, src, src != PAD_ID, max_len=MAX_LEN)
    assert hyp.tokens.tolist() == [[4] * 5]
    nb = beam_search(model, src, src != PAD_ID, beam_size=beam, max_len=MAX_LEN)
    assert nb.tokens[0][0] == [4] * 5
    assert nb.logprobs[0][0] >= float(hyp.scores[0]) - 1e-5


@pytest.mark.parametrize("is_trained", [True, False], ids=["trained", "untrained"])
def test_beam_scores_are_the_log_probs_of_the_hypotheses(
    case, is_trained, trained, make_model, task, sequence_logprob
):
    model, src, mask = model_and_sources(case, is_trained, trained, make_model, task)
    ratio = None if is_trained else 1.0  # untrained: many hypotheses stop at their limit
    nb = beam_search(model, src, mask, beam_size=4, nbest=4, max_len=MAX_LEN, max_len_ratio=ratio)
    rows = flatten(nb, length_limits(mask, MAX_LEN, ratio))
    index = torch.tensor([i for i, _, _ in rows])
    expected = sequence_logprob(
        model, src[index], mask[index], [t for _, t, _ in rows], [e for _, _, e in rows]
    )
    logprobs = torch.tensor([lp for hyps in nb.logprobs for lp in hyps])
    torch.testing.assert_close(logprobs, expected, atol=1e-4, rtol=0)
    # trained: hypotheses end with </s>; untrained: most run into their limit
    assert any(ended == is_trained for _, _, ended in rows)


@pytest.mark.parametrize("is_trained", [True, False], ids=["trained", "untrained"])
def test_batched_beam_equals_one_sentence_at_a_time(case, is_trained, trained, make_model, task):
    model, src, mask = model_and_sources(case, is_trained, trained, make_model, task)
    src, mask, ratio = src[:10], mask[:10], (None if is_trained else 1.5)
    assert mask.sum(1).unique().numel() > 1  # sentences of different lengths share the batch
    batched = beam_search(model, src, mask, 4, 3, max_len=MAX_LEN, max_len_ratio=ratio)
    for i, n in enumerate(mask.sum(1).tolist()):
        alone = beam_search(model, src[i : i + 1, :n], mask[i : i + 1, :n], 4, 3, MAX_LEN, ratio)
        assert batched.tokens[i] == alone.tokens[0], i
        torch.testing.assert_close(batched.scores[i], alone.scores[0], atol=1e-5, rtol=0)
        for att, att_alone in zip(batched.attention[i], alone.attention[0], strict=True):
            if att is not None and att_alone is not None:
                torch.testing.assert_close(att[:, :n], att_alone, atol=1e-5, rtol=0)
                assert (att[:, n:] == 0).all()  # no weight on padding


def test_every_beam_hypothesis_of_an_attention_model_has_attention(make_model):
    model = make_model("bahdanau", "gru").eval()
    with torch.no_grad():
        model.head.proj.bias[EOS_ID] += 2.0  # </s> is among the first step's best candidates
    src, mask = random_sources(4)
    nb = beam_search(model, src, mask, beam_size=5, nbest=5, max_len=MAX_LEN)
    assert [] in nb.tokens[0]  # the empty hypothesis is in the n-best list
    for tokens, atts in zip(nb.tokens, nb.attention, strict=True):
        for t, att in zip(tokens, atts, strict=True):
            assert att is not None and att.shape == (len(t), src.shape[1])
