"""Hostile inputs, second hardening pass: outputs that would overwrite an input, damaged
runs (weights, meta.json, vocabularies), endless streams, YAML bombs, values out of range
and environment failures. Each is one line and exit code 2, never a traceback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import one_line_error, tiny_reverse_run
from transduce.commands.cli import main


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return tiny_reverse_run(tmp_path_factory.mktemp("hostile_runs"))


def _error(capsys, args: list[str]) -> str:
    return one_line_error(capsys, args)


@pytest.fixture
def own_model(model, tmp_path) -> Path:
    """A copy of the trained run that a test may damage."""
    import shutil

    shutil.copytree(model, tmp_path / "run", symlinks=True)
    return tmp_path / "run"


@pytest.mark.parametrize("link", [False, True])
def test_translate_output_equal_to_input_is_refused(model, tmp_path, capsys, link):
    src = tmp_path / "in.txt"
    src.write_text("abc\ncab\n")
    out = src
    if link:
        out = tmp_path / "alias.txt"
        out.symlink_to(src)
    err = _error(
        capsys, ["translate", "--model", str(model), "--input", str(src), "--output", str(out)]
    )
    assert "is the input" in err and src.read_text() == "abc\ncab\n"


def test_evaluate_output_equal_to_the_reference_is_refused(model, tmp_path, capsys):
    (tmp_path / "s.txt").write_text("abc\n")
    (tmp_path / "r.txt").write_text("cba\n")
    err = _error(
        capsys,
        [
            "evaluate",
            "--model",
            str(model),
            "--src",
            str(tmp_path / "s.txt"),
            "--ref",
            str(tmp_path / "r.txt"),
            "--output",
            str(tmp_path / "r.txt"),
        ],
    )
    assert "is the input" in err and (tmp_path / "r.txt").read_text() == "cba\n"


def test_a_failed_translate_keeps_the_previous_output_and_names_the_input(model, tmp_path, capsys):
    src, out = tmp_path / "in.txt", tmp_path / "out.txt"
    src.write_text("abc\n" * 10 + "a" * 50 + "\n")
    out.write_text("yesterday's translations\n")
    err = _error(
        capsys,
        [
            "translate",
            "--model",
            str(model),
            "--input",
            str(src),
            "--output",
            str(out),
            "--batch-size",
            "4",
            "--max-input-len",
            "10",
            "--on-long-input",
            "error",
        ],
    )
    assert f"{src}:11:" in err and "8 line(s) were done" in err and "left as it was" in err
    assert out.read_text() == "yesterday's translations\n"


@pytest.mark.parametrize("command", ["translate", "evaluate"])
def test_bit_flipped_weights_are_refused_naming_the_file(own_model, tmp_path, capsys, command):
    weights = Path(os.path.realpath(own_model / "model.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01  # one bit in the last tensor's data: safetensors itself loads it
    weights.write_bytes(bytes(data))
    (tmp_path / "s.txt").write_text("abc\n")
    args = {
        "translate": ["--input", str(tmp_path / "s.txt")],
        "evaluate": ["--src", str(tmp_path / "s.txt"), "--ref", str(tmp_path / "s.txt")],
    }
    err = _error(capsys, [command, "--model", str(own_model), *args[command]])
    assert "model.safetensors" in err and "SHA-256" in err


@pytest.mark.parametrize(
    "files",
    ["[]", '{"model.safetensors": 3}', '{"model.safetensors": {"bytes": "x", "sha256": 1}}'],
)
def test_meta_json_of_the_wrong_shape_is_one_line(own_model, capsys, files):
    meta = Path(os.path.realpath(own_model / "best")) / "meta.json"
    meta.write_text('{"step": "1", "files": ' + files + "}")
    err = _error(capsys, ["translate", "--model", str(own_model), "--input", os.devnull])
    assert "meta.json: damaged checkpoint description" in err


def test_a_vocab_that_is_a_directory_or_endless(own_model, capsys):
    vocab = own_model / "vocab.src.json"
    vocab.unlink()
    vocab.mkdir()
    err = _error(capsys, ["translate", "--model", str(own_model), "--input", os.devnull])
    assert "vocab.src.json: is a directory" in err
    vocab.rmdir()
    vocab.symlink_to("/dev/zero")
    err = _error(capsys, ["translate", "--model", str(own_model), "--input", os.devnull])
    assert "vocab.src.json: over" in err


def test_dev_zero_as_input_and_config_is_one_line(model, capsys):
    err = _error(capsys, ["translate", "--model", str(model), "--input", "/dev/zero"])
    assert "/dev/zero:1: a line over" in err
    err = _error(capsys, ["train", "/dev/zero", "--out", "/nonexistent/x"])
    assert "/dev/zero: over" in err


BOMB = """a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


@pytest.mark.parametrize("where", ["config", "set"])
def test_a_yaml_alias_bomb_is_refused_fast(tmp_path, capsys, where):
    import time

    assert len(BOMB) < 450
    config = tmp_path / "bomb.yaml"
    config.write_text(BOMB if where == "config" else "train: {epochs: 1}\n")
    extra = (
        [] if where == "config" else ["--set", "train.lr=" + BOMB.replace("\n", ", ").join("{}")]
    )
    started = time.perf_counter()
    err = _error(capsys, ["train", str(config), "--out", str(tmp_path / "o"), *extra])
    assert time.perf_counter() - started < 5
    assert "expands to over" in err and len(err) < 400


@pytest.mark.parametrize("depth", [65, 500, 5000])
def test_deep_yaml_nesting_is_refused(tmp_path, capsys, depth):
    config = tmp_path / "deep.yaml"
    config.write_text("train: " + "[" * depth + "]" * depth + "\n")
    err = _error(capsys, ["train", str(config), "--out", str(tmp_path / "o")])
    assert "nested deeper than" in err


@pytest.mark.parametrize(
    ("setting", "key"),
    [
        ("train.lr=.inf", "train.lr"),
        ("train.lr=.nan", "train.lr"),
        ("train.lr=-1", "train.lr"),
        ("train.batch_size=0", "train.batch_size"),
        ("train.batch_size=-3", "train.batch_size"),
        ("train.teacher_forcing=-2", "train.teacher_forcing"),
        ("model.decoder.dropout=1.5", "model.decoder.dropout"),
        ("model.encoder.hidden_size=100000000000", "model.encoder.hidden_size"),
        ("decode.max_len=0", "decode.max_len"),
        ("train.epochs=-1", "train.epochs"),
    ],
)
def test_config_values_out_of_range_are_refused_by_name(model, tmp_path, capsys, setting, key):
    config = model / "config.yaml"
    err = _error(capsys, ["train", str(config), "--out", str(tmp_path / "o"), "--set", setting])
    assert err.startswith(f"transduce train: error: {key}: ")
    assert not (tmp_path / "o").exists()


def test_echoed_values_are_cut(tmp_path, capsys):
    err = _error(
        capsys,
        [
            "train",
            "multi30k_de_en_rnn",
            "--out",
            str(tmp_path / "o"),
            "--set",
            "train.optimizer=" + "x" * 10000,
        ],
    )
    assert "train.optimizer: 'xxx" in err and len(err) < 400


@pytest.mark.parametrize("port", ["-5", "70000"])
def test_serve_port_out_of_range_is_one_line(model, capsys, port):
    try:
        code = main(["serve", "--model", str(model), f"--port={port}"])
    except SystemExit as stop:  # refused by the parser or by the server's own check
        code = stop.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--port" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("err", "words"),
    [
        (MemoryError(), "not enough memory"),
        (
            RuntimeError(
                "DefaultCPUAllocator: can't allocate memory: you tried to allocate 4e11 bytes"
            ),
            "not enough memory",
        ),
        (
            ModuleNotFoundError("No module named 'onnxruntime'", name="onnxruntime"),
            "pip install 'transduce[export]'",
        ),
        (OSError(28, "No space left on device", "out.txt"), "out.txt: cannot write: no space"),
        (OSError(30, "Read-only file system", "runs/x"), "runs/x: cannot write: read-only"),
    ],
)
def test_environment_failures_are_one_line(monkeypatch, capsys, err, words):
    import transduce.commands.cli as cli

    def fail(args):
        raise err

    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _with_func(parser(), fail))
    assert main(["demo"]) == 2
    line = capsys.readouterr().err.strip()
    assert words in line and len(line.splitlines()) == 1


def _with_func(parser, func):
    parser.set_defaults(func=func)
    for action in parser._subparsers._group_actions:
        for sub in action.choices.values():
            sub.set_defaults(func=func)
    return parser


def test_an_unrelated_runtime_error_still_raises(monkeypatch):
    import transduce.commands.cli as cli

    def fail(args):
        raise RuntimeError("a bug")

    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _with_func(parser(), fail))
    with pytest.raises(RuntimeError, match="a bug"):
        main(["demo"])
