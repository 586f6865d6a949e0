"""Save -> load gives identical outputs, in this process and in a fresh one."""

import json
import subprocess
import sys

import pytest

from tests.helpers import reverse_pairs, tiny_config, write_tsv
from transduce.inference.translate import DecodeOptions, Translator, evaluate
from transduce.tasks.train import train

PROBE = """
import json, sys
from transduce.inference.translate import Translator
t = Translator.load(sys.argv[1])
out = t.translate_full(json.loads(sys.argv[2]))
print(json.dumps([[o.text, o.score] for o in out]))
"""


@pytest.mark.parametrize("preset", ["bahdanau", "sutskever"])
def test_save_load_new_process_identical(tmp_path, preset):
    tsv = write_tsv(tmp_path / "rev.tsv", reverse_pairs(120))
    cfg = tiny_config(tsv, model={"preset": preset, "cell": "lstm", "tie_embeddings": False})
    train(cfg, tmp_path / "run")
    inputs = ["abc", "fedcba", "a", "", "cab"]
    here = Translator.load(tmp_path / "run").translate_full(inputs)
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / "run"), json.dumps(inputs)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    there = json.loads(proc.stdout)
    assert [[o.text, o.score] for o in here] == there  # bit-identical scores


def test_tied_embeddings_survive_save_load(tmp_path):
    tsv = write_tsv(tmp_path / "rev.tsv", reverse_pairs(80))
    cfg = tiny_config(
        tsv,
        model={"tie_embeddings": True, "decoder": {"embed_size": 32, "hidden_size": 32}},
        train={"epochs": 1},
    )
    train(cfg, tmp_path / "run")
    t = Translator.load(tmp_path / "run")
    assert t.model.head.proj.weight is t.model.decoder.embed.embed.weight
    assert len(t.translate(["abc"])) == 1


def test_order_and_empty_lines_kept(tmp_path):
    tsv = write_tsv(tmp_path / "rev.tsv", reverse_pairs(80))
    train(tiny_config(tsv, train={"epochs": 1}), tmp_path / "run")
    t = Translator.load(tmp_path / "run")
    inputs = ["abcdef", "", "ab", "  ", "abc"]
    batched = t.translate(inputs, DecodeOptions(batch_size=2))
    assert batched == [t.translate([x])[0] for x in inputs]
    assert batched[1] == "" and batched[3] == ""
    scores = evaluate(t, ["ab", "cd"], ["ba", "dc"])
    assert scores["n"] == 2 and "nrefs:1" in scores["bleu_signature"]
