"""Scoring given targets, target prefixes and terminology constraints on every engine (torch,
onnx, ct2) and on ensembles, with a tiny transformer trained on the reverse task:

- a pair's score is minus the training objective's loss on it (teacher forced), to 1e-5;
  an ensemble's is the mean of its members';
- every output (greedy, beam, n-best, sampling) starts with its prefix, and beam 1 with a
  prefix is greedy with that prefix;
- every output of constrained beam search contains every phrase (n-best, length penalty);
  CTranslate2 refuses constraints by name.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from tests.helpers import reverse_pairs, tiny_config, write_tsv
from transduce.commands.cli import main
from transduce.data.batches import ParallelData
from transduce.engine.objective import Objective
from transduce.errors import OptionError
from transduce.inference import searchcore as core
from transduce.inference.ensemble import EnsembleTranslator
from transduce.inference.translate import DecodeOptions, Translator
from transduce.loading import load
from transduce.tasks.train import train

PAIRS = reverse_pairs(24, seed=5)
SOURCES = [s for s, _ in PAIRS]
TARGETS = [t for _, t in PAIRS[:12]] + [s for s, _ in PAIRS[12:]]  # right and wrong ones
TRANSFORMER = {
    "preset": "transformer",
    "transformer": {
        "d_model": 32,
        "heads": 4,
        "ff_size": 64,
        "encoder_layers": 2,
        "decoder_layers": 2,
        "dropout": 0.0,
    },
}
ENGINES = ["torch", "onnx", "ct2"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("targets")
    tsv = write_tsv(root / "rev.tsv", reverse_pairs(200))
    for name, seed in (("tf", 0), ("tf2", 1)):
        cfg = tiny_config(tsv, model=TRANSFORMER, train={"epochs": 6, "lr": 0.003, "seed": seed})
        train(cfg, root / name)
    for engine in ("onnx", "ct2"):
        args = ["-q", "export", engine, "--model", str(root / "tf"), "--out", str(root / engine)]
        assert main(args) == 0
    return root


def _decoder(runs, engine: str):
    return load(runs / ("tf" if engine == "torch" else engine), engine, threads=1)


def _objective_loss(translator: Translator, sources: list[str], targets: list[str]) -> float:
    """The training objective's summed loss (eval mode: no label smoothing) on one batch."""
    p = translator.pipeline
    src = [p.src_vocab.encode(p.src_tokens(s)) for s in sources]
    tgt = [p.tgt_vocab.encode(p.tgt_tok.encode(t)) for t in targets]
    batch = ParallelData(src, tgt).batch(np.arange(len(src)))
    with torch.no_grad():
        return float(Objective(translator.model).eval()(batch)[0])


@pytest.mark.parametrize("engine", ENGINES)
def test_scores_are_minus_the_training_loss(engine, runs):
    reference = Translator.load(runs / "tf")
    scores = _decoder(runs, engine).score(SOURCES, TARGETS, DecodeOptions(batch_size=7))
    for s, src, tgt in zip(scores, SOURCES, TARGETS, strict=True):
        assert s.logprob == pytest.approx(-_objective_loss(reference, [src], [tgt]), abs=1e-5)
        assert s.tokens == [*tgt, "</s>"] and len(s.per_token) == len(s.tokens)
        assert s.logprob == pytest.approx(sum(s.per_token)) and s.normalized < 0
    whole = _objective_loss(reference, SOURCES, TARGETS)  # the same batch, all pairs at once
    assert sum(s.logprob for s in scores) == pytest.approx(-whole, abs=1e-4)
    right, wrong = scores[:12], scores[12:]  # the model learned to reverse
    assert np.mean([s.normalized for s in right]) > np.mean([s.normalized for s in wrong])


@pytest.mark.parametrize("engine", ENGINES)
def test_an_unknown_target_token_is_scored_and_shown_as_unk(engine, runs, caplog):
    """score-pairs showed a target token outside the vocabulary as written, with <unk>'s
    log-probability, and said nothing."""
    word = TARGETS[0]  # characters: the vocabulary is a-f
    (odd,) = _decoder(runs, engine).score([SOURCES[0]], [f"{word}Ω"])
    (other,) = _decoder(runs, engine).score([SOURCES[0]], [f"{word}Ж"])
    assert odd.tokens == [*word, "<unk>", "</s>"] == other.tokens
    assert odd.logprob == pytest.approx(other.logprob, abs=1e-5)
    assert "1 target token(s) in 1 pair(s) are not in the target vocabulary" in caplog.text


def test_ensemble_score_is_the_mean_of_its_members(runs):
    members = [Translator.load(runs / name) for name in ("tf", "tf2")]
    ensemble = EnsembleTranslator.load([runs / "tf", runs / "tf2"])
    got = [s.logprob for s in ensemble.score(SOURCES, TARGETS)]
    each = [[s.logprob for s in m.score(SOURCES, TARGETS)] for m in members]
    assert got == pytest.approx(np.mean(each, 0), abs=1e-5)


def test_empty_source_is_skipped(runs):
    scores = Translator.load(runs / "tf").score(["", "abc"], ["x", "cba"])
    assert scores[0].logprob is None and scores[1].logprob is not None


PREFIX_OPTIONS = [
    DecodeOptions(),
    DecodeOptions(beam=4, nbest=3),
    DecodeOptions(beam=3, normalize=True),
    DecodeOptions(sample=True, nbest=2, seed=3, top_k=3),
]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("options", PREFIX_OPTIONS, ids=["greedy", "nbest", "norm", "sample"])
def test_every_output_starts_with_its_prefix(engine, options, runs):
    prefixes = [t[: i % 3] if i % 4 else "fed" for i, t in enumerate(TARGETS)]  # "" = none
    found = _decoder(runs, engine).decode(SOURCES, options, prefixes=prefixes)
    for hyps, prefix in zip(found, prefixes, strict=True):
        assert hyps and all(h.out_tokens[: len(prefix)] == list(prefix) for h in hyps)
        assert all(h.text.startswith(prefix) for h in hyps)


@pytest.mark.parametrize("engine", ["torch", "onnx"])
def test_beam_one_with_a_prefix_is_greedy_with_it(engine, runs):
    decoder = _decoder(runs, engine)
    p = decoder.pipeline
    ids = [p.src_vocab.encode(p.src_tokens(s)) for s in SOURCES]
    idx, src, mask = next(decoder._batches(ids, len(ids)))
    pre = [p.tgt_vocab.encode(list(TARGETS[i][:2])) for i in idx]
    padded = [x + [0] * (2 - len(x)) for x in pre]
    ops = decoder.ops
    prefix = (ops.tensor(padded, "int", src), ops.tensor([len(x) for x in pre], "int", src))
    with torch.no_grad():
        greedy = core.decode(ops, decoder.model, src, mask, 12, prefix=prefix)
        beam = core.beam_search(ops, decoder.model, src, mask, 12, beam=1, prefix=prefix)
    for r in range(len(idx)):
        n = int(greedy.lengths[r])
        assert beam.tokens[r][0] == greedy.tokens[r, :n].tolist()
        assert beam.logprobs[r][0] == pytest.approx(float(greedy.scores[r]), abs=1e-5)
        assert greedy.tokens[r, : len(pre[r])].tolist() == pre[r]


CONSTRAINED = [
    DecodeOptions(beam=4),
    DecodeOptions(beam=5, nbest=3, alpha=0.6),
    DecodeOptions(beam=3, normalize=True, no_repeat_ngram=3),
]


@pytest.mark.parametrize("engine", ["torch", "onnx", "ensemble"])
@pytest.mark.parametrize("options", CONSTRAINED, ids=["beam", "nbest-alpha", "norm-ngram"])
def test_every_output_contains_every_phrase(engine, options, runs):
    if engine == "ensemble":
        decoder = EnsembleTranslator.load([runs / "tf", runs / "tf2"])
    else:
        decoder = _decoder(runs, engine)
    constraints = [[t[-2:]] if i % 3 else [t[:1], "ab"] for i, t in enumerate(TARGETS)]
    constraints[0] = []  # none for this input
    found = decoder.decode(SOURCES, options, constraints=constraints, prefixes=None)
    for hyps, phrases in zip(found, constraints, strict=True):
        assert len(hyps) == options.nbest
        for h in hyps:
            assert all(_contains(h.out_tokens, list(p)) for p in phrases), (h.text, phrases)


def _contains(tokens: list[str], phrase: list[str]) -> bool:
    return any(tokens[i : i + len(phrase)] == phrase for i in range(len(tokens) + 1))


def test_constraints_no_output_can_meet_in_the_length_limit_are_said(runs, caplog):
    """The search returns the best incomplete hypothesis then (as documented): it did so
    without a word, so an output missing a required term passed unseen."""
    decoder = _decoder(runs, "torch")
    too_long = ["ab" * 10]  # 20 tokens, over decode.max_len (12)
    with caplog.at_level(logging.WARNING, logger="transduce.translate"):
        found = decoder.decode(
            ["abc", "bca"], DecodeOptions(beam=3), constraints=[["ab"], too_long]
        )
    assert "constraints: 1 output(s) miss a phrase (input 2)" in caplog.text
    assert not _contains(found[1][0].out_tokens, list(too_long[0]))


def test_constraints_are_refused_by_name_where_they_cannot_apply(runs):
    with pytest.raises(OptionError, match="constraints: CTranslate2"):
        _decoder(runs, "ct2").decode(["abc"], DecodeOptions(beam=2), constraints=[["a"]])
    with pytest.raises(OptionError, match="not sample"):
        Translator.load(runs / "tf").decode(
            ["abc"], DecodeOptions(sample=True), constraints=[["a"]]
        )


def test_score_pairs_command(runs, tmp_path, monkeypatch, capsys):
    import io
    import json
    import sys

    (tmp_path / "src").write_text("".join(s + "\n" for s in SOURCES))
    (tmp_path / "tgt").write_text("".join(t + "\n" for t in TARGETS))
    model = ["--model", str(runs / "onnx")]
    files = ["--src", str(tmp_path / "src"), "--tgt", str(tmp_path / "tgt")]
    assert main(["-q", "score-pairs", *model, *files]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    want = _decoder(runs, "onnx").score(SOURCES, TARGETS)
    assert [x["logprob"] for x in lines] == pytest.approx([w.logprob for w in want], abs=1e-6)
    assert set(lines[0]) == {"logprob", "normalized", "tokens", "per_token"}
    tsv = "".join(f"{s}\t{t}\n" for s, t in zip(SOURCES, TARGETS, strict=True))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(tsv.encode())))
    assert main(["-q", "score-pairs", *model]) == 0
    assert [json.loads(x) for x in capsys.readouterr().out.splitlines()] == lines
    (tmp_path / "short").write_text("abc\n")
    assert (
        main(
            [
                "-q",
                "score-pairs",
                *model,
                "--src",
                str(tmp_path / "short"),
                "--tgt",
                str(tmp_path / "tgt"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "24 lines, but" in err and len(err.strip().splitlines()) == 1


def test_arguments_of_the_wrong_kind_are_refused_by_name(runs):
    decoder = _decoder(runs, "torch")
    cases = [
        ({"options": {"beam": 2}}, "options: a DecodeOptions, got dict"),
        ({"prefixes": [5]}, r"prefixes\[0\]: a string"),
        ({"prefixes": "ab"}, "prefixes: a list with one entry per input"),
        ({"constraints": ["ab"]}, r"constraints\[0\]: a list of phrases"),
        ({"constraints": [[None]]}, r"constraints\[0\]\[0\]: a string"),
    ]
    for kwargs, words in cases:
        with pytest.raises(TypeError, match=words):
            decoder.decode(["abc"], **kwargs)
    with pytest.raises(TypeError, match=r"targets\[0\]: a string, got NoneType"):
        decoder.score(["abc"], [None])
    with pytest.raises(TypeError, match=r"EnsembleTranslator\.load: a list of run folders"):
        EnsembleTranslator.load(str(runs / "tf"))
    with pytest.raises(ValueError, match="give at least one run folder"):
        EnsembleTranslator.load([])


def test_score_pairs_on_stdin_skips_an_empty_source_as_files_do(runs, monkeypatch, capsys):
    """A "\\t2021-03-03" line was refused ("expected SOURCE<TAB>TARGET": the line was stripped of
    its leading tab before the split)."""
    import io
    import json
    import sys

    stdin = io.BytesIO(b"\tcba\n  \tab\nabc\tcba\n")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(stdin))
    assert main(["-q", "score-pairs", "--model", str(runs / "onnx")]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["logprob"] is None for x in lines] == [True, True, False]
