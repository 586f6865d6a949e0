"""Several corpora with sampling weights (OpenNMT-py's corpus ``weight``, fairseq's
upsampling): each epoch draws as many pairs as the corpora hold together, corpus ``k``'s
share ``weight_k / sum(weights)``, deterministic from (seed, epoch) and so resumable."""

from __future__ import annotations

import numpy as np

from transduce.data.batches import Batch, ParallelData


class MixedData:
    """``data`` (one store's training split) whose pairs belong to corpora ``corpus``,
    mixed by ``weights``; batches are built by ``data`` itself."""

    def __init__(self, data: ParallelData, corpus: np.ndarray, weights: list[float]):
        if len(corpus) != len(data):
            raise ValueError(f"{len(corpus)} corpus ids for {len(data)} pairs")
        self.data, self.weights = data, np.asarray(weights, dtype=np.float64)
        index = np.int32 if len(data) < 2**31 else np.int64  # halves the memory of the index
        self.members = [np.flatnonzero(corpus == k).astype(index) for k in range(len(weights))]
        empty = [k for k, m in enumerate(self.members) if len(m) == 0]
        if empty:
            raise ValueError(f"data.train[{empty[0]}]: no pairs left to sample from")
        self.src, self.tgt = data.src, data.tgt

    def __len__(self) -> int:
        return len(self.data)

    def batch(self, idx: np.ndarray) -> Batch:
        return self.data.batch(idx)

    def sample(self, seed: int, epoch: int) -> np.ndarray:
        """The pairs of one epoch: how many from each corpus is a multinomial draw; within a
        corpus, pairs follow shuffled passes over it (a small corpus repeats, upsampled;
        a large one is covered over several epochs' draws)."""
        rng = np.random.default_rng([seed, epoch, 0x6D6978])  # "mix": its own stream
        counts = rng.multinomial(len(self.data), self.weights / self.weights.sum())
        parts = []
        for members, count in zip(self.members, counts, strict=True):
            passes = -(-int(count) // len(members))
            picks = np.concatenate(
                [rng.permutation(len(members)) for _ in range(passes)]
                or [np.zeros(0, dtype=np.int64)]
            )[:count]
            parts.append(members[picks])
        order = np.concatenate(parts)  # the members' index type (plan() takes either)
        rng.shuffle(order)
        return order

    def batch_order(
        self,
        batch_size: int,
        seed: int,
        epoch: int,
        bucket: bool = True,
        shuffle: bool = True,
        rank: int = 0,
        world: int = 1,
        max_tokens: int | None = None,
        by: str = "source",
    ) -> list[np.ndarray]:
        """:meth:`ParallelData.batch_order` over this epoch's mix."""
        rng = np.random.default_rng([seed, epoch])
        order = self.sample(seed, epoch)
        return self.data.plan(order, rng, batch_size, bucket, shuffle, rank, world, max_tokens, by)
