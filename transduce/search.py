"""Decoding strategies. They know only the step contract (ARCHITECTURE §2):
``model.encode``, ``model.init_state``, ``model.step``, ``model.head`` and ``State.select``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from transduce.data.vocab import BOS_ID, EOS_ID, PAD_ID


class Hypotheses(NamedTuple):
    tokens: torch.Tensor  # [B, T] output ids without </s>, 0-padded
    lengths: torch.Tensor  # [B] number of output tokens (</s> not counted)
    scores: torch.Tensor  # [B] sum of log-probabilities, </s> included when produced
    attention: torch.Tensor | None  # [B, T, S] weights per output token, or None


def length_limits(
    src_mask: torch.Tensor, max_len: int, max_len_ratio: float | None = None
) -> torch.Tensor:
    """Per-sentence output limit ``[B]``: ``max_len``, or ``ceil(ratio * |src|) + 5`` capped."""
    limits = torch.full((src_mask.shape[0],), max_len, dtype=torch.long, device=src_mask.device)
    if max_len_ratio is not None:
        # float64 and a tiny tolerance, so exact products (1.2 * 25 = 30) do not round up.
        relative = (src_mask.sum(1).double() * max_len_ratio - 1e-9).ceil().long() + 5
        limits = torch.minimum(limits, relative)
    return limits


@torch.no_grad()
def greedy(
    model: torch.nn.Module,
    src: torch.Tensor,
    src_mask: torch.Tensor,
    max_len: int = 200,
    max_len_ratio: float | None = None,
    keep_attention: bool = True,
) -> Hypotheses:
    """Batched greedy decoding: the most probable token at every step."""
    argmax = lambda logits: logits.argmax(-1)  # noqa: E731
    return _decode(model, src, src_mask, max_len, max_len_ratio, argmax, keep_attention)


def _decode(model, src, src_mask, max_len, max_len_ratio, choose, keep_attention=True):
    """One hypothesis per row, token chosen by ``choose(logits [b, V]) -> [b]``. Rows that
    finish leave the batch (``State.select``), so later steps run on unfinished rows only."""
    batch, device = src.shape[0], src.device
    memory = model.encode(src, src_mask)
    state = model.init_state(memory)
    limits = length_limits(src_mask, max_len, max_len_ratio)
    steps = int(limits.max()) if batch else 0
    tokens = torch.zeros(batch, steps, dtype=torch.long, device=device)
    attention = None
    scores = torch.zeros(batch, device=device)
    lengths = torch.zeros(batch, dtype=torch.long, device=device)
    active = torch.arange(batch, device=device)  # original row of each live row
    prev = torch.full((batch,), BOS_ID, dtype=torch.long, device=device)
    for t in range(steps):
        features, state, attn = model.step(prev, state, memory)
        logits = model.head(features).float()  # [b, V]
        prev = choose(logits)
        scores[active] += F.log_softmax(logits, dim=-1).gather(1, prev[:, None]).squeeze(1)
        tokens[active, t] = prev
        if attn is not None and keep_attention:
            if attention is None:
                attention = torch.zeros(batch, steps, src.shape[1], device=device)
            attention[active, t] = attn.float()
        ended = prev == EOS_ID
        done = ended | (t + 1 >= limits[active])
        lengths[active[done]] = t + 1 - ended[done].long()
        if bool(done.all()):
            break
        if bool(done.any()):
            keep = (~done).nonzero().squeeze(1)
            active, prev = active[keep], prev[keep]
            state, memory = state.select(keep), memory.select(keep)
    width = int(lengths.max()) if batch else 0
    tokens = tokens[:, :width]
    valid = torch.arange(width, device=device)[None, :] < lengths[:, None]
    tokens = tokens.masked_fill(~valid, 0)
    if attention is not None:
        attention = attention[:, :width] * valid[:, :, None]
    return Hypotheses(tokens, lengths, scores, attention)


# ---------------------------------------------------------------------- beam search


class NBest(NamedTuple):
    """Per sentence, up to ``nbest`` hypotheses sorted best first."""

    tokens: list[list[list[int]]]  # [sentence][rank] output ids without </s>
    scores: list[list[float]]  # ranking score (length-penalised when alpha > 0)
    logprobs: list[list[float]]  # raw sum of log-probabilities
    attention: list[list[torch.Tensor]] | None  # [sentence][rank] -> [len, S]


def length_penalty(length: torch.Tensor | float, alpha: float) -> torch.Tensor | float:
    """GNMT length penalty ((5 + |Y|) / 6) ** alpha (Wu et al. 2016, eq. 14); 1 at alpha=0."""
    return ((5.0 + length) / 6.0) ** alpha


def _normalise(logprob: float, length: int, alpha: float, normalize: bool) -> float:
    if normalize:
        return logprob / max(length, 1)
    return logprob / float(length_penalty(float(length), alpha))


def block_repeated_ngrams(logp: torch.Tensor, history: torch.Tensor, n: int) -> torch.Tensor:
    """Forbid tokens that would repeat an n-gram already in ``history`` (Paulus et al. 2018).

    logp ``[R, V]``, history ``[R, t]`` -> logp with -inf at forbidden (row, token) pairs.
    """
    if n <= 0 or history.shape[1] < n:  # no complete n-gram yet
        return logp
    if n == 1:
        return logp.scatter(1, history, float("-inf"))
    grams = history.unfold(1, n, 1)  # [R, t - n + 1, n] every n-gram so far
    if grams.shape[1] == 0:
        return logp
    tail = history[:, history.shape[1] - (n - 1) :]  # [R, n - 1] the current prefix
    hit = (grams[:, :, :-1] == tail[:, None, :]).all(-1)  # [R, t - n + 1]
    # Where no n-gram matches, the scatter lands on <pad> (never a real output) instead.
    banned = torch.where(hit, grams[:, :, -1], torch.full_like(grams[:, :, -1], PAD_ID))
    return logp.scatter(1, banned, float("-inf"))


class _Beams:
    """The live part of a batched beam search: ``b`` sentences x ``k`` hypotheses."""

    def __init__(
        self, batch: int, k: int, device: torch.device, keep_attention: bool, src_len: int
    ):
        self.k = k
        self.sentence = torch.arange(batch, device=device)  # original id of each live sentence
        self.scores = torch.full((batch, k), float("-inf"), device=device)
        self.scores[:, 0] = 0.0  # the first step expands one hypothesis per sentence
        self.history = torch.zeros(batch * k, 0, dtype=torch.long, device=device)
        self.attention: torch.Tensor | None = None  # [b * k, t, S] once a step has run
        self.keep_attention, self.src_len = keep_attention, src_len

    def expand(self, logp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Top 2k continuations per sentence: (scores [b, 2k], beam [b, 2k], token [b, 2k]).

        A hypothesis' best continuations are its most probable tokens, so each one's top 2k
        tokens are the only candidates: the beam scores are added to those alone, not to the
        whole ``logp [b * k, V]``.
        """
        b, vocab = self.scores.shape[0], logp.shape[-1]
        n = min(2 * self.k, vocab)
        best, token = logp.topk(n, dim=1)  # [b * k, n]
        total = (self.scores.reshape(-1, 1) + best).view(b, self.k * n)  # [b, k * n]
        top, idx = total.topk(min(2 * self.k, self.k * vocab), dim=1)
        return top, idx // n, token.view(b, self.k * n).gather(1, idx)

    def advance(self, top, beam, token, attn: torch.Tensor | None) -> torch.Tensor:
        """Keep the best k candidates that do not end; returns the flat rows they came from."""
        b = top.shape[0]
        # Stable sort puts continuing candidates first, in score order.
        order = (token == EOS_ID).long().argsort(dim=1, stable=True)[:, : self.k]  # [b, k]
        self.scores = top.gather(1, order)
        rows = beam.gather(1, order) + torch.arange(b, device=top.device)[:, None] * self.k
        rows = rows.view(-1)
        new_tokens = token.gather(1, order).view(-1, 1)
        self.history = torch.cat([self.history.index_select(0, rows), new_tokens], 1)
        if self.keep_attention and attn is not None:
            past = self.attention.index_select(0, rows) if self.attention is not None else None
            step = attn.index_select(0, rows)[:, None]  # [b * k, 1, S]
            self.attention = step if past is None else torch.cat([past, step], 1)
        return rows

    def drop(self, keep: torch.Tensor) -> torch.Tensor:
        """Retire finished sentences; returns the flat rows of the sentences kept."""
        rows = (keep[:, None] * self.k + torch.arange(self.k, device=keep.device)).view(-1)
        self.sentence, self.scores = self.sentence[keep], self.scores[keep]
        self.history = self.history.index_select(0, rows)
        if self.attention is not None:
            self.attention = self.attention.index_select(0, rows)
        return rows


def _finish_ended(finished, beams: _Beams, top, beam, token, t: int, rank) -> None:
    """Before advancing: hypotheses whose best continuation among each sentence's top k
    candidates is </s> are finished (their tokens are the history so far)."""
    k = beams.k
    ends = ((token[:, :k] == EOS_ID) & (top[:, :k] > float("-inf"))).nonzero().tolist()
    for i, r in ends:
        _add(finished, beams, i, i * k + int(beam[i, r]), float(top[i, r]), t + 1, rank)


def _finish_at_limit(finished, beams: _Beams, at_limit: torch.Tensor, t: int, rank) -> None:
    """After advancing: every live hypothesis of a sentence at its length limit ends."""
    for i in at_limit.nonzero().squeeze(1).tolist():
        for j in range(beams.k):
            if float(beams.scores[i, j]) > float("-inf"):
                _add(finished, beams, i, i * beams.k + j, float(beams.scores[i, j]), t + 1, rank)


def _add(finished, beams: _Beams, i: int, row: int, logprob: float, length: int, rank) -> None:
    att = None
    if beams.keep_attention:
        att = (
            beams.attention[row]
            if beams.attention is not None
            else beams.scores.new_zeros(0, beams.src_len)  # ended before any step's attention
        )
    finished[int(beams.sentence[i])].append(
        (rank(logprob, length), logprob, beams.history[row], att)
    )


@torch.no_grad()
def beam_search(
    model: torch.nn.Module,
    src: torch.Tensor,
    src_mask: torch.Tensor,
    beam_size: int = 5,
    nbest: int = 1,
    max_len: int = 200,
    max_len_ratio: float | None = None,
    alpha: float = 0.0,
    normalize: bool = False,
    no_repeat_ngram: int = 0,
    keep_attention: bool = True,
) -> NBest:
    """Batched beam search: all sentences x beams advance as one tensor per step; sentences
    leave the batch once their ``nbest`` best finished hypotheses can no longer be beaten by
    a live one (:func:`_settled`), or at their length limit. Ranking: log-probability /
    GNMT length penalty (``alpha``), or / length (``normalize``). With ``beam_size=1`` this
    is exactly :func:`greedy`.
    """
    if not 1 <= nbest <= beam_size:
        raise ValueError(f"nbest must be between 1 and the beam size ({beam_size}), got {nbest}")
    batch, k, device = src.shape[0], beam_size, src.device
    finished: list[list[tuple]] = [[] for _ in range(batch)]
    rank = lambda lp, n: _normalise(lp, n, alpha, normalize)  # noqa: E731
    memory = model.encode(src, src_mask)
    state = model.init_state(memory)
    limits = length_limits(src_mask, max_len, max_len_ratio)
    beams = _Beams(batch, k, device, keep_attention, src.shape[1])
    prev = torch.full((batch,), BOS_ID, dtype=torch.long, device=device)
    for t in range(int(limits.max()) if batch else 0):
        features, state, attn = model.step(prev, state, memory)
        logp = F.log_softmax(model.head(features).float(), dim=-1)  # [b * k, V]
        if t == 0:  # the k start hypotheses are the same: one step per sentence, then copies
            copies = torch.arange(batch, device=device).repeat_interleave(k)
            logp, state, memory = logp[copies], state.select(copies), memory.select(copies)
            attn = None if attn is None else attn[copies]
        if no_repeat_ngram:
            logp = block_repeated_ngrams(logp, beams.history, no_repeat_ngram)
        top, beam, token = beams.expand(logp)
        _finish_ended(finished, beams, top, beam, token, t, rank)
        rows = beams.advance(top, beam, token, attn)
        state = state.select(rows)
        at_limit = t + 1 >= limits[beams.sentence]
        _finish_at_limit(finished, beams, at_limit, t, rank)
        done = at_limit | _settled(finished, beams, limits, nbest, alpha, normalize)
        if bool(done.all()):
            break
        if bool(done.any()):
            rows = beams.drop((~done).nonzero().squeeze(1))
            state, memory = state.select(rows), memory.select(rows)
        prev = beams.history[:, -1]
    return _collect(finished, nbest, keep_attention)


def _settled(finished, beams: _Beams, limits, n: int, alpha: float, normalize: bool):
    """Sentences ``[b]`` whose ``n`` best finished hypotheses no live hypothesis can still
    beat. Log-probabilities only fall as hypotheses grow, so a live one's best reachable
    score is its current log-probability under the most favourable length normalisation
    the sentence's limit allows."""
    alive = beams.scores.max(1).values  # [b]
    limit = limits[beams.sentence].double()
    if normalize:
        alive = alive / limit
    elif alpha > 0:
        alive = alive / length_penalty(limit, alpha)
    out = []
    for i, s in enumerate(beams.sentence.tolist()):
        scores = sorted((h[0] for h in finished[s]), reverse=True)
        out.append(len(scores) >= n and scores[n - 1] >= float(alive[i]))
    return torch.tensor(out, dtype=torch.bool, device=alive.device)


def _collect(finished: list[list[tuple]], nbest: int, keep_attention: bool) -> NBest:
    tokens, scores, logprobs, attention = [], [], [], []
    for hyps in finished:
        best = sorted(hyps, key=lambda h: -h[0])[:nbest]
        tokens.append([h[2].tolist() for h in best])
        scores.append([h[0] for h in best])
        logprobs.append([h[1] for h in best])
        attention.append([h[3] for h in best])
    return NBest(tokens, scores, logprobs, attention if keep_attention else None)


# ---------------------------------------------------------------------- sampling


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Keep the ``top_k`` largest logits and the smallest set whose probability reaches
    ``top_p`` (nucleus sampling, Holtzman et al. 2020); the rest become -inf. ``[R, V]``."""
    if top_k > 0 and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]  # [R, 1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        # Drop a token when the tokens before it already reach top_p (the first always stays).
        drop = (probs.cumsum(-1) - probs) >= top_p
        logits = logits.scatter(1, order, sorted_logits.masked_fill(drop, float("-inf")))
    return logits


@torch.no_grad()
def sample(
    model: torch.nn.Module,
    src: torch.Tensor,
    src_mask: torch.Tensor,
    num_samples: int = 1,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int | None = None,
    max_len: int = 200,
    max_len_ratio: float | None = None,
) -> Hypotheses:
    """Ancestral sampling, ``num_samples`` per sentence: rows ``i * num_samples + j``.

    Scores are log-probabilities under the model itself (before temperature and
    filtering). ``temperature=0`` picks the argmax, i.e. greedy decoding.
    """
    n = num_samples
    expanded = torch.arange(src.shape[0], device=src.device).repeat_interleave(n)
    src, src_mask = src.index_select(0, expanded), src_mask.index_select(0, expanded)
    generator = torch.Generator(device=src.device)
    if seed is None:
        generator.seed()  # fresh entropy, leaving torch's global generator alone
    else:
        generator.manual_seed(seed)

    def choose(logits: torch.Tensor) -> torch.Tensor:
        if temperature <= 0.0:
            return logits.argmax(-1)
        filtered = filter_logits(logits / temperature, top_k, top_p)
        probs = torch.softmax(filtered, dim=-1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(1)

    return _decode(model, src, src_mask, max_len, max_len_ratio, choose)


def rollout(
    model,
    src: torch.Tensor,
    src_mask: torch.Tensor,
    tgt_in: torch.Tensor,
    out_dim: int,
    teacher_ratio: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Autoregressive roll-out of a real-valued model (greedy decoding for values).

    ``tgt_in [B, T, D + C]``: row 0's first ``D`` values start the roll-out; columns ``D:``
    are known exogenous features of each step; the first ``D`` of later rows are the gold
    previous outputs, fed instead of the model's own with probability ``teacher_ratio``
    (scheduled sampling; 0 at inference). Returns outputs ``[B, T, D]`` and attention
    ``[B, T, S]`` (or None).
    """
    memory = model.encode(src, src_mask)
    state = model.init_state(memory)
    prev, outs, attns = tgt_in[:, 0], [], []
    for t in range(tgt_in.shape[1]):
        features, state, attn = model.step(prev, state, memory)
        outs.append(model.head(features))  # [B, D]
        attns.append(attn)
        if t + 1 < tgt_in.shape[1]:
            own = outs[-1]
            if teacher_ratio > 0:
                gold = tgt_in[:, t + 1, :out_dim]
                coin = torch.rand(own.shape[0], 1, generator=generator).to(own.device)
                own = torch.where(coin < teacher_ratio, gold, own)
            prev = torch.cat([own, tgt_in[:, t + 1, out_dim:]], -1)  # [B, D + C]
    attn = None if attns[0] is None else torch.stack(attns, 1)
    return torch.stack(outs, 1), attn
