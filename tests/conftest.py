"""Test-wide settings: the suite runs as two pytest workers on two cores, so each worker (and every
process it starts) uses one thread rather than oversubscribing the cores."""

import os

os.environ["OMP_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import torch  # noqa: E402

torch.set_num_threads(1)
