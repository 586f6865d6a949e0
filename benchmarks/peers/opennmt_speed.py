"""Peer comparison: training throughput of transduce and OpenNMT-py on the same model and data.

Both toolkits train the bidirectional-GRU + input-feeding attention model of
``benchmarks/peers/multi30k_gru_input_feed.yaml`` (about 10M parameters) on Multi30k de->en
with identical token sequences: the script trains the config's sentencepiece models, encodes
the training pairs with them, gives transduce the pairs and OpenNMT-py the same pieces as
whitespace-separated text files, with vocabularies holding the same pieces. Both use Adam
(lr 0.001), batches of 64 sentences, gradient clipping at 1.0, dropout 0.3 and the same number
of torch threads, one after the other in this one run, so the ratio compares the toolkits on
one machine state.

It prints ONE JSON line. The statistic is the same on both sides: target tokens (without
padding) summed over the same timed steps (``warmup + 1 .. warmup + steps``) divided by the
time they took. transduce's are counted per step (``benchmarks/train_speed.py``);
OpenNMT-py's come from its ``report_every 10`` log lines, each interval's ``tok/s`` times
the interval's duration (the difference of its cumulative ``sec``). ``--rounds R`` runs the
two toolkits alternately (A, B, A, B, ...) so a change in the machine's load falls on both;
the ratio is that of the two means, and every round's figures are in the line too.

OpenNMT-py is not a dependency of transduce; run it from its own environment (3.5.1 asks for
torch<2.3; it trains with newer torch, which spares the multi-GB CUDA wheels here)::

    python3 -m venv /tmp/onmt
    /tmp/onmt/bin/pip install -c constraints.txt torch configargparse pyyaml sacrebleu six \\
        'pyonmttok>=1.37,<2' rapidfuzz pyahocorasick tensorboard waitress flask
    /tmp/onmt/bin/pip install --no-deps opennmt-py==3.5.1
    # two imports only its terminology/cleaning transforms use (not used here):
    touch /tmp/onmt/lib/python3.11/site-packages/{spacy,fasttext}.py
    python benchmarks/peers/opennmt_speed.py --onmt /tmp/onmt/bin/onmt_train --threads 2
"""

from __future__ import annotations

import collections
import itertools
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_cli import executable, int_at_least, run
from peer_common import alternate, peer_env, peer_parser, record, time_transduce

from transduce.config import load_config
from transduce.data.pipeline import TextPipeline, filter_lengths, load_texts

CONFIG = Path(__file__).with_name("multi30k_gru_input_feed.yaml")
ONMT_HINT = (
    "give the onmt_train of an OpenNMT-py environment, made as this script's docstring "
    "shows (python3 -m venv /tmp/onmt, then its pip installs, last "
    "`/tmp/onmt/bin/pip install --no-deps opennmt-py==3.5.1`: /tmp/onmt/bin/onmt_train)"
)
REPORT = re.compile(r"Step (\d+)/\s*\d+;.*?(\d+)/\s*(\d+) tok/s;\s*(\d+) sec")


def write_pieces(cfg, folder: Path) -> int:
    """Train the config's sentencepiece models into ``folder`` and write the training pairs
    as pieces (``train.src`` / ``train.tgt``) plus OpenNMT-py vocabularies (``onmt_vocab.*``,
    piece and count); returns the number of pairs kept."""
    texts = load_texts(cfg.data)
    pipeline = TextPipeline.build(cfg.data, texts.train_src, texts.train_tgt, folder)
    pipeline.save(folder)
    kept = filter_lengths(pipeline.encode(texts.train_src, texts.train_tgt), cfg.data, "train")
    for side, seqs, vocab in (
        ("src", kept.src, pipeline.src_vocab),
        ("tgt", kept.tgt, pipeline.tgt_vocab),
    ):
        lines = [
            " ".join(vocab.decode(seqs.data[start : start + n].tolist()))
            for start, n in zip(seqs.offsets, seqs.lengths, strict=True)
        ]
        (folder / f"train.{side}").write_text("\n".join(lines) + "\n", encoding="utf-8")
        counts = collections.Counter(tok for line in lines for tok in line.split())
        pieces = "".join(f"{tok}\t{n}\n" for tok, n in counts.most_common())
        (folder / f"onmt_vocab.{side}").write_text(pieces, encoding="utf-8")
    return len(kept.src)


def aggregate_reports(reports: list[tuple[int, int, int]], warmup: int) -> float:
    """Target tokens/s over the steps after ``warmup`` from OpenNMT-py's report lines
    ``(step, tgt tok/s of the interval, cumulative seconds)``: each interval's tokens are
    its rate times its duration; their sum over the summed durations."""
    tokens = seconds = 0.0
    for (_, _, before), (step, rate, after) in itertools.pairwise(reports):
        if step > warmup:
            tokens, seconds = tokens + rate * (after - before), seconds + (after - before)
    if seconds <= 0:
        raise SystemExit(f"no timed OpenNMT-py interval after step {warmup}: {reports}")
    return tokens / seconds


def time_opennmt(
    onmt: str, folder: Path, warmup: int, steps: int, threads: int, workers: int, thp: bool
) -> dict:
    """Train OpenNMT-py for ``warmup + steps`` updates (reports every 10) and read its log."""
    total = warmup + steps
    corpus = {"path_src": str(folder / "train.src"), "path_tgt": str(folder / "train.tgt")}
    opts = {
        "save_data": str(folder / "onmt"),
        "src_vocab": str(folder / "onmt_vocab.src"),
        "tgt_vocab": str(folder / "onmt_vocab.tgt"),
        "src_vocab_size": 100000,
        "tgt_vocab_size": 100000,
        "data": {"corpus_1": corpus},
        "src_seq_length": 1000,
        "tgt_seq_length": 1000,
        "encoder_type": "brnn",
        "decoder_type": "rnn",
        "rnn_type": "GRU",
        "layers": 1,
        "hidden_size": 512,
        "word_vec_size": 256,
        "global_attention": "mlp",
        "input_feed": 1,
        "dropout": [0.3],
        "optim": "adam",
        "learning_rate": 0.001,
        "max_grad_norm": 1.0,
        "batch_type": "sents",
        "batch_size": 64,
        "train_steps": total,
        "report_every": 10,
        "valid_steps": 10 * total,
        "save_checkpoint_steps": 10 * total,
        "save_model": str(folder / "onmt_model"),
        "num_workers": workers,
        "seed": 1,
    }
    (folder / "onmt.yaml").write_text(yaml.safe_dump(opts), encoding="utf-8")
    env = peer_env(threads, thp)
    start = time.perf_counter()
    proc = subprocess.run(
        [onmt, "-config", str(folder / "onmt.yaml")],
        env=env,
        text=True,
        capture_output=True,
        check=False,
    )
    wall = time.perf_counter() - start
    log = proc.stdout + proc.stderr
    if proc.returncode:
        raise SystemExit(f"onmt_train failed ({proc.returncode}):\n{log[-3000:]}")
    reports = [(int(s), int(t), int(sec)) for s, _, t, sec in REPORT.findall(log)]
    params = re.search(r"\* number of parameters: (\d+)", log)
    if not any(step == warmup for step, _, _ in reports):
        raise SystemExit(f"no report at step {warmup} in the OpenNMT-py log:\n{log[-3000:]}")
    return {
        "params_m": round(int(params.group(1)) / 1e6, 2) if params else None,
        "tgt_tok_s": round(aggregate_reports(reports, warmup)),
        "steps": total - warmup,
        "num_workers": workers,
        "wall_s_incl_startup": round(wall, 1),
    }


def main() -> None:
    parser = peer_parser(__doc__, "OpenNMT-py", CONFIG, threads=2, warmup=20, steps=100)
    parser.add_argument(
        "--onmt",
        required=True,
        type=executable(ONMT_HINT),
        help="path to OpenNMT-py's onmt_train",
    )
    parser.add_argument(
        "--onmt-workers",
        type=int_at_least(0),
        default=2,
        help="OpenNMT-py DataLoader workers (its default: 2)",
    )
    args = parser.parse_args()
    if args.warmup % 10 or args.steps % 10 or args.warmup < 10:
        parser.error("--warmup and --steps: multiples of 10, warmup >= 10 (OpenNMT-py reports)")
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config, ["train.progress=false", f"train.precision={args.precision}"])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pairs = write_pieces(cfg, folder)
        ours, peer = alternate(
            args.rounds,
            lambda: time_transduce(cfg, folder, args.warmup, args.steps),
            lambda: time_opennmt(
                args.onmt,
                folder,
                args.warmup,
                args.steps,
                args.threads,
                args.onmt_workers,
                args.peer_thp,
            ),
        )
    line = record(
        "opennmt_speed",
        "opennmt_py",
        args.config,
        ours,
        peer,
        pairs=pairs,
        threads=args.threads,
        peer_thp=args.peer_thp,
    )
    print(json.dumps(line))


if __name__ == "__main__":
    run(main)
