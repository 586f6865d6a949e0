"""Validation of an exported model's ``manifest.json`` and graphs: every field of the
expected type, every file it names a plain file inside the export's folder, each graph
with the inputs and outputs of its role; each problem one line naming the file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from transduce.engines import ENGINES
from transduce.errors import ExportError

TOKENIZERS = ("char", "word", "bpe", "unigram")
# The inputs each graph must take and the outputs it must give (a graph file swapped for
# another one is refused at load, not in the middle of a search).
GRAPH_IO: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "encoder": (("src", "src_mask"), ()),
    "init_state": ((), ()),
    "step": (("prev",), ("features",)),
    "head": (("features",), ("logits",)),
}


def _fail(path: Path, problem: str) -> None:
    raise ExportError(f"{path}: {problem}")


def _typed(path: Path, where: str, value: Any, kinds: type | tuple, what: str) -> Any:
    if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
        _fail(path, f"{where}: expected {what}, got {value!r}")
    if not isinstance(value, kinds):
        from transduce.config import cut

        _fail(path, f"{where}: expected {what}, got {cut(value, 40)}")
    return value


def inside(path: Path, model_dir: Path, name: Any, where: str) -> Path:
    """``model_dir / name`` for a relative file name that stays inside ``model_dir`` (links
    followed), else one ExportError (``../../x``, an absolute path, a directory)."""
    _typed(path, where, name, str, "a file name")
    if not name or os.path.isabs(name):
        _fail(path, f"{where}: {name!r} is not a file name inside the export's folder")
    real_dir = os.path.realpath(model_dir)
    target = os.path.realpath(Path(model_dir, name))
    if os.path.commonpath([target, real_dir]) != real_dir:
        _fail(path, f"{where}: {name!r} points outside the export's folder; refused")
    if Path(target).exists() and not Path(target).is_file():
        _fail(path, f"{where}: {name!r} is not a file")
    return Path(model_dir, name)


def _text_side(path: Path, model_dir: Path, side: str, entry: Any) -> None:
    where = f"text.{side}"
    _typed(path, where, entry, dict, "a mapping")
    kind = entry.get("tokenizer")
    if kind not in TOKENIZERS:
        _fail(path, f"{where}.tokenizer: expected one of {', '.join(TOKENIZERS)}, got {kind!r}")
    _typed(path, f"{where}.lowercase", entry.get("lowercase"), bool, "true/false")
    inside(path, model_dir, entry.get("vocab"), f"{where}.vocab")
    spm = entry.get("sentencepiece")
    if kind in ("bpe", "unigram") or spm is not None:
        model = inside(path, model_dir, spm, f"{where}.sentencepiece")
        if model.is_file():
            _check_sentencepiece(path, model, f"{where}.sentencepiece")


def _check_sentencepiece(path: Path, model: Path, where: str) -> None:
    """A sentencepiece model file loads (a vocabulary or a graph named there does not)."""
    import sentencepiece as spm

    try:
        spm.SentencePieceProcessor(model_file=str(model))
    except (OSError, RuntimeError, ValueError):
        _fail(path, f"{where}: {model.name} is not a sentencepiece model")


def validate(manifest: Any, model_dir: Path, path: Path) -> dict:
    """``manifest`` if it is a well-formed export manifest, else one ExportError."""
    _typed(path, "the top level", manifest, dict, "a mapping")
    engines = list(ENGINES)  # any registered engine (a new one is one registration)
    if manifest.get("engine") not in engines:
        _fail(path, f"engine: expected one of {', '.join(engines)}, got {manifest.get('engine')!r}")
    if ENGINES[manifest["engine"]].export is None:
        return manifest  # not written by a transduce exporter: its engine reads the rest
    kind = manifest.get("kind", "text")
    if kind not in ("text", "series", "tensors"):
        _fail(path, f"kind: expected text, series or tensors, got {kind!r}")
    if "preset" in manifest:
        _typed(path, "preset", manifest["preset"], str, "a string")
    if kind == "tensors":  # bare graphs (no decoding defaults, no text)
        return manifest
    _decode(path, manifest.get("decode"))
    if kind == "text":
        text = _typed(path, "text", manifest.get("text"), dict, "a mapping")
        for side in ("src", "tgt"):
            _text_side(path, model_dir, side, text.get(side))
        _typed(path, "text.fields", text.get("fields", 1), int, "an integer")
    else:
        _typed(path, "series", manifest.get("series"), dict, "a mapping")
    return manifest


def _decode(path: Path, decode: Any) -> None:
    _typed(path, "decode", decode, dict, "a mapping")
    _typed(path, "decode.max_len", decode.get("max_len"), int, "an integer")
    if decode["max_len"] < 1:
        _fail(path, f"decode.max_len: expected a positive integer, got {decode['max_len']}")
    for key in ("max_input_len", "batch_size"):
        if decode.get(key) is not None:
            _typed(path, f"decode.{key}", decode[key], int, "an integer or null")
    if decode.get("max_len_ratio") is not None:
        _typed(path, "decode.max_len_ratio", decode["max_len_ratio"], (int, float), "a number")


def check_graph(path: Path, name: str, inputs: list[str], outputs: list[str]) -> None:
    """The graph at ``path`` has the inputs and outputs of role ``name``."""
    want_in, want_out = GRAPH_IO.get(name, ((), ()))
    missing = [n for n in want_in if n not in inputs] + [n for n in want_out if n not in outputs]
    wrong = name == "init_state" and any(not n.startswith("memory.") for n in inputs)
    if missing or wrong:
        _fail(
            path,
            f"not the {name} graph of an export (its inputs are {inputs[:4]}, outputs "
            f"{outputs[:4]}); the file was replaced or damaged",
        )
