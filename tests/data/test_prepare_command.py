"""``transduce prepare`` on the command line, and the WMT14 transformer-base recipe smoke-
tested end to end (prepare, train, resume) on a small synthetic corpus."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import reverse_pairs
from transduce.commands.cli import main
from transduce.config import load_config

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "configs" / "wmt14_en_de_transformer_base.yaml"


def _pairs(folder: Path, name: str, n: int, seed: int) -> list[str]:
    pairs = reverse_pairs(n, seed)
    for side, texts in (("en", [s for s, _ in pairs]), ("de", [t for _, t in pairs])):
        (folder / f"{name}.{side}").write_text("\n".join(texts) + "\n", encoding="utf-8")
    return [f"data.{name}_src={folder / name}.en", f"data.{name}_tgt={folder / name}.de"]


def test_the_wmt14_recipe_is_transformer_base():
    cfg = load_config(RECIPE)
    t = cfg.model.transformer
    assert (t.d_model, t.heads, t.ff_size, t.encoder_layers, t.decoder_layers) == (
        512,
        8,
        2048,
        6,
        6,
    )
    assert not t.pre_norm and cfg.train.label_smoothing == 0.1 and cfg.data.joint_vocab
    assert cfg.train.max_tokens * cfg.train.accumulate_steps >= 24_000
    assert cfg.data.prepared == "auto"


def test_prepare_then_train_the_wmt14_recipe_on_a_tiny_corpus(tmp_path, capsys):
    data = _pairs(tmp_path, "train", 300, 1) + _pairs(tmp_path, "valid", 20, 2)
    data += ["data.vocab_size=40", "data.spm_sample=200"]
    store = tmp_path / "store"
    args = ["prepare", str(RECIPE), "--out", str(store), "--workers", "2", "--no-progress"]
    assert main([*args, *(f"--set={x}" for x in data)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(store)
    manifest = json.loads((store / "manifest.json").read_text())
    assert manifest["splits"]["train"]["corpora"][0]["read"] == 300 and "train: 300 pairs" in err
    tiny = [
        "model.transformer.d_model=16",
        "model.transformer.heads=2",
        "model.transformer.ff_size=32",
        "model.transformer.encoder_layers=1",
        "model.transformer.decoder_layers=1",
        "train.max_steps=2",
        "train.max_tokens=300",
        "train.accumulate_steps=1",
        "train.valid_every=2",
        "train.valid_max=4",
        "train.precision=fp32",
        "train.progress=false",
        "decode.max_len=8",
        f"data.prepared={store}",
    ]
    run = tmp_path / "run"
    sets = [f"--set={x}" for x in data + tiny]
    assert main(["train", str(RECIPE), "--out", str(run), *sets]) == 0
    assert (run / "spm.joint.model").is_file() and (run / "last" / "model.safetensors").exists()
    resume = ["train", "--resume", "--out", str(run), "--set=train.max_steps=4"]
    assert main(resume) == 0
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["split"] == "valid"] == [2, 4]
    # Other data settings with this store: one line naming the key, no traceback.
    assert (
        main(
            [
                "train",
                str(RECIPE),
                "--out",
                str(tmp_path / "other"),
                *sets,
                "--set=data.vocab_size=50",
            ]
        )
        == 2
    )
    assert "data.vocab_size (store 40, config 50)" in capsys.readouterr().err


def test_prepare_refuses_streams_and_a_missing_train_in_one_line(tmp_path):
    # a store hashes each input, then reads it: /dev/zero was hashed for ever and a FIFO
    # drained by the hash (the read then blocked)
    import os
    import subprocess
    import sys

    os.mkfifo(tmp_path / "fifo")
    for train, said in (
        ("/dev/zero", "/dev/zero: not a regular file (data.train)"),
        (str(tmp_path / "fifo"), "fifo: not a regular file (data.train)"),
        (None, "data.train: not set"),
    ):
        config = "data:\n  format: tsv\n" + (f"  train: {train}\n" if train else "")
        (tmp_path / "c.yaml").write_text(config + f"  valid: {tmp_path / 'v.tsv'}\n")
        cmd = [sys.executable, "-m", "transduce", "prepare", str(tmp_path / "c.yaml")]
        got = subprocess.run(
            [*cmd, "--out", str(tmp_path / "store")], capture_output=True, text=True, timeout=60
        )
        assert got.returncode == 2 and said in got.stderr, got.stderr
        assert len(got.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml", "fifo"]


def test_prepare_of_a_forecasting_config_says_what_it_is(capsys):
    """It said "data.train: not set" of the m4_hourly recipe."""
    from transduce.commands.cli import main

    assert main(["prepare", "m4_hourly"]) == 2
    err = capsys.readouterr().err
    assert "a forecasting config" in err and err.count("\n") == 1
