"""Peer comparison: training throughput of transduce and Joey NMT 2.3 on the same transformer.

Both toolkits train the tiny transformer of ``configs/multi30k_en_de_transformer_tiny.yaml``
(4+4 pre-norm layers, width 128, 4 heads, feed-forward 256, dropout 0.3 on embeddings,
residuals and the feed-forward's inner layer, no attention-weight dropout, embeddings scaled
by sqrt(128), sinusoidal positions, target embedding tied to the output projection, label
smoothing 0.1, Adam (0.9, 0.98) at lr 0.005 with 2,000 inverse-sqrt warm-up steps,
gradient clipping at 1.0, batches of 4,096 padded tokens) on Multi30k en->de with identical
token sequences: the script trains the recipe's joint BPE model, encodes the pairs, and gives
Joey NMT the same pieces as whitespace-separated text (``level: word``) with a vocabulary file
holding the same pieces. Joey NMT reads the pairs in transduce's batch order with shuffling
off, so its token batcher cuts nearly the same batches (it has no length bucketing of its own).

It prints ONE JSON line. The statistic is the same on both sides: target tokens (without
padding, end-of-sentence included) summed over the same timed steps (``warmup + 1 ..
warmup + steps``) divided by the time they took, each step timed from fetching its batch to
the end of the optimizer step. transduce's steps are ``benchmarks/train_speed.py``'s; Joey
NMT's run in a small driver (``DRIVER`` below) inside Joey's environment that builds Joey's
model, data and TrainManager with Joey's own functions and repeats the body of Joey's
training loop (``_train_step``, clipping, optimizer and scheduler step). ``--rounds R``
alternates the toolkits (A, B, A, B, ...); the ratio is that of the two means.

Differences that remain (none changes the matmul work by more than 0.1%):
- Joey's output projection has no bias (transduce's has one: 8,000 parameters).
- Joey's attention layers drop attention weights with the layer dropout and cannot be told
  otherwise; the driver sets that dropout's p to 0.0, the recipe's ``attention_dropout``.
- Layer-norm epsilon 1e-6 (Joey) vs 1e-5 (torch's default, transduce).
- Joey closes a token batch when it reaches 4,096 padded tokens (lengths + 1), transduce keeps
  it at or under 4,096: ``tokens_per_step`` in the line shows each side's mean.
- Initialisation differs (irrelevant to speed).

Joey NMT is not a dependency of transduce; run it from its own environment. Its pins ask for
protobuf<3.21 (which tensorboard refuses) and for linters it never imports, so it goes in
with ``--no-deps`` beside the torch of this repository's constraints::

    python3 -m venv /tmp/joey
    /tmp/joey/bin/pip install -c constraints.txt torch==2.13.0 numpy pyyaml sacrebleu \\
        sentencepiece six tensorboard matplotlib
    /tmp/joey/bin/pip install importlib_metadata tqdm packaging
    /tmp/joey/bin/pip install --no-deps joeynmt==2.3.0 subword-nmt wrapt
    /tmp/joey/bin/python -c "import joeynmt.training"      # imports cleanly
    nice -n 19 taskset -c 1 python benchmarks/peers/joeynmt_speed.py \\
        --joey /tmp/joey/bin/python --threads 1 --warmup 10 --steps 40 --rounds 2
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_cli import executable, run
from peer_common import alternate, peer_env, peer_parser, record, time_transduce
from train_speed import build_trainer

from transduce.config import load_config
from transduce.data.pipeline import TextPipeline, load_texts
from transduce.engine import distributed

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "multi30k_en_de_transformer_tiny.yaml"
JOEY_HINT = (
    "give the python of a Joey NMT environment, made as this script's docstring shows "
    "(python3 -m venv /tmp/joey, then its pip installs, last "
    "`/tmp/joey/bin/pip install --no-deps joeynmt==2.3.0 subword-nmt wrapt`)"
)

# Runs under Joey's interpreter: argv = config, warmup, steps, threads. The loop body is
# Joey 2.3's TrainManager.train_and_validate without logging, validation and checkpoints.
DRIVER = """
import json, sys, time
import torch
from joeynmt.config import load_config, parse_global_args, set_validation_args
from joeynmt.prediction import prepare
from joeynmt.training import TrainManager
from joeynmt.transformer_layers import MultiHeadedAttention

cfg_path, warmup, steps, threads = sys.argv[1], *map(int, sys.argv[2:5])
torch.set_num_threads(threads)
args = parse_global_args(load_config(cfg_path), rank=0, mode="train")
model, train_data, dev_data, _ = prepare(args, rank=0, mode="train")
for module in model.modules():  # the recipe has no attention-weight dropout
    if isinstance(module, MultiHeadedAttention):
        module.dropout.p = 0.0
trainer = TrainManager(model=model, model_dir=args.model_dir, device=args.device,
    n_gpu=args.n_gpu, rank=0, num_workers=args.num_workers, autocast=args.autocast,
    seed=args.seed, train_args=args.train, dev_args=set_validation_args(args.test))
t = args.train
batches = iter(train_data.make_iter(batch_size=t.batch_size, batch_type=t.batch_type,
    seed=trainer.seed, shuffle=False, num_workers=0, device=trainer.device,
    eos_index=model.eos_index, pad_index=model.pad_index))
model.train()
model.zero_grad()
seconds, tokens = [], []
for i in range(warmup + steps):
    start = time.perf_counter()
    batch = next(batches)
    trainer._train_step(batch)
    trainer.clip_grad_fun(parameters=model.parameters())
    trainer.optimizer.step()
    if trainer.scheduler is not None and trainer.scheduler_step_at == "step":
        trainer.scheduler.step(i + 1)
    model.zero_grad()
    if i >= warmup:
        seconds.append(time.perf_counter() - start)
        tokens.append(int(batch.ntokens))
print(json.dumps({"params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
    "tgt_tok_s": round(sum(tokens) / sum(seconds)), "steps": steps,
    "tokens_per_step": round(sum(tokens) / len(tokens)), "torch": torch.__version__}))
"""


def write_joey_data(cfg, folder: Path, batches: int) -> int:
    """Train the recipe's BPE into ``folder`` and write Joey's files under ``folder/joey``:
    the pairs as pieces in transduce's batch order (the first ``batches`` batches of its
    plan, then every other pair), a vocabulary of the same pieces and its config. Returns
    the number of pairs."""
    texts = load_texts(cfg.data)
    TextPipeline.build(cfg.data, texts.train_src, texts.train_tgt, folder).save(folder)
    with distributed.launch("cpu") as ctx:
        trainer = build_trainer(cfg, folder, str(folder), ctx)
    plan = [b for epoch in range(100) for b in trainer.plan(epoch)][:batches]
    data, pipeline = trainer.task.train_data, trainer.task.pipeline
    first = [int(i) for idx in plan for i in idx]
    seen = set(first)
    order = first + [i for i in range(len(data.src.lengths)) if i not in seen]
    joey = folder / "joey"
    (joey / "model").mkdir(parents=True)  # Joey writes its vocabularies there
    for side, seqs, vocab in (
        ("src", data.src, pipeline.src_vocab),
        ("trg", data.tgt, pipeline.tgt_vocab),
    ):
        lines = []
        for i in order:
            start, n = seqs.offsets[i], seqs.lengths[i]
            lines.append(" ".join(vocab.decode(seqs.data[start : start + n].tolist())))
        text = "\n".join(lines) + "\n"
        (joey / f"train.{side}").write_text(text, encoding="utf-8")
        (joey / f"dev.{side}").write_text("\n".join(lines[:8]) + "\n", encoding="utf-8")
        # the same pieces in the same order; Joey puts its four specials first, as we do
        (joey / f"vocab.{side}").write_text("\n".join(vocab.itos[4:]) + "\n", encoding="utf-8")
    (joey / "config.yaml").write_text(yaml.safe_dump(joey_config(cfg, joey)), encoding="utf-8")
    return len(order)


def joey_config(cfg, joey: Path) -> dict:
    """Joey NMT 2.3's config for the recipe's model and optimiser."""
    t, m = cfg.train, cfg.model.transformer
    side = {"level": "word", "lowercase": False}
    stack = {
        "type": "transformer",
        "num_layers": m.encoder_layers,
        "num_heads": m.heads,
        "hidden_size": m.d_model,
        "ff_size": m.ff_size,
        "dropout": m.dropout,
        "layer_norm": "pre" if m.pre_norm else "post",
        "embeddings": {"embedding_dim": m.d_model, "scale": True, "dropout": m.dropout},
    }
    return {
        "name": "transduce_peer",
        "data": {
            "train": str(joey / "train"),
            "dev": str(joey / "dev"),
            "dataset_type": "plain",
            "src": {"lang": "src", "voc_file": str(joey / "vocab.src"), **side},
            "trg": {"lang": "trg", "voc_file": str(joey / "vocab.trg"), **side},
        },
        "model": {
            "tied_embeddings": False,  # transduce: separate source embedding
            "tied_softmax": cfg.model.tie_embeddings,
            "encoder": stack,
            "decoder": {**stack, "num_layers": m.decoder_layers},
        },
        "training": {
            "model_dir": str(joey / "model"),
            "overwrite": True,
            "use_cuda": False,
            "fp16": False,
            "random_seed": t.seed,
            "optimizer": "adam",
            "adam_betas": [0.9, t.adam_beta2],
            "learning_rate": t.lr,
            "scheduling": "warmupinversesquareroot",
            "learning_rate_warmup": t.warmup_steps,
            "label_smoothing": t.label_smoothing,
            "normalization": "tokens",
            "batch_type": "token",
            "batch_size": t.max_tokens,
            "clip_grad_norm": t.clip_norm,
            "shuffle": False,
            "epochs": 1,
            "num_workers": 0,
        },
        "testing": {"beam_size": 1},
    }


def time_joey(
    python: str, folder: Path, warmup: int, steps: int, threads: int, thp: bool = False
) -> dict:
    env = peer_env(threads, thp)
    env.pop("PYTHONPATH", None)  # Joey's interpreter sees its own packages only
    config = str(folder / "joey" / "config.yaml")
    command = [python, "-c", DRIVER, config, str(warmup), str(steps), str(threads)]
    proc = subprocess.run(command, env=env, text=True, capture_output=True, check=False)
    if proc.returncode:
        raise SystemExit(f"Joey NMT driver failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = peer_parser(__doc__, "Joey", CONFIG, threads=1, warmup=10, steps=40)
    parser.add_argument(
        "--joey",
        required=True,
        type=executable(JOEY_HINT),
        help="python of Joey NMT's environment",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config, ["train.progress=false", f"train.precision={args.precision}"])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pairs = write_joey_data(cfg, folder, args.warmup + args.steps)
        ours, peer = alternate(
            args.rounds,
            lambda: time_transduce(cfg, folder, args.warmup, args.steps),
            lambda: time_joey(
                args.joey, folder, args.warmup, args.steps, args.threads, args.peer_thp
            ),
        )
    line = record(
        "joeynmt_speed",
        "joeynmt",
        args.config,
        ours,
        peer,
        pairs=pairs,
        threads=args.threads,
        warmup=args.warmup,
        peer_thp=args.peer_thp,
    )
    print(json.dumps(line))


if __name__ == "__main__":
    run(main)
