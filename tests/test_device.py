"""The device and precision a run gets: a pure function of the CPU's flags and CUDA."""

import pytest
import torch

from transduce.config import ConfigError
from transduce.device import choose_precision, resolve_device, resolve_precision


@pytest.mark.parametrize(
    ("device", "flags", "cuda_bf16", "expected"),
    [
        ("cpu", {"avx2", "amx_bf16", "avx512_bf16"}, False, "bf16"),
        ("cpu", {"avx512f", "avx512_bf16"}, False, "fp32"),  # measured slower without AMX
        ("cpu", {"avx2"}, False, "fp32"),
        ("cpu", set(), True, "fp32"),  # CUDA's bf16 says nothing of the CPU
        ("cuda", set(), True, "bf16"),
        ("cuda", {"amx_bf16"}, False, "fp32"),  # a CUDA run does not look at CPU flags
    ],
)
def test_auto_precision_follows_the_hardware(device, flags, cuda_bf16, expected):
    chosen, why = choose_precision("auto", device, flags, cuda_bf16)
    assert chosen == expected and why


@pytest.mark.parametrize("asked", ["fp32", "bf16", "fp16"])
def test_an_explicit_precision_is_kept_whatever_the_hardware(asked):
    for device, flags, cuda in [
        ("cpu", {"amx_bf16"}, False),
        ("cuda", set(), True),
        ("cpu", set(), False),
    ]:
        assert choose_precision(asked, device, flags, cuda)[0] == asked


def test_this_machine_gets_a_precision_and_a_cpu():
    assert resolve_precision("auto", torch.device("cpu"))[0] in ("fp32", "bf16")
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            resolve_device("cuda")
