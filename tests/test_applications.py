"""The applications end to end: a two-input run trained from JSONL, scored and decoded;
``transduce chat`` from a pipe."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest
import torch

from tests.helpers import reverse_pairs, tiny_config, write_tsv
from transduce.commands.applications import score_file
from transduce.inference.translate import DecodeOptions, Translator

LETTERS = "abcdef"


def pointer_records(n: int, seed: int = 0) -> list[dict[str, str]]:
    """ "at k" + a 4-letter document -> the letter at position k: needs both fields."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        doc = rng.sample(LETTERS, 4)
        k = rng.randrange(4)
        out.append({"question": f"at {k}", "document": " ".join(doc), "answer": doc[k]})
    return out


@pytest.fixture(scope="module")
def qa_run(tmp_path_factory):
    from transduce.tasks.train import train

    root = tmp_path_factory.mktemp("qa")
    for name, n, seed in (("train", 400, 0), ("valid", 40, 1)):
        lines = (json.dumps(r) for r in pointer_records(n, seed))
        (root / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    cfg = tiny_config(
        root / "train.jsonl",
        data={
            "format": "jsonl",
            "valid": str(root / "valid.jsonl"),
            "src_tokenizer": "word",
            "tgt_tokenizer": "word",
            "src_fields": ["question", "document"],
            "tgt_field": "answer",
        },
        model={"preset": "bahdanau", "fusion": {"mode": "gated"}},
        train={"epochs": 12, "batch_size": 32},
    )
    torch.manual_seed(0)
    train(cfg, root / "run")
    return root


def test_two_input_run_learns_scores_and_decodes(qa_run):
    translator = Translator.load(qa_run / "run")
    scores = score_file(translator, str(qa_run / "valid.jsonl"), "squad")
    assert scores["n"] == 40 and scores["em"] >= 80.0 and scores["f1"] >= scores["em"]
    inputs = [f"{r['question']}\t{r['document']}" for r in pointer_records(8, seed=5)]
    greedy = translator.translate(inputs)
    beam1 = translator.translate(inputs, DecodeOptions(beam=1, nbest=1, attention=False))
    beam3 = translator.decode(inputs, DecodeOptions(beam=3, nbest=2))
    assert greedy == beam1 and all(len(h) == 2 for h in beam3)
    full = translator.translate_full([inputs[0]])[0]
    assert full.src_tokens[2] == "<sep>" and full.attention.shape[1] == len(full.src_tokens)


def run_cli(*args, stdin: str):
    return subprocess.run(
        [sys.executable, "-m", "transduce", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def chat_run(tmp_path_factory):
    from transduce.tasks.train import train

    root = tmp_path_factory.mktemp("chat")
    cfg = tiny_config(write_tsv(root / "rev.tsv", reverse_pairs(160)), train={"epochs": 1})
    train(cfg, root / "run")
    return root / "run"


def test_chat_answers_each_line_from_a_pipe_and_ends_on_eof(chat_run):
    proc = run_cli("chat", "--model", str(chat_run), "--beam", "3", stdin="abc\n\nfed\ncab")
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 3  # the empty line gets no answer
    assert proc.stderr == ""  # no prompt when stdin is not a terminal


def test_chat_stops_at_quit_and_samples_reproducibly(chat_run):
    args = ("chat", "--model", str(chat_run), "--sample", "--seed", "3")
    proc = run_cli(*args, stdin="abc\n/quit\nfed\n")
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 1
    assert run_cli(*args, stdin="abc\n").stdout == proc.stdout
