"""Teacher forcing: maximum likelihood with the gold prefix always fed (SCIENCE.md section 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from seqgen.data.batch import Batch
from seqgen.objectives.base import Objective


def token_nll(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
              label_smoothing: float = 0.0) -> torch.Tensor:
    """Per-token cross-entropy.

    Args:
        logits: (B, T, V) next-token logits.
        targets: (B, T) gold next tokens.
        mask: (B, T) bool, True where the target counts.
        label_smoothing: mass spread uniformly over the vocabulary.

    Returns:
        (B, T) losses in nats, zero where `mask` is False.
    """
    loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), reduction="none",
                           label_smoothing=label_smoothing)
    return loss.view_as(targets) * mask


class TeacherForcing(Objective):
    """L_TF = -sum_t log Q(x_t | x_<t, c), averaged over target tokens (EOS included, padding excluded)."""

    def __init__(self, generator, label_smoothing: float = 0.0) -> None:
        super().__init__(generator)
        self.label_smoothing = label_smoothing

    def forward(self, batch: Batch, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        memory = self.generator.encode(batch.context)
        logits = self.generator(batch.inputs, memory)  # (B, T, V)
        mask = batch.target_mask
        tokens = mask.sum().clamp(min=1)
        loss = token_nll(logits, batch.targets, mask, self.label_smoothing).sum() / tokens
        metrics = {"loss": loss.detach()}
        if self.label_smoothing:
            metrics["nll"] = token_nll(logits.detach(), batch.targets, mask).sum() / tokens
        return loss, metrics
