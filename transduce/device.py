"""Where a model runs: the device a config names and whether its arithmetic may be bf16.

Shared by training and inference (translate, serve), so neither imports the other for it.
Importing it imports no torch (the functions that need torch import it), so the torch-free
runtime reads the CPU's flags here too.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from transduce.config import ConfigError

if TYPE_CHECKING:
    import torch


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> set[str]:
    """This CPU's feature flags from ``cpuinfo`` (empty where there is none)."""
    try:
        with open(cpuinfo, encoding="utf-8") as f:
            line = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return set()
    return set(line.partition(":")[2].split())


def cpu_has_bf16(flags: set[str] | None = None) -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX)."""
    flags = cpu_flags() if flags is None else flags
    return "avx512_bf16" in flags or "amx_bf16" in flags


DEVICE_NAME = re.compile(r"cpu|auto|mps|cuda(:\d{1,4})?")  # what --device takes


def device_problem(name: str) -> str | None:
    """Why ``name`` is not a device a command runs on (cpu, cuda, cuda:N, auto, mps),
    else None; checked without torch, before a model loads."""
    if DEVICE_NAME.fullmatch(name):
        return None
    return f"expected cpu, cuda, cuda:N, auto or mps, got {name[:40]!r}"


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA where there is a device, else the CPU; an unknown name and
    ``cuda`` (or ``cuda:N``) without that device are refused in one line rather than
    failing at the first tensor."""
    import torch

    if (problem := device_problem(name)) is not None:
        raise ConfigError(f"device: {problem}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device mps: this PyTorch has no MPS device here (use cpu or auto)")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name}: no CUDA device is available here (use cpu or auto)")
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {name}: there are {torch.cuda.device_count()} CUDA device(s) here"
            )
    return torch.device(name)


BF16_MIN_WIDTH = 256  # the narrowest model width at which AVX512-BF16 (no AMX) pays


def matmul_width(model: torch.nn.Module) -> int:
    """The width a model's matrix products mostly have: the parameter-weighted median of
    the smaller dimension of its weight matrices (a 512-unit GRU's 1536x512 matrices give
    512, a transformer of width 128 gives 128 whatever its vocabulary). 0 for a model
    without matrices."""
    sizes = sorted(
        (min(p.shape[0], p.shape[1]), p.numel()) for p in model.parameters() if p.dim() >= 2
    )
    half, seen = sum(n for _, n in sizes) / 2, 0
    for width, n in sizes:
        seen += n
        if seen >= half:
            return int(width)
    return 0


def choose_precision(
    requested: str, device_type: str, flags: set[str], cuda_bf16: bool, width: int = 0
) -> tuple[str, str]:
    """The arithmetic for ``train.precision`` and why: ``fp32``/``bf16``/``fp16`` as asked;
    ``auto`` is bf16 autocast on a CUDA device that supports bf16 and on a CPU with AMX;
    on a CPU with AVX512-BF16 but no AMX it is bf16 for models whose matrices are at least
    :data:`BF16_MIN_WIDTH` wide (``width``, see :func:`matmul_width`) and fp32 for narrower
    ones; fp32 elsewhere. Measured on an AMD EPYC with AVX512-BF16 (one thread): bf16 trained
    a 64-wide GRU model at 0.6-0.7x fp32's tokens/s, a 128-wide transformer at 0.95x,
    256-wide GRU models at 1.3-1.9x and the 512-wide OpenNMT-py comparison model at 2.2x."""
    if requested != "auto":
        return requested, "as configured"
    if device_type == "cuda":
        if cuda_bf16:
            return "bf16", "a CUDA device with bf16"
        return "fp32", "a CUDA device without bf16"
    if "amx_bf16" in flags:
        return "bf16", "a CPU with AMX"
    if "avx512_bf16" in flags:
        if width >= BF16_MIN_WIDTH:
            return "bf16", (
                f"a CPU with AVX512-BF16 and a model {width} wide "
                f"(bf16 pays from {BF16_MIN_WIDTH} there)"
            )
        return "fp32", (
            f"a CPU with AVX512-BF16 but no AMX and a model {width} wide "
            f"(bf16 is slower there below {BF16_MIN_WIDTH})"
        )
    return "fp32", "a CPU without native bf16"


def resolve_precision(
    requested: str, device: torch.device, model: torch.nn.Module | None = None
) -> tuple[str, str]:
    """:func:`choose_precision` for this machine (and ``model``'s width)."""
    import torch

    cuda = device.type == "cuda" and torch.cuda.is_bf16_supported()
    flags = cpu_flags() if device.type == "cpu" else set()
    width = matmul_width(model) if model is not None else 0
    return choose_precision(requested, device.type, flags, cuda, width)


# ---------------------------------------------------------------------- exported models


def _export_device(name: str) -> tuple[str, int]:
    """``(kind, index)`` of a device an export may run on: ``cpu``, ``auto`` or ``cuda[:N]``."""
    if (problem := device_problem(name)) is not None:
        raise ConfigError(f"device: {problem}")
    if name == "mps":
        raise ConfigError("device mps: exported models run on cpu or cuda (mps is torch's)")
    kind, _, index = name.partition(":")
    return kind, int(index or 0)


def onnx_providers(name: str) -> list:
    """onnxruntime's execution providers for ``--device name``: the CPU's for ``cpu``; the
    CUDA provider (on device N), then the CPU's for the operators it lacks, for ``cuda[:N]``,
    refused in one line where this onnxruntime has none (the ``onnxruntime`` wheel is
    CPU-only; ``onnxruntime-gpu`` has it); ``auto`` is CUDA where the build has it."""
    kind, index = _export_device(name)
    if kind == "cpu":
        return ["CPUExecutionProvider"]
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        if kind == "auto":
            return ["CPUExecutionProvider"]
        raise ConfigError(
            f"device {name}: this onnxruntime ({ort.__version__}) has no CUDA execution "
            "provider (install onnxruntime-gpu in place of onnxruntime, or use --device cpu)"
        )
    return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]


def ct2_device(name: str) -> tuple[str, int]:
    """CTranslate2's ``(device, device_index)`` for ``--device name``; ``cuda[:N]`` is refused
    in one line where CTranslate2 sees no such GPU, ``auto`` is the first GPU where it sees
    one, else the CPU."""
    kind, index = _export_device(name)
    if kind == "cpu":
        return "cpu", 0
    import ctranslate2

    count = ctranslate2.get_cuda_device_count()
    if kind == "auto":
        return ("cuda", 0) if count else ("cpu", 0)
    if index >= count:
        raise ConfigError(
            f"device {name}: CTranslate2 sees {count} CUDA device(s) here (use --device cpu)"
        )
    return "cuda", index
