"""Hostile calls of every command, found by a sweep over each (empty, binary, endless and
misplaced inputs, outputs that are folders, inputs or unwritable, numbers out of range):
each answers in one line with exit code 2, and touches nothing it did not create."""

from __future__ import annotations

import io
import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from tests.forecasting.conftest import tiny_series_config, toy_series, write_wide
from tests.helpers import reverse_pairs, tiny_config, write_tsv
from transduce.commands.cli import main
from transduce.tasks.train import train

UNWRITABLE = "/sys/transduce-test"  # a folder no one may create files in, root included


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """A tiny text run and a tiny series run, trained once for the module."""
    tmp = tmp_path_factory.mktemp("hostile_commands")
    train(tiny_config(write_tsv(tmp / "rev.tsv", reverse_pairs(48, seed=5))), tmp / "text")
    write_wide(tmp / "s.csv", toy_series(8, 60))
    (tmp / "s.yaml").write_text(yaml.safe_dump(tiny_series_config(str(tmp / "s.csv"))))
    assert main(["train", str(tmp / "s.yaml"), "--out", str(tmp / "series")]) == 0
    (tmp / "in.txt").write_text("abc\ncab\n")
    return tmp


@pytest.fixture
def series_copy(runs, tmp_path) -> Path:
    shutil.copytree(runs / "series", tmp_path / "series", symlinks=True)
    return tmp_path / "series"


def _one_line(capsys, args: list[str]) -> str:
    """``args`` fail with exit code 2 and one line on stderr, whether main returns it or
    argparse exits with it."""
    try:
        code = main(args)
    except SystemExit as stop:
        code = stop.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and "Traceback" not in "\n".join(err), err
    assert err[-1].startswith("transduce ") and sum(": error: " in x for x in err) == 1, err
    return err[-1]


def test_chat_stops_an_endless_line_on_stdin(runs, capsys, monkeypatch):
    endless = io.BytesIO(b"a" * ((1 << 20) + 10))  # /dev/zero: no newline ever comes
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(endless, encoding="utf-8"))
    err = _one_line(capsys, ["chat", "--model", str(runs / "text")])
    assert "<stdin>:1: a line over 1,048,576 bytes" in err


@pytest.mark.parametrize(
    "args",
    [
        ["plot", "attention", "--model", "{runs}/text", "--text", "abc", "--output", "{dir}"],
    ],
    ids=["plot"],
)
def test_an_output_that_is_a_folder_is_one_line(runs, tmp_path, capsys, args):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    args = [a.format(dir=tmp_path / "out", runs=runs) for a in args]
    err = _one_line(capsys, args)
    assert "out" in err and (tmp_path / "out" / "keep.txt").read_text() == "mine"


@pytest.mark.skipif(not os.path.isdir("/sys/kernel"), reason="needs Linux /sys")
@pytest.mark.parametrize(
    "args",
    [
        [
            "plot",
            "attention",
            "--model",
            "{text}",
            "--text",
            "abc",
            "--output",
            f"{UNWRITABLE}.png",
        ],
        ["train", "{text}/config.yaml", "--out", UNWRITABLE],
    ],
    ids=["plot", "train"],
)
def test_an_unwritable_output_is_one_line(runs, capsys, args):
    args = [a.format(text=runs / "text", runs=runs) for a in args]
    err = _one_line(capsys, args)
    assert "/sys/transduce-test" in err and ".tmp" not in err


@pytest.mark.parametrize(
    "flag,value",
    [
        ("--beam", "99999999999999999999"),
        ("--threads", "99999999999999999999"),
        ("--threads", "100000"),
        ("--batch-size", "3000000000"),
        ("--seed", str(2**64)),
        ("--seed", "-1"),
    ],
)
def test_integers_too_large_for_torch_are_refused(runs, capsys, flag, value):
    extra = ["--sample"] if flag == "--seed" else []
    args = ["translate", "--model", str(runs / "text"), "--input", str(runs / "in.txt")]
    err = _one_line(capsys, [*args, f"{flag}={value}", *extra])
    assert f"argument {flag}" in err


@pytest.mark.parametrize("command", ["forecast", "backtest"])
@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0", "100", "1e30"])
def test_interval_levels_must_be_percentages(runs, tmp_path, capsys, command, value):
    args = [command, "--model", str(runs / "series"), "--input", str(runs / "s.csv")]
    if command == "forecast":
        args += ["--output", str(tmp_path / "f.csv")]
    err = _one_line(capsys, [*args, f"--level={value}"])
    assert "argument --level" in err


def test_forecast_threads_too_large_is_refused(runs, tmp_path, capsys):
    args = ["forecast", "--model", str(runs / "series"), "--input", str(runs / "s.csv")]
    err = _one_line(capsys, [*args, "--output", str(tmp_path / "f.csv"), "--threads=100000"])
    assert "argument --threads" in err


def test_backtest_output_may_not_be_a_file_of_the_run(series_copy, runs, capsys):
    calibration = series_copy / "conformal.json"
    before = calibration.read_bytes()
    args = ["backtest", "--model", str(series_copy), "--input", str(runs / "s.csv")]
    err = _one_line(capsys, [*args, "--output", str(calibration)])
    assert "conformal.json" in err and calibration.read_bytes() == before


@pytest.mark.parametrize("text", ["{", "[]", '{"windows": []}', '{"levels": [80]}'])
def test_a_damaged_calibration_is_one_line(series_copy, runs, tmp_path, capsys, text):
    (series_copy / "conformal.json").write_text(text)
    args = ["forecast", "--model", str(series_copy), "--input", str(runs / "s.csv")]
    err = _one_line(capsys, [*args, "--output", str(tmp_path / "f.csv"), "--level", "80"])
    assert "conformal.json: damaged calibration" in err


@pytest.mark.parametrize("what", ["file", "folder"])
def test_export_and_average_of_a_non_run_name_it(tmp_path, capsys, what):
    model = tmp_path / "notrun"
    model.write_text("x") if what == "file" else model.mkdir()
    err = _one_line(capsys, ["export", "onnx", "--model", str(model), "--out", str(tmp_path / "e")])
    assert f"{model}: not a transduce run" in err and not (tmp_path / "e").exists()
    err = _one_line(capsys, ["average", "--model", str(model), "--last", "1"])
    assert f"{model}: no kept checkpoints" in err


def test_generate_never_replaces_a_file_it_did_not_write(runs, tmp_path):
    from transduce.data.derived import _write
    from transduce.errors import DataError

    (tmp_path / "train.jsonl").write_text("my own data\n")
    with pytest.raises(DataError, match="holds something else"):
        _write(tmp_path / "train.jsonl", iter(["{}"]))
    assert (tmp_path / "train.jsonl").read_text() == "my own data\n"
    assert _write(tmp_path / "valid.jsonl", iter(["{}"])) == 1  # a rerun rewrites its own
    assert _write(tmp_path / "valid.jsonl", iter(["{}"])) == 1
    with pytest.raises(DataError, match="is a transduce run"):
        _write(runs / "text" / "train.jsonl", iter(["{}"]))
    assert not (runs / "text" / "train.jsonl").exists()


@pytest.mark.parametrize(
    "flag,value",
    [
        ("--max-wait-ms", "inf"),
        ("--decode-timeout-s", "inf"),
        ("--keep-alive-s", "inf"),
        ("--threads", "-1"),
        ("--max-compute", "inf"),
    ],
)
def test_serve_limits_must_be_finite(runs, capsys, flag, value):
    err = _one_line(capsys, ["serve", "--model", str(runs / "text"), f"{flag}={value}"])
    assert flag in err


def test_backtest_with_more_windows_than_values_is_one_line(runs, capsys):
    args = ["backtest", "--model", str(runs / "series"), "--input", str(runs / "s.csv")]
    err = _one_line(capsys, [*args, "--windows=1000000"])
    assert "--windows" in err and "the longest series has 60" in err


def test_demo_sizes_too_large_are_refused(tmp_path, capsys):
    err = _one_line(capsys, ["demo", "--out", str(tmp_path / "d"), "--n-train", "1e20"])
    assert "--n-train" in err
    err = _one_line(capsys, ["demo", "--out", str(tmp_path / "d"), "--n-train=100000000000"])
    assert "--n-train" in err and not (tmp_path / "d").exists()


def test_ctrl_c_during_demo_training_installs_no_run(tmp_path):
    """Training stops at the signal with a checkpoint but no best weights: the demo must
    not swap that run in (it did, then failed on the missing model.safetensors)."""
    import glob
    import signal
    import subprocess
    import time

    out = tmp_path / "demo"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [sys.executable, "-m", "transduce", "demo", "--out", str(out), "--n-train", "20000"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not glob.glob(str(out / ".run.*" / "config.yaml")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # inside the training loop
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    lines = err.decode().strip().splitlines()
    assert proc.returncode == 130 and "Traceback" not in err.decode(), lines
    assert lines[-1].startswith("transduce demo: interrupted (stopped while training")
    assert not (out / "run").exists() and not glob.glob(str(out / ".run.*"))


def test_ctrl_c_during_translate_is_one_line_and_keeps_the_output(runs, tmp_path):
    import glob
    import signal
    import subprocess
    import time

    src, out = tmp_path / "many.txt", tmp_path / "out.txt"
    src.write_text("abcab\n" * 300_000)
    out.write_text("yesterday\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [
        sys.executable,
        "-m",
        "transduce",
        "translate",
        "--model",
        str(runs / "text"),
        "--input",
        str(src),
        "--output",
        str(out),
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not glob.glob(str(tmp_path / ".out.txt.*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    lines = err.decode().strip().splitlines()
    assert proc.returncode == 130 and len(lines) == 1, lines
    assert "interrupted (" in lines[0] and "left as it was" in lines[0]
    assert out.read_text() == "yesterday\n" and not glob.glob(str(tmp_path / ".out.txt.*"))


@pytest.fixture(scope="module")
def exported(runs) -> Path:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    out = runs / "exported"
    assert main(["-q", "export", "onnx", "--model", str(runs / "text"), "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("target", ["input", "manifest.json"])
def test_runtime_output_never_replaces_an_input_or_the_model(exported, runs, tmp_path, target):
    from transduce.runtime.__main__ import main as runtime_main

    src = tmp_path / "in.txt"
    src.write_text("abc\ncab\n")
    out = src if target == "input" else exported / "manifest.json"
    before = out.read_bytes()
    args = ["translate", "--model", str(exported), "--input", str(src), "--output", str(out)]
    assert runtime_main(args) == 2
    assert out.read_bytes() == before


def test_no_validation_split_is_refused_in_one_line(tmp_path):
    """data.valid_fraction=0 without data.valid used to train and report a validation loss
    of 0.0 (validation on nothing)."""
    import subprocess
    import sys

    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"a{i}\tb{i}\n" for i in range(40)), encoding="utf-8")
    from transduce.config import save_config

    config = tmp_path / "c.yaml"
    save_config(tiny_config(pairs, data={"valid_fraction": 0.0}), config)
    proc = subprocess.run(
        [sys.executable, "-m", "transduce", "train", str(config), "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    err = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr and len(err) == 1, proc.stderr
    assert "data.valid_fraction=0" in err[0] and "no validation pairs" in err[0]
    assert not (tmp_path / "r").exists()  # a failed start leaves no run folder


@pytest.mark.parametrize(
    "command", ["translate", "evaluate", "score-pairs", "chat", "forecast", "backtest"]
)
@pytest.mark.parametrize("device", ["foo", "cuda:x", "cpu:0:1"])
def test_an_unknown_device_is_one_line_naming_the_flag(runs, tmp_path, capsys, command, device):
    text, series = str(runs / "text"), str(runs / "series")
    args = {
        "translate": ["--model", text, "--input", str(runs / "in.txt")],
        "evaluate": ["--model", text, "--src", str(runs / "in.txt"), "--ref", str(runs / "in.txt")],
        "score-pairs": [
            "--model",
            text,
            "--src",
            str(runs / "in.txt"),
            "--tgt",
            str(runs / "in.txt"),
        ],
        "chat": ["--model", text],
        "forecast": [
            "--model",
            series,
            "--input",
            str(runs / "s.csv"),
            "--output",
            str(tmp_path / "f"),
        ],
        "backtest": ["--model", series, "--input", str(runs / "s.csv")],
    }[command]
    err = _one_line(capsys, [command, *args, f"--device={device}"])
    assert "argument --device: expected cpu, cuda, cuda:N, auto or mps" in err


def test_forecast_runs_on_device_auto(runs, tmp_path, capsys):
    args = ["forecast", "--model", str(runs / "series"), "--input", str(runs / "s.csv")]
    assert main([*args, "--output", str(tmp_path / "f.csv"), "--device", "auto"]) == 0
    assert (tmp_path / "f.csv").is_file()


@pytest.mark.parametrize("value", ["1e308", "101"])
def test_an_absurd_max_len_ratio_is_refused_as_the_api_refuses_it(runs, capsys, value):
    args = ["translate", "--model", str(runs / "text"), "--input", str(runs / "in.txt")]
    err = _one_line(capsys, [*args, "--max-len-ratio", value])
    assert "argument --max-len-ratio: must be in (0, 100]" in err


@pytest.mark.parametrize(
    ("command", "redirect", "said"),
    [
        ("translate --model {text}", "<&-", "<stdin>: the standard input is closed"),
        ("translate --model {text}", "<{src} >&-", "<stdout>: the standard output is closed"),
        ("chat --model {text}", "<&-", "<stdin>: the standard input is closed"),
        ("evaluate --model {text} --src {src} --ref {src}", ">&-", "<stdout>: the standard"),
    ],
)
def test_a_closed_standard_stream_is_one_line(runs, tmp_path, command, redirect, said):
    # the shell's <&- / >&- leave Python None for the stream: an AttributeError traceback,
    # or (a bare print) the scores silently lost with exit status 0
    import subprocess

    src = tmp_path / "src.txt"
    src.write_text("abc\n")
    names = {"text": runs / "text", "src": src}
    line = f"{sys.executable} -m transduce {command.format(**names)} {redirect.format(**names)}"
    got = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=120)
    assert got.returncode == 2 and said in got.stderr, got.stderr
    assert "Traceback" not in got.stderr


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
def test_a_full_device_as_output_is_named(runs, capsys):
    # it said "output: cannot write", and a closed file's last flush escaped as a traceback
    args = ["translate", "--model", str(runs / "text"), "--input", str(runs / "in.txt")]
    assert main([*args, "--output", "/dev/full"]) == 2
    assert "/dev/full: cannot write: no space left on the device" in capsys.readouterr().err


def test_an_export_whose_folder_cannot_be_made_is_one_line(runs, capsys):
    assert main(["export", "onnx", "--model", str(runs / "text"), "--out", "/proc/x/y"]) == 2
    err = capsys.readouterr().err
    assert "/proc/x/y: cannot make its folder" in err and "Errno" not in err


def test_chat_refuses_an_nbest_it_cannot_show(runs, capsys):
    args = ["chat", "--model", str(runs / "text"), "--beam", "3", "--nbest", "3"]
    assert main(args) == 2 and "one reply" in capsys.readouterr().err
