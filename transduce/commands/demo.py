"""The main job on the built-in task: dates in five languages -> ISO 8601.

Generates the data with Babel (CLDR formats in en, de, fr, es, el), trains a character
level ``bahdanau`` model, reports held-out exact match and draws one attention map.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

from transduce.atomic import atomic_write_text, writer_gone
from transduce.commands.plots import plot_attention
from transduce.config import Config, from_dict
from transduce.data.tasks import date_pairs
from transduce.folderswap import restore_previous, swap_in
from transduce.inference.translate import Translator
from transduce.locks import exclusive
from transduce.tasks.train import train

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
        # a safety net, not the budget: two epochs take about a minute on an idle laptop
        # CPU; a time budget (150 s) gave a busy machine a half-trained model (0.1-0.96)
        "max_seconds": 900,
        "clip_norm": 1.0,
        "valid_max": 1000,
        "log_every": 0,
    },
    "decode": {"max_len": 12, "batch_size": 500},
}


# The demo folder's own entries: a re-run replaces these and nothing else (a second run
# trained beside it, runs/demo/run2, stays); MARKER tells a demo folder from any other.
MARKER = ".transduce-demo"
OWN = ("data", "run", "attention.png", MARKER, ".demo.lock")


def _write_tsv(path: Path, src: list[str], tgt: list[str]) -> None:
    atomic_write_text(path, "".join(f"{s}\t{t}\n" for s, t in zip(src, tgt, strict=True)))


def _is_demo_folder(out: Path) -> bool:
    """Made by the demo: its marker. (A run beside its data is not enough: that is a
    user's project as often as a demo folder from before markers, whose data and run the
    demo would replace; such an old folder is refused, and removed by hand.)"""
    return (out / MARKER).is_file()


def prepare_out(out: Path) -> None:
    """Refuse a ``--out`` that is not empty and not a demo folder (``.``, ``runs``, a
    folder of the user's), naming what is there; never remove the folder itself. Then
    what a demo killed outright left (:func:`clear_leftovers`)."""
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: --out is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not _is_demo_folder(out):
        names = sorted(p.name for p in out.iterdir())
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise FileExistsError(
            f"{out} is not empty and not a demo folder (it holds {shown}): the demo writes "
            "only into a new folder or its own, e.g. --out runs/demo"
        )
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / MARKER, "made by transduce demo: data/, run/, attention.png\n")
    clear_leftovers(out)


def clear_leftovers(out: Path) -> None:
    """The run a demo killed outright was training (``.run.PID.tmp``) once that pid is
    gone (a live demo's stays), and its old run put back where a kill came between the
    swap's renames (this version's ``folderswap`` names, and an older version's
    ``.run.old.PID.tmp``)."""
    restore_previous(out / "run")
    for entry in sorted(out.iterdir()):
        match = re.fullmatch(r"\.run\.(old\.)?(\d+)\.tmp", entry.name)
        if not match or not entry.is_dir() or not writer_gone(int(match[2]), None):
            continue
        if match[1] and not (out / "run").exists():
            os.replace(entry, out / "run")  # killed between the two renames: put it back
        else:
            shutil.rmtree(entry)  # a run an interrupted demo was training, or set aside


def _install_run(out: Path, new: Path) -> None:
    """Put the freshly trained run in place of ``out/run`` (an interrupted demo leaves
    the old run or the new one, never a run without weights: :func:`swap_in`)."""
    run = out / "run"
    if run.is_symlink() or run.is_file():
        run.unlink()
    swap_in(new, run)


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
    prepare_out(out)
    # one demo at a time in a folder: a second waits (it rewrote the first's data and
    # removed the run it was training)
    with exclusive(out / ".demo.lock", f"demo: {out}"):
        return _demo(out, n_train, n_test, seed, overrides, started)


def _demo(
    out: Path, n_train: int, n_test: int, seed: int, overrides: dict | None, started: float
) -> dict[str, float]:
    clear_leftovers(out)  # again: what the demo we waited for may have left
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
    new = out / f".run.{os.getpid()}.tmp"  # trained beside the old run, then swapped in
    result = train(cfg, new)
    if result.interrupted:  # Ctrl-C / SIGTERM: never swap in a run stopped half way
        shutil.rmtree(new, ignore_errors=True)
        kept = "left as it was" if (out / "run").exists() else "not created"
        raise KeyboardInterrupt(f"stopped while training; {out / 'run'} {kept}")
    _install_run(out, new)
    print(f"demo: the run (trained in {new.name}, then moved) is {out / 'run'}")

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
