"""The README's quick tour runs top to bottom as written, in a fresh folder."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def quick_tour() -> str:
    """The first bash block under the README's "A quick tour" heading."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## A quick tour"):]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_the_quick_tour_runs_as_written(tmp_path):
    shutil.copytree(ROOT / "recipes", tmp_path / "recipes")
    # `. .venv/bin/activate` is what puts seqgen and accelerate on PATH; here the test's environment does
    lines = [line for line in quick_tour().splitlines() if line.strip() != ". .venv/bin/activate"]
    script = "set -euo pipefail\n" + "\n".join(lines) + "\n"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr
    for path in ("runs/debug/translation/model/model.safetensors", "runs/tr-gru/metrics.json",
                 "runs/debug/translation/metrics-test.json", "runs/debug/lm/metrics-2p.json",
                 "runs/sweep/sweep.csv"):
        assert (tmp_path / path).is_file(), path
