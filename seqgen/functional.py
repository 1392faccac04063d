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


def js_pi_per_position(log_p: torch.Tensor, log_q: torch.Tensor, pi: float) -> torch.Tensor:
    """The generalised Jensen-Shannon divergence JS_π[P‖Q] = π KL[P‖M] + (1-π) KL[Q‖M], M = πP + (1-π)Q,
    of the two next-token distributions at every position, from their log-probabilities (differentiable
    in both).

    Args:
        log_p: (..., V) normalised log-probabilities of P.
        log_q: (..., V) normalised log-probabilities of Q.
        pi: the class prior π in (0, 1).

    Returns:
        (...) JS_π in nats, between 0 and H(π).
    """
    log_m = torch.logaddexp(math.log(pi) + log_p, math.log(1 - pi) + log_q)
    p, q = log_p.exp(), log_q.exp()
    # p log(p / m), 0 where p is 0 (a log-probability of -inf would give 0 * inf)
    kl_p = torch.where(p > 0, p * (log_p - log_m), torch.zeros_like(p)).sum(-1)
    kl_q = torch.where(q > 0, q * (log_q - log_m), torch.zeros_like(q)).sum(-1)
    return pi * kl_p + (1 - pi) * kl_q
