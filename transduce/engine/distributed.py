"""Data-parallel training over processes with torch.distributed (gloo on CPU, NCCL on CUDA).

``torchrun`` starts the processes and sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``; :func:`launch` reads them (``init_method="env://"``):

    torchrun --nproc_per_node 2 -m transduce train configs/multi30k_de_en_rnn.yaml

Each rank trains on its own shard of the length-bucketed batches
(``ParallelData.batch_order(..., rank, world)``, the same number of batches on every rank).
The training objective runs under ``DistributedDataParallel``
(:mod:`transduce.engine.parallel`), normalised by the global number of target tokens; this
module holds the process group and the small collectives the loop needs besides (sums of
validation statistics, stop decisions every rank shares, RNG states for checkpoints,
rank 0's vocabulary files).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


@dataclass(frozen=True)
class Context:
    """Where this process stands: ``rank`` of ``world`` processes; ``local_rank`` on its node."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str | None = None  # None: a single process, nothing initialised


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def current() -> Context:
    """The context of an already initialised process group (or a single process)."""
    if not active():
        return Context()
    local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    return Context(dist.get_rank(), dist.get_world_size(), local, dist.get_backend())


@contextmanager
def launch(device: str = "auto") -> Iterator[Context]:
    """Join the process group described by the torchrun environment, if there is one.

    Backend: NCCL when ``device`` resolves to CUDA (each local rank then owns
    ``cuda:LOCAL_RANK``), gloo otherwise. A group that is already initialised is used as
    it is and left open; a group created here is destroyed on exit.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if dist.is_available() and dist.is_initialized():
        yield current()
        return
    if world <= 1:
        yield Context()
        return
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if cuda:
        if local >= torch.cuda.device_count():
            raise RuntimeError(
                f"LOCAL_RANK {local} needs a GPU of its own, but this node has "
                f"{torch.cuda.device_count()}: lower --nproc_per_node or use train.device=cpu"
            )
        torch.cuda.set_device(local)  # "cuda" now means this rank's own GPU
    dist.init_process_group("nccl" if cuda else "gloo", init_method="env://")
    try:
        yield current()
        # Every rank reaches the end before any tears the group down: a gloo rank whose
        # peer has already closed its connections can abort at exit.
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _device() -> torch.device:
    """Where collective buffers live: the rank's GPU for NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def shard(items: Sequence[T]) -> list[T]:
    """This rank's share of ``items`` (every ``world``-th, from ``rank``)."""
    ctx = current()
    return list(items[ctx.rank :: ctx.world])


def all_sum(values: Sequence[float]) -> list[float]:
    """Element-wise sum over ranks (float64); the values themselves with one process."""
    if not active():
        return list(values)
    buf = torch.tensor(list(values), dtype=torch.float64, device=_device())
    dist.all_reduce(buf)
    return buf.tolist()


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on any (a stop decision all ranks share)."""
    return bool(all_sum([float(flag)])[0] > 0)


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable, small), in rank order, on every rank."""
    if not active():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def gather_states(state: torch.Tensor) -> torch.Tensor:
    """``[world, *state.shape]``: every rank's (same-shaped) state tensor, e.g. an RNG state."""
    if not active():
        return state[None]
    buf = state.to(_device())
    out = [torch.empty_like(buf) for _ in range(dist.get_world_size())]
    dist.all_gather(out, buf)
    return torch.stack(out).cpu()


def share_files(folder: Path, names: Sequence[str]) -> dict[str, bytes]:
    """Rank 0's files ``folder/name`` (those that exist), as bytes, on every rank: how
    other ranks get the vocabularies and subword models without reading rank 0's disk."""
    files = {}
    if current().rank == 0:
        files = {n: (folder / n).read_bytes() for n in names if (folder / n).is_file()}
    box = [files]
    if active():
        dist.broadcast_object_list(box, src=0)
    return box[0]
