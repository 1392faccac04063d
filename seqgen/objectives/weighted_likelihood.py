"""The weighted-likelihood family (docs/theory/objectives.md#weighted-likelihood): each gold token's
log-likelihood weighted by a detached function w of the model's own probability p of it,

    L = -sum_t w(p_t) log p_t / (target tokens),    p_t = Q(x_t | x_<t, c),

which pulls maximum likelihood toward the reverse, mode-seeking direction without sampling:

- `mle`: w = 1 (teacher forcing);
- `dft`: w = p (dynamic fine-tuning);
- `mixce`: w = η + (1 - η) p (MixCE's self-reinforced approximation of η CE(P, Q) + (1 - η) CE(Q, P));
- `tailr`: w = p / (γ + (1 - γ) p), clamped to [min_weight, 1] (TaiLr's total-variation bound).

TaiLr at γ = 1 is DFT, which is MixCE at η = 0; TaiLr at γ = 0 is maximum likelihood. No gradient flows
through a weight; the loss is a token mean, so accumulation and processes weight micro-batches exactly as
teacher forcing does, and nothing is drawn at random.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from seqgen.config import ObjectiveConfig
from seqgen.data.batch import Batch
from seqgen.errors import UserError
from seqgen.functional import token_nll
from seqgen.models.base import Generator
from seqgen.objectives.base import Objective, Player, RunInfo
from seqgen.randomness import Source

PRESETS = ("mle", "dft", "mixce", "tailr")


@dataclass
class WeightedLikelihoodConfig(ObjectiveConfig):
    """Weighted likelihood: the gold tokens' log-likelihoods weighted by a detached w(p)."""

    name: Literal["weighted_likelihood"] = "weighted_likelihood"
    """Which objective trains the generator."""
    preset: Literal["mle", "dft", "mixce", "tailr"] = "tailr"
    """The weight w(p) of a gold token the model gives probability p: `mle` 1; `dft` p; `mixce`
    η + (1 - η) p; `tailr` p / (γ + (1 - γ) p), clamped to [min_weight, 1]."""
    eta: float = 0.5
    """`mixce`: η in [0, 1], the weight of the forward cross-entropy CE(P, Q) (1: maximum likelihood)."""
    gamma: float = 0.5
    """`tailr`: γ in [0, 1] (0: maximum likelihood; 1: w = p, as `dft`)."""
    min_weight: float = 0.0
    """`tailr`: the smallest weight, in [0, 1]."""

    def __post_init__(self) -> None:
        for key in ("eta", "gamma", "min_weight"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise UserError(f"objective.{key} must be in [0, 1], got {getattr(self, key)}")


def token_weights(p: torch.Tensor, cfg: WeightedLikelihoodConfig) -> torch.Tensor:
    """w(p) of `cfg`'s preset for probabilities p (any shape) of the gold tokens; no gradient."""
    p = p.detach()
    if cfg.preset == "mle":
        return torch.ones_like(p)
    if cfg.preset == "dft":
        return p
    if cfg.preset == "mixce":
        return cfg.eta + (1.0 - cfg.eta) * p
    # γ + (1 - γ) p >= p > 0 whenever γ < 1 or p > 0; at γ = 0 and p = 0 the weight is 1 (the γ -> 0 limit)
    denominator = cfg.gamma + (1.0 - cfg.gamma) * p
    w = torch.where(denominator > 0, p / denominator.clamp(min=torch.finfo(p.dtype).tiny), torch.ones_like(p))
    return w.clamp(min=cfg.min_weight, max=1.0)


class WeightedLikelihood(nn.Module, Objective):
    """L = -sum_t w(p_t) log p_t over target tokens (EOS included, padding excluded), a token mean.

    One player: this module. Logs loss (the weighted loss), nll (the plain token NLL) and weight (the
    mean weight of the batch's tokens).
    """

    fixed_calls = True  # one forward of the generator per micro-batch

    def __init__(self, generator: Generator, cfg: WeightedLikelihoodConfig | None = None,
                 run: RunInfo | None = None) -> None:
        super().__init__()
        self.generator = generator
        self.cfg = cfg or WeightedLikelihoodConfig()

    def players(self) -> list[Player]:
        return [Player(self)]

    def forward(self, batch: Batch, step: int, noise: Source = None) -> tuple[torch.Tensor, dict]:
        logits = self.generator(batch.inputs, self.generator.encode(batch.context))  # (B, T, V)
        mask = batch.target_mask
        tokens = mask.sum().clamp(min=1)
        nll = token_nll(logits, batch.targets, mask)  # (B, T), zero where masked
        weights = token_weights((-nll).exp(), self.cfg) * mask  # (B, T)
        loss = (weights * nll).sum() / tokens
        return loss, {"loss": loss.detach(), "nll": nll.detach().sum() / tokens,
                      "weight": weights.sum() / tokens}
