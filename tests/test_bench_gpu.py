"""The GPU benchmark suite runs every stage at its smoke size on a CPU, and reports MFU against the
device's published peak."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_gpu


@pytest.mark.slow
def test_the_dry_run_runs_every_stage(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py"), "--dry-run", "--out",
                           str(tmp_path)], cwd=ROOT, capture_output=True, text=True, env=env, timeout=900,
                          check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = (tmp_path / "summary.md").read_text()
    for stage in bench_gpu.STAGES:
        assert f"## {stage}: ok" in summary
        assert json.loads((tmp_path / f"{stage}.json").read_text())  # each script's results
    # the sharding stage measured both modes in 2 processes
    sharding = json.loads((tmp_path / "sharding.json").read_text())
    assert sharding["processes"] == 2 and set(sharding["memory_mb"]) == {"none", "fsdp"}


def test_mfu_is_against_the_devices_published_peak(tmp_path):
    (tmp_path / "train.json").write_text(json.dumps({"gflops": {"seqgen_gflops": 400_000.0,
                                                                "reference_gflops": 420_000.0}}))
    text = bench_gpu.summary({}, tmp_path, "NVIDIA H100 80GB HBM3")
    # 400 TFLOP/s of 989.4: 40.4%; 420 of 989.4: 42.4%; 400 / 420 = 0.952
    assert "seqgen 40.4%, bare loop 42.4% (seqgen / bare 0.952)" in text
    assert bench_gpu.peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert bench_gpu.peak_tflops("NVIDIA H200") == 989.4
    assert "utilisation" not in bench_gpu.summary({}, tmp_path, "CPU (dry run)")
