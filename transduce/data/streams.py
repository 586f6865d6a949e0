"""Readers as streams: the pairs of a corpus one at a time, with the same checks and the
same per-reason counts as :func:`~transduce.data.corpus.read_tsv` and
:func:`~transduce.data.corpus.read_line_pairs`, so a corpus larger than memory can be
prepared in chunks (:mod:`transduce.data.prepare`)."""

from __future__ import annotations

import os
from collections.abc import Iterator

from transduce.data.corpus import (
    PathLike,
    ReadReport,
    _aligned,
    _check_columns,
    _check_options,
    _decode,
    _decode_pair,
    _finish,
    _numbered_lines,
    _open_bytes,
    _split_tsv,
    iter_records,
)


def stream_tsv(
    path: PathLike,
    src_col: int = 0,
    tgt_col: int = 1,
    *,
    on_bad_line: str = "error",
    limit: int | None = None,
    report: ReadReport | None = None,
) -> Iterator[tuple[str, str]]:
    """:func:`read_tsv` as a stream of pairs; ``report`` is complete (and checked as
    :func:`read_tsv` checks it) once the stream is exhausted."""
    _check_options(on_bad_line, limit)
    _check_columns(src_col, tgt_col, 2, 3)
    report = ReadReport(os.fspath(path)) if report is None else report

    def parse(raw: bytes, number: int) -> tuple[str, str]:
        return _split_tsv(_decode(raw, number), src_col, tgt_col, 2, 3)

    with _open_bytes(path) as f:
        yield from iter_records(_numbered_lines(f, path, limit), parse, path, on_bad_line, report)
    _finish(report, report.path)


def stream_line_pairs(
    src_path: PathLike,
    tgt_path: PathLike,
    *,
    on_bad_line: str = "error",
    limit: int | None = None,
    report: ReadReport | None = None,
) -> Iterator[tuple[str, str]]:
    """:func:`read_line_pairs` as a stream of pairs (see :func:`stream_tsv`)."""
    _check_options(on_bad_line, limit)
    name = f"{os.fspath(src_path)} + {os.fspath(tgt_path)}"
    report = ReadReport(name) if report is None else report

    def parse(raws: tuple[bytes, bytes], number: int) -> tuple[str, str]:
        return _decode_pair(*raws, number, src_path, tgt_path)

    with _open_bytes(src_path) as fs, _open_bytes(tgt_path) as ft:
        pairs = _aligned(
            _numbered_lines(fs, src_path, limit),
            _numbered_lines(ft, tgt_path, limit),
            src_path,
            tgt_path,
        )
        lines = ((number, (raw_src, raw_tgt)) for number, raw_src, raw_tgt in pairs)
        yield from iter_records(lines, parse, src_path, on_bad_line, report)
    _finish(report, report.path)
