import numpy as np
import pytest

from transduce.data.batches import ParallelData, Sequences
from transduce.data.vocab import BOS_ID, EOS_ID


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    src = [list(rng.integers(4, 20, rng.integers(1, 12))) for _ in range(300)]
    # Target lengths follow source lengths, as in real parallel text.
    tgt = [list(rng.integers(4, 20, len(s) + rng.integers(0, 3))) for s in src]
    return ParallelData(src, tgt), src, tgt


def test_batch_tensors_match_sequences(data):
    pd, src, tgt = data
    idx = np.array([5, 0, 17])
    b = pd.batch(idx)
    for row, i in enumerate(idx):
        n, m = len(src[i]), len(tgt[i])
        assert b.src[row, :n].tolist() == src[i] and b.src[row, n:].eq(0).all()
        assert b.tgt_in[row, : m + 1].tolist() == [BOS_ID, *tgt[i]]
        assert b.tgt_out[row, : m + 1].tolist() == [*tgt[i], EOS_ID]
        assert b.tgt_out[row, m + 1 :].eq(0).all() and b.tgt_in[row, m + 1 :].eq(0).all()
    assert b.src_mask.sum().item() == sum(len(src[i]) for i in idx)
    assert b.ntokens == sum(len(tgt[i]) + 1 for i in idx)


def test_epoch_covers_every_example_once_and_is_reproducible(data):
    pd, _, _ = data
    order = pd.batch_order(32, seed=3, epoch=0)
    flat = np.concatenate(order)
    assert sorted(flat.tolist()) == list(range(len(pd)))
    again = pd.batch_order(32, seed=3, epoch=0)
    assert all((a == b).all() for a, b in zip(order, again, strict=True))
    other = pd.batch_order(32, seed=3, epoch=1)
    assert not all(len(a) == len(b) and (a == b).all() for a, b in zip(order, other, strict=True))


def test_bucketing_reduces_padding(data):
    pd, _, _ = data

    def padding(order):
        return sum(
            pd.batch(i).src.eq(0).sum().item() + pd.batch(i).tgt_out.eq(0).sum().item()
            for i in order
        )

    assert (
        padding(pd.batch_order(32, 0, 0, bucket=True))
        < padding(pd.batch_order(32, 0, 0, bucket=False)) / 2
    )


def test_bucketing_by_target_pads_targets_less(data):
    pd, _, _ = data

    def padding(order, side):
        return sum(getattr(pd.batch(i), side).eq(0).sum().item() for i in order)

    by_source, by_target = (pd.batch_order(8, 0, 0, by=by) for by in ("source", "target"))
    assert padding(by_target, "tgt_out") < padding(by_source, "tgt_out")
    assert padding(by_source, "src") < padding(by_target, "src")
    assert sorted(np.concatenate(by_target).tolist()) == list(range(len(pd)))


def test_shards_are_disjoint_and_equal_sized(data):
    pd, _, _ = data
    shards = [pd.batch_order(16, 0, 0, rank=r, world=3) for r in range(3)]
    assert len({len(s) for s in shards}) == 1
    seen = [i for s in shards for b in s for i in b.tolist()]
    assert len(seen) == len(set(seen))


def test_subset_keeps_sequences():
    seqs = Sequences([[4, 5], [6], [7, 8, 9], []])
    sub = seqs.subset(np.array([2, 0, 3]))
    assert sub.pad(np.arange(3)).tolist() == [[7, 8, 9], [4, 5, 0], [0, 0, 0]]


def test_inference_batches_map_back_to_input(data):
    pd, src, _ = data
    seen = {}
    for b in pd.iter_batches(50):
        for row, i in enumerate(b.index.tolist()):
            seen[i] = b.src[row][b.src_mask[row]].tolist()
    assert [seen[i] for i in range(len(src))] == [list(map(int, s)) for s in src]
