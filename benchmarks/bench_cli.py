"""What the benchmark scripts share on their command lines: ``--help`` text from a docstring,
argparse type functions that refuse a bad number or list in one line before any slow work,
and the one-line ending of the project's own errors (as ``transduce`` ends them).

Standard library only: ``peers/keras_seed_char.py`` imports it from Keras's environment,
which has no transduce and no torch.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path


def description(doc: str) -> str:
    """A docstring's first paragraph (its first line may end mid-sentence)."""
    return doc.split("\n\n")[0].strip()


def parser(doc: str) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` described by ``doc``'s first paragraph."""
    return argparse.ArgumentParser(description=description(doc))


def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer ``>= low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def positive_float(text: str) -> float:
    """An argparse type: a number ``> 0``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


def int_list(text: str) -> list[int]:
    """An argparse type: comma-separated integers ``>= 1`` (``1,8,32``), at least one."""
    items = [x.strip() for x in text.split(",") if x.strip()]
    if not items or not all(x.isdigit() and int(x) >= 1 for x in items):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers >= 1 (e.g. 1,8,32), got {text!r}"
        )
    return [int(x) for x in items]


def executable(hint: str) -> Callable[[str], str]:
    """An argparse type: the path of an executable file; ``hint`` says how to make one."""

    def parse(text: str) -> str:
        path = Path(text)
        if not path.is_file() or not os.access(path, os.X_OK):
            problem = "no such file" if not path.exists() else "not an executable file"
            raise argparse.ArgumentTypeError(f"{text}: {problem}; {hint}")
        return text

    parse.__name__ = "executable"
    return parse


def run(main: Callable[[], object]) -> None:
    """``sys.exit(main())``, ending the project's one-line errors (a ``ConfigError`` or
    ``DataError``, both ``ValueError``s, a missing file) as ``SCRIPT: error: MESSAGE`` on
    stderr with exit status 2, as ``transduce`` does; ``TRANSDUCE_DEBUG=1`` re-raises them
    for the traceback."""
    name = Path(sys.argv[0]).name
    try:
        status = main()
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        if os.environ.get("TRANSDUCE_DEBUG"):
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"{name}: error: {message}", file=sys.stderr)
        sys.exit(2)
    sys.exit(status)
