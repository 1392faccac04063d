"""Held-out likelihood: per-token NLL (nats), perplexity and bits per token
(docs/theory/metrics.md#likelihood)."""

from __future__ import annotations

import math

import torch

from seqgen.data.batch import Batch
from seqgen.functional import token_nll
from seqgen.models.base import Generator


@torch.no_grad()
def sequence_nll(model: Generator, batch: Batch) -> torch.Tensor:
    """(B,) summed NLL of each target sequence in nats (EOS included, padding excluded)."""
    logits = model(batch.inputs, model.encode(batch.context))
    return token_nll(logits, batch.targets, batch.target_mask).sum(dim=1)


def nll_metrics(nll: torch.Tensor, tokens: torch.Tensor) -> dict[str, float]:
    """Per-token NLL (nats), perplexity, bits per token and per-sequence NLL of a set of sequences.

    Args:
        nll: (N,) summed NLL of each sequence in nats.
        tokens: (N,) target tokens of each sequence (EOS included).

    Returns:
        {"nll", "ppl", "bits_per_token", "nll_per_sequence", "tokens"}.
    """
    total = float(nll.double().sum())
    count = int(tokens.sum())
    per_token = total / max(count, 1)
    return {
        "nll": per_token,
        "ppl": math.exp(min(per_token, 700.0)),
        "bits_per_token": per_token / math.log(2),
        "nll_per_sequence": total / max(len(nll), 1),
        "tokens": float(count),
    }
