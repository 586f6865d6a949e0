"""The prepared store a training run reads: the one named by ``data.prepared``, checked
against the config and the input files, or with ``data.prepared: auto`` one built on first
use in the data cache, named by its key, so a second run or a resume starts at once."""

from __future__ import annotations

import filecmp
import json
import logging
import os
import shutil
from pathlib import Path

from transduce.config import Config, DataConfig, data_path, default_data_dir
from transduce.data.batches import ParallelData
from transduce.data.mixing import MixedData
from transduce.data.pipeline import TextPipeline
from transduce.data.prepare import prepare
from transduce.data.sources import describe_inputs
from transduce.data.store import MANIFEST, Store, StoreError, settings, store_key

log = logging.getLogger("transduce.data")
SPM_FILES = ("spm.src.model", "spm.tgt.model", "spm.joint.model")


def uses_store(cfg: DataConfig) -> bool:
    """Whether training reads a prepared store (named, auto, or a list of corpora)."""
    return bool(cfg.prepared) or not isinstance(cfg.train, str)


def cache_dir() -> Path:
    """Where ``data.prepared: auto`` keeps stores: beside the downloaded corpora."""
    return default_data_dir().parent / "prepared"


def _known_inputs(folder: Path) -> list[dict]:
    """The inputs recorded by the stores in ``folder`` (to skip hashing unchanged files)."""
    known: list[dict] = []
    for manifest in sorted(folder.glob(f"*/{MANIFEST}")) if folder.is_dir() else []:
        try:
            known += json.loads(manifest.read_text(encoding="utf-8")).get("inputs", [])
        except (OSError, ValueError):
            continue  # a damaged store is refused when opened, not here
    return known


def open_store(cfg: DataConfig, workers: int | None = None) -> Store:
    """The store for ``cfg``: checked if named, found or built if ``auto``."""
    if cfg.prepared and cfg.prepared != "auto":
        store = Store.open(data_path(cfg.prepared))
        store.check(cfg)
        now = describe_inputs(cfg, known=store.manifest["inputs"])
        before = {item["role"]: item["sha256"] for item in store.manifest["inputs"]}
        for item in now:
            if before.get(item["role"]) != item["sha256"]:
                raise StoreError(
                    f"{item['path']}: not the file {store.path} was prepared from "
                    "(SHA-256 differs); prepare the store again"
                )
        return store
    folder = cache_dir()
    inputs = describe_inputs(cfg, known=_known_inputs(folder))
    key = store_key(settings(cfg), inputs)
    out = folder / key[:16]
    if not out.exists():
        log.info("preparing the corpus once, into %s (data.prepared: auto)", out)
    return prepare(cfg, out, workers or min(os.cpu_count() or 1, 8), inputs=inputs)


def run_data(
    cfg: Config, run_dir: Path, resume: bool
) -> tuple[TextPipeline, ParallelData | MixedData, ParallelData, list[str]]:
    """:func:`transduce.tasks.train.prepare_run` from a store: the pipeline (the store's for a new
    run, whose subword models are copied into ``run_dir``; the run's own on resume, which
    must be the store's), the mapped training data, validation and its references."""
    store = open_store(cfg.data)
    if resume:
        for name in ("vocab.src.json", "vocab.tgt.json"):
            if not filecmp.cmp(run_dir / name, store.path / name, shallow=False):
                raise StoreError(
                    f"{run_dir / name}: differs from the store {store.path}'s; "
                    "this run was trained on other data"
                )
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        for name in SPM_FILES:
            if (store.path / name).is_file():
                shutil.copyfile(store.path / name, run_dir / name)
    pipeline = TextPipeline.load(cfg.data, run_dir if resume else store.path)
    train, valid = store.split("train"), store.split("valid", in_memory=True)
    sizes = (len(pipeline.src_vocab), len(pipeline.tgt_vocab))
    store.check_ids(train, "train", sizes)
    store.check_ids(valid, "valid", sizes)
    corpus = store.corpus_ids()
    if corpus is not None:
        weights = [c["weight"] for c in store.manifest["splits"]["train"]["corpora"]]
        train = MixedData(train, corpus, weights)
    log.info("corpus store %s: %s training pairs", store.path, f"{len(train):,}")
    return pipeline, train, valid, store.valid_refs()
