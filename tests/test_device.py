"""The device and precision a run gets: a pure function of the CPU's flags and CUDA."""

import pytest
import torch

from transduce.config import ConfigError
from transduce.device import choose_precision, matmul_width, resolve_device, resolve_precision


@pytest.mark.parametrize(
    ("device", "flags", "cuda_bf16", "width", "expected"),
    [
        ("cpu", {"avx2", "amx_bf16", "avx512_bf16"}, False, 64, "bf16"),
        ("cpu", {"avx512f", "avx512_bf16"}, False, 128, "fp32"),  # measured slower: narrow
        ("cpu", {"avx512f", "avx512_bf16"}, False, 256, "bf16"),  # measured 1.3-2.2x faster
        ("cpu", {"avx2"}, False, 512, "fp32"),
        ("cpu", set(), True, 512, "fp32"),  # CUDA's bf16 says nothing of the CPU
        ("cuda", set(), True, 64, "bf16"),
        ("cuda", {"amx_bf16"}, False, 512, "fp32"),  # a CUDA run does not look at CPU flags
    ],
)
def test_auto_precision_follows_the_hardware_and_width(device, flags, cuda_bf16, width, expected):
    chosen, why = choose_precision("auto", device, flags, cuda_bf16, width)
    assert chosen == expected and why
    if "avx512_bf16" in flags and "amx_bf16" not in flags:
        assert str(width) in why  # the reason names the width it went by


def test_matmul_width_is_the_weighted_median_of_the_matrices_narrow_sides():
    wide = torch.nn.Sequential(torch.nn.Embedding(6000, 64), torch.nn.GRU(64, 512))
    assert matmul_width(wide) == 512  # 2 x 1536x512 matrices outweigh the 6000x64 table
    narrow = torch.nn.Sequential(torch.nn.Linear(128, 128), torch.nn.Linear(128, 8000))
    assert matmul_width(narrow) == 128  # a large vocabulary does not make a model wide
    assert matmul_width(torch.nn.LayerNorm(8)) == 0


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


@pytest.mark.parametrize("name", ["foo", "cuda:", "CPU", "cuda:99999"])
def test_an_unknown_device_is_a_config_error(name):
    with pytest.raises(ConfigError, match="device"):
        resolve_device(name)


def test_cuda_n_without_that_device_is_a_config_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match="there are 1 CUDA device"):
        resolve_device("cuda:3")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="an MPS device is here")
def test_mps_without_an_mps_device_is_a_config_error():
    with pytest.raises(ConfigError, match="device mps"):
        resolve_device("mps")
