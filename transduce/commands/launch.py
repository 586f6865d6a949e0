"""The ``transduce`` command's first step: Ctrl-C while the CLI's modules import (a second
or so on a cold start) ends quietly with status 130, as an interrupt of a command does,
instead of a page of traceback; then :func:`transduce.commands.cli.entry` runs."""

from __future__ import annotations

import sys


def entry() -> None:
    try:
        from transduce.commands.cli import entry as run
    except KeyboardInterrupt:
        print("transduce: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    run()
