"""CTranslate2 conversion of a small trained transformer: fp32 greedy output matches
PyTorch's on most inputs (the share is printed), int8 converts and runs, and an RNN preset
is refused with a message that points to the ONNX export."""

from __future__ import annotations

import json

import pytest

from tests.helpers import reverse_pairs, tiny_config, write_tsv
from transduce.commands.cli import main
from transduce.errors import DataError, OptionError
from transduce.inference.translate import DecodeOptions, Translator
from transduce.runtime.ct2 import CT2Translator
from transduce.tasks.train import train

INPUTS = [s for s, _ in reverse_pairs(40, seed=11)]
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


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ct2")
    tsv = write_tsv(root / "rev.tsv", reverse_pairs(200))
    train(tiny_config(tsv, model=TRANSFORMER, train={"epochs": 15, "lr": 0.003}), root / "tf")
    return root


@pytest.mark.parametrize("beam", [1, 4])
def test_fp32_conversion_matches_pytorch_on_most_inputs(beam, runs, capsys):
    assert main(["-q", "export", "ct2", "--model", str(runs / "tf"), "--out", str(runs / "c")]) == 0
    assert json.loads(capsys.readouterr().out)["engine"] == "ct2"
    options = DecodeOptions(beam=beam)
    ours = CT2Translator.load(runs / "c", threads=1).translate(INPUTS, options)
    ref = Translator.load(runs / "tf").translate(INPUTS, options)
    share = sum(a == b for a, b in zip(ours, ref, strict=True)) / len(INPUTS)
    print(f"ct2 fp32 beam {beam}: same output as PyTorch on {share:.0%} of {len(INPUTS)} inputs")
    assert share >= 0.9
    assert sum(r == s[::-1] for r, s in zip(ref, INPUTS, strict=True)) >= 10  # it learned


def test_int8_converts_and_translates(runs, capsys):
    out = runs / "c8"
    args = [
        "-q",
        "export",
        "ct2",
        "--model",
        str(runs / "tf"),
        "--out",
        str(out),
        "--quantization",
        "int8",
    ]
    assert main(args) == 0
    capsys.readouterr()
    texts = CT2Translator.load(out, threads=1).translate(["abc", "", "fedcba"])
    assert len(texts) == 3 and texts[1] == ""


def test_rnn_preset_is_refused_with_a_pointer_to_onnx(tmp_path, capsys):
    tsv = write_tsv(tmp_path / "rev.tsv", reverse_pairs(40))
    train(tiny_config(tsv, train={"epochs": 1}), tmp_path / "rnn")
    capsys.readouterr()  # training's own progress on stderr is not the export's to count
    code = main(["export", "ct2", "--model", str(tmp_path / "rnn"), "--out", str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert code == 2 and "no recurrent decoder" in err and "export onnx" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "c").exists()


def test_a_seeded_sample_repeats_within_one_process(runs):
    """CTranslate2 seeds a worker thread's sampler once, as the thread starts: a seed given
    to a later call changed nothing, so a server answered each seeded request differently."""
    from transduce.export.ct2 import export_ct2

    out = runs / "seeded"
    if not out.exists():
        export_ct2(runs / "tf", out)
    ct2 = CT2Translator.load(out, threads=1)
    seeded = DecodeOptions(sample=True, seed=7, temperature=3.0)
    draws = [ct2.translate(INPUTS[:8], seeded) for _ in range(3)]
    assert draws[0] == draws[1] == draws[2]
    other = ct2.translate(INPUTS[:8], DecodeOptions(sample=True, seed=8, temperature=3.0))
    assert other != draws[0]  # the seed matters (at temperature 3 the draws spread)


def test_a_prefix_past_the_position_table_is_one_line(runs, tmp_path, capsys):
    """CTranslate2 raised (a traceback; a 500 from the server) on a decoder position past
    the exported table (1,024 rows here)."""
    from transduce.export.ct2 import export_ct2

    out = runs / "seeded"
    if not out.exists():
        export_ct2(runs / "tf", out)
    (tmp_path / "in.txt").write_text("abc\nabc\n")
    (tmp_path / "p.txt").write_text("a\n" + "a" * 1100 + "\n")
    args = ["translate", "--model", str(out), "--input", str(tmp_path / "in.txt")]
    assert main([*args, "--prefix-file", str(tmp_path / "p.txt")]) == 2
    err = capsys.readouterr().err
    assert "p.txt:2: 1,100 target tokens: this model's decoder holds at most 1,022" in err
    assert err.count("\n") == 1
    (tmp_path / "p.txt").write_text("a\n" + "a" * 1022 + "\n")  # the most it holds
    assert main([*args, "--prefix-file", str(tmp_path / "p.txt")]) == 0
    ct2 = CT2Translator.load(out, threads=1)  # sources and scored targets: the same table
    with pytest.raises(OptionError, match=r"max_input_len: 2000: .* at most 1024 source"):
        ct2.translate(["abc"], DecodeOptions(max_input_len=2000))
    assert ct2.score(["abc"], ["a" * 1023])[0].logprob is not None
    with pytest.raises(DataError, match="<targets>:2: 1,024 target tokens"):
        ct2.score(["abc", "abc"], ["a", "a" * 1024])


@pytest.mark.parametrize(
    "options",
    [DecodeOptions(), DecodeOptions(normalize=True), DecodeOptions(sample=True, seed=3),
     DecodeOptions(beam=4)],
)  # fmt: skip
def test_a_hypothesis_score_is_its_log_probability(runs, options):
    """Samples were scored length-normalised (CTranslate2's default length_penalty 1), and
    greedy decoding with --normalize too, where the other engines give the log-probability;
    logprob was null."""
    from transduce.export.ct2 import export_ct2

    out = runs / "scored"
    if not out.exists():
        export_ct2(runs / "tf", out)
    ct2 = CT2Translator.load(out, threads=1)
    found = [hyps[0] for hyps in ct2.decode(INPUTS[:6], options)]
    truth = ct2.score(INPUTS[:6], [t.text for t in found])
    for t, s in zip(found, truth, strict=True):
        assert t.score == pytest.approx(s.logprob, abs=1e-3)
        assert t.logprob == pytest.approx(s.logprob, abs=1e-3)
