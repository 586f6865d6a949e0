"""Ensembles decode through the step contract: one member == the model, two identical
members == the model, differently tokenized sources pack correctly, mismatches are refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.helpers import reverse_pairs, tiny_config, write_tsv
from transduce.data.vocab import Vocab
from transduce.inference.ensemble import (
    EnsembleTranslator,
    ForecastEnsemble,
    combine_forecasts,
)
from transduce.inference.translate import DecodeOptions, Translator
from transduce.tasks.train import train

INPUTS = ["abc", "fedcba", "a", "", "cab", "dddeef", "bad", "face", "ef", "cabbed"]
OPTIONS = [
    DecodeOptions(),
    DecodeOptions(beam=5, nbest=3),
    DecodeOptions(beam=4, alpha=0.6, no_repeat_ngram=2),
    DecodeOptions(sample=True, nbest=2, seed=7, top_k=3),
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two runs on the reverse task (different seeds) and one over another alphabet."""
    tmp = tmp_path_factory.mktemp("ens")
    tsv = write_tsv(tmp / "rev.tsv", reverse_pairs(160))
    out = {}
    for name, seed in (("a", 1), ("b", 2)):
        cfg = tiny_config(tsv, train={"seed": seed, "epochs": 3})
        out[name] = train(cfg, tmp / name).run_dir
    other = [(s.replace("a", "x"), t.replace("a", "x")) for s, t in reverse_pairs(60)]
    cfg = tiny_config(write_tsv(tmp / "other.tsv", other), train={"epochs": 1})
    out["other"] = train(cfg, tmp / "other").run_dir
    return out


def _flat(results):
    return [[(h.text, h.out_tokens, h.score) for h in hyps] for hyps in results]


@pytest.mark.parametrize("options", OPTIONS, ids=["greedy", "beam", "beam-lp-ngram", "sample"])
def test_ensemble_of_one_equals_the_model(runs, options):
    single = Translator.load(runs["a"]).decode(INPUTS, options)
    ensemble = EnsembleTranslator.load([runs["a"]]).decode(INPUTS, options)
    assert _flat(ensemble) == _flat(single)
    assert all(
        np.array_equal(e[0].attention, s[0].attention)
        for e, s in zip(ensemble, single, strict=True)
        if s[0].attention is not None
    )


@pytest.mark.parametrize("options", OPTIONS[:3], ids=["greedy", "beam", "beam-lp-ngram"])
def test_ensemble_of_two_identical_models_equals_the_model(runs, options):
    single = Translator.load(runs["a"]).decode(INPUTS, options)
    pair = EnsembleTranslator.load([runs["a"], runs["a"]]).decode(INPUTS, options)
    for s_hyps, p_hyps in zip(single, pair, strict=True):
        assert [h.out_tokens for h in p_hyps] == [h.out_tokens for h in s_hyps]
        assert [h.score for h in p_hyps] == pytest.approx([h.score for h in s_hyps], abs=1e-4)


def test_beam_one_equals_greedy_for_an_ensemble(runs):
    ens = EnsembleTranslator.load([runs["a"], runs["b"]])
    greedy = ens.decode(INPUTS, DecodeOptions())
    beam1 = ens.decode(INPUTS, DecodeOptions(beam=1, nbest=1, batch_size=3))
    assert [r[0].out_tokens for r in beam1] == [r[0].out_tokens for r in greedy]


def _permuted_source(run_dir) -> Translator:
    """The same model reading a permuted source vocabulary: different ids, same function."""
    t = Translator.load(run_dir)
    itos = t.pipeline.src_vocab.itos
    fixed = 4  # <pad> <s> </s> <unk> keep their ids
    perm = list(range(fixed)) + list(reversed(range(fixed, len(itos))))
    t.pipeline.src_vocab = Vocab([itos[i] for i in perm])
    emb = t.model.encoder.embed.embed.weight
    with torch.no_grad():
        emb.copy_(emb[torch.tensor(perm)])
    return t


@pytest.mark.parametrize("options", OPTIONS, ids=["greedy", "beam", "beam-lp-ngram", "sample"])
def test_members_with_different_source_ids_are_packed(runs, options):
    a = Translator.load(runs["a"])
    shared = EnsembleTranslator([a, Translator.load(runs["b"])])
    permuted_b = _permuted_source(runs["b"])
    assert permuted_b.pipeline.src_vocab.itos != a.pipeline.src_vocab.itos
    packed = EnsembleTranslator([a, permuted_b])
    got, want = packed.decode(INPUTS, options), shared.decode(INPUTS, options)
    for g, w in zip(got, want, strict=True):
        assert [h.out_tokens for h in g] == [h.out_tokens for h in w]
        assert [h.score for h in g] == pytest.approx([h.score for h in w], abs=1e-4)
        if w[0].attention is not None:  # packed: member 0's attention, cut to its source
            assert g[0].attention.shape == (len(g[0].out_tokens), len(g[0].src_tokens))


def test_target_vocabulary_mismatch_is_refused(runs):
    with pytest.raises(ValueError, match=r"target vocabulary differs.*must share"):
        EnsembleTranslator.load([runs["a"], runs["other"]])


def test_combine_forecasts_median_and_mean():
    members = [np.array([[1.0, 10.0]]), np.array([[2.0, 30.0]]), np.array([[9.0, 20.0]])]
    assert combine_forecasts(members).tolist() == [[2.0, 20.0]]
    assert combine_forecasts(members, "mean").tolist() == [[4.0, 20.0]]
    with pytest.raises(ValueError, match="median' or 'mean"):
        combine_forecasts(members, "max")
    with pytest.raises(ValueError, match="different shapes"):
        combine_forecasts([np.zeros((1, 2)), np.zeros((1, 3))])


def _series(n: int = 6, length: int = 60, period: int = 6) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(length)
    level = rng.uniform(20, 200, (n, 1))
    x = (
        level
        * (1 + 0.4 * np.sin(2 * np.pi * t / period)[None, :])
        * rng.uniform(0.97, 1.03, (n, length))
    )
    return list(x)


@pytest.fixture(scope="module")
def forecasters(tmp_path_factory):
    """Three tiny forecasting runs: lookbacks 12 and 18 (horizon 6), and horizon 4."""
    import yaml

    from transduce.commands.cli import main
    from transduce.forecasting.pipeline import Forecaster

    tmp = tmp_path_factory.mktemp("fcens")
    rows = _series()
    with open(tmp / "train.csv", "w", encoding="utf-8") as f:
        f.write(",".join(f"V{i + 1}" for i in range(61)) + "\n")
        f.writelines(f"S{i}," + ",".join(f"{v:.4f}" for v in r) + "\n" for i, r in enumerate(rows))
    out = {}
    for name, lookback, horizon in (("l12", 12, 6), ("l18", 18, 6), ("h4", 12, 4)):
        cfg = {
            "series": {
                "format": "m4",
                "train": str(tmp / "train.csv"),
                "horizon": horizon,
                "lookback": lookback,
                "period": 6,
                "stride": 2,
            },
            "model": {
                "preset": "sutskever",
                "cell": "gru",
                "encoder": {"embed_size": 8, "hidden_size": 16},
                "decoder": {"embed_size": 8, "hidden_size": 16},
            },
            "train": {
                "lr": 0.01,
                "batch_size": 16,
                "max_steps": 20,
                "epochs": 100,
                "valid_every": 20,
                "valid_exact": False,
                "log_every": 0,
                "progress": False,
                "threads": 1,
            },
        }
        (tmp / f"{name}.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
        assert main(["-q", "train", str(tmp / f"{name}.yaml"), "--out", str(tmp / name)]) == 0
        out[name] = Forecaster.load(tmp / name)
    return out, rows, tmp


def test_forecast_ensemble_median_and_mean_of_real_members(forecasters):
    f, series, _ = forecasters
    a, b = f["l12"].forecast(series), f["l18"].forecast(series)
    assert not np.allclose(a, b)
    assert np.array_equal(ForecastEnsemble([f["l12"]]).forecast(series), a)
    assert np.array_equal(ForecastEnsemble([f["l12"], f["l18"], f["l12"]]).forecast(series), a)
    mean = ForecastEnsemble([f["l12"], f["l18"]], combine="mean").forecast(series)
    assert np.allclose(mean, (a + b) / 2)
    with pytest.raises(ValueError, match="horizon 4"):
        ForecastEnsemble([f["l12"], f["h4"]])


def test_cli_translate_and_evaluate_with_an_ensemble(runs, tmp_path, capsys):
    from transduce.commands.cli import main

    src = tmp_path / "src.txt"
    src.write_text("abc\nfedcba\ncab\n", encoding="utf-8")
    single, pair = tmp_path / "single.txt", tmp_path / "pair.txt"
    base = ["translate", "--input", str(src), "--beam", "3"]
    assert main([*base, "--model", str(runs["a"]), "--output", str(single)]) == 0
    two = ["--model", str(runs["a"]), "--model", str(runs["a"])]
    assert main([*base, *two, "--output", str(pair)]) == 0
    assert pair.read_text() == single.read_text()
    ref = tmp_path / "ref.txt"
    ref.write_text("cba\nabcdef\nbac\n", encoding="utf-8")
    capsys.readouterr()
    ens = ["--model", str(runs["a"]), "--model", str(runs["b"])]
    assert main(["evaluate", *ens, "--src", str(src), "--ref", str(ref)]) == 0
    assert '"bleu"' in capsys.readouterr().out
    bad = ["--model", str(runs["a"]), "--model", str(runs["other"])]
    assert main(["translate", *bad, "--input", str(src)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "target vocabulary differs" in err[0]


def test_cli_forecast_with_an_ensemble(forecasters, tmp_path, capsys):
    import json

    from transduce.commands.cli import main

    _, series, fcens = forecasters
    hist = tmp_path / "hist.csv"
    hist.write_text(
        ",".join(f"V{i + 1}" for i in range(61))
        + "\n"
        + "".join(f"S{i}," + ",".join(f"{v:.4f}" for v in r) + "\n" for i, r in enumerate(series)),
        encoding="utf-8",
    )
    runs = [str(fcens / "l12"), str(fcens / "l18")]
    out = tmp_path / "fc.csv"
    args = ["forecast", "--model", runs[0], "--model", runs[1], "--input", str(hist)]
    capsys.readouterr()
    assert main([*args, "--output", str(out), "--combine", "mean"]) == 0
    assert json.loads(capsys.readouterr().out)["horizon"] == 6
    assert len(out.read_text().splitlines()) == 1 + len(series)


def test_a_run_of_the_other_kind_is_refused_in_one_line(runs, forecasters, tmp_path, capsys):
    from transduce.commands.cli import main

    _, _, fcens = forecasters
    src = tmp_path / "src.txt"
    src.write_text("abc\n", encoding="utf-8")
    series_run, text_run = str(fcens / "l12"), str(runs["a"])
    cases = [
        (["translate", "--model", series_run, "--input", str(src)], "a forecasting run"),
        (
            ["translate", "--model", text_run, "--model", series_run, "--input", str(src)],
            "a forecasting run",
        ),
        (["forecast", "--model", text_run, "--input", str(src), "--output", "-"], "a text run"),
        (
            [
                "forecast",
                "--model",
                series_run,
                "--model",
                text_run,
                "--input",
                str(src),
                "--output",
                "-",
            ],
            "a text run",
        ),
    ]
    for argv, message in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (argv, err)
