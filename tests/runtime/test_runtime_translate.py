"""The PyTorch-free runtime end to end: a trained run exported with ``transduce export onnx``
translates like PyTorch through its Python API, through ``transduce translate`` (engine from
the manifest) and through ``python -m transduce.runtime`` in a process where torch cannot
be imported."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import BLOCK_TORCH, reverse_pairs, tiny_config, write_tsv
from transduce.commands.cli import main
from transduce.inference.translate import DecodeOptions, Translator
from transduce.runtime import DecodeOptions as RuntimeOptions
from transduce.runtime import Translator as RuntimeTranslator
from transduce.tasks.train import train

INPUTS = [s for s, _ in reverse_pairs(30, seed=7)] + ["", "fab", "  ", "zzq"]  # unknown chars
NO_TORCH = (
    BLOCK_TORCH
    + """
import runpy
sys.argv = ["transduce.runtime", *sys.argv[1:]]
try:
    runpy.run_module("transduce.runtime", run_name="__main__")
finally:
    assert "torch" not in sys.modules
"""
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("rt")
    tsv = write_tsv(root / "rev.tsv", reverse_pairs(160))
    cfg = tiny_config(tsv, model={"preset": "bahdanau", "cell": "lstm"}, train={"epochs": 3})
    train(cfg, root / "run")
    assert (
        main(["-q", "export", "onnx", "--model", str(root / "run"), "--out", str(root / "x")]) == 0
    )
    return root


def _cli(args: list[str], stdin: str, monkeypatch, capsys) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


OPTIONS = [
    DecodeOptions(),
    DecodeOptions(beam=4, nbest=2),
    DecodeOptions(beam=3, alpha=0.6, no_repeat_ngram=2),
]


@pytest.mark.parametrize("options", OPTIONS)
def test_runtime_translates_like_pytorch(options, exported):
    torch_t = Translator.load(exported / "run")
    runtime = RuntimeTranslator.load(exported / "x", threads=1)
    ours, ref = runtime.decode(INPUTS, options), torch_t.decode(INPUTS, options)
    assert [[h.text for h in hyps] for hyps in ours] == [[h.text for h in hyps] for hyps in ref]
    for a, b in zip(ours, ref, strict=True):
        assert a[0].score == pytest.approx(b[0].score, abs=1e-4)
        if b[0].attention is not None and b[0].attention.size:
            assert a[0].attention == pytest.approx(b[0].attention, abs=1e-5)


def test_translate_and_evaluate_pick_the_engine_from_the_manifest(exported, monkeypatch, capsys):
    stdin = "".join(x + "\n" for x in INPUTS)
    code, onnx_out, _ = _cli(
        ["translate", "--model", str(exported / "x")], stdin, monkeypatch, capsys
    )
    assert code == 0
    code, torch_out, _ = _cli(
        ["translate", "--model", str(exported / "run")], stdin, monkeypatch, capsys
    )
    assert onnx_out == torch_out and len(onnx_out.splitlines()) == len(INPUTS)
    (exported / "src.txt").write_text("abc\nfed\n")
    (exported / "ref.txt").write_text("cba\ndef\n")
    scores = []
    for model in ("x", "run"):
        args = [
            "evaluate",
            "--model",
            str(exported / model),
            "--src",
            str(exported / "src.txt"),
            "--ref",
            str(exported / "ref.txt"),
            "--beam",
            "3",
        ]
        code, out, _ = _cli(args, "", monkeypatch, capsys)
        assert code == 0
        scores.append(
            {k: v for k, v in json.loads(out).items() if "per_s" not in k and k != "seconds"}
        )
    assert scores[0] == scores[1]


def test_wrong_engine_is_a_one_line_error(exported, monkeypatch, capsys):
    code, _, err = _cli(
        ["translate", "--model", str(exported / "run"), "--engine", "onnx"],
        "a\n",
        monkeypatch,
        capsys,
    )
    assert code == 2 and "export it first" in err and len(err.splitlines()) == 1
    for flags, said in (
        (["--engine", "torch"], "is an onnx export"),
        # an export holds the weights it was made from: another one was ignored silently
        (["--checkpoint", "last"], "is an export of one checkpoint"),
    ):
        args = ["translate", "--model", str(exported / "x"), *flags]
        code, _, err = _cli(args, "a\n", monkeypatch, capsys)
        assert code == 2 and said in err
    for command in (["chat"], ["score", "--valid", "--metric", "bleu"]):  # named an --engine
        code, _, err = _cli([*command, "--model", str(exported / "x")], "a\n", monkeypatch, capsys)
        assert code == 2 and "an exported model" in err and "decodes training runs" in err


def test_runtime_cli_runs_where_torch_cannot_be_imported(exported):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            NO_TORCH,
            "translate",
            "--model",
            str(exported / "x"),
            "--beam",
            "3",
            "--threads",
            "1",
        ],
        input="".join(x + "\n" for x in INPUTS),
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    ref = Translator.load(exported / "run").translate(INPUTS, DecodeOptions(beam=3))
    assert proc.stdout.splitlines() == ref


def test_damaged_exports_give_one_line_naming_the_file(exported, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in (exported / "x").iterdir():
        if f.name != "step.onnx":
            (broken / f.name).write_bytes(f.read_bytes())
    code, err = _runtime_main(["translate", "--model", str(broken)])
    assert code == 2 and "step.onnx: no such file" in err
    (broken / "step.onnx").write_bytes((exported / "x" / "step.onnx").read_bytes())
    for graph in ("head.onnx", "topk.onnx"):  # topk was loaded apart: a traceback
        good = (broken / graph).read_bytes()
        (broken / graph).write_bytes(b"")
        code, err = _runtime_main(["translate", "--model", str(broken)])
        assert code == 2 and f"{graph}: cannot be loaded" in err and len(err.splitlines()) == 1
        (broken / graph).write_bytes(good)
    (broken / "manifest.json").write_text("{not json")
    code, err = _runtime_main(["translate", "--model", str(broken)])
    assert code == 2 and "manifest.json: not valid JSON" in err and len(err.splitlines()) == 1


def _runtime_main(args: list[str]) -> tuple[int, str]:
    from transduce.runtime.__main__ import main as runtime_main

    old = sys.stderr
    sys.stderr = io.StringIO()
    try:
        code = runtime_main(args)
        return code, sys.stderr.getvalue()
    finally:
        sys.stderr = old


def test_runtime_options_and_flags_match_translate():
    ours = {f.name: f.default for f in dataclasses.fields(RuntimeOptions)}
    theirs = {f.name: f.default for f in dataclasses.fields(DecodeOptions)}
    assert ours.items() <= theirs.items()
    from transduce.commands.cli import build_parser
    from transduce.runtime.__main__ import build_parser as runtime_parser

    def flags(parser, command):
        sub = next(a for a in parser._actions if a.dest == "command").choices[command]
        return {o for a in sub._actions for o in a.option_strings}

    decode = flags(runtime_parser(), "translate") - {"--model", "--threads", "-h", "--help"}
    assert decode <= flags(build_parser(), "translate")


def test_int8_export_translates_every_line(exported, tmp_path, capsys):
    out = tmp_path / "x8"
    args = [
        "-q",
        "export",
        "onnx",
        "--model",
        str(exported / "run"),
        "--out",
        str(out),
        "--quantize",
        "int8",
    ]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["quantize"] == "int8"
    texts = RuntimeTranslator.load(out, threads=1).translate(INPUTS, DecodeOptions(beam=2))
    assert len(texts) == len(INPUTS) and texts[INPUTS.index("")] == ""


def _blocked(args: list[str], stdin: str = "") -> subprocess.CompletedProcess:
    """``python -m transduce.runtime ARGS`` where torch and what the runtime extra does not
    install cannot be imported."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run(
        [sys.executable, "-c", NO_TORCH, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_runtime_evaluate_scores_like_transduce_evaluate(exported, monkeypatch, capsys):
    (exported / "src.txt").write_text("abc\nfed\nbbca\n")
    (exported / "ref.txt").write_text("cba\ndef\nacbb\n")
    files = ["--src", str(exported / "src.txt"), "--ref", str(exported / "ref.txt")]
    code, out, _ = _cli(
        ["evaluate", "--model", str(exported / "run"), *files], "", monkeypatch, capsys
    )
    assert code == 0
    proc = _blocked(["evaluate", "--model", str(exported / "x"), *files, "--threads", "1"])
    assert proc.returncode == 0, proc.stderr
    speed = ("seconds", "sentences_per_s", "tokens_per_s")
    ours, ref = json.loads(proc.stdout), json.loads(out)
    assert {k: v for k, v in ours.items() if k not in speed} == {
        k: v for k, v in ref.items() if k not in speed
    }


def test_a_training_run_without_torch_says_what_to_install(exported):
    proc = _blocked(["translate", "--model", str(exported / "run")], "abc\n")
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "'transduce[train]'" in proc.stderr


def test_a_reader_that_leaves_early_is_no_traceback(exported):
    # `python -m transduce.runtime translate ... | head -3` (deploying.md) ended in a
    # BrokenPipeError traceback, status 1; transduce translate stops quietly with 141
    import subprocess

    cmd = [sys.executable, "-m", "transduce.runtime", "translate", "--model", str(exported / "x")]
    proc = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    proc.stdin.write(b"abc\n" * 20000)
    proc.stdin.close()
    proc.stdout.readline()
    proc.stdout.close()  # as head does after its lines
    err = proc.stderr.read().decode()
    assert proc.wait(120) == 141 and "Traceback" not in err, err
