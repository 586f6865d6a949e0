"""Token-id storage and length-bucketed batches.

A corpus is numericalized once into a flat int array with offsets (:class:`Sequences`);
a batch is built from a list of example indices with vectorised numpy indexing, so the
training loop does no per-example Python work.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np
import torch

from transduce.data.vocab import BOS_ID, EOS_ID, PAD_ID


class Sequences:
    """Ragged int sequences stored flat: ``data[offsets[i] : offsets[i] + lengths[i]]``."""

    def __init__(self, seqs: Sequence[Sequence[int]]):
        self.lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        self.offsets = np.zeros(len(seqs), dtype=np.int64)
        if len(seqs):
            np.cumsum(self.lengths[:-1], out=self.offsets[1:])
        flat = [t for s in seqs for t in s]
        self.data = np.asarray(flat, dtype=np.int64) if flat else np.zeros(1, dtype=np.int64)

    @classmethod
    def from_arrays(cls, data: np.ndarray, offsets: np.ndarray, lengths: np.ndarray) -> Sequences:
        """Sequences over existing arrays (memory-mapped files of a prepared store)."""
        out = cls([])
        out.data = data if len(data) else np.zeros(1, dtype=data.dtype)
        out.offsets, out.lengths = offsets, lengths
        return out

    def __len__(self) -> int:
        return len(self.lengths)

    def subset(self, idx: np.ndarray) -> Sequences:
        """The sequences at ``idx``, copied into a new flat array."""
        out = Sequences([])
        out.lengths = self.lengths[idx]
        out.offsets = np.zeros(len(idx), dtype=np.int64)
        if len(idx):
            np.cumsum(out.lengths[:-1], out=out.offsets[1:])
        total = int(out.lengths.sum())
        # New position k of sequence j reads old position offsets[idx[j]] + (k - new_offset[j]).
        shift = np.repeat(self.offsets[idx] - out.offsets, out.lengths)
        out.data = self.data[np.arange(total) + shift] if total else out.data
        return out

    def pad(self, idx: np.ndarray, bos: bool = False, eos: bool = False) -> torch.Tensor:
        """Padded ``[len(idx), T]`` id tensor, optionally with ``<s>`` / ``</s>`` added."""
        lengths = self.lengths[idx]
        lead = int(bos)
        width = int(lengths.max(initial=0)) + lead + int(eos)
        pos = np.arange(width)[None, :] - lead  # [B, T] position inside each sequence
        inside = (pos >= 0) & (pos < lengths[:, None])
        flat_pos = np.where(inside, self.offsets[idx][:, None] + pos, 0)
        # int64 whatever the storage (a store keeps int32 ids): the same tensors either way
        out = np.where(inside, self.data[flat_pos], PAD_ID).astype(np.int64, copy=False)
        if bos:
            out[:, 0] = BOS_ID
        if eos:
            out[np.arange(len(idx)), lengths + lead] = EOS_ID
        return torch.from_numpy(out)


class Batch(NamedTuple):
    src: torch.Tensor  # [B, S] source ids, 0 = pad
    tgt_in: torch.Tensor  # [B, T] <s> y1 .. yn
    tgt_out: torch.Tensor  # [B, T] y1 .. yn </s>
    index: torch.Tensor  # [B] example indices into the dataset

    @property
    def src_mask(self) -> torch.Tensor:  # [B, S] True at real tokens
        return self.src != PAD_ID

    @property
    def ntokens(self) -> int:
        return int((self.tgt_out != PAD_ID).sum())

    def to(self, device: torch.device | str) -> Batch:
        return Batch(*(t.to(device, non_blocking=True) for t in self))


class ParallelData:
    """A numericalized parallel corpus: source and target id sequences (no specials)."""

    def __init__(self, src: Sequence[Sequence[int]], tgt: Sequence[Sequence[int]] | None = None):
        self.src = Sequences(src)
        self.tgt = Sequences(tgt) if tgt is not None else None
        if self.tgt is not None and len(self.tgt) != len(self.src):
            raise ValueError("source and target have different numbers of examples")

    def __len__(self) -> int:
        return len(self.src)

    def subset(self, idx: np.ndarray) -> ParallelData:
        out = ParallelData([])
        out.src = self.src.subset(idx)
        out.tgt = None if self.tgt is None else self.tgt.subset(idx)
        return out

    def batch(self, idx: np.ndarray) -> Batch:
        idx = np.asarray(idx, dtype=np.int64)
        src = self.src.pad(idx)
        if self.tgt is None:
            empty = torch.zeros(len(idx), 0, dtype=torch.long)
            return Batch(src, empty, empty, torch.from_numpy(idx))
        return Batch(
            src, self.tgt.pad(idx, bos=True), self.tgt.pad(idx, eos=True), torch.from_numpy(idx)
        )

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
        """Index arrays, one per batch, for one epoch; rank ``r`` of ``world`` gets its shard.

        With ``bucket``, examples are sorted by length inside pools of 50 batches so
        a batch wastes little on padding, then the batch order is shuffled. The order is a
        pure function of (seed, epoch), which is what makes resuming exact. ``by``: which
        side's length sorts first, "source" or "target".
        """
        rng = np.random.default_rng([seed, epoch])
        n = len(self)
        order = rng.permutation(n) if shuffle else np.arange(n)
        return self.plan(order, rng, batch_size, bucket, shuffle, rank, world, max_tokens, by)

    def plan(
        self,
        order: np.ndarray,
        rng: np.random.Generator,
        batch_size: int,
        bucket: bool = True,
        shuffle: bool = True,
        rank: int = 0,
        world: int = 1,
        max_tokens: int | None = None,
        by: str = "source",
    ) -> list[np.ndarray]:
        """:meth:`batch_order` from an epoch's example ``order`` (a weighted mix draws its
        own, :mod:`transduce.data.mixing`); ``rng`` shuffles the batches."""
        n = len(order)
        # int32 indices when they fit: at 10M pairs the epoch's order is 40 MB, not 80
        order = order.astype(np.int32 if n < 2**31 else np.int64, copy=False)
        if bucket:
            # One side's length, then the other's; equal lengths stay in shuffled order.
            # Source first suits an LSTM encoder on CPU (one fused call per distinct source
            # length); target first cuts the decoder's padding, the larger cost when the
            # encoder skips padding anyway (packed sequences).
            src_len = self.src.lengths
            tgt_len = self.tgt.lengths if self.tgt is not None else np.zeros_like(src_len)
            first, then = (tgt_len, src_len) if by == "target" else (src_len, tgt_len)
            scale = int(then.max(initial=0)) + 1
            pool = batch_size * 50
            sorted_pools = []
            for i in range(0, n, pool):  # keys a pool at a time: no corpus-sized temporaries
                idx = order[i : i + pool]
                key = first[idx].astype(np.int64) * scale + then[idx]
                sorted_pools.append(idx[np.argsort(key, kind="stable")])
            order = np.concatenate(sorted_pools) if sorted_pools else order
        if max_tokens:
            batches = self._token_batches(order, max_tokens)
        else:
            batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
        if shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        if world > 1:
            # Drop the remainder so every rank takes the same number of steps; copies, so
            # a rank holds its share of the epoch's indices, not views into all of them.
            usable = len(batches) - len(batches) % world
            batches = [b.copy() for b in batches[rank:usable:world]]
        return batches

    def _token_batches(self, order: np.ndarray, max_tokens: int) -> list[np.ndarray]:
        """Cut ``order`` into batches whose padded size (rows x longest side, </s> counted)
        stays within ``max_tokens``; one example per batch at least. Runs once per epoch."""
        tgt = self.tgt.lengths if self.tgt is not None else np.zeros_like(self.src.lengths)
        batches, start, longest = [], 0, 0
        block = 1 << 16  # sizes as Python ints a block at a time: not 10M of them at once
        for first in range(0, len(order), block):
            idx = order[first : first + block]
            size = np.maximum(self.src.lengths[idx], tgt[idx] + 1).tolist()
            for i, n in enumerate(size, first):
                longest = max(longest, n)
                if (i - start + 1) * longest > max_tokens and i > start:
                    batches.append(order[start:i])
                    start, longest = i, n
        if start < len(order):
            batches.append(order[start:])
        return batches

    def iter_batches(self, batch_size: int, sort: bool = True) -> Iterator[Batch]:
        """Batches in length order for inference; ``Batch.index`` maps back to the input."""
        order = np.argsort(self.src.lengths, kind="stable") if sort else np.arange(len(self))
        for i in range(0, len(self), batch_size):
            yield self.batch(order[i : i + batch_size])
