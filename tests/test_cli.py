"""The command line end to end, in real subprocesses."""

import json
import subprocess
import sys

import pytest
import yaml

from tests.helpers import reverse_pairs, tiny_config, write_tsv
from transduce.config import to_dict


def run(*args, stdin=None, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "transduce", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    tsv = write_tsv(root / "rev.tsv", reverse_pairs(160))
    cfg = root / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(to_dict(tiny_config(tsv))))
    proc = run("train", str(cfg), "--out", str(root / "run"), "--set", "train.epochs=3")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["steps"] > 0 and "loss" in summary["best"]
    return root


def test_translate_keeps_line_count_and_empty_lines(trained):
    text = "abc\n\nfed\nzzz?!\nabcdefabcdef\n"  # empty line, unknown characters, long input
    proc = run("translate", "--model", str(trained / "run"), stdin=text)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split("\n")
    assert lines[-1] == "" and len(lines) - 1 == 5
    assert lines[1] == ""
    assert lines[0] and lines[2]  # real input gives output


def test_translate_files(trained, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("ab\ncd\n")
    out = tmp_path / "out.txt"
    proc = run(
        "translate", "--model", str(trained / "run"), "--input", str(src), "--output", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    assert len(out.read_text().splitlines()) == 2


def test_evaluate_prints_one_json_line(trained, tmp_path):
    pairs = reverse_pairs(20, seed=9)
    (tmp_path / "src").write_text("".join(s + "\n" for s, _ in pairs))
    (tmp_path / "ref").write_text("".join(t + "\n" for _, t in pairs))
    proc = run(
        "evaluate",
        "--model",
        str(trained / "run"),
        "--src",
        str(tmp_path / "src"),
        "--ref",
        str(tmp_path / "ref"),
    )
    assert proc.returncode == 0, proc.stderr
    scores = json.loads(proc.stdout)
    assert {"bleu", "chrf", "exact", "token_acc", "bleu_signature"} <= set(scores)
    assert scores["n"] == 20 and 0 <= scores["exact"] <= 1


def test_evaluate_length_mismatch_is_a_clear_error(trained, tmp_path):
    (tmp_path / "src").write_text("ab\ncd\n")
    (tmp_path / "ref").write_text("ba\n")
    proc = run(
        "evaluate",
        "--model",
        str(trained / "run"),
        "--src",
        str(tmp_path / "src"),
        "--ref",
        str(tmp_path / "ref"),
    )
    assert proc.returncode == 2
    assert "2 source lines but 1 reference lines" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_plot_attention_and_curves(trained, tmp_path):
    proc = run(
        "plot",
        "attention",
        "--model",
        str(trained / "run"),
        "--text",
        "abcd",
        "--output",
        str(tmp_path / "a.png"),
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    proc = run(
        "plot", "curves", "--model", str(trained / "run"), "--output", str(tmp_path / "c.png")
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "c.png").stat().st_size > 1000


def test_bad_input_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_bytes(b"ab\tba\ncd\tdc\n\xff\xfe\tx\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(to_dict(tiny_config(bad))))
    proc = run("train", str(cfg), "--out", str(tmp_path / "run"))
    assert proc.returncode == 2
    assert "bad.tsv:3: invalid UTF-8" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_skip_policy_reports_the_count(tmp_path):
    pairs = reverse_pairs(60)
    text = "".join(f"{s}\t{t}\n" for s, t in pairs) + "no tab\n" + "x\t\n"
    (tmp_path / "d.tsv").write_text(text)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(to_dict(tiny_config(tmp_path / "d.tsv"))))
    proc = run(
        "train",
        str(cfg),
        "--out",
        str(tmp_path / "run"),
        "--set",
        "data.on_bad_line=skip",
        "--set",
        "train.epochs=1",
    )
    assert proc.returncode == 0, proc.stderr
    assert "skipped 2" in proc.stderr


def test_unknown_config_key_is_reported(tmp_path):
    proc = run("train", "--set", "model.hiden=3", str(tmp_path / "nope.yaml"))
    assert proc.returncode == 2 and "config file not found" in proc.stderr
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model:\n  hiden: 3\n")
    proc = run("train", str(cfg))
    assert proc.returncode == 2 and "model.hiden: unknown key" in proc.stderr


def test_missing_model_dir(tmp_path):
    proc = run("translate", "--model", str(tmp_path / "none"), stdin="a\n")
    assert proc.returncode == 2 and "not a transduce run" in proc.stderr


def test_translate_jsonl_nbest(trained):
    inputs = ["abc", "", "fedcb", "ba"]
    proc = run(
        "translate",
        "--model",
        str(trained / "run"),
        "--beam",
        "5",
        "--nbest",
        "3",
        "--format",
        "jsonl",
        stdin="".join(s + "\n" for s in inputs),
    )
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["source"] for r in records] == inputs  # one record per line, in order
    empty = records[1]
    assert empty["src_tokens"] == [] and len(empty["hypotheses"]) == 1
    assert empty["hypotheses"][0]["text"] == "" and empty["hypotheses"][0]["tokens"] == []
    for record in records[:1] + records[2:]:
        assert record["src_tokens"] == list(record["source"])  # character tokens
        hyps = record["hypotheses"]
        assert len(hyps) == 3
        scores = [h["score"] for h in hyps]
        assert scores == sorted(scores, reverse=True)
        assert len({tuple(h["tokens"]) for h in hyps}) == 3
        for h in hyps:
            assert h["text"] == "".join(h["tokens"]) and h["logprob"] == h["score"]  # alpha 0
            att = h["attention"]
            assert len(att) == len(h["tokens"])
            assert all(len(row) == len(record["src_tokens"]) for row in att)
            assert all(abs(sum(row) - 1) < 2e-3 for row in att)  # a distribution per token


def test_translate_sampling_is_reproducible_with_a_seed(trained):
    args = (
        "translate",
        "--model",
        str(trained / "run"),
        "--sample",
        "--seed",
        "1",
        "--nbest",
        "2",
        "--format",
        "jsonl",
    )
    first = run(*args, stdin="abc\nfedcb\n")
    second = run(*args, stdin="abc\nfedcb\n")
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    records = [json.loads(line) for line in first.stdout.splitlines()]
    assert [len(r["hypotheses"]) for r in records] == [2, 2]


def test_translate_text_with_beam_prints_one_line_per_input(trained):
    proc = run(
        "translate", "--model", str(trained / "run"), "--beam", "3", stdin="abc\n\nfedcb\nba\n"
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split("\n")
    assert len(lines) == 5 and lines[-1] == ""
    assert lines[1] == "" and all(lines[i] for i in (0, 2, 3))


def test_evaluate_with_beam_reports_speed_and_scores(trained, tmp_path):
    pairs = reverse_pairs(20, seed=9)
    (tmp_path / "src").write_text("".join(s + "\n" for s, _ in pairs))
    (tmp_path / "ref").write_text("".join(t + "\n" for _, t in pairs))
    proc = run(
        "evaluate",
        "--model",
        str(trained / "run"),
        "--src",
        str(tmp_path / "src"),
        "--ref",
        str(tmp_path / "ref"),
        "--beam",
        "3",
    )
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 1
    scores = json.loads(proc.stdout)
    assert scores["n"] == 20
    assert scores["sentences_per_s"] > 0 and scores["tokens_per_s"] > 0
    assert 0 <= scores["bleu"] <= 100 and 0 <= scores["chrf"] <= 100


def test_a_reader_that_leaves_early_gets_no_traceback():
    """`transduce recipes | head -1`: writes after the reader left end quietly (141, as a
    shell reports a command SIGPIPE stopped), not in a BrokenPipeError traceback."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "transduce", "recipes"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # the reader is gone before the first write: always a broken pipe
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 141 and "Traceback" not in err, err
