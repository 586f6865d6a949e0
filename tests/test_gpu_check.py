"""benchmarks/gpu_check.sh: valid bash, and its CPU rehearsal (GPU_CHECK_DRY=1) runs every
stage on tiny data and prints one JSON line naming what it measured and what it skipped."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


def test_the_script_parses():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], check=False).returncode == 0


@pytest.mark.slow
def test_the_dry_run_measures_every_stage_on_the_cpu(tmp_path):
    data = Path(os.environ.get("TRANSDUCE_DATA", ROOT.parent / "shared" / "data"))
    if not (data / "multi30k" / "train.en.gz").exists() or shutil.which("timeout") is None:
        pytest.skip("needs Multi30k under TRANSDUCE_DATA and coreutils' timeout")
    env = dict(
        os.environ,
        GPU_CHECK_DRY="1",
        GPU_CHECK_WORK=str(tmp_path),
        GPU_CHECK_PYTHON=sys.executable,
        TRANSDUCE_DATA=str(data),
    )
    done = subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=2400, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout[-2000:]
    record = json.loads(lines[0])
    assert record["dry_run"] and record["env"]["cuda"] is False
    assert record["tests"]["failures"] == record["tests"]["errors"] == 0
    assert record["tests"]["tests"] > record["tests"]["skipped"]  # the CPU fp16 tests ran
    for recipe in ("rnn", "transformer"):
        for precision in ("fp32", "bf16"):
            speed = record[f"train_{recipe}_{precision}"]
            assert speed["tgt_tok_s_overall"] > 0 and speed["precision"] == precision
    assert record["train_run"]["step"] == 2
    assert record["skipped"] == {}, record["skipped"]  # on the CPU every engine runs
    for engine in ("torch", "onnx", "ct2"):
        assert record["decode"]["engines"][engine]["beam5_b64"]["sentences_per_s"] > 0
