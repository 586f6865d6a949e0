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


class ExportError(ValueError):
    """A missing or damaged exported directory (one line, naming the file)."""


# What only an extra installs: a command that reaches one of these where the extra is not
# installed (pip install 'transduce[runtime]' has no torch) says so in one line, not a traceback.
EXTRA_OF = {
    **dict.fromkeys(
        ("torch", "safetensors", "matplotlib", "babel", "rouge_score", "pooch", "requests"), "train"
    ),
    **dict.fromkeys(("onnx", "onnxscript"), "export"),
    **dict.fromkeys(("onnxruntime", "ctranslate2"), "runtime"),
    **dict.fromkeys(
        ("fastapi", "uvicorn", "pydantic", "prometheus_client", "fastapi_offline"), "serve"
    ),
    "tensorboard": "tensorboard",
}


def missing_extra(err: ModuleNotFoundError) -> str | None:
    """The one-line advice for a module that an extra of transduce installs, or None."""
    module = (err.name or "").partition(".")[0]
    extra = EXTRA_OF.get(module)
    if extra is None:
        return None
    if extra == "train":
        return (
            f"this needs {module}, which the PyTorch-free install leaves out: pip install "
            "'transduce[train]', or decode an export of the run (transduce export "
            "onnx|ct2)"
        )
    if extra == "runtime":  # the engines come with the runtime and with export
        return (
            f"this needs {module}: pip install 'transduce[runtime]' to decode exports "
            "(pip install 'transduce[export]' beside PyTorch)"
        )
    return f"this needs {module}: pip install 'transduce[{extra}]'"


def run_dir_list(run_dirs: object, who: str) -> list:
    """The member folders of an ensemble, as a list of one or more paths: a bare path (whose
    characters were taken for members) or an empty list is refused, naming ``who``."""
    if isinstance(run_dirs, (str, bytes, os.PathLike)) or not hasattr(run_dirs, "__iter__"):
        raise TypeError(f"{who}: a list of run folders, got {type(run_dirs).__name__}")
    out = list(run_dirs)
    if not out:
        raise ValueError(f"{who}: give at least one run folder")
    return out
