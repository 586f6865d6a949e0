"""Weighted corpora: each epoch's mix follows the weights within statistical tolerance, is a
pure function of (seed, epoch), upsamples a small corpus by whole passes, and a run on it
resumes exactly."""

from __future__ import annotations

import signal

import numpy as np
import pytest

from tests.helpers import metric_rows, reverse_pairs, same_last_weights, tiny_config, write_tsv
from transduce.data.batches import ParallelData
from transduce.data.mixing import MixedData
from transduce.engine import interrupt
from transduce.engine.loop import Loop
from transduce.tasks.train import prepare_run, train


def _mixed(sizes: list[int], weights: list[float]) -> MixedData:
    n = sum(sizes)
    data = ParallelData(
        [[4 + i % 7] * (1 + i % 5) for i in range(n)], [[5] * (1 + i % 3) for i in range(n)]
    )
    corpus = np.repeat(np.arange(len(sizes)), sizes)
    return MixedData(data, corpus, weights)


def test_the_mix_follows_the_weights_within_tolerance():
    mixed = _mixed([300, 100], [1.0, 3.0])
    draws = np.concatenate([mixed.sample(seed=1, epoch=e) for e in range(20)])
    share = float(np.mean(draws >= 300))  # pairs of the second corpus
    sigma = np.sqrt(0.75 * 0.25 / len(draws))
    assert abs(share - 0.75) < 4 * sigma, share
    # Each epoch draws as many pairs as there are; the small corpus is upsampled in whole
    # passes: within an epoch no pair repeats more than once beyond the others.
    one = mixed.sample(seed=1, epoch=0)
    assert len(one) == 400
    counts = np.bincount(one[one >= 300] - 300, minlength=100)
    assert counts.max() - counts.min() <= 1


def test_the_mix_is_a_pure_function_of_seed_and_epoch():
    mixed = _mixed([50, 80, 20], [1.0, 1.0, 2.0])
    assert np.array_equal(mixed.sample(3, 2), mixed.sample(3, 2))
    assert not np.array_equal(mixed.sample(3, 2), mixed.sample(3, 3))
    plan = mixed.batch_order(16, seed=3, epoch=2)
    assert np.array_equal(np.concatenate(plan), np.concatenate(mixed.batch_order(16, 3, 2)))
    assert sorted(np.concatenate(plan).tolist()) == sorted(mixed.sample(3, 2).tolist())
    with pytest.raises(ValueError, match=r"data.train\[1\]: no pairs"):
        _mixed([5, 0], [1.0, 1.0])


def test_a_run_on_weighted_corpora_resumes_exactly(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    a = write_tsv(tmp_path / "a.tsv", reverse_pairs(200, seed=1))
    b = write_tsv(tmp_path / "b.tsv", reverse_pairs(40, seed=2))
    valid = write_tsv(tmp_path / "valid.tsv", reverse_pairs(20, seed=3))
    corpora = [{"path": str(a), "weight": 1.0}, {"path": str(b), "weight": 4.0}]
    cfg = tiny_config(
        a,
        data={"train": corpora, "valid": str(valid)},
        train={"max_steps": 10, "valid_every": 5, "batch_size": 24},
    )
    _, data, _, _ = prepare_run(cfg, tmp_path / "peek", resume=False)
    assert isinstance(data, MixedData) and len(data) == 240
    share = np.mean(np.concatenate([data.sample(1, e) for e in range(10)]) >= 200)
    assert abs(share - 0.8) < 4 * np.sqrt(0.16 / 2400)
    train(cfg, tmp_path / "full")
    update = Loop.update

    def killed(self, *batches):
        out = update(self, *batches)
        if self.step == 7:
            interrupt.request(signal.SIGTERM)
        return out

    monkeypatch.setattr(Loop, "update", killed)
    assert train(cfg, tmp_path / "run").steps == 7
    monkeypatch.setattr(Loop, "update", update)
    train(out=tmp_path / "run", resume=True)
    assert same_last_weights(tmp_path / "run", tmp_path / "full")
    # Validation rows (the train rows' running mean restarts with the process).
    assert _valid(tmp_path / "run") == _valid(tmp_path / "full")


def _valid(run) -> list[dict]:
    return [row for row in metric_rows(run) if row["split"] == "valid"]
