"""Export manifests: every field checked, every file inside the export's folder, each
graph in its role; each problem one line naming manifest.json (or the graph)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from transduce.runtime.manifest import check_graph
from transduce.runtime.model import ExportError, read_manifest


def _manifest(**changes) -> dict:
    side = {"tokenizer": "char", "lowercase": False, "vocab": "vocab.src.json"}
    manifest = {
        "engine": "onnx",
        "kind": "text",
        "preset": "luong",
        "decode": {
            "max_len": 20,
            "max_len_ratio": None,
            "batch_size": 8,
            "max_input_len": 100,
            "on_long_input": "truncate",
        },
        "text": {"src": dict(side), "tgt": {**side, "vocab": "vocab.tgt.json"}, "fields": 1},
    }
    for dotted, value in changes.items():
        node = manifest
        *parents, last = dotted.split("__")
        for key in parents:
            node = node[key]
        if value is KeyError:
            node.pop(last)
        else:
            node[last] = value
    return manifest


@pytest.fixture
def export(tmp_path) -> Path:
    folder = tmp_path / "exported"
    folder.mkdir()
    for side in ("src", "tgt"):
        (folder / f"vocab.{side}.json").write_text('{"tokens": []}')
    (tmp_path / "outside.json").write_text('{"tokens": []}')
    return folder


def _read(export: Path, manifest) -> None:
    (export / "manifest.json").write_text(json.dumps(manifest))
    read_manifest(export)


def test_a_good_manifest_reads(export):
    _read(export, _manifest())


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"text__src__vocab": "../outside.json"}, "points outside the export's folder"),
        ({"text__src__vocab": "../../x"}, "points outside"),
        ({"text__src__vocab": "/etc/passwd"}, "not a file name inside"),
        ({"text__src__vocab": "."}, "is not a file"),
        ({"text__src__vocab": 3}, "expected a file name"),
        ({"text__tgt": KeyError}, "text.tgt: expected a mapping"),
        ({"text": [1]}, "text: expected a mapping"),
        ({"decode": KeyError}, "decode: expected a mapping"),
        ({"decode__max_len": "20"}, "decode.max_len: expected an integer"),
        ({"decode__max_len": True}, "decode.max_len: expected an integer"),
        ({"decode__max_len": 0}, "decode.max_len: expected a positive integer"),
        ({"decode__batch_size": 1.5}, "decode.batch_size"),
        ({"text__src__tokenizer": "magic"}, "text.src.tokenizer: expected one of"),
        ({"text__src__lowercase": "no"}, "text.src.lowercase: expected true/false"),
        (
            {"text__src__tokenizer": "bpe", "text__src__sentencepiece": "vocab.src.json"},
            "is not a sentencepiece model",
        ),
        ({"text__src__tokenizer": "bpe"}, "text.src.sentencepiece: expected a file name"),
        ({"engine": "tflite"}, "engine: expected one of"),
        ({"preset": ["x"]}, "preset: expected a string"),
        ({"kind": "images"}, "kind: expected"),
    ],
)
def test_a_bad_manifest_is_one_line(export, changes, problem):
    with pytest.raises(ExportError, match=problem) as caught:
        _read(export, _manifest(**changes))
    assert "manifest.json" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "inputs", "outputs"),
    [
        ("encoder", ["features"], ["logits"]),
        ("head", ["src", "src_mask"], ["memory.h"]),
        ("step", ["memory.h"], ["state.h"]),
        ("init_state", ["prev"], ["features"]),
    ],
)
def test_a_graph_swapped_for_another_is_refused(tmp_path, name, inputs, outputs):
    with pytest.raises(ExportError, match=f"not the {name} graph"):
        check_graph(tmp_path / f"{name}.onnx", name, inputs, outputs)
