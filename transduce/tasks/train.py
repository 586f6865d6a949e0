"""``transduce train``: build (or resume) a run directory and fit it.

:func:`train` reads the data, builds or loads the tokenizers and vocabularies, builds the
model and hands it to the generic :class:`~transduce.engine.loop.Loop` on a
:class:`~transduce.tasks.text.TextTask`, started or resumed by
:func:`transduce.engine.run.run`. Under torchrun every process runs :func:`train`; only
rank 0 writes (:mod:`transduce.engine.distributed`). A config with a ``series`` section goes to
the forecasting pipeline instead.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import torch

from transduce.config import Config
from transduce.data.batches import ParallelData
from transduce.data.cache import run_data, uses_store
from transduce.data.pipeline import TextPipeline, filter_lengths, length_keep, load_texts
from transduce.engine import distributed
from transduce.engine.loop import Loop, RunResult
from transduce.engine.run import run as engine_run
from transduce.engine.run import start_run
from transduce.nn.models import build_model
from transduce.tasks.text import TextTask

log = logging.getLogger("transduce.tasks.train")

# ---------------------------------------------------------------------- entry point


def prepare_run(
    cfg: Config, run_dir: Path, resume: bool
) -> tuple[TextPipeline, ParallelData, ParallelData, list[str]]:
    if uses_store(cfg.data):  # a prepared corpus store, memory-mapped
        return run_data(cfg, run_dir, resume)
    texts = load_texts(cfg.data)
    if resume:
        pipeline = TextPipeline.load(cfg.data, run_dir)
    else:
        pipeline = TextPipeline.build(cfg.data, texts.train_src, texts.train_tgt, run_dir)
    train_data = filter_lengths(
        pipeline.encode(texts.train_src, texts.train_tgt), cfg.data, "train"
    )
    valid_data = pipeline.encode(texts.valid_src, texts.valid_tgt)
    keep = length_keep(valid_data, cfg.data)  # the references follow the kept pairs
    valid_refs = [ref for ref, kept in zip(texts.valid_tgt, keep, strict=True) if kept]
    valid_data = filter_lengths(valid_data, cfg.data, "valid")
    return pipeline, train_data, valid_data, valid_refs


def train(
    cfg: Config | None = None,
    out: str | os.PathLike = "runs/default",
    resume: bool = False,
    overrides: list[str] = (),
) -> RunResult:
    """Train ``cfg`` into run directory ``out``; with ``resume``, continue the run saved
    there (its own config.yaml, plus ``overrides``) from its last checkpoint."""
    return start_run(cfg, out, resume, list(overrides), _train_rank)


def _train_rank(cfg: Config, run_dir: Path, resume: bool, ctx: distributed.Context) -> RunResult:
    """The body of :func:`train` for one process (rank ``ctx.rank`` of ``ctx.world``),
    seeded, with its threads set and its run directory made by
    :func:`~transduce.engine.run.start_run`."""
    if cfg.series is not None:  # real-valued series: windows instead of text
        from transduce.forecasting.pipeline import train_series

        return train_series(cfg, run_dir, resume, ctx.rank, ctx.world)
    pipeline, train_data, valid_data, valid_refs = _prepare_rank(cfg, run_dir, resume, ctx)
    model = build_model(
        cfg.model, len(pipeline.src_vocab), len(pipeline.tgt_vocab), sources=pipeline.fields
    )
    if ctx.world > 1:
        torch.manual_seed(cfg.train.seed + 1009 * ctx.rank)  # each rank its own dropout masks
    task = TextTask(cfg, model, pipeline, train_data, valid_data, valid_refs)
    loop = Loop(cfg, task, run_dir, rank=ctx.rank, world=ctx.world)
    summary = (
        f"train {len(train_data)} pairs, valid {len(valid_data)}; vocab src "
        f"{len(pipeline.src_vocab)} tgt {len(pipeline.tgt_vocab)}; {cfg.model.preset} "
        f"{'' if cfg.model.preset == 'transformer' else cfg.model.cell + ' '}model"
    )
    return engine_run(loop, resume, save=pipeline.save, summary=summary)


# Files a run's text pipeline reads back (TextPipeline.save and the sentencepiece models).
PIPELINE_FILES = (
    "vocab.src.json",
    "vocab.tgt.json",
    "spm.src.model",
    "spm.tgt.model",
    "spm.joint.model",
)


def _prepare_rank(cfg: Config, run_dir: Path, resume: bool, ctx: distributed.Context):
    """:func:`prepare_run` for one rank. A new run's vocabularies and subword models are
    built once, by rank 0, and sent to the other ranks, which never touch the run directory;
    on resume every rank reads them from the run directory."""
    if ctx.world == 1 or resume:
        return prepare_run(cfg, run_dir, resume)
    if ctx.rank == 0:
        prepared = prepare_run(cfg, run_dir, False)
        prepared[0].save(run_dir)
    files = distributed.share_files(run_dir, PIPELINE_FILES)
    if ctx.rank == 0:
        return prepared
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in files.items():
            Path(tmp, name).write_bytes(data)
        return prepare_run(cfg, Path(tmp), resume=True)
