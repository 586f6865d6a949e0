"""What a prepared store is built from: the training corpora as fresh streams per pass,
the validation set, and the identity (size, mtime, SHA-256) of every input file.

:mod:`transduce.data.prepare` reads these several times (sample, count, encode) without
holding a corpus in memory; the cache compares :func:`describe_inputs` with a store's
manifest to know whether the store is still current.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transduce.config import CorpusConfig, DataConfig, data_path
from transduce.data.corpus import ReadReport
from transduce.data.pipeline import _read, load_texts
from transduce.data.store import StoreError, sha256_file
from transduce.data.streams import stream_line_pairs, stream_tsv


@dataclass
class Corpus:
    """One training corpus: a fresh stream of its pairs per pass, and the last pass's report."""

    open: Callable[[ReadReport], Iterator[tuple[str, str]]]
    name: str
    weight: float = 1.0
    report: ReadReport = field(default_factory=lambda: ReadReport(""))

    def pairs(self) -> Iterator[tuple[str, str]]:
        self.report = ReadReport(self.name)
        return self.open(self.report)


def _stream(cfg: DataConfig, path: str, src: str, tgt: str) -> Corpus:
    """A corpus read as a stream (tsv and line pairs)."""
    kw = {"on_bad_line": cfg.on_bad_line, "limit": cfg.limit}
    if cfg.format == "tsv":
        name = os.fspath(data_path(path))
        return Corpus(
            lambda r: stream_tsv(data_path(path), cfg.src_col, cfg.tgt_col, **kw, report=r), name
        )
    name = f"{data_path(src)} + {data_path(tgt)}"
    return Corpus(lambda r: stream_line_pairs(data_path(src), data_path(tgt), **kw, report=r), name)


def _listed(src: list[str], tgt: list[str], report: ReadReport) -> Corpus:
    def pairs(r: ReadReport) -> Iterator[tuple[str, str]]:
        r.__dict__.update(report.__dict__)
        return zip(src, tgt, strict=True)

    return Corpus(pairs, report.path)


def sources(cfg: DataConfig) -> tuple[list[Corpus], Corpus]:
    """(training corpora, validation) of a data config, streamed where the format allows."""
    has_valid = cfg.valid if cfg.format != "pairs" else (cfg.valid_src and cfg.valid_tgt)
    if not isinstance(cfg.train, str):
        if cfg.format not in ("tsv", "pairs") or cfg.src_fields:
            raise ValueError("data.train as a list of corpora needs data.format tsv or pairs")
        if not has_valid:
            raise ValueError(
                "data.train as a list of corpora needs a validation file "
                "(data.valid, or data.valid_src and data.valid_tgt)"
            )
        corpora = [_corpus(cfg, c) for c in cfg.train]
    elif has_valid and cfg.format in ("tsv", "pairs") and not cfg.src_fields:
        corpora = [_stream(cfg, cfg.train, cfg.train_src, cfg.train_tgt)]
    else:  # read whole, as the in-memory path does (validation split off by source)
        texts = load_texts(cfg)
        train = _listed(texts.train_src, texts.train_tgt, texts.reports[0])
        valid = _listed(texts.valid_src, texts.valid_tgt, texts.reports[-1])
        return [train], valid
    valid = _read(cfg, cfg.valid, cfg.valid_src, cfg.valid_tgt, None)
    return corpora, _listed(valid.src, valid.tgt, valid.report)


def _corpus(cfg: DataConfig, c: CorpusConfig) -> Corpus:
    if c.weight <= 0:
        raise ValueError(f"data.train: weight {c.weight} of {c.path or c.src} must be > 0")
    if cfg.format == "tsv" and not c.path:
        raise ValueError("data.train: with data.format tsv, each corpus needs a path")
    if cfg.format == "pairs" and not (c.src and c.tgt):
        raise ValueError("data.train: with data.format pairs, each corpus needs src and tgt")
    corpus = _stream(cfg, c.path, c.src, c.tgt)
    corpus.weight = c.weight
    return corpus


def input_files(cfg: DataConfig) -> list[tuple[str, Path]]:
    """(role, path) of every file a store of ``cfg`` is built from (folders expanded)."""
    roles: list[tuple[str, str]] = []
    if isinstance(cfg.train, str):
        roles += [("train", cfg.train), ("train_src", cfg.train_src), ("train_tgt", cfg.train_tgt)]
    else:
        for i, c in enumerate(cfg.train):
            roles += [
                (f"train[{i}].path", c.path),
                (f"train[{i}].src", c.src),
                (f"train[{i}].tgt", c.tgt),
            ]
    roles += [("valid", cfg.valid), ("valid_src", cfg.valid_src), ("valid_tgt", cfg.valid_tgt)]
    out = []
    for role, raw in roles:
        if not raw:
            continue
        path = data_path(raw)
        if path.is_dir():  # chatterbot: a folder of YAML files
            out += [(f"{role}/{p.name}", p) for p in sorted(path.glob("*.yml"))]
        else:
            out.append((role, path))
    return out


def describe_inputs(cfg: DataConfig, known: list[dict] | None = None) -> list[dict[str, Any]]:
    """Size, mtime and SHA-256 of each input; a file whose size and mtime match ``known``
    (a manifest's) is not hashed again, as make trusts timestamps."""
    cache = {(k["path"], k["size"], k["mtime_ns"]): k["sha256"] for k in known or []}
    files = input_files(cfg)
    if not any(role.startswith("train") for role, _ in files):
        raise StoreError("data.train: not set: a store is built from the training corpus")
    out = []
    for role, path in files:
        try:
            st = path.stat()
        except FileNotFoundError:
            raise StoreError(f"{path}: file not found (data.{role})") from None
        if not stat.S_ISREG(st.st_mode):  # /dev/zero would be hashed for ever, a FIFO drained
            raise StoreError(
                f"{path}: not a regular file (data.{role}): a store hashes each input, then "
                "reads it; give a file (training without data.prepared reads a stream once)"
            )
        sha = cache.get((os.fspath(path), st.st_size, st.st_mtime_ns)) or sha256_file(path)
        out.append(
            {
                "role": role,
                "path": os.fspath(path),
                "size": st.st_size,
                "mtime_ns": st.st_mtime_ns,
                "sha256": sha,
            }
        )
    return out
