"""How many processes a command runs as, and how Accelerate should join them."""

from __future__ import annotations

import os

import torch


def cpu_processes() -> bool:
    """True when launched as several processes (`accelerate launch --multi_gpu ...`) on a machine
    without CUDA: Accelerate then needs `cpu=True` to join them with gloo instead of running each alone."""
    return os.environ.get("LOCAL_RANK") is not None and not torch.cuda.is_available()
