"""Readers of named-field records: JSONL, TSV with a header, chatterbot YAML."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from transduce.config import Config, from_dict
from transduce.data.corpus import DataError
from transduce.data.pipeline import TextPipeline, load_texts
from transduce.data.records import (
    SEP,
    SEP_ID,
    read_chatterbot,
    read_jsonl,
    read_named_tsv,
    split_fields,
)

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("TRANSDUCE_DATA", REPO.parent / "shared" / "data"))
CHATTERBOT = DATA / "dialog" / "chatterbot-corpus-english"
FIELDS = ("question", "document")


def jsonl(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def record(**kw) -> str:
    return json.dumps({"question": "q?", "document": "some doc", "answer": "doc", **kw})


def test_jsonl_joins_the_source_fields_in_the_configured_order(tmp_path):
    path = jsonl(tmp_path / "a.jsonl", record(question="who\tis", document="a\nb  c"), "")
    data = read_jsonl(path, FIELDS, "answer")
    assert data.src == ["who is\ta b c"]  # tabs and newlines inside a field become spaces
    assert split_fields(data.src[0], 2) == ["who is", "a b c"]
    assert data.tgt == ["doc"]


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        ('{"question": "q", "document": ', "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"question": "q", "answer": "a"}', "no field 'document'"),
        (record(answer=""), "field 'answer' is empty"),
        (record(document=["x"]), "field 'document' is a list"),
    ],
)
def test_jsonl_errors_name_file_and_line(tmp_path, bad, problem):
    path = jsonl(tmp_path / "bad.jsonl", record(), bad, record())
    with pytest.raises(DataError, match=problem) as err:
        read_jsonl(path, FIELDS, "answer")
    assert str(err.value).startswith(f"{path}:2: ")
    skipped = read_jsonl(path, FIELDS, "answer", on_bad_line="skip")
    assert len(skipped) == 2 and skipped.report.n_skipped == 1
    assert skipped.report.lines == skipped.report.kept + skipped.report.n_skipped


def test_named_tsv_reads_columns_by_header_name(tmp_path):
    path = tmp_path / "a.tsv"
    path.write_text("answer\tdocument\textra\tquestion\nblue\ta blue car\tx\twhat colour ?\n")
    data = read_named_tsv(path, FIELDS, "answer")
    assert data.src == ["what colour ?\ta blue car"] and data.tgt == ["blue"]


def test_named_tsv_errors_name_file_and_line(tmp_path):
    path = tmp_path / "a.tsv"
    path.write_text("question\tanswer\nq\ta\n")
    with pytest.raises(DataError, match=r":1: header has no column 'document'"):
        read_named_tsv(path, FIELDS, "answer")
    path.write_text("question\tdocument\tanswer\nq\td\ta\nq\td\n\tdoc\ta\n")
    with pytest.raises(DataError, match=r"a\.tsv:3: wrong column count"):
        read_named_tsv(path, FIELDS, "answer")
    skipped = read_named_tsv(path, FIELDS, "answer", on_bad_line="skip")
    assert skipped.report.skipped == {"wrong column count": 1, "empty question": 1}


def write_yaml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_chatterbot_pairs_turns_and_reports_the_malformed_entry_with_its_file(tmp_path):
    write_yaml(tmp_path / "a.yml", "conversations:\n- - Hi\n  - Hello\n  - How are you?\n")
    write_yaml(
        tmp_path / "b.yml",
        "categories: [x]\nconversations:\n- - What?\n  - That.\n- Not a list?\n  - '22'\n",
    )
    data = read_chatterbot(tmp_path)
    assert list(zip(data.src, data.tgt, strict=True)) == [
        ("Hi", "Hello"),
        ("Hello", "How are you?"),
        ("What?", "That."),
    ]
    assert data.report.skipped == {"malformed conversation in b.yml": 1}
    assert data.report.examples[0][0] == 5  # the line of the bad entry
    assert "kept 2 of 3 conversations; skipped 1" in data.report.summary()
    with pytest.raises(DataError, match=r"b\.yml:5: expected a list of at least two turns"):
        read_chatterbot(tmp_path, on_bad_line="error")


def test_chatterbot_bad_yaml_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="not valid YAML"):
        read_chatterbot(write_yaml(tmp_path / "x.yml", "conversations: [a\n"))
    with pytest.raises(DataError, match="'conversations' list"):
        read_chatterbot(write_yaml(tmp_path / "y.yml", "- a\n"))


@pytest.mark.skipif(not CHATTERBOT.is_dir(), reason="chatterbot corpus not available")
def test_the_real_corpus_has_one_malformed_entry_in_trivia():
    data = read_chatterbot(CHATTERBOT)
    assert data.report.skipped == {"malformed conversation in trivia.yml": 1}
    assert len(data) > 2000


def test_pipeline_packs_fields_with_a_separator(tmp_path):
    path = jsonl(tmp_path / "t.jsonl", *(record(question=f"q{i}", answer="doc") for i in range(9)))
    cfg = from_dict(
        Config,
        {
            "data": {
                "format": "jsonl",
                "train": str(path),
                "src_fields": list(FIELDS),
                "tgt_field": "answer",
                "src_tokenizer": "word",
                "tgt_tokenizer": "word",
            }
        },
    )
    texts = load_texts(cfg.data)
    pipe = TextPipeline.build(cfg.data, texts.train_src, texts.train_tgt, tmp_path)
    assert pipe.fields == 2 and pipe.src_vocab.itos[SEP_ID] == SEP
    ids = pipe.encode(["q1\tsome doc"]).src.pad([0])[0].tolist()
    assert ids[1] == SEP_ID and ids.count(SEP_ID) == 1 and len(ids) == 4
    assert pipe.src_tokens("q1\tsome doc") == ["q1", SEP, "some", "doc"]
    with pytest.raises(ValueError, match="expected 2 tab-separated input fields"):
        pipe.encode(["only one field"])
