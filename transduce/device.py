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


def choose_precision(
    requested: str, device_type: str, flags: set[str], cuda_bf16: bool
) -> tuple[str, str]:
    """The arithmetic for ``train.precision`` and why: ``fp32``/``bf16`` as asked;
    ``auto`` is bf16 autocast on a CUDA device that supports bf16 and on a CPU with AMX,
    fp32 elsewhere. A CPU with AVX512-BF16 but no AMX stays fp32: measured on one
    (AMD EPYC, one thread), bf16 trained a 64-wide GRU model at 0.6-0.7x fp32's tokens/s
    (a 256-wide one at 1.3-1.9x), and the project's small models are the common case;
    ask for ``bf16`` explicitly for wide models there."""
    if requested != "auto":
        return requested, "as configured"
    if device_type == "cuda":
        if cuda_bf16:
            return "bf16", "a CUDA device with bf16"
        return "fp32", "a CUDA device without bf16"
    if "amx_bf16" in flags:
        return "bf16", "a CPU with AMX"
    if "avx512_bf16" in flags:
        return "fp32", "a CPU with AVX512-BF16 but no AMX (bf16 is slower there for small models)"
    return "fp32", "a CPU without native bf16"


def resolve_precision(requested: str, device: torch.device) -> tuple[str, str]:
    """:func:`choose_precision` for this machine."""
    cuda = device.type == "cuda" and torch.cuda.is_bf16_supported()
    flags = cpu_flags() if device.type == "cpu" else set()
    return choose_precision(requested, device.type, flags, cuda)
