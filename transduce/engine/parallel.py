"""DistributedDataParallel around the training objective, normalised by global tokens.

Each rank back-propagates its *summed* token loss scaled by ``world / global tokens``,
where the global count covers every rank and every accumulated micro-batch of the step
(one small all-reduce before the forward passes). DDP then averages the gradients over
ranks (dividing by ``world``), which leaves exactly the gradient of the per-token mean
loss of the concatenated global batch: the single-process step on all ranks' batches, not
a mean of per-rank means (which would weight a short batch's tokens more). This is
fairseq's normalisation (it multiplies by ``world / tokens`` after DDP's mean), done
before the backward pass so gradient clipping sees the final gradients.

Gradient accumulation runs ``accumulate_steps`` micro-batches per update; all but the last
run under ``no_sync()``, so gradients are all-reduced once per update, overlapped with
the last backward pass by DDP's buckets (``gradient_as_bucket_view``: no copy into them).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from contextlib import nullcontext

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from transduce.engine import distributed


def wrap(objective: nn.Module, device: torch.device, world: int, find_unused: bool) -> nn.Module:
    """``objective`` itself in one process; else DDP around it (gloo on CPU, NCCL on CUDA,
    as :func:`transduce.engine.distributed.launch` chose). DDP copies rank 0's parameters and
    buffers to every rank here, so every rank starts from the same weights.
    ``find_unused``: a parameter may get no gradient on some rank in some step (DDP then
    traverses the autograd graph after each forward to mark it ready)."""
    if world <= 1:
        return objective
    # No running statistics in these models: buffers are rank 0's from the start on, not
    # re-sent before every forward (the option's name changed in torch 2.13).
    sync = "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
    no_resend = {"forward_sync_buffers" if sync else "broadcast_buffers": False}
    return DistributedDataParallel(
        objective,
        device_ids=[device.index or 0] if device.type == "cuda" else None,
        gradient_as_bucket_view=True,
        find_unused_parameters=find_unused,
        **no_resend,
    )


def backward_step(
    net: nn.Module,
    batches: Sequence,
    ratio: float,
    world: int,
    autocast=nullcontext,
    scaler: torch.amp.GradScaler | None = None,
) -> tuple[float, int]:
    """Forward and backward of one update over ``batches`` (this rank's micro-batches,
    already on the device); gradients end up divided by the global number of target
    tokens (times ``scaler``'s loss scale under fp16, until it unscales them). Returns
    (global per-token loss, global target tokens)."""
    local = sum(b.ntokens for b in batches)
    total = round(distributed.all_sum([local])[0]) if world > 1 else local
    scale = world / max(total, 1)
    loss_sum = 0.0
    for i, batch in enumerate(batches):
        last = i + 1 == len(batches)
        sync = nullcontext() if (world <= 1 or last) else net.no_sync()
        with sync:
            with autocast():
                loss, _ = net(batch, ratio)
            scaled = loss * scale
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
        loss_sum += float(loss.detach())
    if world > 1:
        loss_sum = distributed.all_sum([loss_sum])[0]
    return loss_sum / max(total, 1), total
