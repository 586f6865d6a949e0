"""Tasks derived from real text on disk: QA and headline compression from Multi30k captions.

Neither task exists as a data set here, so both are made by fixed rules from the English
Multi30k image captions (``train`` -> train, ``val`` -> valid, ``test_2016_flickr`` ->
test). The captions are real; the questions and headlines are rule-made, and a model
trained on them learns the rule's view of the caption. Both are deterministic.

**QA** (``question``, ``document``, ``answer`` JSONL): the document is the lowercased,
word-tokenized caption; every answer is a span of it. From one caption come several
questions, so the answer depends on the question as much as on the document:

* ``what colour is the shirt ?`` -> ``blue``      (a colour word before a noun)
* ``how many dogs are there ?`` -> ``two``        (a number word before a noun)
* ``who is playing a guitar ?`` -> ``a man in a blue shirt``  (subject of "is/are V-ing")
* ``what is the man doing ?`` -> ``playing``      (short subjects only)

A noun seen with two colours (or two numbers) in one caption asks nothing.

**Headlines** (``caption``, ``headline`` TSV with a header): the caption compressed by
deleting determiners, "is/are", colour, size and age adjectives, and every prepositional
or "wearing" phrase up to the next -ing verb, e.g. ``A man in a blue shirt is standing on a
ladder cleaning a window.`` -> ``man standing cleaning window``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

from transduce.config import data_path
from transduce.data.corpus import read_lines
from transduce.data.tokenizers import WordTokenizer
from transduce.errors import DataError

log = logging.getLogger("transduce.data")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


SPLITS = {"train": "train", "valid": "val", "test": "test_2016_flickr"}
COLOURS = _words("red blue green yellow black white orange pink purple brown gray grey tan")
NUMBERS = _words("two three four five six seven eight nine ten")
DETERMINERS = _words("a an the some his her their its this that these those")
MODIFIERS = COLOURS | _words(
    "little young small large big old older elderly tall short blond blonde dark bright "
    "several many other"
)
PREPOSITIONS = _words(
    "in on at with near by of from into onto under behind while through down up over "
    "across for to around outside inside beside wearing along against during"
)
_NOT_NOUNS = DETERMINERS | MODIFIERS | PREPOSITIONS | NUMBERS | {"and", "or", "is", "are", "t"}
_TOKENIZER = WordTokenizer(lowercase=True)


def caption_tokens(caption: str) -> list[str]:
    return _TOKENIZER.encode(caption)


def _is_noun(token: str) -> bool:
    return token.isalpha() and len(token) > 1 and token not in _NOT_NOUNS


def _modifier_questions(tokens: list[str], words: frozenset, template: str):
    """(question, answer) for each noun preceded by exactly one word of ``words``."""
    seen: dict[str, set[str]] = {}
    for word, noun in pairwise(tokens):
        if word in words and _is_noun(noun):
            seen.setdefault(noun, set()).add(word)
    return [(template.format(noun), next(iter(ws))) for noun, ws in seen.items() if len(ws) == 1]


def _subject_questions(tokens: list[str]) -> list[tuple[str, str]]:
    """ "who is V-ing ...?" -> the subject span; "what is the N doing?" -> the verb."""
    for j, tok in enumerate(tokens[:-1]):
        verb = tokens[j + 1]
        if tok in ("is", "are") and 2 <= j <= 8 and verb.endswith("ing") and len(verb) > 4:
            tail = [t for t in tokens[j + 1 : j + 5] if t.isalpha()]
            out = [(f"who {tok} {' '.join(tail)} ?", " ".join(tokens[:j]))]
            if j == 2 and tokens[0] in DETERMINERS and _is_noun(tokens[1]):
                out.append((f"what {tok} the {tokens[1]} doing ?", verb))
            return out
    return []


def qa_records(caption: str) -> list[dict[str, str]]:
    """Every question the rules ask of one caption (possibly none)."""
    tokens = caption_tokens(caption)
    pairs = (
        _modifier_questions(tokens, COLOURS, "what colour is the {} ?")
        + _modifier_questions(tokens, NUMBERS, "how many {} are there ?")
        + _subject_questions(tokens)
    )
    document = " ".join(tokens)
    return [{"question": q, "document": document, "answer": a} for q, a in pairs]


def headline(caption: str, max_words: int = 8) -> str:
    """The rule-made compression of one caption (see the module docstring); may be ""."""
    out, skipping = [], False
    for tok in caption_tokens(caption):
        if tok in PREPOSITIONS:
            skipping = True
            continue
        if skipping and tok.endswith("ing") and len(tok) > 4:
            skipping = False
        if skipping or tok in DETERMINERS or tok in MODIFIERS or tok in ("is", "are"):
            continue
        if tok.isalpha():
            out.append(tok)
    return " ".join(out[:max_words])


def _captions(split: str) -> list[str]:
    path = data_path(f"${{TRANSDUCE_DATA}}/multi30k/{SPLITS[split]}.en.gz")
    return read_lines(path)


def _write(path: Path, lines: Iterator[str]) -> int:
    """Write ``path`` whole; a file already there is replaced only when it holds what
    this generator writes (a rerun), never a file of the user's or a run's."""
    from transduce.engine.checkpoint import atomic_write_text

    text = list(lines)
    data = "".join(line + "\n" for line in text)
    if path.parent.exists() and not path.parent.is_dir():
        raise DataError(path.parent, None, "--out is a file, not a folder")
    if (path.parent / "config.yaml").exists():
        raise DataError(path.parent, None, "is a transduce run: generate into a folder of its own")
    if path.is_symlink() or path.is_dir() or (path.exists() and path.read_bytes() != data.encode()):
        raise DataError(
            path,
            None,
            "exists and holds something else: nothing was replaced; "
            "remove it or choose another --out",
        )
    atomic_write_text(path, data)
    return len(text)


def write_qa(out: str | Path) -> dict[str, int]:
    """``out/{train,valid,test}.jsonl``; returns the number of records per split."""
    counts = {}
    for split in SPLITS:
        records = (r for c in _captions(split) for r in qa_records(c))
        lines = (json.dumps(r, ensure_ascii=False) for r in records)
        counts[split] = _write(Path(out, f"{split}.jsonl"), lines)
    return counts


def write_headlines(out: str | Path, min_words: int = 2) -> dict[str, int]:
    """``out/{train,valid,test}.tsv`` with the header ``caption<TAB>headline``; captions
    whose headline has fewer than ``min_words`` words are left out."""
    counts = {}
    for split in SPLITS:
        rows = ["caption\theadline"]
        for caption in _captions(split):
            short = headline(caption)
            if len(short.split()) >= min_words:
                rows.append(f"{' '.join(caption.split())}\t{short}")
        counts[split] = _write(Path(out, f"{split}.tsv"), iter(rows)) - 1
    return counts


GENERATORS = {"qa": write_qa, "headlines": write_headlines}
