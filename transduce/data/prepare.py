"""``transduce prepare``: read the raw corpora once and write a prepared store
(:mod:`transduce.data.store`), in parallel and in bounded memory.

Three passes over the training text, each a stream of chunks of ``chunk`` pairs: sentencepiece
trains on a seeded sample of it (its own reservoir sampling and threads), N worker processes
count tokens per chunk for the vocabularies, then encode each chunk to ids. Chunks are cut
by position, never by the number of workers, and their results are written in order, so the
store is byte-identical for any N; memory holds a few chunks per worker, not the corpus.

A training file read whole is the exception: splitting validation off by unique source
(no ``data.valid``) needs every source at once, as the in-memory path does.
"""

from __future__ import annotations

import errno
import json
import logging
import multiprocessing as mp
import os
import re
import secrets
import shutil
import sys
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from itertools import chain, islice
from pathlib import Path
from typing import Any

import numpy as np

from transduce.atomic import OWNER, owner, remove_dead
from transduce.config import DataConfig
from transduce.data.pipeline import (
    TextPipeline,
    _tokenizers,
    n_fields,
    spm_sample,
)
from transduce.data.records import split_fields, with_separator
from transduce.data.sources import Corpus, describe_inputs, sources
from transduce.data.store import (
    FORMAT,
    SplitWriter,
    Store,
    StoreError,
    finish,
    settings,
    store_key,
)
from transduce.data.tokenizers import SUBWORD_KINDS, train_sentencepiece
from transduce.data.vocab import Vocab
from transduce.locks import exclusive

log = logging.getLogger("transduce.data")
CHUNK = 20_000  # pairs per task: a few MB of text, enough to amortise the hand-over


# ------------------------------------------------------------------ workers

_WORKER: dict[str, Any] = {}


def _setup(cfg: DataConfig, folder: str, vocab: bool) -> None:
    """Worker initializer: the tokenizers (and, for encoding, the vocabularies)."""
    _WORKER["cfg"], _WORKER["fields"] = cfg, n_fields(cfg)
    _WORKER["toks"] = _tokenizers(cfg, Path(folder))
    _WORKER["pipeline"] = TextPipeline.load(cfg, folder) if vocab else None


def _count(chunk: tuple[int, list[str], list[str]]) -> tuple[Counter, Counter]:
    """Token counts of a chunk, as :meth:`TextPipeline.build` counts them."""
    _, src, tgt = chunk
    (src_tok, tgt_tok), fields = _WORKER["toks"], _WORKER["fields"]
    if fields > 1:
        src = [f for text in src for f in split_fields(text, fields)]
    return (
        Counter(t for s in src for t in src_tok.encode(s)),
        Counter(t for s in tgt for t in tgt_tok.encode(s)),
    )


def _encode(chunk: tuple[int, list[str], list[str]]) -> tuple[int, tuple, tuple]:
    """A chunk as (corpus, (flat src ids, lengths), (flat tgt ids, lengths)), int32."""
    k, src, tgt = chunk
    data = _WORKER["pipeline"].encode(src, tgt)
    return (
        k,
        (
            data.src.data[: data.src.lengths.sum()].astype(np.int32),
            data.src.lengths.astype(np.int32),
        ),
        (
            data.tgt.data[: data.tgt.lengths.sum()].astype(np.int32),
            data.tgt.lengths.astype(np.int32),
        ),
    )


def _chunks(corpora: list[Corpus], size: int) -> Iterator[tuple[int, list[str], list[str]]]:
    for k, corpus in enumerate(corpora):
        pairs = corpus.pairs()
        while block := list(islice(pairs, size)):
            yield k, [s for s, _ in block], [t for _, t in block]


def _ordered(fn, items: Iterable, workers: int, init: tuple) -> Iterator:
    """``map(fn, items)`` on ``workers`` processes, in order, with at most two chunks per
    worker in flight (Pool.imap would read the whole input ahead)."""
    if workers <= 1:
        _setup(*init)
        yield from map(fn, items)
        return
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    with ctx.Pool(workers, initializer=_setup, initargs=init) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.apply_async(fn, (item,)))
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


class Progress:
    """A line on stderr every few seconds: what is done, how many pairs, how long."""

    def __init__(self, enabled: bool):
        self.enabled, self.start, self.last = enabled, time.perf_counter(), 0.0

    def say(self, stage: str, pairs: int = 0, force: bool = False) -> None:
        now = time.perf_counter()
        if self.enabled and (force or now - self.last >= 2.0):
            count = f" {pairs:,} pairs" if pairs else ""
            print(
                f"prepare: {stage}{count} ({now - self.start:.0f} s)", file=sys.stderr, flush=True
            )
            self.last = now


# ------------------------------------------------------------------ building


def prepare(
    cfg: DataConfig,
    out: str | os.PathLike,
    workers: int = 1,
    chunk: int = CHUNK,
    progress: bool = True,
    inputs: list[dict[str, Any]] | None = None,
) -> Store:
    """Build the store of ``cfg`` into the new folder ``out`` (written into a temporary
    sibling, then renamed). An existing store of the same inputs and settings is reused;
    any other existing ``out`` is refused, never overwritten. ``inputs``: what
    :func:`describe_inputs` said of them, if the caller asked already."""
    out = Path(out)
    inputs = inputs or describe_inputs(cfg)
    data = settings(cfg)
    key = store_key(data, inputs)
    if out.exists():
        return _existing(out, cfg, key)
    out.parent.mkdir(parents=True, exist_ok=True)
    # One build at a time: a sweep's jobs starting together with data.prepared: auto would
    # each build the same store, a corpus' worth of CPU and disk each; the others wait,
    # then use it. (Without locks on the file system each builds; the last to finish
    # uses the first one's, below.)
    with exclusive(out.parent / f".{out.name}.lock", f"prepare: {out}: building it"):
        if out.exists():  # built by the prepare this one waited for
            return _existing(out, cfg, key)
        return _build_into(out, cfg, key, data, inputs, workers, chunk, progress)


def _build_into(out: Path, cfg: DataConfig, key: str, data, inputs, workers, chunk, progress):
    remove_stale(out)
    tmp = out.parent / f".{out.name}.tmp-{owner()}.{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        manifest = {"format": FORMAT, "key": key, "data": data, "inputs": inputs}
        manifest["splits"] = _build(cfg, tmp, max(1, workers), chunk, Progress(progress))
        finish(tmp, out, manifest)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)  # ours: made just above
        raced = isinstance(err, OSError) and err.errno in (errno.ENOTEMPTY, errno.EEXIST)
        if not (raced and out.is_dir()):
            raise
        log.info("%s: prepared meanwhile by another process", out)  # the rename lost a race
        return _existing(out, cfg, key)
    return Store.open(out)


def _existing(out: Path, cfg: DataConfig, key: str) -> Store:
    """The store already at ``out``, when it is one of the same inputs and settings; any
    other folder or file there is refused as not this command's to replace."""
    if not (out / "manifest.json").is_file():
        raise StoreError(f"{out}: exists and is not a prepared store; choose another --out")
    store = Store.open(out)
    if store.manifest.get("key") != key:
        store.check(cfg)
        raise StoreError(f"{out}: holds a store of other input files; choose another --out")
    log.info("%s: already prepared (same inputs and settings)", out)
    return store


def remove_stale(out: Path) -> list[Path]:
    """The temporary folders beside ``out`` (``.NAME.tmp-OWNER.HEX``) of a prepare killed
    outright (a corpus' worth of ids each): real folders only, by
    :func:`transduce.atomic.remove_dead`."""
    pattern = re.compile(rf"\.{re.escape(out.name)}\.tmp-{OWNER}\.[0-9a-f]{{8}}")
    return remove_dead(out.parent, pattern, folders_only=True)


def _build(cfg: DataConfig, tmp: Path, workers: int, chunk: int, say: Progress) -> dict:
    corpora, valid = sources(cfg)
    _train_subwords(cfg, corpora, tmp, say)
    src_counts, tgt_counts = Counter(), Counter()
    counts = _ordered(_count, _chunks(corpora, chunk), workers, (cfg, str(tmp), False))
    for seen, (src, tgt) in enumerate(counts, 1):
        src_counts.update(src)
        tgt_counts.update(tgt)
        say.say(f"counting tokens: {seen:,} chunks of {chunk:,} pairs")
    src_vocab = Vocab.from_counts(src_counts, cfg.min_freq, cfg.max_vocab)
    tgt_vocab = Vocab.from_counts(tgt_counts, cfg.min_freq, cfg.max_vocab)
    if n_fields(cfg) > 1:
        src_vocab = with_separator(src_vocab)
    src_vocab.save(tmp / "vocab.src.json")
    tgt_vocab.save(tmp / "vocab.tgt.json")
    init = (cfg, str(tmp), True)
    splits = {"train": _write_split(cfg, tmp, "train", corpora, workers, chunk, init, say)}
    refs: list[str] = []
    splits["valid"] = _write_split(cfg, tmp, "valid", [valid], 1, chunk, init, say, refs)
    (tmp / "valid.refs.json").write_text(json.dumps(refs, ensure_ascii=False), encoding="utf-8")
    say.say("done:", splits["train"]["pairs"], force=True)
    return splits


def _train_subwords(cfg: DataConfig, corpora: list[Corpus], tmp: Path, say: Progress) -> None:
    """Sentencepiece models on a seeded sample of each subword side (one pass each)."""
    fields = n_fields(cfg)

    def side(which: int) -> Iterator[str]:
        for corpus in corpora:
            for pair in corpus.pairs():
                if which == 0 and fields > 1:
                    yield from split_fields(pair[0], fields)
                else:
                    yield pair[which]

    kinds = (cfg.src_tokenizer, cfg.tgt_tokenizer)
    if cfg.joint_vocab:
        if kinds[0] != kinds[1] or kinds[0] not in SUBWORD_KINDS:
            raise ValueError("data.joint_vocab needs the same subword tokenizer on both sides")
        plan = [("joint", kinds[0], lambda: chain(side(0), side(1)))]
    else:
        plan = [
            (name, kind, lambda w=w: side(w))
            for w, (name, kind) in enumerate(zip(("src", "tgt"), kinds, strict=True))
            if kind in SUBWORD_KINDS
        ]
    for name, kind, texts in plan:
        say.say(
            f"training the {name} sentencepiece model ({kind}, sample of "
            f"{spm_sample(cfg, name):,} sentences)",
            force=True,
        )
        train_sentencepiece(
            texts(),
            kind,
            cfg.vocab_size,
            tmp / f"spm.{name}.model",
            cfg.lowercase,
            spm_sample(cfg, name),
            cfg.split_seed,
        )


def _write_split(
    cfg: DataConfig,
    tmp: Path,
    split: str,
    corpora: list[Corpus],
    workers: int,
    chunk: int,
    init: tuple,
    say: Progress,
    refs: list[str] | None = None,
) -> dict[str, Any]:
    """Encode and write one split; drop (and count) pairs over the length limits."""
    writer = SplitWriter(tmp, split, corpora=len(corpora) > 1)
    per_corpus, too_long, seen = [0] * len(corpora), 0, 0
    chunks = _chunks(corpora, chunk)
    if refs is not None:  # keep each chunk's targets: the references of the kept pairs
        chunks = _remember(chunks, held := deque())
    try:
        for k, src, tgt in _ordered(_encode, chunks, workers, init):
            keep = np.ones(len(src[1]), dtype=bool)
            if cfg.max_src_len is not None:
                keep &= src[1] <= cfg.max_src_len
            if cfg.max_tgt_len is not None:
                keep &= tgt[1] <= cfg.max_tgt_len
            if refs is not None:
                refs += [t for t, kept in zip(held.popleft(), keep, strict=True) if kept]
            too_long += int((~keep).sum())
            writer.write(_kept(src, keep), _kept(tgt, keep), k)
            per_corpus[k] += int(keep.sum())
            seen += len(keep)
            say.say(f"encoding {split}:", seen)
    finally:
        writer.close()
    return _split_stats(cfg, split, corpora, writer, per_corpus, too_long)


def _remember(chunks: Iterator, held: deque) -> Iterator:
    for k, src, tgt in chunks:
        held.append(tgt)
        yield k, src, tgt


def _kept(side: tuple[np.ndarray, np.ndarray], keep: np.ndarray) -> tuple:
    ids, lengths = side
    return ids[np.repeat(keep, lengths)], lengths[keep]


def _split_stats(
    cfg: DataConfig,
    split: str,
    corpora: list[Corpus],
    writer: SplitWriter,
    per_corpus: list[int],
    too_long: int,
) -> dict[str, Any]:
    if too_long:
        log.warning(
            "%s: dropped %d of %d pairs longer than data.max_src_len=%s / data.max_tgt_len=%s "
            "tokens",
            split,
            too_long,
            writer.pairs + too_long,
            cfg.max_src_len,
            cfg.max_tgt_len,
        )
    if writer.pairs == 0:
        limits = f"data.max_src_len={cfg.max_src_len} / data.max_tgt_len={cfg.max_tgt_len}"
        raise ValueError(f"{split}: every pair is longer than {limits} tokens")
    reads = [
        {
            "path": c.report.path,
            "unit": c.report.unit,
            "read": c.report.lines,
            "kept": c.report.kept,
            "dropped": dict(sorted(c.report.skipped.items())),
            "weight": c.weight,
            "pairs": n,
        }
        for c, n in zip(corpora, per_corpus, strict=True)
    ]
    return {
        "pairs": writer.pairs,
        "too_long": too_long,
        "src_tokens": writer.total["src"],
        "tgt_tokens": writer.total["tgt"],
        "corpora": reads,
    }
