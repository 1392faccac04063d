"""Teacher forcing: maximum likelihood with the gold prefix always fed
(docs/theory/objectives.md#teacher-forcing)."""

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


def check_label_smoothing(value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise UserError(f"objective.label_smoothing must be in [0, 1), got {value}")


@dataclass
class TeacherForcingConfig(ObjectiveConfig):
    """Teacher forcing (maximum likelihood)."""

    name: Literal["teacher_forcing"] = "teacher_forcing"
    """Which objective trains the generator."""
    label_smoothing: float = 0.0
    """Mass of the cross-entropy's target spread uniformly over the vocabulary."""

    def __post_init__(self) -> None:
        check_label_smoothing(self.label_smoothing)


class TeacherForcing(nn.Module, Objective):
    """L_TF = -sum_t log Q(x_t | x_<t, c), averaged over target tokens (EOS included, padding excluded).

    One player: this module, which wraps the generator so that each update is one forward of the
    module Accelerate prepares.
    """

    fixed_calls = True  # one forward of the generator per micro-batch

    def __init__(self, generator: Generator, cfg: TeacherForcingConfig | None = None,
                 run: RunInfo | None = None) -> None:
        super().__init__()
        self.generator = generator
        self.cfg = cfg or TeacherForcingConfig()

    def players(self) -> list[Player]:
        return [Player(self)]

    def forward(self, batch: Batch, step: int, noise: Source = None) -> tuple[torch.Tensor, dict]:
        memory = self.generator.encode(batch.context)
        logits = self.generator(batch.inputs, memory)  # (B, T, V)
        mask = batch.target_mask
        tokens = mask.sum().clamp(min=1)
        loss = token_nll(logits, batch.targets, mask, self.cfg.label_smoothing).sum() / tokens
        metrics = {"loss": loss.detach()}
        if self.cfg.label_smoothing:
            metrics["nll"] = token_nll(logits.detach(), batch.targets, mask).sum() / tokens
        return loss, metrics
