"""Where a model runs: the device a config names and whether its arithmetic may be bf16.

Shared by training and inference (translate, serve), so neither imports the other for it.
"""

from __future__ import annotations

import torch

from transduce.config import ConfigError


def cpu_flags() -> set[str]:
    """This CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            line = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return set()
    return set(line.partition(":")[2].split())


def cpu_has_bf16(flags: set[str] | None = None) -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX)."""
    flags = cpu_flags() if flags is None else flags
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA where there is a device, else the CPU; ``cuda`` without one is
    refused in one line rather than failing at the first tensor."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda: no CUDA device is available here (use cpu or auto)")
    return torch.device(name)
