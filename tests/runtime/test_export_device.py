"""Exports on a device: ``--device`` reaches onnxruntime (its CUDA execution provider) and
CTranslate2 (its GPU); a GPU that is not there is one line and exit 2, never a silent run
on the CPU. The GPU side runs under ``-m cuda`` (benchmarks/gpu_check.sh)."""

from __future__ import annotations

import os
import subprocess
import sys

import ctranslate2
import onnxruntime as ort
import pytest

from transduce.commands.cli import main
from transduce.config import ConfigError
from transduce.device import ct2_device, onnx_providers
from transduce.loading import load
from transduce.runtime import DecodeOptions

ORT_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()
CT2_GPUS = ctranslate2.get_cuda_device_count()
INPUTS = ["abc", "hello", "x"]


def test_the_cpu_is_the_cpu_everywhere():
    assert onnx_providers("cpu") == ["CPUExecutionProvider"]
    assert ct2_device("cpu") == ("cpu", 0)


@pytest.mark.parametrize("name", ["mps", "gpu", "cuda:x", ""])
def test_a_device_an_export_cannot_use_is_refused_by_name(name):
    for place in (onnx_providers, ct2_device):
        with pytest.raises(ConfigError, match="device"):
            place(name)


@pytest.mark.skipif(ORT_CUDA, reason="this onnxruntime has a CUDA provider")
def test_onnx_cuda_without_the_provider_names_the_package_that_has_it():
    with pytest.raises(ConfigError, match="onnxruntime-gpu"):
        onnx_providers("cuda")
    assert onnx_providers("auto") == ["CPUExecutionProvider"]  # auto: what there is


@pytest.mark.skipif(CT2_GPUS > 3, reason="four GPUs here")
def test_ct2_cuda_n_beyond_the_gpus_it_sees_is_refused():
    with pytest.raises(ConfigError, match=f"sees {CT2_GPUS} CUDA device"):
        ct2_device("cuda:3")
    assert ct2_device("auto") == (("cuda", 0) if CT2_GPUS else ("cpu", 0))


@pytest.mark.skipif(ORT_CUDA or CT2_GPUS > 0, reason="a GPU engine is present")
@pytest.mark.parametrize("engine", ["onnx", "ct2"])
def test_translate_on_a_missing_gpu_is_one_line_not_a_run_on_the_cpu(
    engine, exports, tmp_path, capsys
):
    src = tmp_path / "in.txt"
    src.write_text("\n".join(INPUTS) + "\n")
    out = tmp_path / "out.txt"
    args = ["translate", "--model", str(exports[engine]), "--input", str(src)]
    assert main([*args, "--output", str(out), "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "device cuda" in err[0]
    assert not out.exists()  # nothing decoded on the CPU instead
    assert main([*args, "--output", str(out), "--device", "auto"]) == 0  # auto: the CPU here
    auto = out.read_text()
    assert main([*args, "--output", str(out), "--device", "cpu"]) == 0
    assert out.read_text() == auto


@pytest.mark.skipif(ORT_CUDA or CT2_GPUS > 0, reason="a GPU engine is present")
@pytest.mark.parametrize("engine", ["onnx", "ct2"])
def test_the_runtime_and_serve_refuse_a_missing_gpu_in_one_line(engine, exports):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    model = str(exports[engine])
    for cmd in (
        [sys.executable, "-m", "transduce.runtime", "translate", "--model", model],
        [sys.executable, "-m", "transduce", "serve", "--model", model, "--port", "0"],
    ):
        got = subprocess.run(
            [*cmd, "--device", "cuda:0"],
            input="abc\n",
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert got.returncode == 2, got.stderr
        lines = got.stderr.strip().splitlines()
        assert len(lines) == 1 and "device cuda:0" in lines[0], got.stderr
        assert "Traceback" not in got.stderr


@pytest.mark.cuda
@pytest.mark.parametrize("engine", ["onnx", "ct2"])
def test_an_export_decodes_on_the_gpu_as_on_the_cpu(engine, exports):
    if engine == "onnx" and not ORT_CUDA:
        pytest.skip("this onnxruntime has no CUDA provider (onnxruntime-gpu has)")
    if engine == "ct2" and not CT2_GPUS:
        pytest.skip("CTranslate2 sees no GPU")
    options = DecodeOptions(beam=1, attention=False)
    cpu = load(exports[engine], device="cpu", threads=1).decode(INPUTS, options)
    gpu_model = load(exports[engine], device="cuda", threads=1)
    if engine == "onnx":
        assert "CUDAExecutionProvider" in gpu_model.model.providers
    else:
        assert gpu_model.device == "cuda:0"
    gpu = gpu_model.decode(INPUTS, options)
    assert [[h.text for h in n] for n in gpu] == [[h.text for h in n] for n in cpu]
