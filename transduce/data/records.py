"""Readers for records with named fields: JSONL, TSV with a header, chatterbot YAML.

A record may carry several source fields (QA: ``question`` and ``document``). They travel
through the text pipeline as one string, the fields joined by :data:`FIELD_SEP` (a tab, so
``transduce translate`` reads multi-input lines as tab-separated fields); the pipeline
splits them again and packs their token ids with a ``<sep>`` id between them.

Errors follow :mod:`transduce.data.corpus`: a :class:`DataError` reading ``path:line:
problem``, or with ``on_bad_line="skip"`` the line is counted in the report, by kind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

import yaml

from transduce.data.corpus import (
    Parallel,
    ReadReport,
    _check_options,
    _finish,
    _reject,
    collect_pairs,
)
from transduce.data.lines import _BadLine, _decode, _numbered_lines, _open_bytes, read_capped
from transduce.errors import DataError, PathLike
from transduce.safeyaml import compose_yaml, load_yaml

FIELD_SEP = "\t"


def _clean(value: object, name: str) -> str:
    """A field's text on one line; numbers become text, anything else is a bad record."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _BadLine(
            "wrong field type", f"field {name!r} is a {type(value).__name__}, expected text"
        )
    text = " ".join(str(value).split())  # tabs and newlines would break the packing
    if not text:
        raise _BadLine(f"empty {name}", f"field {name!r} is empty")
    return text


def _record_pair(get, src_fields: Sequence[str], tgt_field: str) -> tuple[str, str]:
    """(joined source fields, target) from ``get(name)``, which raises KeyError if absent."""
    texts = []
    for name in (*src_fields, tgt_field):
        try:
            texts.append(_clean(get(name), name))
        except KeyError:
            raise _BadLine(f"missing {name}", f"no field {name!r}") from None
    return FIELD_SEP.join(texts[:-1]), texts[-1]


def _check_fields(src_fields: Sequence[str], tgt_field: str) -> None:
    if not src_fields or not tgt_field:
        raise ValueError("named records need data.src_fields (one or more) and data.tgt_field")
    if len(set((*src_fields, tgt_field))) != len(src_fields) + 1:
        raise ValueError(f"field names must differ: {[*src_fields, tgt_field]}")


def read_jsonl(
    path: PathLike,
    src_fields: Sequence[str],
    tgt_field: str,
    *,
    on_bad_line: str = "error",
    limit: int | None = None,
) -> Parallel:
    """One JSON object per line, e.g. ``{"question": ..., "document": ..., "answer": ...}``.

    Blank lines are passed over (not counted as records).
    """
    _check_options(on_bad_line, limit)
    _check_fields(src_fields, tgt_field)

    def parse(raw: bytes, number: int) -> tuple[str, str]:
        try:
            record = json.loads(_decode(raw, number))
        except json.JSONDecodeError as err:
            raise _BadLine(
                "invalid JSON", f"invalid JSON: {err.msg} at column {err.colno}"
            ) from None
        if not isinstance(record, dict):
            raise _BadLine("not an object", "expected a JSON object {...}")
        return _record_pair(record.__getitem__, src_fields, tgt_field)

    with _open_bytes(path) as f:
        lines = ((n, raw) for n, raw in _numbered_lines(f, path, limit) if raw.strip())
        return collect_pairs(lines, parse, path, on_bad_line)


def read_named_tsv(
    path: PathLike,
    src_fields: Sequence[str],
    tgt_field: str,
    *,
    on_bad_line: str = "error",
    limit: int | None = None,
) -> Parallel:
    """Tab-separated values whose first line names the columns (any order, extra ignored)."""
    _check_options(on_bad_line, limit)
    _check_fields(src_fields, tgt_field)
    with _open_bytes(path) as f:
        lines = _numbered_lines(f, path, None if limit is None else limit + 1)
        first = next(lines, None)
        if first is None:
            raise DataError(path, None, "empty file (expected a header line naming the columns)")
        columns = _header(path, *first, (*src_fields, tgt_field))  # a bad header always fails

        def parse(raw: bytes, number: int) -> tuple[str, str]:
            cells = _decode(raw, number).split("\t")
            if len(cells) != len(columns):
                raise _BadLine(
                    "wrong column count",
                    f"wrong column count: the header has {len(columns)}, this line {len(cells)}",
                )
            record = {name: cells[i] for name, i in columns.items()}
            return _record_pair(record.__getitem__, src_fields, tgt_field)

        return collect_pairs(lines, parse, path, on_bad_line)


def _header(path: PathLike, number: int, raw: bytes, needed: Sequence[str]) -> dict[str, int]:
    try:
        names = [c.strip() for c in _decode(raw, number).split("\t")]
    except _BadLine as bad:
        raise DataError(path, number, bad.message) from None
    columns = {name: i for i, name in enumerate(names)}
    if len(columns) != len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise DataError(path, number, f"header repeats column {', '.join(map(repr, repeated))}")
    missing = [n for n in needed if n not in columns]
    if missing:
        raise DataError(
            path,
            number,
            f"header has no column {', '.join(map(repr, missing))} (columns: {', '.join(names)})",
        )
    return columns


# --------------------------------------------------------------------------- chatterbot


def chatterbot_files(path: PathLike) -> list[Path]:
    """``path`` itself, or the ``*.yml`` files of a folder in name order."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.yml"))
        if not files:
            raise DataError(path, None, "no *.yml files in this folder")
        return files
    if not path.exists():
        raise DataError(path, None, "file not found")
    return [path]


def read_chatterbot(
    path: PathLike, *, on_bad_line: str = "skip", limit: int | None = None
) -> Parallel:
    """Chatterbot corpus YAML: ``conversations`` is a list of conversations, each a list of
    turns; every turn after the first gives a (previous turn, reply) pair.

    An entry that is not a list of at least two texts is bad: with ``on_bad_line="skip"``
    (the default here: the public corpus has one such entry in trivia.yml) it is counted and
    reported as ``file:line``; with ``"error"`` it raises. ``limit`` caps the pairs.
    """
    _check_options(on_bad_line, limit)
    report = ReadReport(os.fspath(path), unit="conversations")
    src: list[str] = []
    tgt: list[str] = []
    for file in chatterbot_files(path):
        for turns in _conversations(file, report, on_bad_line):
            report.lines += 1
            report.kept += 1
            for prev, reply in pairwise(turns):
                src.append(prev)
                tgt.append(reply)
        if limit is not None and len(src) >= limit:
            src, tgt = src[:limit], tgt[:limit]
            break
    _finish(report, path)
    return Parallel(src, tgt, report)


def _conversations(file: Path, report: ReadReport, policy: str):
    """The turns of each good conversation of one YAML file; bad ones go to ``report``."""
    try:
        root = compose_yaml(read_capped(file, what="YAML file").decode("utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise DataError(
            file, mark.line + 1 if mark else None, f"not valid YAML: {problem}"
        ) from None
    except UnicodeDecodeError as err:
        raise DataError(file, None, f"not UTF-8 text ({err.reason} at byte {err.start})") from None
    convs = None
    if isinstance(root, yaml.MappingNode):
        convs = next((v for k, v in root.value if k.value == "conversations"), None)
    if not isinstance(convs, yaml.SequenceNode):
        raise DataError(file, None, "expected a mapping with a 'conversations' list")
    for node in convs.value:
        line = node.start_mark.line + 1
        turns = _turns(node)
        if turns is None:
            value = _shown(node)
            kind = f"malformed conversation in {file.name}"
            problem = f"expected a list of at least two turns, got {str(value)[:80]!r}"
            report.lines += 1
            _reject(_BadLine(kind, problem, path=file), file, line, report, policy)
            continue
        yield turns


def _shown(node: yaml.Node) -> object:
    """A bad entry as the user wrote it, for the message (an empty entry is None)."""
    if isinstance(node, yaml.ScalarNode):
        return node.value or None
    try:
        return load_yaml(yaml.serialize(node))
    except yaml.YAMLError:
        return f"<{node.id}>"


def _turns(node: yaml.Node) -> list[str] | None:
    if not isinstance(node, yaml.SequenceNode) or len(node.value) < 2:
        return None
    if not all(isinstance(t, yaml.ScalarNode) for t in node.value):
        return None
    turns = [" ".join(str(t.value).split()) for t in node.value]
    return turns if all(turns) else None


# --------------------------------------------------------------------------- packing

SEP = "<sep>"  # source-vocabulary token between packed fields
SEP_ID = 4  # its id: the first one after the specials (see with_separator)


def split_fields(text: str, n: int) -> list[str]:
    """The ``n`` fields of a joined multi-input source (tab-separated)."""
    fields = text.split(FIELD_SEP)
    if len(fields) != n:
        raise ValueError(
            f"expected {n} tab-separated input fields, got {len(fields)}: {text[:60]!r}"
        )
    return fields


def pack_fields(encode, text: str, n: int) -> list[str]:
    """Source tokens of ``text``: ``encode(text)``, or for ``n > 1`` fields each field's
    tokens joined by :data:`SEP` (``f1 <sep> f2 ...``), as every engine feeds them."""
    if n == 1:
        return encode(text)
    packed: list[str] = []
    for i, field in enumerate(split_fields(text, n)):
        packed += [SEP] * (i > 0) + encode(field)
    return packed


def with_separator(vocab):
    """``vocab`` with :data:`SEP` at id :data:`SEP_ID`, right after the specials."""
    from transduce.data.vocab import SPECIALS, Vocab

    rest = [t for t in vocab.itos[len(SPECIALS) :] if t != SEP]
    out = Vocab([*SPECIALS, SEP, *rest])
    assert out.stoi[SEP] == SEP_ID
    return out
