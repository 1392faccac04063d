"""Held-out likelihood: per-token NLL (nats), perplexity and bits per token (SCIENCE.md section 4)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from seqgen.data.batch import Batch
from seqgen.models.base import Generator
from seqgen.objectives.teacher_forcing import token_nll


@torch.no_grad()
def sequence_nll(model: Generator, batch: Batch) -> torch.Tensor:
    """(B,) summed NLL of each target sequence in nats (EOS included, padding excluded)."""
    logits = model(batch.inputs, model.encode(batch.context))
    return token_nll(logits, batch.targets, batch.target_mask).sum(dim=1)


@dataclass
class NLLAccumulator:
    """Sums NLL and token counts over batches (and processes) and reports per-token figures."""

    nll: float = 0.0
    tokens: int = 0
    sequences: int = 0

    def add(self, model: Generator, batch: Batch) -> None:
        self.nll += sequence_nll(model, batch).sum().item()
        self.tokens += batch.num_target_tokens
        self.sequences += len(batch)

    def merge(self, totals: torch.Tensor) -> None:
        """Replace the sums by `totals` = (nll, tokens, sequences) summed across processes."""
        self.nll, self.tokens, self.sequences = totals[0].item(), int(totals[1]), int(totals[2])

    def totals(self, device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.tensor([self.nll, self.tokens, self.sequences], dtype=torch.float64, device=device)

    def result(self, prefix: str = "eval/") -> dict[str, float]:
        nll = self.nll / max(self.tokens, 1)
        return {
            f"{prefix}nll": nll,
            f"{prefix}ppl": math.exp(min(nll, 700.0)),
            f"{prefix}bits_per_token": nll / math.log(2),
            f"{prefix}nll_per_sequence": self.nll / max(self.sequences, 1),
            f"{prefix}tokens": float(self.tokens),
        }
