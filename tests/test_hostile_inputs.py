"""Hostile inputs to every command: each gets one line naming the file (and line) and exit
code 2, or a documented, warned behaviour; never a traceback."""

from __future__ import annotations

import io
import logging
import os
import sys
import threading
from pathlib import Path

import pytest
import torch

from tests.helpers import one_line_error, reverse_pairs, tiny_config, tiny_reverse_run, write_tsv
from transduce.commands.cli import main
from transduce.data.corpus import DataError
from transduce.data.records import read_chatterbot
from transduce.data.series import read_long, read_m4_wide
from transduce.inference.translate import DecodeOptions, Translator
from transduce.tasks.train import train


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return tiny_reverse_run(tmp_path_factory.mktemp("hostile"))


def _error(capsys, args: list[str]) -> str:
    return one_line_error(capsys, args)


def _stdin(monkeypatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


def test_stdin_is_strict_utf8_with_line_numbers(model, capsys, monkeypatch):
    _stdin(monkeypatch, b"abc\n\xff\xfeabc\n")
    err = _error(capsys, ["translate", "--model", str(model), "--format", "jsonl"])
    assert "<stdin>:2: invalid UTF-8" in err


def test_chat_reads_stdin_strictly_too(model, capsys, monkeypatch):
    _stdin(monkeypatch, b"abc\n\xffx\n")
    err = _error(capsys, ["chat", "--model", str(model)])
    assert "<stdin>:2: invalid UTF-8" in err


def test_stdin_and_input_file_agree(model, capsys, monkeypatch, tmp_path):
    data = "\ufeffabc\r\ncab\n".encode()
    (tmp_path / "in.txt").write_bytes(data)
    assert main(["translate", "--model", str(model), "--input", str(tmp_path / "in.txt")]) == 0
    from_file = capsys.readouterr().out
    _stdin(monkeypatch, data)
    assert main(["translate", "--model", str(model)]) == 0
    assert capsys.readouterr().out == from_file and len(from_file.splitlines()) == 2


def test_set_with_broken_yaml(model, capsys, tmp_path):
    err = _error(capsys, ["train", "--resume", "--out", str(model), "--set", "train.lr=[1"])
    assert "--set train.lr=[1: the value is not valid YAML" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_device_cuda_without_a_gpu(model, capsys, monkeypatch):
    _stdin(monkeypatch, b"abc\n")
    err = _error(capsys, ["translate", "--model", str(model), "--device", "cuda"])
    assert "no CUDA device" in err and "train.device" not in err


def test_evaluate_on_two_empty_files(model, capsys, tmp_path):
    (tmp_path / "e").write_text("")
    err = _error(
        capsys,
        [
            "evaluate",
            "--model",
            str(model),
            "--src",
            str(tmp_path / "e"),
            "--ref",
            str(tmp_path / "e"),
        ],
    )
    assert "empty" in err


def test_output_writes_through_a_symlink_a_fifo_and_a_descriptor(model, tmp_path, monkeypatch):
    (tmp_path / "in.txt").write_text("abc\ncab\n")
    base = ["translate", "--model", str(model), "--input", str(tmp_path / "in.txt")]
    os.symlink("real.txt", tmp_path / "link.txt")
    assert main([*base, "--output", str(tmp_path / "link.txt")]) == 0
    assert (tmp_path / "link.txt").is_symlink()
    assert len((tmp_path / "real.txt").read_text().splitlines()) == 2
    os.mkfifo(tmp_path / "fifo")
    got = []
    reader = threading.Thread(target=lambda: got.append((tmp_path / "fifo").read_text()))
    reader.start()
    assert main([*base, "--output", str(tmp_path / "fifo")]) == 0
    reader.join(timeout=30)
    assert (tmp_path / "fifo").is_fifo() and len(got[0].splitlines()) == 2
    r, w = os.pipe()
    assert main([*base, "--output", f"/proc/self/fd/{w}"]) == 0
    os.close(w)
    with os.fdopen(r) as pipe:
        assert len(pipe.read().splitlines()) == 2


def test_output_streams_batch_by_batch_in_order(model, tmp_path, monkeypatch):
    lines = [w for w, _ in reverse_pairs(40, seed=9)]
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.txt"
    args = [
        "translate",
        "--model",
        str(model),
        "--input",
        str(tmp_path / "in.txt"),
        "--output",
        str(out),
        "--batch-size",
        "7",
    ]
    assert main(args) == 0
    whole = Translator.load(model).translate(lines)
    assert out.read_text().splitlines() == whole
    decode, calls = Translator.decode, []

    def crash_on_third(self, texts, options=None, first_line=1):
        calls.append(first_line)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return decode(self, texts, options or DecodeOptions(), first_line)

    monkeypatch.setattr(Translator, "decode", crash_on_third)
    out.write_text("a previous file\n")
    assert main(args) == 130
    assert out.read_text() == "a previous file\n"  # replaced only by a complete output
    assert [p.name for p in tmp_path.iterdir()] == ["in.txt", "out.txt"]  # no temporary left
    assert calls == [1, 8, 15]


def test_long_input_lines_are_truncated_skipped_or_refused(model, tmp_path, capsys, caplog):
    (tmp_path / "in.txt").write_text("abc\n" + "a" * 5000 + "\ncab\n")
    base = ["translate", "--model", str(model), "--input", str(tmp_path / "in.txt")]
    with caplog.at_level(logging.WARNING, logger="transduce.inference.translate"):
        assert main([*base, "--beam", "3"]) == 0
    assert "input line 2: 5,000 source tokens, truncated to 1024" in caplog.text
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert main([*base, "--max-input-len", "10", "--on-long-input", "skip"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == ""
    err = _error(capsys, [*base, "--max-input-len", "10", "--on-long-input", "error"])
    assert f"{tmp_path / 'in.txt'}:2: 5,000 source tokens" in err


def test_long_training_lines_are_dropped_and_counted_per_split(tmp_path, caplog):
    pairs = reverse_pairs(60, seed=1)
    pairs[3] = ("ab" * 3000, "ba" * 3000)  # 6,000 characters: over the 512-token default
    write_tsv(tmp_path / "t.tsv", pairs)
    valid = [("abc", "cba"), ("a" * 600, "a" * 600), ("bca", "acb")]
    cfg = tiny_config(
        tmp_path / "t.tsv",
        data={"valid": str(write_tsv(tmp_path / "v.tsv", valid))},
        train={"epochs": 1},
    )
    with caplog.at_level(logging.WARNING, logger="transduce.data"):
        train(cfg, tmp_path / "run")
    assert "train: dropped 1 of 60 pairs" in caplog.text
    assert "valid: dropped 1 of 3 pairs" in caplog.text


def test_chatterbot_empty_entry(tmp_path):
    (tmp_path / "c.yml").write_text("conversations:\n- ")
    with pytest.raises(DataError, match=r"c\.yml: every line was skipped"):
        read_chatterbot(tmp_path / "c.yml")
    (tmp_path / "d.yml").write_text("conversations:\n- - a\n  - [b\n")
    with pytest.raises(DataError, match=r"d\.yml:\d+: not valid YAML"):
        read_chatterbot(tmp_path / "d.yml")


def test_series_invalid_utf8_and_huge_cells_name_their_line(tmp_path):
    path = tmp_path / "m4.csv"
    path.write_bytes(b'"V1","V2","V3"\n"S1",1,2\n"S\xff2",3,4\n"S3",' + b"9" * 200_000 + b",5\n")
    with pytest.raises(DataError, match=r"m4\.csv:3: invalid UTF-8"):
        read_m4_wide(path)
    kept = read_m4_wide(path, "skip")
    assert kept.ids == ["S1"] and kept.report.n_skipped == 2
    path.write_bytes(b"id,timestamp,value\na,1,1\na,2," + b"1" * 200_000 + b"\n")
    with pytest.raises(DataError, match=r"m4\.csv:3: "):
        read_long(path)


@pytest.mark.parametrize("values", ["0,0,0,0", "-5,-5,-5,-5"])
def test_non_positive_series_with_log_scaling_are_refused(tmp_path, values):
    path = tmp_path / "s.csv"
    rows = [f'"S{i}",' + ",".join(str(1 + (i + j) % 5) for j in range(60)) for i in range(3)]
    path.write_text('"V1"\n' + "\n".join(rows) + f'\n"Z",{values}\n')
    cfg = tiny_config(
        path, series={"train": str(path), "horizon": 4, "lookback": 8, "period": 4, "stride": 4}
    )
    with pytest.raises(DataError, match=r"series 'Z' has a value <= 0.*scaling: log"):
        train(cfg, tmp_path / "run")
