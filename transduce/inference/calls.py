"""What a decode or score call is given, checked by name before any work (a bare string
would be decoded letter by letter, a dict taken for options), and the warning for outputs
that miss a constraint phrase. Used by :class:`transduce.inference.textdecoder.TextDecoder`;
no torch here."""

from __future__ import annotations

import logging
from typing import Any

from transduce.inference.decoding import DecodeOptions, Translation

log = logging.getLogger("transduce.translate")


def check_texts(texts: Any, name: str = "texts") -> list[str]:
    """The inputs as a list of strings; anything else is refused by name (a bare string
    would be decoded character by character, bytes item by item)."""
    if isinstance(texts, (str, bytes)) or not isinstance(texts, (list, tuple)):
        raise TypeError(
            f"{name}: a list of strings, got {type(texts).__name__} (wrap one text as [text])"
        )
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"{name}[{i}]: a string, got {type(t).__name__}")
    return list(texts)


def check_options(options: Any) -> DecodeOptions:
    """``options`` as DecodeOptions (None: the defaults); a dict or anything else is
    refused by name (it failed later on a missing attribute)."""
    if options is None:
        return DecodeOptions()
    if not isinstance(options, DecodeOptions):
        raise TypeError(
            f"options: a DecodeOptions, got {type(options).__name__} "
            "(e.g. DecodeOptions(beam=2), or DecodeOptions(**d) for a dict d)"
        )
    return options


def check_targets(n: int, prefixes: Any, constraints: Any) -> None:
    """One prefix (a string) and one list of phrases (strings) per input, or None."""
    for name, given in (("prefixes", prefixes), ("constraints", constraints)):
        if given is None:
            continue
        if isinstance(given, (str, bytes)) or not isinstance(given, (list, tuple)):
            raise TypeError(f"{name}: a list with one entry per input, got {type(given).__name__}")
        if len(given) != n:
            raise ValueError(f"{n} inputs but {len(given)} {name}")
    for i, p in enumerate(prefixes or ()):
        if p is not None and not isinstance(p, str):
            raise TypeError(f"prefixes[{i}]: a string (or None), got {type(p).__name__}")
    for i, phrases in enumerate(constraints or ()):
        if isinstance(phrases, str) or not isinstance(phrases, (list, tuple)):
            raise TypeError(f"constraints[{i}]: a list of phrases, got {type(phrases).__name__}")
        for j, phrase in enumerate(phrases):
            if not isinstance(phrase, str):
                raise TypeError(f"constraints[{i}][{j}]: a string, got {type(phrase).__name__}")


def _contains(tokens: list[str], phrase: list[str]) -> bool:
    n = len(phrase)
    return any(tokens[k : k + n] == phrase for k in range(len(tokens) - n + 1))


def say_unmet(results: list[list[Translation]], phrases: list[list[list[str]]], first: int):
    """A warning naming the inputs whose best output misses one of its ``phrases``
    (tokens): when no hypothesis met them all within the length limit, the search returns
    the best incomplete one."""
    unmet = [
        first + i
        for i, (hyps, wanted) in enumerate(zip(results, phrases, strict=True))
        if hyps and any(not _contains(hyps[0].out_tokens, p) for p in wanted)
    ]
    if unmet:
        shown = ", ".join(map(str, unmet[:5])) + (", ..." if len(unmet) > 5 else "")
        log.warning(
            "constraints: %d output(s) miss a phrase (input %s): no hypothesis met them all "
            "within the length limit; a larger --max-len or --beam may",
            len(unmet),
            shown,
        )
