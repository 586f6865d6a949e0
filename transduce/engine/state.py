"""A loop's resumable state: optimizer, counters, schedule, history, every RNG stream
(each rank's own under torchrun) and the task's own state where it has one
(:mod:`transduce.engine.task`), as tensors and strings for the trainer_state file."""

from __future__ import annotations

import json
import random
from typing import Any

import torch

from transduce.engine import distributed


def capture(loop) -> dict[str, Any]:
    """The state of ``loop`` (collective under torchrun: it gathers the ranks' RNGs)."""
    state = {
        "optimizer": loop.optimizer.state_dict(),
        "counters": torch.tensor([loop.step, loop.epoch, loop.position, loop.stale]),
        "elapsed": torch.tensor(loop.elapsed, dtype=torch.float64),
        "best": json.dumps(loop.best),
        "history": json.dumps(loop.history),
        "torch_rng": torch.get_rng_state(),
        "coins_rng": loop.coins.get_state(),
        "python_rng": json.dumps(random.getstate()),
        "schedule": loop.schedule.state(),
    }
    if loop.scaler.is_enabled():  # fp16: the loss scale and its growth counter
        state["scaler"] = loop.scaler.state_dict()
    task_state = getattr(loop.task, "state_dict", None)  # e.g. a data reader's position
    if task_state is not None:
        state["task"] = task_state()
    if loop.device.type == "cuda":  # dropout on CUDA draws from the device's generator
        state["cuda_rng"] = torch.cuda.get_rng_state(loop.device)
    if loop.world > 1:  # every rank's own RNG streams, [world, n] each
        state["rank_torch_rng"] = distributed.gather_states(torch.get_rng_state())
        state["rank_coins_rng"] = distributed.gather_states(loop.coins.get_state())
        if loop.device.type == "cuda":
            state["rank_cuda_rng"] = distributed.gather_states(torch.cuda.get_rng_state())
    return state


def restore(loop, state: dict[str, Any]) -> None:
    """Put ``state`` back into ``loop``; the same number of processes is required."""
    saved_world = len(state["rank_torch_rng"]) if "rank_torch_rng" in state else 1
    if saved_world != loop.world:
        raise ValueError(
            f"{loop.run_dir}: this run was trained with {saved_world} process(es); resume "
            f"it with the same number (torchrun --nproc_per_node ...), not {loop.world}"
        )
    loop.optimizer.load_state_dict(state["optimizer"])
    loop.step, loop.epoch, loop.position, loop.stale = state["counters"].tolist()
    loop.elapsed = float(state["elapsed"])
    loop.best = json.loads(state["best"])
    loop.history = json.loads(state["history"])
    torch.set_rng_state(state["torch_rng"])
    loop.coins.set_state(state["coins_rng"])
    loop.schedule.load(state["schedule"])
    if "scaler" in state and loop.scaler.is_enabled():
        loop.scaler.load_state_dict(state["scaler"])
    if "task" in state and hasattr(loop.task, "load_state_dict"):
        loop.task.load_state_dict(state["task"])
    version, internal, gauss = json.loads(state["python_rng"])
    random.setstate((version, tuple(internal), gauss))
    if "cuda_rng" in state and loop.device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"], loop.device)
    if loop.world > 1:  # clone: a row view (storage offset) crashed set_rng_state
        torch.set_rng_state(state["rank_torch_rng"][loop.rank].clone())
        loop.coins.set_state(state["rank_coins_rng"][loop.rank].clone())
        if "rank_cuda_rng" in state and loop.device.type == "cuda":
            torch.cuda.set_rng_state(state["rank_cuda_rng"][loop.rank].clone())
