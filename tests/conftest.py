"""Shared fixtures: a tiny reverse task, tiny presets, and the presets trained on it once;
a tiny transformer run exported to ONNX and CTranslate2 (``exports``).

Tests that take a ``case`` argument run for every preset (``CASES``); ``attention_case`` runs
for the presets with attention only. Helpers reach the tests as fixtures (``make_model``,
``train``, ...), so no test module imports this file.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest
import torch
import torch.nn.functional as F

from transduce.config import AttentionConfig, DecoderConfig, EncoderConfig, ModelConfig
from transduce.data.vocab import BOS_ID, EOS_ID, PAD_ID
from transduce.inference.search import greedy
from transduce.nn.models import Seq2Seq, build_model

SYMBOLS = 8
VOCAB = 4 + SYMBOLS  # <pad> <s> </s> <unk>, then the task's symbols (ids 4..11)
LR = 1e-2


class Case(NamedTuple):
    preset: str
    cell: str
    score: str = "auto"
    steps: int = 100  # Adam steps (full batch) to overfit the reverse task

    @property
    def id(self) -> str:
        return "-".join([self.preset, *([self.score] if self.score != "auto" else []), self.cell])


# Step budgets: about twice the most that seeds 0-2 needed to reach 95% exact match (seeds
# 1-5 all reach 100% with them).
# `simple` has no token feedback and learns slowest; attention learns fastest.
CASES = [
    Case("simple", "gru", steps=160),
    Case("simple", "lstm", steps=220),
    Case("sutskever", "gru", steps=100),
    Case("sutskever", "lstm", steps=100),
    Case("cho", "gru", steps=100),
    Case("cho", "lstm", steps=100),
    Case("bahdanau", "gru", steps=80),
    Case("bahdanau", "lstm", steps=80),
    *(
        Case("luong", cell, score, steps=100)
        for cell in ("gru", "lstm")
        for score in ("dot", "general", "concat")
    ),
]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for name, cases in (
        ("case", CASES),
        ("attention_case", [c for c in CASES if c.preset in ("bahdanau", "luong")]),
    ):
        if name in metafunc.fixturenames:
            metafunc.parametrize(name, cases, ids=[c.id for c in cases])


class Batch(NamedTuple):
    src: torch.Tensor  # [N, S] ids, 0-padded
    src_mask: torch.Tensor  # [N, S] True at real tokens
    tgt_in: torch.Tensor  # [N, T] <s> + y
    tgt_out: torch.Tensor  # [N, T] y + </s>


def _make_task(n: int = 48, min_len: int = 2, max_len: int = 5, seed: int = 0) -> Batch:
    """``n`` distinct random sequences over ids 4..11 and their reversals."""
    gen = torch.Generator().manual_seed(seed)
    seqs: dict[tuple[int, ...], None] = {}
    while len(seqs) < n:
        length = int(torch.randint(min_len, max_len + 1, (1,), generator=gen))
        seqs[tuple((torch.randint(0, SYMBOLS, (length,), generator=gen) + 4).tolist())] = None
    src = torch.full((n, max_len), PAD_ID)
    tgt_in, tgt_out = torch.full((n, max_len + 1), PAD_ID), torch.full((n, max_len + 1), PAD_ID)
    for i, seq in enumerate(seqs):
        rev = list(reversed(seq))
        src[i, : len(seq)] = torch.tensor(seq)
        tgt_in[i, : len(seq) + 1] = torch.tensor([BOS_ID, *rev])
        tgt_out[i, : len(seq) + 1] = torch.tensor([*rev, EOS_ID])
    return Batch(src, src != PAD_ID, tgt_in, tgt_out)


def _make_model(
    preset: str,
    cell: str = "gru",
    score: str = "auto",
    *,
    seed: int = 0,
    encoder: dict | None = None,
    decoder: dict | None = None,
    attention: dict | None = None,
    **model,
) -> Seq2Seq:
    """A seeded tiny preset (embed 16, hidden 32); the dicts override config sections."""
    sizes = {"embed_size": 16, "hidden_size": 32}
    cfg = ModelConfig(
        preset=preset,
        cell=cell,
        encoder=EncoderConfig(**{**sizes, **(encoder or {})}),
        decoder=DecoderConfig(**{**sizes, **(decoder or {})}),
        attention=AttentionConfig(score=score, **(attention or {})),
        **model,
    )
    torch.manual_seed(seed)
    return build_model(cfg, VOCAB, VOCAB)


def _loss(model: Seq2Seq, batch: Batch) -> torch.Tensor:
    logits, _ = model(batch.src, batch.src_mask, batch.tgt_in)  # [N, T, V]
    return F.cross_entropy(logits.flatten(0, 1), batch.tgt_out.flatten(), ignore_index=PAD_ID)


def _train(model: Seq2Seq, batch: Batch, steps: int) -> Seq2Seq:
    """Full-batch Adam on the teacher-forced loss; returns the model in eval mode."""
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        _loss(model, batch).backward()
        opt.step()
    return model.eval()


def _exact_match(model: Seq2Seq, batch: Batch) -> float:
    """Fraction of sources whose greedy output is exactly the reference (</s> excluded)."""
    hyp = greedy(model.eval(), batch.src, batch.src_mask, max_len=batch.tgt_out.shape[1] + 3)
    ref = batch.tgt_out.masked_fill(batch.tgt_out == EOS_ID, PAD_ID)
    width = max(hyp.tokens.shape[1], ref.shape[1])
    hyp_tokens = F.pad(hyp.tokens, (0, width - hyp.tokens.shape[1]))
    return (hyp_tokens == F.pad(ref, (0, width - ref.shape[1]))).all(1).float().mean().item()


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    # Tiny models: threading only adds overhead, and the CI box is shared.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def task() -> Batch:
    return _make_task()


@pytest.fixture(scope="session")
def trained(task):
    """``trained(case)`` -> that preset trained on ``task`` (cached; do not modify it)."""
    cache: dict[Case, Seq2Seq] = {}

    def get(case: Case) -> Seq2Seq:
        if case not in cache:
            cache[case] = _train(_make_model(*case[:3]), task, case.steps)
        return cache[case]

    return get


@pytest.fixture(scope="session")
def make_model():
    return _make_model


@pytest.fixture(scope="session")
def train():
    return _train


@pytest.fixture(scope="session")
def exact_match():
    return _exact_match


@pytest.fixture(scope="session")
def teacher_forced_loss():
    return _loss


def _sequence_logprob(
    model: Seq2Seq,
    src: torch.Tensor,
    src_mask: torch.Tensor,
    outputs: list[list[int]],
    ended: list[bool],
) -> torch.Tensor:
    """Teacher-forced sum of log-probabilities ``[N]`` of ``outputs[i]`` given source row ``i``,
    ``</s>`` included where ``ended[i]``: the score a search should report for that output."""
    pairs = zip(outputs, ended, strict=True)
    targets = [[*out, EOS_ID] if end else list(out) for out, end in pairs]
    lengths = torch.tensor([len(t) for t in targets])
    width = max(int(lengths.max()), 1)
    tgt_in = torch.full((len(targets), width), PAD_ID)  # [N, T] <s> + output
    tgt_out = torch.full((len(targets), width), PAD_ID)  # [N, T] output (+ </s>)
    for i, t in enumerate(targets):
        tgt_in[i, : len(t)] = torch.tensor([BOS_ID, *t])[: len(t)]
        tgt_out[i, : len(t)] = torch.tensor(t, dtype=torch.long)
    with torch.no_grad():
        logits, _ = model(src, src_mask, tgt_in)  # [N, T, V]
    logp = F.log_softmax(logits.float(), -1).gather(2, tgt_out[:, :, None]).squeeze(2)
    counted = torch.arange(width)[None, :] < lengths[:, None]  # [N, T]
    return (logp * counted).sum(1)


@pytest.fixture(scope="session")
def sequence_logprob():
    return _sequence_logprob


@pytest.fixture(scope="session")
def exports(tmp_path_factory):
    """A tiny transformer run and its ONNX and CTranslate2 exports (~15 s, once a session)."""
    from tests.helpers import TINY_TRANSFORMER, reverse_pairs, tiny_config, write_tsv
    from transduce.export.ct2 import export_ct2
    from transduce.export.onnx import export_onnx
    from transduce.tasks.train import train as train_run

    root = tmp_path_factory.mktemp("serve_exports")
    tsv = write_tsv(root / "rev.tsv", reverse_pairs(200))
    train_run(
        tiny_config(tsv, model=TINY_TRANSFORMER, train={"epochs": 4, "lr": 0.003}), root / "run"
    )
    return {
        "run": root / "run",
        "onnx": export_onnx(root / "run", root / "onnx"),
        "ct2": export_ct2(root / "run", root / "ct2"),
    }
