"""The error types shared across the package, in a module that imports nothing of it: a reader,
the torch-free search core and the command line all raise and catch these."""

from __future__ import annotations

import os

PathLike = str | os.PathLike[str]


class DataError(ValueError):
    """Bad input: the message is ``f"{path}:{line}: {problem}"``, or ``f"{path}: {problem}"``."""

    def __init__(self, path: PathLike, line: int | None, problem: str):
        self.path = os.fspath(path)
        self.line = line
        self.problem = problem
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {problem}")

    def __reduce__(self):
        # The default pickling replays args=(message,), which would not fit __init__.
        return type(self), (self.path, self.line, self.problem)


class OptionError(ValueError):
    """A decoding option (or a combination of them) that cannot be honoured. ``field`` is
    the option blamed, spelt as the surface that raised it spells it (``--beam``, ``beam``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message
