"""Tokenizers behind one interface: text -> list of token strings -> text.

``char`` and ``word`` live here; subword models (sentencepiece BPE / unigram) plug into
the same interface through :func:`build_tokenizer`.
"""

from __future__ import annotations

import re
from typing import Protocol

# Words, numbers, and any other single non-space character as its own token.
_WORD_RE = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]", re.UNICODE)
_NO_SPACE_BEFORE = set(".,;:!?%)]}»”’…")
_NO_SPACE_AFTER = set("([{«“¿¡")


class Tokenizer(Protocol):
    kind: str

    def encode(self, text: str) -> list[str]: ...

    def decode(self, tokens: list[str]) -> str: ...


class CharTokenizer:
    """Every character (spaces included) is a token, as in the Keras character example."""

    kind = "char"

    def __init__(self, lowercase: bool = False):
        self.lowercase = lowercase

    def encode(self, text: str) -> list[str]:
        return list(text.lower() if self.lowercase else text)

    def decode(self, tokens: list[str]) -> str:
        return "".join(tokens)


class WordTokenizer:
    """Words and punctuation marks; decoding re-attaches punctuation to its neighbour."""

    kind = "word"

    def __init__(self, lowercase: bool = False):
        self.lowercase = lowercase

    def encode(self, text: str) -> list[str]:
        return _WORD_RE.findall(text.lower() if self.lowercase else text)

    def decode(self, tokens: list[str]) -> str:
        out: list[str] = []
        for tok in tokens:
            if out and tok not in _NO_SPACE_BEFORE and out[-1] not in _NO_SPACE_AFTER:
                out.append(" ")
            out.append(tok)
        return "".join(out)


def build_tokenizer(kind: str, lowercase: bool = False) -> Tokenizer:
    if kind == "char":
        return CharTokenizer(lowercase)
    if kind == "word":
        return WordTokenizer(lowercase)
    raise ValueError(f"unknown tokenizer {kind!r} (known: char, word)")
