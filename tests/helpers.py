"""Small shared builders for the tests: a tiny text task and configs that train in seconds."""

from __future__ import annotations

import random
from pathlib import Path

from transduce.config import Config, from_dict


def reverse_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Short lowercase strings and their reversal: learnable in a few hundred steps."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        word = "".join(rng.choice("abcdef") for _ in range(rng.randint(2, 6)))
        pairs.append((word, word[::-1]))
    return pairs


def write_tsv(path: Path, pairs: list[tuple[str, str]]) -> Path:
    path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    return path


def tiny_config(train_tsv: Path, **sections: dict) -> Config:
    raw = {
        "data": {"train": str(train_tsv), "valid_fraction": 0.2},
        "model": {
            "preset": "luong",
            "cell": "gru",
            "encoder": {"embed_size": 16, "hidden_size": 32},
            "decoder": {"embed_size": 16, "hidden_size": 32},
        },
        "train": {"batch_size": 16, "epochs": 2, "lr": 0.01, "progress": False, "log_every": 5},
        "decode": {"max_len": 12},
    }
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    return from_dict(Config, raw)


def padded_batch(width: int, vocab: int = 20):
    """Four random sources of ``width`` ids, rows 0 and 2 padded: (src, src_mask)."""
    import torch

    src = torch.randint(4, vocab, (4, width))
    src[0, 3:] = 0
    src[2, width - 3 :] = 0
    return src, src != 0


def same_last_weights(run_a: Path, run_b: Path) -> bool:
    """Whether two runs' last checkpoints hold bit-identical weights."""
    import torch
    from safetensors.torch import load_file

    a = load_file(str(run_a / "last" / "model.safetensors"))
    b = load_file(str(run_b / "last" / "model.safetensors"))
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def metric_rows(run: Path) -> list[dict]:
    """metrics.jsonl without the wall-clock fields."""
    import json

    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("seconds", "tok_s")} for r in rows]


def runtime_distributions(extra: str = "runtime") -> set[str]:
    """The distributions ``pip install 'transduce[EXTRA]'`` brings (pyproject.toml's base
    and the extra, its transduce[...] extras followed, then each one's own requirements as
    installed here), by canonical name."""
    import contextlib
    import re
    import tomllib
    from importlib.metadata import PackageNotFoundError, requires

    from packaging.requirements import Requirement

    def name(text: str) -> str:
        return re.sub(r"[-_.]+", "-", text).lower()

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    todo, found = list(project["dependencies"]), set()
    extras, seen = [extra], set()
    while extras:  # an extra may name others (runtime = runtime-onnx + runtime-ct2 + serve)
        e = extras.pop()
        if e in seen:
            continue
        seen.add(e)
        for req in project["optional-dependencies"][e]:
            r = Requirement(req)
            if name(r.name) == "transduce":
                extras += sorted(r.extras)
            else:
                todo.append(req)
    while todo:
        r = Requirement(todo.pop())
        if r.marker is not None and not r.marker.evaluate({"extra": ""}):
            continue
        if name(r.name) in found:
            continue
        found.add(name(r.name))
        with contextlib.suppress(PackageNotFoundError):  # an optional one not installed here
            todo += requires(r.name) or []
    return found


def blocked_modules(extra: str = "runtime") -> list[str]:
    """Top-level modules of distributions installed here that ``transduce[EXTRA]`` does not
    bring (torch, matplotlib, pytest, ...): importing one there would fail."""
    from importlib.metadata import packages_distributions

    allowed = runtime_distributions(extra)
    blocked = {"torch"}
    for module, dists in packages_distributions().items():
        names = {d.replace("_", "-").replace(".", "-").lower() for d in dists}
        if module.isidentifier() and not names & (allowed | {"transduce"}):
            blocked.add(module)
    return sorted(blocked)


ROOT = Path(__file__).resolve().parents[1]


def __getattr__(name: str) -> str:
    """``BLOCK_TORCH``: a script prelude under which ``import torch`` fails, and so does every
    module that the runtime extra does not install (for code that must run in
    `pip install 'transduce[runtime]'`). Built on first use: it reads the installed metadata."""
    if name != "BLOCK_TORCH":
        raise AttributeError(name)
    return f"""
import sys
BLOCKED = set({blocked_modules()!r})
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            # as a real absence: ModuleNotFoundError naming the module
            raise ModuleNotFoundError(f"{{name}}: not in transduce[runtime], blocked here",
                                      name=name)
sys.meta_path.insert(0, Block())
"""


def tiny_reverse_run(folder: Path) -> Path:
    """A trained tiny run on the reverse task in ``folder/run`` (a few seconds on a CPU)."""
    from transduce.tasks.train import train

    cfg = tiny_config(write_tsv(folder / "rev.tsv", reverse_pairs(64, seed=4)))
    train(cfg, folder / "run")
    return folder / "run"


def one_line_error(capsys, args: list[str]) -> str:
    """Run the CLI on ``args``; it must exit 2 with one line on stderr and no traceback."""
    from transduce.commands.cli import main

    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def free_port() -> int:
    """A free TCP port on loopback (for a process group's rendezvous)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_torchrun_rank(rank: int, world: int, port: int) -> None:
    """Set what torchrun sets for each process it starts (rendezvous on loopback ``port``)."""
    import os

    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )


def text_loop(cfg, run_dir, rank: int = 0, world: int = 1):
    """A training :class:`~transduce.engine.loop.Loop` on ``cfg``'s text data, seeded as
    ``transduce train`` seeds it, for tests that step it by hand (rank ``rank`` of ``world``)."""
    from transduce.engine.loop import Loop
    from transduce.engine.run import seed_everything
    from transduce.nn.models import build_model
    from transduce.tasks.text import TextTask
    from transduce.tasks.train import prepare_run

    seed_everything(cfg.train.seed)
    pipeline, train_data, valid_data, refs = prepare_run(cfg, run_dir, resume=False)
    model = build_model(cfg.model, len(pipeline.src_vocab), len(pipeline.tgt_vocab))
    task = TextTask(cfg, model, pipeline, train_data, valid_data, refs)
    return Loop(cfg, task, run_dir, rank, world)


# a transformer small enough to train in seconds (exports, serving)
TINY_TRANSFORMER = {
    "preset": "transformer",
    "transformer": {
        "d_model": 32,
        "heads": 4,
        "ff_size": 64,
        "encoder_layers": 1,
        "decoder_layers": 1,
        "dropout": 0.0,
    },
}


def dead_pid() -> int:
    """The pid of a process that has ended: what a writer killed outright leaves in names."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)
