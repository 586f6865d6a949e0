"""Command-line habits: --version, help on every flag, options checked up front with the
flag named, train's --threads/--device, rounded JSON, evaluate --output and lowercased
BLEU, average naming the steps it averaged."""

import argparse
import json

import pytest
import sacrebleu
import yaml

from tests.helpers import reverse_pairs, tiny_config, write_tsv
from transduce import __version__
from transduce.atomic import pid_space
from transduce.commands.cli import build_parser, main
from transduce.config import data_root, load_config, to_dict
from transduce.data.corpus import read_lines
from transduce.inference.translate import reference_language
from transduce.metrics import bleu_lowercase, bleu_lowercase_moses


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from transduce.tasks.train import train

    root = tmp_path_factory.mktemp("opts")
    tsv = write_tsv(root / "rev.tsv", reverse_pairs(120))
    cfg = tiny_config(tsv, train={"epochs": 3, "valid_every": 6, "keep_checkpoints": 2})
    train(cfg, root / "run")
    return root / "run"


def _error(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"transduce {__version__}"


def test_help_opens_with_a_description_and_every_flag_has_help():
    parser = build_parser()
    assert parser.format_help().splitlines()[2].startswith("transduce trains sequence-to-seq")
    missing = []

    def visit(prefix: str, p: argparse.ArgumentParser) -> None:
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    visit(f"{prefix} {name}".strip(), sub)
            elif not action.help and not isinstance(action, argparse._HelpAction):
                missing.append(f"{prefix} {action.option_strings or action.dest}")

    visit("", parser)
    assert not missing, missing


@pytest.mark.parametrize(
    "argv,flag",
    [
        (["--beam", "0"], "--beam"),
        (["--top-p", "1.5"], "--top-p"),
        (["--top-p", "0"], "--top-p"),
        (["--batch-size", "0"], "--batch-size"),
        (["--nbest", "0"], "--nbest"),
        (["--temperature", "-1"], "--temperature"),
        (["--max-len", "0"], "--max-len"),
        (["--beam", "x"], "--beam"),
    ],
)
def test_bad_values_fail_naming_the_flag(capsys, argv, flag):
    err = _error(capsys, "translate", "--model", "/nonexistent", *argv)
    assert f"argument {flag}" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "argv,words",
    [
        (["--top-p", "0.9"], "--top-p only applies with --sample"),
        (["--temperature", "0.5", "--seed", "1"], "--temperature, --seed only apply"),
        (["--nbest", "3"], "--nbest 3 needs --beam >= 3"),
        (["--sample", "--beam", "4"], "--beam 4 and --sample"),
    ],
)
def test_flags_that_need_each_other_are_checked_before_loading(capsys, argv, words):
    # The model directory does not exist: the flags are checked first.
    assert main(["translate", "--model", "/nonexistent", *argv]) == 2
    err = capsys.readouterr().err
    assert words in err and "not a transduce run" not in err


def test_train_threads_and_device_become_config_values(tmp_path, capsys):
    tsv = write_tsv(tmp_path / "d.tsv", reverse_pairs(40))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(to_dict(tiny_config(tsv, train={"epochs": 1}))))
    out = tmp_path / "run"
    assert main(["train", str(cfg), "--threads", "1", "--device", "cpu", "--out", str(out)]) == 0
    saved = load_config(out / "config.yaml").train
    assert saved.threads == 1 and saved.device == "cpu"
    assert load_config(cfg).train.device == "auto"


def test_jsonl_floats_are_rounded(run_dir, tmp_path, capsys):
    (tmp_path / "in.txt").write_text("abc\nfed\n")
    argv = ["translate", "--model", str(run_dir), "--format", "jsonl", "--input"]
    assert main([*argv, str(tmp_path / "in.txt")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    for line in lines:
        hyp = json.loads(line)["hypotheses"][0]
        values = [v for row in hyp["attention"] for v in row] + [hyp["score"]]
        assert all(len(repr(v).split(".")[-1]) <= 6 for v in values), values[:5]


def test_evaluate_writes_hypotheses_and_lowercased_bleu(run_dir, tmp_path, capsys):
    pairs = reverse_pairs(15, seed=4)
    (tmp_path / "src").write_text("".join(s + "\n" for s, _ in pairs))
    (tmp_path / "ref").write_text("".join(t.upper() + "\n" for _, t in pairs))
    out = tmp_path / "hyp.txt"
    argv = [
        "evaluate",
        "--model",
        str(run_dir),
        "--src",
        str(tmp_path / "src"),
        "--ref",
        str(tmp_path / "ref"),
        "--output",
        str(out),
    ]
    assert main(argv) == 0
    scores = json.loads(capsys.readouterr().out)
    hyps = out.read_text().splitlines()
    assert len(hyps) == 15
    refs = [t.upper() for _, t in pairs]
    expected = sacrebleu.corpus_bleu(hyps, [refs], lowercase=True, tokenize="13a").score
    assert scores["bleu_lc_13a"] == round(expected, 2)
    assert "case:lc" in scores["bleu_lc_signature"] and "tok:13a" in scores["bleu_lc_signature"]


def test_lowercased_bleu_on_a_known_case():
    hyps, refs = ["The cat sat on the mat."], ["the cat sat on the mat ."]
    assert bleu_lowercase(hyps, refs)["bleu_lc_13a"] == 100.0
    cased = sacrebleu.corpus_bleu(["The Cat sat."], [["the cat sat ."]]).score
    assert bleu_lowercase(["The Cat sat."], ["the cat sat ."])["bleu_lc_13a"] > cased


def test_moses_lowercased_bleu_splits_like_moses_not_13a():
    # German "z.B." is one Moses token (a non-breaking prefix) but three 13a tokens; the
    # hypothesis differs from the reference only in case.
    hyp, ref = ["Zwei Hunde, z.B. am Strand."], ["zwei hunde , z.B. am strand ."]
    scores = bleu_lowercase_moses(hyp, ref, "de")
    assert scores["bleu_lc_moses"] == 100.0
    assert "lowercased+moses-de" in scores["bleu_lc_moses_signature"]
    assert bleu_lowercase_moses(["Zwei Katzen am Strand."], ref, "de")["bleu_lc_moses"] < 100
    with pytest.raises(ValueError, match="1 hypotheses but 2 references"):
        bleu_lowercase_moses(hyp, ref * 2, "de")


def test_multi30k_reference_length_matches_the_published_log():
    # Wu et al. (2021) print reflen=12103 for test_2016_flickr German: the Moses tokens of
    # the lowercased reference, which is what bleu_lc_moses counts.
    path = data_root() / "multi30k" / "test_2016_flickr.de.gz"
    if not path.exists():
        pytest.skip(f"{path} not present")
    from sacremoses import MosesTokenizer

    moses = MosesTokenizer(lang="de")
    refs = read_lines(path)
    assert sum(len(moses.tokenize(r.lower(), escape=False)) for r in refs) == 12103


@pytest.mark.parametrize(
    ("name", "lang"),
    [("test_2016_flickr.de.gz", "de"), ("x/val.fr", "fr"), ("refs.txt", "en"), ("refs", "en")],
)
def test_reference_language_from_the_file_name(name, lang):
    assert reference_language(name) == lang


def test_average_names_the_steps(run_dir, capsys):
    # what an average killed while writing left (pid 2**22 + 1: past Linux's pid_max)
    left = run_dir / "averaged" / f".model.safetensors.{2**22 + 1}@{pid_space()}.0123abcd.tmp"
    left.parent.mkdir(exist_ok=True)
    left.write_bytes(b"half")
    assert main(["average", "--model", str(run_dir), "--last", "5"]) == 0
    captured = capsys.readouterr()
    assert "averaged 2 checkpoints (--last 5, but only 2 kept): steps " in captured.err
    assert captured.out.strip().endswith("averaged/model.safetensors")
    assert (run_dir / "averaged" / "model.safetensors").exists()
    assert not left.exists()


def test_decode_options_reject_impossible_values_by_name():
    from transduce import DecodeOptions

    bad = [
        ({"beam": 0}, "beam"),
        ({"top_p": 1.5}, "top_p"),
        ({"batch_size": 0}, "batch_size"),
        ({"temperature": 0}, "temperature"),
    ]
    for kwargs, name in bad:
        with pytest.raises(ValueError, match=f"DecodeOptions.{name}: invalid value"):
            DecodeOptions(**kwargs)
    with pytest.raises(ValueError, match="nbest=3 needs beam >= 3"):
        DecodeOptions(nbest=3)
    assert DecodeOptions(sample=True, nbest=3).nbest == 3


def test_round_floats_reaches_nested_values():
    from transduce.commands.options import round_floats

    out = round_floats({"a": 0.11649999767541885, "b": [1.23456789, {"c": 2}], "d": "x"}, 4)
    assert out == {"a": 0.1165, "b": [1.2346, {"c": 2}], "d": "x"}


@pytest.mark.parametrize(
    "argv",
    [
        ["translate", "--model", "m", "--buffer-size", "-5"],
        ["translate", "--model", "m", "--buffer-size", "99999999999999999999"],
        ["prepare", "c.yaml", "--workers", "0"],
        ["prepare", "c.yaml", "--workers", "100000"],
        ["evaluate", "--model", "m", "--src", "s", "--ref", "r", "--ref-lang", "../../etc"],
    ],
)
def test_flags_that_took_anything_are_checked(argv, capsys):
    # they ran with rc 0 (a negative buffer, 100,000 workers, a path as a language code)
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(argv)
    assert stop.value.code == 2 and "error: argument" in capsys.readouterr().err
