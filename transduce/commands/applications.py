"""The applications' entry points: score a run on a held-out file, and chat with a model.

``transduce score`` decodes a test file read with the run's own data settings (format,
fields) and prints QA exact match / F1, ROUGE-1/2/L or BLEU/chrF as one JSON line;
``transduce chat`` answers lines one at a time (dialogue models).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from typing import TextIO

from transduce.config import data_path
from transduce.data.pipeline import load_texts, read_split
from transduce.inference.translate import DecodeOptions, Translator
from transduce.metrics import bleu_chrf, rouge_scores, squad_scores


def _bleu(hyps: list[str], refs: list[str]) -> dict[str, float]:
    return {k: v for k, v in bleu_chrf(hyps, refs).items() if not k.endswith("signature")}


METRICS: dict[str, Callable[[list[str], list[str]], dict]] = {
    "squad": squad_scores,
    "rouge": rouge_scores,
    "bleu": _bleu,
}


def score_file(
    translator: Translator, path: str | None, metric: str, options: DecodeOptions | None = None
) -> dict[str, float | int]:
    """Decode the sources of ``path`` (read like the run's training data; None: the run's
    own validation split, rebuilt from its config) and score the outputs against the
    targets with ``metric`` (squad, rouge or bleu)."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r} (known: {', '.join(METRICS)})")
    if path is None:
        texts = load_texts(translator.cfg.data)
        sources, targets = texts.valid_src, texts.valid_tgt
    else:
        data = read_split(translator.cfg.data, str(data_path(path)))
        sources, targets = data.src, data.tgt
    start = time.perf_counter()
    hyps = translator.translate(sources, options)
    seconds = time.perf_counter() - start
    return {"n": len(hyps), **METRICS[metric](hyps, targets), "seconds": round(seconds, 2)}


def chat(
    translator: Translator,
    lines: Iterable[str],
    out: TextIO,
    options: DecodeOptions | None = None,
    prompt: Callable[[], None] | None = None,
) -> int:
    """Answer each line of ``lines`` on ``out`` until they end or a line reads ``/quit``;
    empty lines are skipped. Returns the number of answers."""
    answers = 0
    for line in _prompted(lines, prompt):
        text = line.strip()
        if text in ("/quit", "/exit"):
            break
        if not text:
            continue
        out.write(translator.translate([text], options)[0] + "\n")
        out.flush()  # a pipe on the other side reads each answer as it comes
        answers += 1
    return answers


def _prompted(lines: Iterable[str], prompt: Callable[[], None] | None):
    iterator = iter(lines)
    while True:
        if prompt is not None:
            prompt()
        line = next(iterator, None)
        if line is None:
            return
        yield line


def stdin_lines() -> Iterable[str]:
    """Lines of standard input as they arrive (no read-ahead buffering of a pipe), strict
    UTF-8 as ``translate`` reads them: a bad byte, or a line over the readers' cap, is a
    DataError naming ``<stdin>:LINE``."""
    from transduce.errors import DataError

    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:  # a text stream without bytes underneath (tests, embedding)
        yield from iter(sys.stdin.readline, "")
        return
    from transduce.data.lines import MAX_LINE_BYTES

    read = lambda: stream.readline(MAX_LINE_BYTES + 1)  # noqa: E731 (bounded: /dev/zero)
    for number, raw in enumerate(iter(read, b""), 1):
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            raise DataError(
                "<stdin>",
                number,
                f"a line over {MAX_LINE_BYTES:,} bytes (not "
                "text, or an endless stream such as /dev/zero)",
            )
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as err:
            problem = f"invalid UTF-8 at byte {err.start + 1}: {err.reason}"
            raise DataError("<stdin>", number, problem) from None
