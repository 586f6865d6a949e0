"""The engines that decode a model, each registered once: how to export to it, how to load
it, and which decoding options it cannot honour.

``transduce export``, ``transduce translate --engine``, ``python -m transduce.runtime`` and
``transduce serve`` look engines up here, so adding an engine is its module (an export
function and a :class:`~transduce.inference.textdecoder.TextDecoder`) plus one :func:`register` call
below (see CONTRIBUTING.md); :mod:`transduce.loading` opens a model directory with the
engine its manifest names. Everything is named by import path and imported when used:
importing this module imports no engine, and the onnx and ct2 engines load and decode
without torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from transduce.config import ConfigError


@dataclass(frozen=True)
class Engine:
    """One engine. ``decoder``: ``"module:Class"`` of its TextDecoder, whose
    ``open(model_dir, checkpoint, device, threads)`` loads a model for it. ``export``:
    ``"module:function"`` with ``(run_dir, out, checkpoint, quantize) -> Path`` (None: the
    engine decodes training runs as they are). ``quantize``: the weight types its export
    accepts. ``refuses``: DecodeOptions field -> why the engine cannot honour it (refused
    when set; a ``best_effort`` field such as ``attention`` only where asked explicitly)."""

    name: str
    decoder: str
    export: str | None = None
    help: str = ""
    quantize: tuple[str, ...] = ()
    refuses: dict[str, str] = field(default_factory=dict)

    def decoder_class(self) -> Any:
        return _attribute(self.decoder)

    def export_function(self) -> Any:
        if self.export is None:
            raise ConfigError(f"the {self.name} engine decodes training runs; nothing to export")
        return _attribute(self.export)


ENGINES: dict[str, Engine] = {}


def register(engine: Engine) -> Engine:
    """Make ``engine`` known by its name (to every command and the server)."""
    if engine.name in ENGINES or engine.name == "auto":
        raise ValueError(f"engine {engine.name!r} is registered already")
    ENGINES[engine.name] = engine
    return engine


def get(name: str) -> Engine:
    if name not in ENGINES:
        raise ConfigError(f"engine {name!r}: not one of {', '.join(ENGINES)}")
    return ENGINES[name]


def exporters() -> list[Engine]:
    """The engines a training run can be exported to (``transduce export NAME``)."""
    return [e for e in ENGINES.values() if e.export is not None]


def _attribute(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


register(
    Engine("torch", "transduce.inference.translate:Translator", help="PyTorch, on a training run")
)
register(
    Engine(
        "onnx",
        "transduce.runtime.translate:Translator",
        "transduce.export.onnx:export_onnx",
        help="encoder, init_state, step and head graphs for onnxruntime (every preset)",
        quantize=("int8",),
    )
)
register(
    Engine(
        "ct2",
        "transduce.runtime.ct2:CT2Translator",
        "transduce.export.ct2:export_ct2",
        help="a CTranslate2 model (transformer preset only)",
        quantize=("int8", "int16", "float32"),
        refuses={
            "alpha": "CTranslate2 has no GNMT length penalty; use normalize, or the onnx or "
            "torch engine",
            "attention": "CTranslate2 models return no attention; use the onnx or torch engine",
            "constraints": "CTranslate2 has no lexically constrained search; use the onnx or "
            "torch engine",
        },
    )
)
