"""What every engine shares around decoding, without torch: the options (``DecodeOptions``),
the result (``Translation``), the search dispatch (``search_rows``) and the streamed output of
``translate`` (text lines or JSON lines).

``DecodeOptions`` is the one declaration of the decoding options: each field carries its
help, bounds, command-line flag and HTTP name in its metadata, and the cross-option rules
live in :meth:`DecodeOptions.check`. The command-line flags
(:func:`transduce.commands.options.add_decode_flags`) and the HTTP request model
(:class:`transduce.serve.schemas.TranslateRequest`) are generated from it, as fairseq
generates argparse flags from its dataclasses; so are the keyword arguments the search core
receives (:func:`search_rows`). Adding an option is a field here and its use in
:mod:`transduce.inference.searchcore` (see CONTRIBUTING.md).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import operator
import sys
from collections.abc import Callable, Iterable
from dataclasses import Field, dataclass, field, fields
from typing import Any

import numpy as np

from transduce.errors import OptionError


@dataclass
class Translation:
    text: str
    src_tokens: list[str]
    out_tokens: list[str]
    score: float  # ranking score (log-probability, length-penalised for beams with alpha)
    attention: np.ndarray | None  # [len(out_tokens), len(src_tokens)]
    logprob: float | None = None  # raw sum of log-probabilities


def option(default: Any, help: str, **meta: Any) -> Any:
    """A :class:`DecodeOptions` field: ``default``, ``help`` and the metadata every surface
    reads. ``ge``/``gt``/``le``: bounds (checked here, on the command line and over HTTP);
    ``choices``; ``flag``: the command-line flag (default ``--name-with-dashes``; None: no
    flag); ``metavar``; ``http``: the request field's name (default the field's; None: not
    in requests); ``http_default``: a request's default where it differs;
    ``http_le``/``http_ge``/``http_lt``: caps a server adds; ``needs``: the option without
    which this one means nothing (refused when set without it); ``beam_only``: refused with
    ``sample``; ``steers``: it changes which token each step may take (not only how finished
    hypotheses rank), so at ``beam`` 1 it runs beam search of width 1 rather than greedy
    decoding, which takes no such option; ``best_effort``: an engine without it returns
    none rather than refusing (unless it is asked for explicitly, as over HTTP)."""
    return field(default=default, metadata={"help": help, **meta})


@dataclass(frozen=True)
class DecodeOptions:
    """How to decode: greedy (default), beam search, or sampling."""

    beam: int = option(
        1, "beam size (1: greedy; default 1)", ge=1, le=1000, metavar="K", http_le=32
    )
    nbest: int = option(
        1,
        "hypotheses per input (<= --beam), or samples with --sample; text output then "
        "has one LINE<TAB>TEXT line per hypothesis",
        ge=1,
        le=1000,
        metavar="N",
        http_le=32,
    )
    alpha: float = option(
        0.0,
        "GNMT length penalty alpha for beam search (0: none)",
        ge=0,
        le=100,
        flag="--length-penalty",
        metavar="ALPHA",
        http="length_penalty",
        http_le=10,
        beam_only=True,
    )
    normalize: bool = option(False, "rank beams by log-prob per token", beam_only=True)
    no_repeat_ngram: int = option(
        0,
        "no output repeats an n-gram of this size (0: off; at --beam 1 a width-1 beam search)",
        ge=0,
        metavar="N",
        http_le=100,
        beam_only=True,
        steers=True,  # also at --beam 1 (then a width-1 beam search)
    )
    sample: bool = option(False, "sample instead of searching")
    temperature: float = option(
        1.0,
        "with --sample: divide logits by T (default 1; at least 0.001: lower is greedy "
        "decoding, and overflows the logits)",
        ge=0.001,
        metavar="T",
        needs="sample",
        http_le=100,
    )
    top_k: int = option(
        0, "with --sample: keep the K likeliest tokens (0: all)", ge=0, metavar="K", needs="sample"
    )
    top_p: float = option(
        1.0,
        "with --sample: nucleus of probability mass P in [1e-6, 1] (default 1)",
        ge=1e-6,
        le=1,
        metavar="P",
        needs="sample",
    )
    seed: int | None = option(
        None,
        "with --sample: random seed (reproducible samples)",
        needs="sample",
        ge=0,
        lt=2**63,
    )
    max_len: int | None = option(
        None,
        "absolute output length limit (default: the run's decode.max_len)",
        ge=1,
        le=100_000,
        metavar="N",
        http_le=1000,
    )
    max_len_ratio: float | None = option(
        None, "limit = ceil(R * source length) + 5 (R at most 100)", gt=0, le=100, metavar="R"
    )
    batch_size: int | None = option(
        None,
        "sentences decoded together (default: the run's decode.batch_size)",
        ge=1,
        metavar="N",
        http=None,
    )
    attention: bool = option(
        True,
        "attention matrix per hypothesis",
        flag=None,
        http="return_attention",
        http_default=False,
        best_effort=True,
    )
    max_input_len: int | None = option(
        None,
        "source tokens per line (default: the run's decode.max_input_len, 1024)",
        ge=1,
        metavar="TOKENS",
        http=None,
    )
    on_long_input: str | None = option(
        None,
        "what to do with a longer line (default truncate, with a warning)",
        http=None,
        choices=("truncate", "skip", "error"),
    )

    def __post_init__(self) -> None:
        """Reject impossible values by name (``beam=0``, ``top_p=1.5``, ...), then
        impossible combinations (:meth:`check`)."""
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and not _of_type(value, str(f.type)):
                raise ValueError(
                    f"DecodeOptions.{f.name}: {value!r} is not {str(f.type).split(' |')[0]}"
                )
            if value is not None and not in_bounds(value, f.metadata):
                raise ValueError(f"DecodeOptions.{f.name}: invalid value {value!r}")
        self.check(lambda name: name, lambda name: f"{name}={getattr(self, name)!r}")

    def check(self, name: Callable[[str], str], given: Callable[[str], str]) -> None:
        """:func:`check_rules` on these options."""
        check_rules({f.name: getattr(self, f.name) for f in fields(self)}, name, given)


def check_rules(v: dict[str, Any], name: Callable[[str], str], given: Callable[[str], str]) -> None:
    """The rules between options (``v``: every field's value), written once for every
    surface: raises :class:`~transduce.errors.OptionError` naming the option blamed as
    ``name`` spells it (``given`` spells it with its value: ``--beam 4``, ``beam=4``)."""
    if v["sample"] and v["beam"] > 1:
        raise OptionError(name("beam"), f"{given('beam')} and {name('sample')} exclude each other")
    searching = [
        f.name for f in option_fields() if f.metadata.get("beam_only") and v[f.name] != f.default
    ]
    if v["sample"] and searching:
        verb = "applies" if len(searching) == 1 else "apply"
        raise OptionError(
            name(searching[0]),
            f"{', '.join(map(name, searching))} {verb} to beam search, not {name('sample')}",
        )
    for needed in {f.metadata["needs"] for f in option_fields() if "needs" in f.metadata}:
        idle = [
            f.name
            for f in option_fields()
            if f.metadata.get("needs") == needed and v[f.name] != f.default
        ]
        if idle and not v[needed]:
            spelt = ", ".join(name(n) for n in idle)
            verb = "applies" if len(idle) == 1 else "apply"
            raise OptionError(
                name(idle[0]), f"{spelt} only {verb} with {name(needed)} (add {name(needed)})"
            )
    if not v["sample"] and v["nbest"] > v["beam"]:
        raise OptionError(
            name("nbest"),
            f"{given('nbest')} needs {name('beam')} >= "
            f"{v['nbest']} (or {name('sample')} for {v['nbest']} samples); "
            f"got {given('beam')}",
        )


def _of_type(value: Any, annotation: str) -> bool:
    """Whether ``value`` is what a field annotated ``annotation`` holds (an int is a float
    too; a bool is no number; a float must be finite)."""
    kind = annotation.split(" |")[0]
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return number and math.isfinite(value)
    if kind == "str":
        return isinstance(value, str)
    return True


def in_bounds(value: Any, meta: Any, prefix: str = "") -> bool:
    """Whether ``value`` keeps the ``ge``/``gt``/``le``/``lt`` bounds and ``choices`` of a
    field's metadata (``prefix="http_"``: the caps a server adds)."""
    tests = {"ge": operator.ge, "gt": operator.gt, "le": operator.le, "lt": operator.lt}
    if not all(test(value, meta[prefix + k]) for k, test in tests.items() if prefix + k in meta):
        return False
    return bool(prefix) or value in meta.get("choices", (value,))


def option_fields() -> tuple[Field, ...]:
    """Every decoding option's dataclass field, in declaration order."""
    return fields(DecodeOptions)


def search_kwargs(fn: Callable, o: DecodeOptions) -> dict[str, Any]:
    """The options ``fn`` (a :mod:`transduce.inference.searchcore` entry point) takes: its
    keyword-only
    parameters named like a :class:`DecodeOptions` field. So an option reaches the search by
    being declared in both places, with no list of arguments to extend in between."""
    params = inspect.signature(fn).parameters.values()
    names = {f.name for f in option_fields()}
    return {
        p.name: getattr(o, p.name) for p in params if p.kind == p.KEYWORD_ONLY and p.name in names
    }


def steered(o: DecodeOptions) -> bool:
    """Whether an option that constrains each search step (``steers``) is set: greedy
    decoding does not take those, beam search of width 1 does (and equals greedy without
    them)."""
    return any(
        f.metadata.get("steers") and getattr(o, f.name) != f.default for f in option_fields()
    )


def search_rows(
    ops,
    model,
    src,
    src_mask,
    o: DecodeOptions,
    max_len: int,
    ratio,
    prefix=None,
    constraints=None,
    on_step=None,
) -> list:
    """Search as ``o`` says, over any engine's array ops (:mod:`transduce.inference.searchcore`):
    per source row, its (ids, score, logprob, attention) tuples, best first. ``prefix``:
    (ids ``[B, P]``, lengths ``[B]``) the outputs are forced through; ``constraints``: per
    row, token-id phrases every output must contain (beam search with dynamic beam
    allocation, :mod:`transduce.inference.constrained`); ``on_step(rows, tokens)``: each step's
    tokens
    as greedy decoding and sampling produce them (beam search has no final tokens before
    its end)."""
    from transduce.inference import searchcore as core

    limits = {"max_len": max_len, "max_len_ratio": ratio, "prefix": prefix}
    if constraints is not None and any(constraints):
        from transduce.inference.constrained import constrained_beam_search as fn

        nb = fn(
            ops, model, src, src_mask, **limits, constraints=constraints, **search_kwargs(fn, o)
        )
        return _nbest_rows(nb)
    if o.sample or (o.beam == 1 and o.nbest == 1 and not steered(o)):
        fn = core.sample if o.sample else core.decode
        hyp = fn(ops, model, src, src_mask, **limits, on_step=on_step, **search_kwargs(fn, o))
        rows = []
        for r in range(hyp.tokens.shape[0]):
            n = int(hyp.lengths[r])
            att = hyp.attention[r, :n] if hyp.attention is not None else None
            score = float(hyp.scores[r])
            rows.append((hyp.tokens[r, :n].tolist(), score, score, att))
        per = o.nbest if o.sample else 1
        return [rows[i : i + per] for i in range(0, len(rows), per)]
    return _nbest_rows(
        core.beam_search(ops, model, src, src_mask, **limits, **search_kwargs(core.beam_search, o))
    )


def _nbest_rows(nb) -> list:
    att = nb.attention
    return [
        [
            (
                nb.tokens[i][j],
                nb.scores[i][j],
                nb.logprobs[i][j],
                att[i][j] if att is not None else None,
            )
            for j in range(len(nb.tokens[i]))
        ]
        for i in range(len(nb.tokens))
    ]


def _rounded(matrix, digits: int) -> list:
    """Rounded in float64, so 0.1165 prints as 0.1165, not float32's 0.11649999767541885."""
    return np.asarray(matrix, dtype=np.float64).round(digits).tolist()


def jsonl_line(source: str, hyps: list[Translation]) -> str:
    """One JSON line per input: n-best texts, scores (6 decimals), tokens, attention (4)."""
    record = {
        "source": source,
        "src_tokens": hyps[0].src_tokens,
        "hypotheses": [
            {
                "text": h.text,
                "score": round(h.score, 6),
                "logprob": round(h.logprob, 6) if h.logprob is not None else None,
                "tokens": h.out_tokens,
                "attention": None if h.attention is None else _rounded(h.attention, 4),
            }
            for h in hyps
        ],
    }
    return json.dumps(record, ensure_ascii=False)


def text_lines(first: int, results: list[list[Translation]], nbest: int = 1) -> str:
    """The text format: the best text per input line; with ``nbest > 1``, every hypothesis
    on its own line as ``LINE<TAB>TEXT`` (LINE: the input's line number, from 1; best
    first; up to ``nbest`` lines per input, as a search may find fewer), like fairseq's and
    Marian's n-best lists, so ``cut -f2`` or a group-by on the first column reads them."""
    if nbest == 1:
        return "".join(hyps[0].text + "\n" for hyps in results)
    return "".join(f"{first + i}\t{h.text}\n" for i, hyps in enumerate(results) for h in hyps)


def write_translations(
    inputs: list[str],
    batches: Iterable[list[list[Translation]]],
    output: str | None,
    fmt: str = "text",
    nbest: int = 1,
) -> None:
    """Write each batch's results as it comes, in input order: :func:`text_lines` or
    ``jsonl`` records. stdout streams; a file ``output`` is written to a temporary sibling
    renamed when complete (:func:`transduce.atomic.atomic_output`), so a failure leaves
    any previous file as it was and says how many lines were done."""
    from transduce.atomic import atomic_output

    context = contextlib.nullcontext(sys.stdout) if not output else atomic_output(output)
    done = 0
    with context as out:
        for results in batches:
            part = inputs[done : done + len(results)]
            if fmt == "jsonl":
                pairs = zip(part, results, strict=True)
                out.write("".join(jsonl_line(src, hyps) + "\n" for src, hyps in pairs))
            else:
                out.write(text_lines(done + 1, results, nbest))
            out.flush()
            done += len(results)
