"""Tokenizers behind one interface: text -> list of token strings -> text.

``char``, ``word``, and sentencepiece subwords (``bpe`` / ``unigram``, trained from the
training data by :func:`train_sentencepiece`), all built by :func:`build_tokenizer`.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable
from pathlib import Path
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


class SentencePieceTokenizer:
    """Subword pieces from a trained sentencepiece model (BPE or unigram; Sennrich et al.
    2016, Kudo 2018). Decoding joins the pieces back into detokenized text."""

    def __init__(self, kind: str, model_file: str | os.PathLike, lowercase: bool = False):
        import sentencepiece as spm

        if not Path(model_file).is_file():
            raise FileNotFoundError(f"{model_file}: sentencepiece model not found")
        self.kind, self.lowercase = kind, lowercase
        self.sp = spm.SentencePieceProcessor(model_file=str(model_file))

    def encode(self, text: str) -> list[str]:
        return self.sp.encode(text.lower() if self.lowercase else text, out_type=str)

    def decode(self, tokens: list[str]) -> str:
        return self.sp.decode_pieces(list(tokens))


SUBWORD_KINDS = ("bpe", "unigram")


def train_sentencepiece(
    texts: Iterable[str],
    kind: str,
    vocab_size: int,
    model_file: str | os.PathLike,
    lowercase: bool = False,
    sample: int = 1_000_000,
    seed: int = 1234,
) -> None:
    """Train a sentencepiece model on ``texts`` and write ``model_file`` atomically.

    ``texts`` is read once, as a stream: sentencepiece keeps a seeded reservoir sample of
    ``sample`` sentences (``input_sentence_size`` + ``shuffle_input_sentence``), so memory
    is bounded by the sample, not the corpus; a corpus within the sample is used whole, in
    order, as before. BPE trains on every core (its pieces do not depend on the thread
    count, checked on Multi30k); unigram on one thread, since its EM sums do.
    ``hard_vocab_limit=False`` lets a small corpus end with fewer pieces than asked for.
    """
    import sentencepiece as spm

    from transduce.engine.checkpoint import atomic_write_bytes

    spm.set_random_generator_seed(seed)
    threads = min(os.cpu_count() or 1, 16) if kind == "bpe" else 1
    model = io.BytesIO()  # no model_prefix: a temporary path would be recorded in the model
    spm.SentencePieceTrainer.train(
        sentence_iterator=(t.lower() if lowercase else t for t in texts),
        model_writer=model,
        model_type=kind,
        vocab_size=vocab_size,
        character_coverage=1.0,
        hard_vocab_limit=False,
        bos_id=-1,
        eos_id=-1,
        unk_id=0,
        num_threads=threads,
        input_sentence_size=sample,
        shuffle_input_sentence=True,
        minloglevel=2,
    )
    Path(model_file).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(model_file, model.getvalue())


def build_tokenizer(
    kind: str, lowercase: bool = False, model_file: str | os.PathLike | None = None
) -> Tokenizer:
    if kind == "char":
        return CharTokenizer(lowercase)
    if kind == "word":
        return WordTokenizer(lowercase)
    if kind in SUBWORD_KINDS:
        if model_file is None:
            raise ValueError(f"a {kind} tokenizer needs a trained sentencepiece model file")
        return SentencePieceTokenizer(kind, model_file, lowercase)
    raise ValueError(f"unknown tokenizer {kind!r} (known: char, word, bpe, unigram)")
