"""From the data config to numericalized training data, and back to text.

:class:`TextPipeline` holds the tokenizers and vocabularies of a run: it turns text into
:class:`ParallelData` and output ids back into text. It is saved with the model.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from transduce.config import DataConfig, data_path
from transduce.data.batches import ParallelData
from transduce.data.corpus import Parallel, read_line_pairs, read_tsv
from transduce.data.records import (
    pack_fields,
    read_chatterbot,
    read_jsonl,
    read_named_tsv,
    split_fields,
    with_separator,
)
from transduce.data.splits import split_by_source, split_tail
from transduce.data.tokenizers import (
    SUBWORD_KINDS,
    Tokenizer,
    build_tokenizer,
    train_sentencepiece,
)
from transduce.data.vocab import Vocab

log = logging.getLogger("transduce.data")


@dataclass
class TextSplits:
    train_src: list[str]
    train_tgt: list[str]
    valid_src: list[str]
    valid_tgt: list[str]
    reports: tuple = ()  # the ReadReports of the files read (train, then valid if any)


def _read(cfg: DataConfig, tsv: str, src: str, tgt: str, limit: int | None) -> Parallel:
    named = _read_named(cfg, tsv, limit)
    if named is not None:
        return named
    if cfg.format == "tsv":
        if not tsv:
            raise ValueError("data: format 'tsv' needs data.train (and optionally data.valid)")
        return read_tsv(
            data_path(tsv), cfg.src_col, cfg.tgt_col, on_bad_line=cfg.on_bad_line, limit=limit
        )
    if not (src and tgt):
        raise ValueError("data: format 'pairs' needs data.train_src and data.train_tgt")
    return read_line_pairs(data_path(src), data_path(tgt), on_bad_line=cfg.on_bad_line, limit=limit)


def _read_named(cfg: DataConfig, path: str, limit: int | None) -> Parallel | None:
    """Records with named fields (jsonl, tsv with a header) or chatterbot YAML; None for the
    classic formats."""
    if cfg.format not in ("jsonl", "chatterbot") and not cfg.src_fields:
        return None
    if cfg.format == "pairs":
        raise ValueError("data.src_fields needs data.format jsonl or tsv (with a header line)")
    if not path:
        raise ValueError(
            f"data: format {cfg.format!r} needs data.train (and optionally data.valid)"
        )
    if cfg.format == "chatterbot":
        return read_chatterbot(data_path(path), on_bad_line=cfg.on_bad_line, limit=limit)
    reader = read_jsonl if cfg.format == "jsonl" else read_named_tsv
    return reader(
        data_path(path), cfg.src_fields, cfg.tgt_field, on_bad_line=cfg.on_bad_line, limit=limit
    )


def read_split(cfg: DataConfig, path: str) -> Parallel:
    """One more file of the run's kind (a test set): jsonl, named tsv, chatterbot or tsv."""
    if cfg.format == "pairs":
        raise ValueError("data.format 'pairs': score the two files with transduce evaluate")
    return _read(cfg, path, "", "", None)


def load_texts(cfg: DataConfig) -> TextSplits:
    """Read training (and validation) text; split off validation when no file is given."""
    if not isinstance(cfg.train, str):
        raise ValueError(
            "data.train lists corpora: they are read through a prepared store "
            "(data.prepared: auto, or transduce prepare)"
        )
    train = _read(cfg, cfg.train, cfg.train_src, cfg.train_tgt, cfg.limit)
    has_valid = cfg.valid if cfg.format != "pairs" else (cfg.valid_src and cfg.valid_tgt)
    if has_valid:
        valid = _read(cfg, cfg.valid, cfg.valid_src, cfg.valid_tgt, None)
        return TextSplits(train.src, train.tgt, valid.src, valid.tgt, (train.report, valid.report))
    if cfg.split == "tail":
        tr, va = split_tail(len(train.src), cfg.valid_fraction)
    else:
        tr, va = split_by_source(train.src, cfg.valid_fraction, cfg.split_seed)
    if not va:  # validation on nothing would report a loss of 0 and pick "best" from it
        raise ValueError(
            f"data.valid_fraction={cfg.valid_fraction} leaves no validation pairs out of "
            f"{len(train.src)}; give data.valid (a file) or a fraction above 0"
        )
    pick = lambda xs, idx: [xs[i] for i in idx]  # noqa: E731
    return TextSplits(
        pick(train.src, tr),
        pick(train.tgt, tr),
        pick(train.src, va),
        pick(train.tgt, va),
        (train.report,),
    )


class TextPipeline:
    """Tokenizers + vocabularies for one run."""

    def __init__(
        self,
        src_tok: Tokenizer,
        tgt_tok: Tokenizer,
        src_vocab: Vocab,
        tgt_vocab: Vocab,
        fields: int = 1,
    ):
        self.src_tok, self.tgt_tok = src_tok, tgt_tok
        self.src_vocab, self.tgt_vocab = src_vocab, tgt_vocab
        self.fields = fields  # > 1: sources are tab-joined fields, packed with <sep> ids

    @classmethod
    def build(
        cls, cfg: DataConfig, src_texts: list[str], tgt_texts: list[str], run_dir: Path
    ) -> TextPipeline:
        """Train subword models (if any) into ``run_dir``, then build the vocabularies."""
        fields = n_fields(cfg)
        if fields > 1:  # tokenizers and vocabulary see each field on its own
            src_texts = [f for text in src_texts for f in split_fields(text, fields)]
        for side, kind, texts in _subword_sides(cfg, src_texts, tgt_texts):
            # Said before the silent part: a large corpus takes tens of seconds here.
            log.info(
                "training the %s sentencepiece model (%s) on %s sentences",
                side,
                kind,
                f"{min(len(texts), spm_sample(cfg, side)):,}",
            )
            train_sentencepiece(
                texts,
                kind,
                cfg.vocab_size,
                run_dir / f"spm.{side}.model",
                cfg.lowercase,
                spm_sample(cfg, side),
                cfg.split_seed,
            )
        src_tok, tgt_tok = _tokenizers(cfg, run_dir)
        src_vocab = Vocab.build(map(src_tok.encode, src_texts), cfg.min_freq, cfg.max_vocab)
        tgt_vocab = Vocab.build(map(tgt_tok.encode, tgt_texts), cfg.min_freq, cfg.max_vocab)
        if fields > 1:
            src_vocab = with_separator(src_vocab)
        return cls(src_tok, tgt_tok, src_vocab, tgt_vocab, fields)

    def save(self, run_dir: str | os.PathLike) -> None:
        self.src_vocab.save(Path(run_dir, "vocab.src.json"))
        self.tgt_vocab.save(Path(run_dir, "vocab.tgt.json"))

    @classmethod
    def load(cls, cfg: DataConfig, run_dir: str | os.PathLike) -> TextPipeline:
        src_tok, tgt_tok = _tokenizers(cfg, Path(run_dir))
        return cls(
            src_tok,
            tgt_tok,
            Vocab.load(Path(run_dir, "vocab.src.json")),
            Vocab.load(Path(run_dir, "vocab.tgt.json")),
            n_fields(cfg),
        )

    def encode(self, src: list[str], tgt: list[str] | None = None) -> ParallelData:
        if len(src) >= 100_000:  # tens of seconds: say so (transduce prepare does it once)
            log.info("encoding %s pairs (transduce prepare would do this once)", f"{len(src):,}")
        src_ids = [self.src_vocab.encode(self.src_tokens(s)) for s in src]
        tgt_ids = (
            None if tgt is None else [self.tgt_vocab.encode(self.tgt_tok.encode(t)) for t in tgt]
        )
        return ParallelData(src_ids, tgt_ids)

    def decode(self, ids) -> str:
        return self.tgt_tok.decode(self.tgt_vocab.decode(ids))

    def src_tokens(self, text: str) -> list[str]:
        """Source tokens; several fields are packed as ``f1 <sep> f2 ...``."""
        return pack_fields(self.src_tok.encode, text, self.fields)


def n_fields(cfg: DataConfig) -> int:
    """Number of source fields a model of this data reads (1 for the classic formats)."""
    return max(len(cfg.src_fields), 1)


def spm_sample(cfg: DataConfig, side: str) -> int:
    """Sentences sentencepiece samples: ``data.spm_sample`` per side (both for a joint model)."""
    return cfg.spm_sample * (2 if side == "joint" else 1)


def _subword_sides(cfg: DataConfig, src_texts: list[str], tgt_texts: list[str]):
    """(side name, kind, texts) for each sentencepiece model to train: one joint model on
    both sides' text when ``joint_vocab``, else one per subword side."""
    src_kind, tgt_kind = cfg.src_tokenizer, cfg.tgt_tokenizer
    if cfg.joint_vocab:
        if src_kind != tgt_kind or src_kind not in SUBWORD_KINDS:
            raise ValueError("data.joint_vocab needs the same subword tokenizer on both sides")
        return [("joint", src_kind, src_texts + tgt_texts)]
    sides = [("src", src_kind, src_texts), ("tgt", tgt_kind, tgt_texts)]
    return [side for side in sides if side[1] in SUBWORD_KINDS]


def _tokenizers(cfg: DataConfig, run_dir: Path) -> tuple[Tokenizer, Tokenizer]:
    def model(side: str) -> Path:
        return run_dir / ("spm.joint.model" if cfg.joint_vocab else f"spm.{side}.model")

    return (
        build_tokenizer(cfg.src_tokenizer, cfg.lowercase, model("src")),
        build_tokenizer(cfg.tgt_tokenizer, cfg.lowercase, model("tgt")),
    )


def length_keep(data: ParallelData, cfg: DataConfig) -> np.ndarray:
    """Which pairs fit ``max_src_len`` / ``max_tgt_len`` (tokens per side; None: no limit)."""
    keep = np.ones(len(data), dtype=bool)
    if cfg.max_src_len is not None:
        keep &= data.src.lengths <= cfg.max_src_len
    if cfg.max_tgt_len is not None and data.tgt is not None:
        keep &= data.tgt.lengths <= cfg.max_tgt_len
    return keep


def filter_lengths(data: ParallelData, cfg: DataConfig, name: str) -> ParallelData:
    """Drop pairs longer than ``max_src_len`` / ``max_tgt_len``; the count is reported per
    split (``name``), and a split left empty by the limits is an error."""
    keep = length_keep(data, cfg)
    dropped = int((~keep).sum())
    if not dropped:
        return data
    log.warning(
        "%s: dropped %d of %d pairs longer than data.max_src_len=%s / data.max_tgt_len=%s tokens",
        name,
        dropped,
        len(data),
        cfg.max_src_len,
        cfg.max_tgt_len,
    )
    if dropped == len(data):
        limits = f"data.max_src_len={cfg.max_src_len} / data.max_tgt_len={cfg.max_tgt_len}"
        raise ValueError(f"{name}: every pair is longer than {limits} tokens")
    return data.subset(np.nonzero(keep)[0])
