"""The prepared corpus store: byte-identical for any number of workers, refused when built
from other settings or files, the same training as the in-memory path (batches, losses,
weights), exact kill-and-resume, and the readers' per-reason counts kept exactly."""

from __future__ import annotations

import filecmp
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import metric_rows, reverse_pairs, same_last_weights, tiny_config, write_tsv
from transduce.config import DataConfig, from_dict
from transduce.data.cache import open_store
from transduce.data.corpus import read_tsv
from transduce.data.prepare import prepare
from transduce.data.store import Store, StoreError
from transduce.engine import interrupt
from transduce.engine.loop import Loop
from transduce.tasks.train import prepare_run, train


@pytest.fixture
def corpus(tmp_path) -> tuple[Path, Path]:
    train_tsv = write_tsv(tmp_path / "train.tsv", reverse_pairs(400, seed=4))
    valid_tsv = write_tsv(tmp_path / "valid.tsv", reverse_pairs(40, seed=5))
    return train_tsv, valid_tsv


def _data(train_tsv: Path, **keys) -> DataConfig:
    return from_dict(DataConfig, {"train": str(train_tsv), **keys})


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize(("tokenizer", "limit"), [("char", 5), ("bpe", 2)])
def test_one_and_three_workers_write_byte_identical_stores(corpus, tmp_path, tokenizer, limit):
    train_tsv, valid_tsv = corpus
    cfg = _data(
        train_tsv,
        valid=str(valid_tsv),
        src_tokenizer=tokenizer,
        tgt_tokenizer=tokenizer,
        vocab_size=40,
        max_src_len=limit,
    )
    one = prepare(cfg, tmp_path / "one", workers=1, chunk=64, progress=False)
    three = prepare(cfg, tmp_path / "three", workers=3, chunk=64, progress=False)
    assert _tree(one.path) == _tree(three.path)
    # Several chunks and a length limit really took part.
    info = one.manifest["splits"]["train"]
    assert info["too_long"] > 0 and info["pairs"] + info["too_long"] == 400
    assert all(not os.access(p, os.W_OK) or os.geteuid() == 0 for p in one.path.iterdir())
    assert not list(tmp_path.glob(".*tmp*"))  # the temporary sibling was renamed away


def test_a_store_built_with_other_settings_or_files_is_refused(corpus, tmp_path):
    train_tsv, valid_tsv = corpus
    cfg = _data(train_tsv, valid=str(valid_tsv))
    store = prepare(cfg, tmp_path / "store", progress=False)
    other = _data(
        train_tsv, valid=str(valid_tsv), lowercase=True, max_src_len=9, prepared=str(store.path)
    )
    with pytest.raises(StoreError, match=r"data.lowercase .*data.max_src_len"):
        open_store(other)
    with pytest.raises(StoreError, match=r"other data settings: data\.min_freq"):
        prepare(_data(train_tsv, valid=str(valid_tsv), min_freq=2), store.path, progress=False)
    same = _data(train_tsv, valid=str(valid_tsv), prepared=str(store.path))
    assert open_store(same).path == store.path
    with train_tsv.open("a", encoding="utf-8") as f:  # the input changed since
        f.write("abc\tcba\n")
    with pytest.raises(StoreError, match=f"{train_tsv}: not the file"):
        open_store(same)


def test_training_from_the_store_equals_training_in_memory(corpus, tmp_path):
    train_tsv, _ = corpus  # no valid file: validation is split off by source, as in memory
    keys = {"train": {"max_steps": 10, "valid_every": 5, "batch_size": 24}}
    store = prepare(tiny_config(train_tsv).data, tmp_path / "store", progress=False)
    mem_cfg = tiny_config(train_tsv, **keys)
    store_cfg = tiny_config(train_tsv, data={"prepared": str(store.path)}, **keys)
    mem = prepare_run(mem_cfg, tmp_path / "a", resume=False)
    mapped = prepare_run(store_cfg, tmp_path / "b", resume=False)
    assert isinstance(mapped[1].src.data, np.memmap)
    t = mem_cfg.train
    for epoch in (0, 1):
        plans = [d.batch_order(t.batch_size, t.seed, epoch) for d in (mem[1], mapped[1])]
        assert all(np.array_equal(a, b) for a, b in zip(*plans, strict=True))
        for idx in plans[0][:3]:
            assert all(
                x.dtype == y.dtype and x.equal(y)
                for x, y in zip(mem[1].batch(idx), mapped[1].batch(idx), strict=True)
            )
    assert mem[3] == mapped[3] and mem[0].src_vocab.itos == mapped[0].src_vocab.itos
    train(mem_cfg, tmp_path / "mem")
    train(store_cfg, tmp_path / "store_run")
    assert metric_rows(tmp_path / "mem") == metric_rows(tmp_path / "store_run")
    assert same_last_weights(tmp_path / "mem", tmp_path / "store_run")


def test_kill_and_resume_on_the_store_is_bit_exact(corpus, tmp_path, monkeypatch):
    train_tsv, valid_tsv = corpus
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cfg = tiny_config(
        train_tsv,
        data={"valid": str(valid_tsv), "prepared": "auto"},
        train={"max_steps": 12, "valid_every": 4, "batch_size": 32},
    )
    train(cfg, tmp_path / "full")
    stores = list((tmp_path / "cache" / "transduce" / "prepared").iterdir())
    assert len(stores) == 1  # built on first use, in the cache
    update = Loop.update

    def killed(self, *batches):
        out = update(self, *batches)
        if self.step == 6:  # mid-way between validations
            interrupt.request(signal.SIGTERM)
        return out

    monkeypatch.setattr(Loop, "update", killed)
    assert train(cfg, tmp_path / "run").steps == 6
    monkeypatch.setattr(Loop, "update", update)
    train(out=tmp_path / "run", resume=True)
    assert same_last_weights(tmp_path / "run", tmp_path / "full")
    # Validation rows (the train rows' running mean restarts with the process).
    assert _valid(tmp_path / "run") == _valid(tmp_path / "full")
    assert list((tmp_path / "cache" / "transduce" / "prepared").iterdir()) == stores  # reused
    assert filecmp.cmp(tmp_path / "run" / "vocab.src.json", stores[0] / "vocab.src.json")


def test_malformed_lines_are_counted_per_reason_exactly_as_the_reader_does(tmp_path):
    lines = [f"{s}\t{t}" for s, t in reverse_pairs(60, seed=6)]
    lines[3], lines[9], lines[10] = "no tab here", "abc\t", "\t"
    lines[20], lines[30] = "a\tb\tc\td", ""
    path = tmp_path / "bad.tsv"
    path.write_bytes(("\n".join(lines) + "\n").encode() + b"\xff\xfe\tx\n")
    valid = write_tsv(tmp_path / "valid.tsv", reverse_pairs(10, seed=7))
    report = read_tsv(path, on_bad_line="skip").report
    assert len(report.skipped) >= 5
    for extra in ({"valid": str(valid)}, {"valid_fraction": 0.2}):  # streamed, read whole
        cfg = _data(path, on_bad_line="skip", **extra)
        store = prepare(cfg, tmp_path / f"s{len(extra)}{'valid' in extra}", progress=False)
        read = store.manifest["splits"]["train"]["corpora"][0]
        assert read["dropped"] == dict(report.skipped)
        assert (read["read"], read["kept"]) == (report.lines, report.kept)
    with pytest.raises(ValueError, match=rf"{path}:4: no tab"):
        prepare(_data(path, valid=str(valid)), tmp_path / "strict", progress=False)
    assert not (tmp_path / "strict").exists()


def test_a_damaged_store_is_one_line_naming_the_file(corpus, tmp_path):
    train_tsv, valid_tsv = corpus
    store = prepare(
        tiny_config(train_tsv, data={"valid": str(valid_tsv)}).data,
        tmp_path / "store",
        progress=False,
    )
    ids = store.path / "train.src.ids"
    ids.chmod(0o644)
    ids.write_bytes(ids.read_bytes()[:-4])
    with pytest.raises(ValueError, match=f"{ids}: .* bytes, expected"):
        Store.open(store.path).split("train")
    with pytest.raises(StoreError, match="not a prepared store"):
        Store.open(tmp_path)
    # Same size, wrong content: ids beyond the vocabulary are refused before training.
    cfg = tiny_config(train_tsv, data={"valid": str(valid_tsv)})
    other = prepare(cfg.data, tmp_path / "other", progress=False)
    tgt = other.path / "train.tgt.ids"
    tgt.chmod(0o644)
    tgt.write_bytes(b"\xff" * tgt.stat().st_size)
    cfg = tiny_config(train_tsv, data={"valid": str(valid_tsv), "prepared": str(other.path)})
    with pytest.raises(ValueError, match=f"{tgt}: token ids outside the vocabulary"):
        prepare_run(cfg, tmp_path / "run", resume=False)


def _valid(run) -> list[dict]:
    return [row for row in metric_rows(run) if row["split"] == "valid"]


def test_prepare_into_someone_elses_folder_says_so(corpus, tmp_path):
    """It said "not a prepared store (no manifest.json; run transduce prepare)" to a user
    running transduce prepare."""
    train_tsv, valid_tsv = corpus
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    cfg = tiny_config(train_tsv, data={"valid": str(valid_tsv)}).data
    with pytest.raises(StoreError, match="mine: exists and is not a prepared store; choose"):
        prepare(cfg, mine, progress=False)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
