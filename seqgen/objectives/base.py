"""The seam every training objective plugs into."""

from __future__ import annotations

import torch
from torch import nn

from seqgen.data.batch import Batch
from seqgen.models.base import Generator


class Objective(nn.Module):
    """Owns the generator it trains and turns a batch into a loss.

    `forward(batch, step)` returns `(loss, metrics)`: the loss averaged over the batch's units (target
    tokens for token-level objectives) and a dict of per-batch averages of the same units to log, as detached 0-d tensors (the loop
    reduces them only when it logs, so a step never waits on the device).
    `weight(batch)` says how many units the batch holds, so that the training loop can weight
    micro-batches and processes exactly as one large batch would (gradient accumulation and
    multi-process training give the same gradient as the equivalent single batch).

    Wrapping the generator inside the objective keeps each update inside one forward of the module
    that Accelerate prepares (one DDP forward under multi-process training).
    """

    def __init__(self, generator: Generator) -> None:
        super().__init__()
        self.generator = generator

    def weight(self, batch: Batch) -> int:
        """Units the loss of `batch` is averaged over (default: target tokens, EOS included)."""
        return batch.num_target_tokens

    def forward(self, batch: Batch, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError
