"""Test-wide settings and fixtures. The suite runs as two pytest workers on two cores, so each worker
(and every process it starts) uses one thread rather than oversubscribing the cores."""

import os

os.environ["OMP_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

from types import SimpleNamespace

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture
def seqgen(capsys):
    """`seqgen ARGS...` in this process: its exit code (0, or what it exits with) and what it printed."""
    from seqgen.cli import main

    def run(*args):
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code
        captured = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=captured.out, stderr=captured.err)
    return run
