"""The engine registry: an ONNX export loads and decodes through it where torch cannot be
imported; a new engine is one registration and its decoder; what an engine refuses is
declared once and refused by name on every surface."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import BLOCK_TORCH, reverse_pairs, tiny_config, write_tsv
from transduce import engines, loading
from transduce.config import ConfigError
from transduce.errors import OptionError
from transduce.inference.decoding import DecodeOptions
from transduce.inference.textdecoder import TextDecoder

ROOT = Path(__file__).resolve().parents[1]
NO_TORCH = (
    BLOCK_TORCH
    + """
import json
from transduce import loading
from transduce.inference.decoding import DecodeOptions
translator = loading.load(sys.argv[1], threads=1)
hyps = translator.decode(["abc", "", "fedcb"], DecodeOptions(beam=2, nbest=2))
assert "torch" not in sys.modules, "torch was imported"
print(json.dumps([[h.text for h in row] for row in hyps]))
"""
)


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    from transduce.commands.cli import main
    from transduce.tasks.train import train

    root = tmp_path_factory.mktemp("engines")
    cfg = tiny_config(write_tsv(root / "rev.tsv", reverse_pairs(60)), train={"epochs": 1})
    train(cfg, root / "run")
    assert (
        main(["-q", "export", "onnx", "--model", str(root / "run"), "--out", str(root / "x")]) == 0
    )
    return root


def test_onnx_export_loads_and_decodes_through_the_registry_without_torch(export):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", NO_TORCH, str(export / "x")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    direct = loading.load(export / "x", threads=1).decode(
        ["abc", "", "fedcb"], DecodeOptions(beam=2, nbest=2)
    )
    assert rows == [[h.text for h in row] for row in direct]
    assert rows[1] == [""] and len(rows[0]) == 2


def test_every_engine_resolves_and_exports_from_its_registration(export):
    assert loading.resolve(export / "run").name == "torch"
    assert loading.resolve(export / "x").name == "onnx"
    assert {e.name for e in engines.exporters()} == {"onnx", "ct2"}
    for engine in engines.ENGINES.values():
        assert issubclass(engine.decoder_class(), TextDecoder)
    with pytest.raises(ConfigError, match="training run; export it first"):
        loading.resolve(export / "run", "onnx")
    with pytest.raises(ConfigError, match="nothing to export"):
        engines.get("torch").export_function()


class _Joiner:
    def decode(self, tokens: list[str]) -> str:
        return "".join(tokens)


class Upper(TextDecoder):
    """A toy engine (its own pipeline): the output is the input, upper-cased."""

    engine = "upper"
    tgt_tok = _Joiner()

    def __init__(self) -> None:
        self.pipeline = self
        self.defaults = {"batch_size": 2, "max_len": 10, "max_len_ratio": None}

    def src_tokens(self, text: str) -> list[str]:
        return list(text)

    @classmethod
    def open(cls, model_dir: str, checkpoint: str, device: str, threads: int) -> Upper:
        return cls()

    def _decode_live(self, tokens, texts, o):
        return [[self._text(t, [c.upper() for c in t], 0.0, 0.0, None)] for t in tokens]


def test_a_new_engine_is_one_registration(tmp_path, monkeypatch):
    refuses = {"sample": "the upper engine has no randomness"}
    engine = engines.Engine("upper", f"{__name__}:Upper", refuses=refuses)
    monkeypatch.setitem(engines.ENGINES, "upper", engine)
    (tmp_path / "manifest.json").write_text(json.dumps({"engine": "upper"}))
    translator = loading.load(tmp_path)
    assert translator.translate(["ab", "", "c"]) == ["AB", "", "C"]
    assert [len(part) for part in translator.iter_decode(["a", "b", "c"])] == [2, 1]
    with pytest.raises(OptionError, match="sample: the upper engine has no randomness"):
        translator.decode(["ab"], DecodeOptions(sample=True))
    with pytest.raises(ValueError, match="registered already"):
        engines.register(engine)


def test_ct2_refusals_are_declared_once_and_spelt_per_surface():
    from transduce.commands.options import flag_name
    from transduce.serve.schemas import http_name

    refuses = engines.get("ct2").refuses
    assert set(refuses) == {"alpha", "attention", "constraints"}
    decoder = object.__new__(engines.get("ct2").decoder_class())
    beam = DecodeOptions(beam=2, alpha=0.6)
    for name, spelt in (
        (str, "alpha"),
        (flag_name, "--length-penalty"),
        (http_name, "length_penalty"),
    ):
        with pytest.raises(OptionError, match=f"^{spelt}: CTranslate2 has no GNMT") as err:
            decoder.check(beam, name)
        assert err.value.field == spelt
    decoder.check(DecodeOptions())  # attention is best effort unless asked for explicitly
    with pytest.raises(OptionError, match="return_attention: CTranslate2 models return no"):
        decoder.check(DecodeOptions(), http_name, explicit=True)
    for engine in ("torch", "onnx"):
        assert engines.get(engine).refuses == {}
