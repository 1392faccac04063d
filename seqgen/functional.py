"""Maths shared by the objectives and the metrics (neither imports the other for it)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from seqgen.errors import UserError


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


def check_pi(pi: float, name: str = "the class prior pi") -> None:
    """The one check of a class prior: UserError, naming it `name`, unless 0 < π < 1."""
    if not 0 < pi < 1:
        raise UserError(f"{name} must be in (0, 1), got {pi}")


def binary_entropy(pi: float) -> float:
    """H(π) = -π log π - (1-π) log(1-π) in nats: the largest value JS_π can take."""
    return -sum(x * math.log(x) for x in (pi, 1.0 - pi) if x > 0)
