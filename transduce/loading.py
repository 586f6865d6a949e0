"""Open a model directory -- a training run or an export -- with its engine.

Above both the engine registry (:mod:`transduce.engines`) and the runtime's manifest
checks (:mod:`transduce.runtime.manifest`, which asks the registry which engines exist):
choosing an engine for a directory reads its manifest, so it lives here rather than in the
registry, and neither of those two modules imports the other back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transduce.config import ConfigError
from transduce.engines import Engine, get
from transduce.runtime.model import read_manifest


def resolve(model_dir: str | Path, engine: str = "auto") -> Engine:
    """The engine for ``model_dir``: its manifest's for an export, torch for a training run;
    ``engine`` (not ``auto``) must agree."""
    exported = Path(model_dir, "manifest.json").is_file()
    found = read_manifest(model_dir)["engine"] if exported else "torch"
    if engine in ("auto", found):
        return get(found)
    if exported:
        article = "an" if found[0] in "aeio" else "a"
        raise ConfigError(f"--engine {engine}: {model_dir} is {article} {found} export")
    raise ConfigError(
        f"--engine {engine}: {model_dir} is a training run; export it first "
        f"(transduce export {engine} --model {model_dir} --out DIR)"
    )


def load(
    model_dir: str | Path,
    engine: str = "auto",
    checkpoint: str = "best",
    device: str = "cpu",
    threads: int = 0,
) -> Any:
    """The text decoder for ``model_dir`` on its engine (see :func:`resolve`).
    ``checkpoint`` and ``device`` choose a training run's weights and device; ``threads``
    an exported model's runtime threads."""
    spec = resolve(model_dir, engine)
    return spec.decoder_class().open(str(model_dir), checkpoint, device, threads)
