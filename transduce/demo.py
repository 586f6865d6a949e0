"""The main job on the built-in task: dates in five languages -> ISO 8601.

Generates the data with Babel (CLDR formats in en, de, fr, es, el), trains a character
level ``bahdanau`` model, reports held-out exact match and draws one attention map.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from transduce.config import Config, from_dict
from transduce.data.tasks import date_pairs
from transduce.plots import plot_attention
from transduce.train import train
from transduce.translate import Translator

DEMO_CONFIG = {
    "data": {
        "format": "tsv",
        "src_tokenizer": "char",
        "tgt_tokenizer": "char",
    },
    "model": {
        "preset": "bahdanau",
        "cell": "gru",
        "encoder": {"embed_size": 64, "hidden_size": 128, "bidirectional": True},
        "decoder": {"embed_size": 32, "hidden_size": 128, "readout_size": 128},
        "attention": {"size": 64},
    },
    "train": {
        "optimizer": "adam",
        "lr": 0.003,
        "batch_size": 128,
        "epochs": 2,
        "max_seconds": 150,
        "clip_norm": 1.0,
        "valid_max": 1000,
        "log_every": 0,
    },
    "decode": {"max_len": 12, "batch_size": 500},
}


def _write_tsv(path: Path, src: list[str], tgt: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{s}\t{t}\n" for s, t in zip(src, tgt, strict=True)), "utf-8")


def run_demo(
    out: str | os.PathLike = "runs/demo",
    n_train: int = 30000,
    n_test: int = 2000,
    seed: int = 0,
    overrides: dict | None = None,
) -> dict[str, float]:
    """Generate, train, test, draw. Returns the summary figures."""
    started = time.perf_counter()
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)  # the demo always starts afresh
    src, tgt = date_pairs(n_train + n_test // 2, seed=seed)
    test_src, test_tgt = date_pairs(n_test * 2, seed=seed + 1)
    seen = set(src)
    held = [(s, t) for s, t in zip(test_src, test_tgt, strict=True) if s not in seen][:n_test]
    _write_tsv(out / "data" / "train.tsv", src[:n_train], tgt[:n_train])
    _write_tsv(out / "data" / "valid.tsv", src[n_train:], tgt[n_train:])
    raw = {**DEMO_CONFIG}
    raw["data"] = {
        **raw["data"],
        "train": str(out / "data" / "train.tsv"),
        "valid": str(out / "data" / "valid.tsv"),
    }
    for section, values in (overrides or {}).items():
        raw[section] = {**raw.get(section, {}), **values}
    cfg: Config = from_dict(Config, raw)
    print(f"demo: {n_train} training pairs, e.g. {src[0]!r} -> {tgt[0]}")
    result = train(cfg, out / "run")

    translator = Translator.load(out / "run")
    outputs = translator.translate_full([s for s, _ in held])
    hits = sum(o.text == t for o, (_, t) in zip(outputs, held, strict=True))
    for o, (s, t) in list(zip(outputs, held, strict=True))[:8]:
        print(f"  {s:<36} -> {o.text}  {'ok' if o.text == t else 'expected ' + t}")
    pick = next(i for i, (s, _) in enumerate(held) if any("α" <= c <= "ω" for c in s))
    picture = plot_attention(
        outputs[pick].attention,
        outputs[pick].src_tokens,
        outputs[pick].out_tokens,
        out / "attention.png",
        title=f"{held[pick][0]} -> {outputs[pick].text}",
    )
    seconds = time.perf_counter() - started
    exact = hits / len(held)
    print(f"attention heatmap: {picture}")
    print(f"held-out exact match: {exact:.3f} (n={len(held)}) in {seconds:.0f} s")
    return {"exact": exact, "n": len(held), "seconds": seconds, "train_steps": result.steps}
