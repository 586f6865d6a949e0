"""CTranslate2 conversion of a small trained transformer: fp32 greedy output matches
PyTorch's on most inputs (the share is printed), int8 converts and runs, and an RNN preset
is refused with a message that points to the ONNX export."""

from __future__ import annotations

import json

import pytest

from tests.helpers import reverse_pairs, tiny_config, write_tsv
from transduce.commands.cli import main
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
