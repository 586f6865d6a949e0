"""``translate`` as a filter: each line's translation comes out while stdin is still open,
batches never exceed --buffer-size, results stay in input order and match batch decoding;
the side files (--prefix-file, --prefix-column, --constraints-file) apply per line and a bad
line of them is one error naming its file and line."""

from __future__ import annotations

import io
import os
import select
import subprocess
import sys
import threading
import time

import pytest

from tests.helpers import reverse_pairs, tiny_config, write_tsv
from transduce.commands.cli import main
from transduce.inference.textio import arriving_batches
from transduce.inference.translate import Translator
from transduce.tasks.train import train

INPUTS = [s for s, _ in reverse_pairs(25, seed=3)] + ["", "abc"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream")
    tsv = write_tsv(root / "rev.tsv", reverse_pairs(120))
    return train(tiny_config(tsv, train={"epochs": 2}), root / "run").run_dir


def test_batches_are_what_arrived_and_at_most_the_buffer_size():
    read, write = os.pipe()
    with os.fdopen(read, "rb") as f, os.fdopen(write, "wb", buffering=0) as w:
        w.write(b"a\nb\nc\nd\ne\n")
        batches = arriving_batches(f, "<pipe>", size=2, wait=0.2)
        assert [next(batches), next(batches), next(batches)] == [["a", "b"], ["c", "d"], ["e"]]

        def later():
            time.sleep(0.3)
            w.write(b"f\n")
            w.close()

        threading.Thread(target=later).start()
        assert list(batches) == [["f"]]  # came after the wait: a batch of its own


def test_a_bad_line_ends_the_stream_after_the_lines_before_it():
    f = io.BytesIO(b"ok\n\xff\xfe\n")
    batches = arriving_batches(f, "<stdin>", size=10, wait=0.05)
    assert next(batches) == ["ok"]
    with pytest.raises(ValueError, match="<stdin>:2: invalid UTF-8"):
        next(batches)


def test_first_translation_appears_before_stdin_is_closed(run):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    cmd = [sys.executable, "-m", "transduce", "-q", "translate", "--model", str(run)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    try:
        proc.stdin.write(b"abc\n")
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "no output within 60 s while stdin stayed open"
        first = proc.stdout.readline().decode().strip()
        assert first == Translator.load(run).translate(["abc"])[0]
        proc.stdin.write(b"fed\n")
        proc.stdin.close()
        assert proc.stdout.read().decode().splitlines() == Translator.load(run).translate(["fed"])
    finally:
        proc.kill() if proc.poll() is None else None
    assert proc.wait(30) == 0


def _translate(args, stdin: str, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
    code = main(["-q", "translate", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_streamed_output_equals_batch_decoding_in_order(run, monkeypatch, capsys):
    stdin = "".join(x + "\n" for x in INPUTS)
    code, out, _ = _translate(
        ["--model", str(run), "--buffer-size", "4"], stdin, monkeypatch, capsys
    )
    assert code == 0 and out.splitlines() == Translator.load(run).translate(INPUTS)


def test_prefixes_from_a_file_or_a_column(run, tmp_path, monkeypatch, capsys):
    prefixes = ["f" if i % 2 else "" for i in range(len(INPUTS))]
    (tmp_path / "p.txt").write_text("".join(p + "\n" for p in prefixes))
    stdin = "".join(x + "\n" for x in INPUTS)
    args = ["--model", str(run), "--prefix-file", str(tmp_path / "p.txt"), "--beam", "3"]
    code, by_file, _ = _translate(args, stdin, monkeypatch, capsys)
    assert code == 0
    triples = zip(by_file.splitlines(), prefixes, INPUTS, strict=True)
    assert all(out.startswith(p) or not src for out, p, src in triples)  # empty in: empty out
    column = "".join(f"{x}\t{p}\n" for x, p in zip(INPUTS, prefixes, strict=True))
    code, by_column, _ = _translate(
        ["--model", str(run), "--prefix-column", "--beam", "3"], column, monkeypatch, capsys
    )
    assert code == 0 and by_column == by_file


@pytest.mark.parametrize("lines", [0, 1])
def test_a_prefix_file_too_short_is_named(run, tmp_path, monkeypatch, capsys, lines):
    (tmp_path / "p.txt").write_text("f\n" * lines)  # empty: the error named no file
    args = ["--model", str(run), "--prefix-file", str(tmp_path / "p.txt"), "--beam", "2"]
    code, _, err = _translate(args, "abc\ncab\n", monkeypatch, capsys)
    assert code == 2 and f"{tmp_path / 'p.txt'}: {lines} lines, but input line" in err


def test_side_files_longer_than_the_input_or_outside_the_vocabulary_are_named(
    run, tmp_path, monkeypatch, capsys
):
    # extra lines were dropped unseen (misaligned side files pass otherwise), and a prefix
    # with characters the model never writes began the output with <unk>
    (tmp_path / "p.txt").write_text("f\nf\nf\n")
    args = ["--model", str(run), "--prefix-file", str(tmp_path / "p.txt")]
    code, _, err = _translate(args, "abc\ncab\n", monkeypatch, capsys)
    assert code == 2 and f"{tmp_path / 'p.txt'}:3: 3 lines, but the input has 2" in err
    (tmp_path / "c.jsonl").write_text('["a"]\n[]\n["b"]\n')
    args = ["--model", str(run), "--constraints-file", str(tmp_path / "c.jsonl"), "--beam", "2"]
    code, _, err = _translate(args, "abc\ncab\n", monkeypatch, capsys)
    assert code == 2 and f"{tmp_path / 'c.jsonl'}:3: 3 lines, but the input has 2" in err
    (tmp_path / "p.txt").write_text("f\n€\n")
    args = ["--model", str(run), "--prefix-file", str(tmp_path / "p.txt")]
    code, _, err = _translate(args, "abc\ncab\n", monkeypatch, capsys)
    assert code == 2 and f"{tmp_path / 'p.txt'}:2: '€' is not in the target vocabulary" in err


def test_constraints_file_and_its_bad_lines(run, tmp_path, monkeypatch, capsys):
    good = tmp_path / "c.jsonl"
    good.write_text('["ab"]\n\n["c"]\n')
    code, out, _ = _translate(
        ["--model", str(run), "--constraints-file", str(good), "--beam", "3"],
        "fed\nabc\nxyz\n",
        monkeypatch,
        capsys,
    )
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3 and "ab" in lines[0] and "c" in lines[2]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('["ab"]\n{"x": 1}\n')
    code, _, err = _translate(
        ["--model", str(run), "--constraints-file", str(bad), "--beam", "3"],
        "fed\nabc\n",
        monkeypatch,
        capsys,
    )
    assert code == 2 and f"{bad}:2: expected a JSON list of strings" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = _translate(
        ["--model", str(run), "--constraints-file", str(good)], "a\nb\nc\nd\n", monkeypatch, capsys
    )
    assert code == 2 and "input line 4 needs one" in err
    code, _, err = _translate(
        ["--model", str(run), "--constraints-file", str(good), "--sample"],
        "a\n",
        monkeypatch,
        capsys,
    )
    assert code == 2 and "--constraints-file" in err and "--sample" in err
