"""``translate`` as a line-buffered filter, and the side files of decoding commands.

:func:`stream_translate` reads input lines as they arrive (a thread blocks on the pipe),
decodes what has arrived in batches of at most ``buffer_size`` lines (or whatever came
within ``wait`` seconds of a batch's first line), and writes each batch's results in input
order as soon as it is done, as fairseq-interactive's ``--buffer-size`` does: a process
that writes one line and waits for its translation gets it. No torch is imported here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import sys
import threading
from collections.abc import Iterator
from typing import IO, Any, NoReturn

from transduce.data.corpus import _BadLine, _decode, _numbered_lines, _open_bytes, read_lines
from transduce.errors import DataError
from transduce.inference.decoding import DecodeOptions, write_translations

END = object()
WAIT = 0.05  # seconds a batch waits for more lines after its first has arrived
FIRST = 8  # lines in the first batch (then doubling up to the buffer size)
_READERS: list[threading.Thread] = []  # the input threads started, for exit_process


def exit_process(code: int) -> NoReturn:
    """Exit with ``code`` (the entry points' last step). While an input thread still blocks
    on a pipe or terminal (Ctrl-C, SIGTERM or an error came before the input's end), the
    interpreter's shutdown aborts on the standard input's lock ("Fatal Python error:
    _enter_buffered_busy", SIGABRT): then the streams are flushed and the process ends at
    once, with ``code``."""
    if any(t.is_alive() for t in _READERS):
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)
    sys.exit(code)


def add_stream_flags(p: argparse.ArgumentParser) -> None:
    """``translate``'s flags for streaming, prefixes and constraints."""
    from transduce.commands.options import int_at_least

    g = p.add_argument_group("streaming, target prefixes and terminology constraints")
    g.add_argument(
        "--buffer-size",
        type=int_at_least(1, 1_000_000),
        default=None,
        metavar="N",
        help="decode at most N lines at a time as they arrive (default: the "
        "model's decode.batch_size); results are written as each batch is done",
    )
    g.add_argument(
        "--prefix-file",
        metavar="FILE",
        help="one target prefix per input line: outputs start with it",
    )
    g.add_argument(
        "--prefix-column",
        action="store_true",
        help="each input line is SOURCE<TAB>PREFIX (the text after the last tab)",
    )
    g.add_argument(
        "--constraints-file",
        metavar="FILE",
        help="one JSON list of target phrases per input line, e.g. "
        '["Hund", "roten Ball"]: every output contains them (beam search)',
    )


def _reader(f: IO[bytes] | str, path: str, out: queue.Queue) -> None:
    """Put each decoded line of ``f`` (a byte stream, or a file's path: plain or gzip) on
    ``out`` as it arrives, then END (or the DataError)."""
    try:
        with contextlib.nullcontext(f) if not isinstance(f, str) else _open_bytes(f) as stream:
            for number, raw in _numbered_lines(stream, path):
                try:
                    out.put(_decode(raw, number))  # unstripped: a leading tab may be a column
                except _BadLine as bad:
                    out.put(DataError(path, number, bad.message))
                    return
    except DataError as err:
        out.put(err)
        return
    except BaseException as err:  # anything else must still end the stream, not hang it
        out.put(DataError(path, None, f"cannot read: {err}"))
        return
    out.put(END)


def arriving_batches(
    f: IO[bytes] | str, path: str, size: int, wait: float = WAIT
) -> Iterator[list]:
    """Lines of ``f`` in batches: at most ``size``, or what arrived within ``wait`` seconds
    of the batch's first line. The first batches are smaller (8 lines, doubling up to
    ``size``), so the first results of a long piped input come out after a few lines'
    decoding rather than a whole batch's, and the later batches are full. A bad line ends
    the stream with its DataError, after the lines before it."""
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=_reader, args=(f, path, lines), daemon=True)
    _READERS[:] = [t for t in _READERS if t.is_alive()] + [reader]
    reader.start()
    cap = min(size, FIRST)
    while True:
        batch: list[str] = []
        item = lines.get()
        while item is not END and not isinstance(item, DataError):
            batch.append(item)
            if len(batch) >= cap:
                cap = min(size, 2 * cap)
                break
            try:
                item = lines.get(timeout=wait)
            except queue.Empty:
                break
        if batch:
            yield batch
        if item is END:
            return
        if isinstance(item, DataError):
            raise item


def read_constraints(path: str) -> list[list[str]]:
    """One JSON list of strings per line (an empty line: none); a bad line is one error
    naming the file and line."""
    out = []
    for number, text in enumerate(read_lines(path), 1):
        if not text:
            out.append([])
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(path, number, f"not JSON: {err.msg}") from None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise DataError(path, number, 'expected a JSON list of strings, e.g. ["Hund"]')
        out.append(value)
    return out


def _side(values: list | None, path: str | None, start: int, n: int) -> list | None:
    """Lines ``start .. start + n`` of a side file (prefixes, constraints)."""
    if values is None:
        return None
    if start + n > len(values):
        raise DataError(
            path or "", None, f"{len(values)} lines, but input line {len(values) + 1} needs one"
        )
    return values[start : start + n]


def stream_translate(translator: Any, args: argparse.Namespace, options: DecodeOptions) -> None:
    """``translate``: input lines (``--input`` or stdin) as they arrive -> ``--output``."""
    prefix_path = getattr(args, "prefix_file", None)
    prefixes = read_lines(prefix_path) if prefix_path else None
    cons_path = getattr(args, "constraints_file", None)
    constraints = read_constraints(cons_path) if cons_path else None
    from transduce.commands.options import flag_name

    spell = lambda n: "--constraints-file" if n == "constraints" else flag_name(n)  # noqa: E731
    translator.check_inputs(options, constraints, spell)
    size = getattr(args, "buffer_size", None) or options.batch_size
    size = size or translator.defaults["batch_size"]
    path = "<stdin>" if args.input is None else args.input
    inputs: list[str] = []

    def batches():
        f = sys.stdin.buffer if args.input is None else args.input
        for lines in arriving_batches(f, path, size):
            start = len(inputs)
            pre = _side(prefixes, prefix_path, start, len(lines))
            if getattr(args, "prefix_column", False):
                split = [line.rsplit("\t", 1) for line in lines]
                pre = [s[1].strip() if len(s) > 1 else "" for s in split]
                lines = [s[0] for s in split]
            lines = [line.strip() for line in lines]
            inputs.extend(lines)
            cons = _side(constraints, cons_path, start, len(lines))
            targets = {"prefixes": pre, "constraints": cons}
            try:
                given = {k: v for k, v in targets.items() if v is not None}
                yield translator.decode(lines, options, start + 1, **given)
            except DataError as err:  # a phrase's problem is its constraints file's line
                sides = {"<constraints>": cons_path, "<prefixes>": prefix_path}
                if err.path not in sides:
                    raise
                raise DataError(sides[err.path] or "", err.line, err.problem) from None
        for values, where in ((prefixes, prefix_path), (constraints, cons_path)):
            if values is not None and len(values) > len(inputs):  # before the output is kept
                raise DataError(
                    where or "",
                    len(inputs) + 1,
                    f"{len(values)} lines, but the input has {len(inputs)}: this line and "
                    "those after it belong to no input",
                )

    write_translations(inputs, batches(), args.output, args.format, options.nbest)
