"""QA and headline tasks derived from captions: answers are spans, rules as documented."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from transduce.data.derived import caption_tokens, headline, qa_records

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("TRANSDUCE_DATA", REPO.parent / "shared" / "data"))
CAPTIONS = DATA / "multi30k" / "val.en.gz"


def test_the_documented_examples():
    caption = "A man in a blue shirt is standing on a ladder cleaning a window."
    assert headline(caption) == "man standing cleaning window"
    asked = {r["question"]: r["answer"] for r in qa_records(caption)}
    assert asked == {
        "what colour is the shirt ?": "blue",
        "who is standing on a ladder ?": "a man in a blue shirt",
    }
    two = {r["question"]: r["answer"] for r in qa_records("Two dogs are running in the snow.")}
    assert two["how many dogs are there ?"] == "two"
    assert two["who are running in the snow ?"] == "two dogs"
    one = {r["question"]: r["answer"] for r in qa_records("A dog is running in the snow.")}
    assert one["what is the dog doing ?"] == "running"


def test_a_noun_with_two_colours_asks_nothing():
    records = qa_records("A red car and a blue car are parked near a white house.")
    assert [r["question"] for r in records if "colour" in r["question"]] == [
        "what colour is the house ?"
    ]


@pytest.mark.skipif(not CAPTIONS.exists(), reason="Multi30k not available")
def test_every_answer_is_a_span_of_its_document():
    with gzip.open(CAPTIONS, "rt", encoding="utf-8") as f:
        captions = [line.strip() for line in f][:300]
    records = [r for c in captions for r in qa_records(c)]
    assert len(records) > 200
    for r in records:
        assert f" {r['answer']} " in f" {r['document']} "
        assert r["document"] == " ".join(r["document"].split())
    for c in captions:
        assert set(headline(c).split()) <= set(caption_tokens(c))
