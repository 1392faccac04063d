"""Scheduled sampling (Bengio et al. 2015; SCIENCE.md section 2): the input at each position is the gold
previous token with probability ε, else a token made from the model's own prediction; the target stays
gold. An improper objective: even a perfect model class does not recover P unless ε = 1.

Two ways to make the model tokens:

- `sequential` (exact): one position at a time on the decoder's cache (an RNN's hidden state, a
  Transformer's key/value cache), so the token fed at t+1 comes from a prediction made on the
  already-mixed prefix; then one loss pass over the mixed inputs. `use_cache: false` re-runs the
  whole prefix at every position instead (the quadratic reference).
- `parallel` (Duckworth et al. 2019): `passes` whole-sequence passes without gradient, each making
  the model tokens from the previous pass's mixture, then one loss pass. passes = 1 is the two-pass
  scheme of Mihaylova & Martins (2019); the model inputs may then also be probability vectors
  (`feed: softmax | gumbel`), fed through the embedding matrix.

The coins and samples come from torch's global RNG, which the training loop seeds and its
checkpoints restore, so a resumed run draws what the uninterrupted one would have. No gradient flows
through a coin or a model token: they are made from detached logits.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from seqgen.config import ScheduledSamplingConfig
from seqgen.data.batch import Batch
from seqgen.errors import UserError
from seqgen.models.base import Generator
from seqgen.objectives.base import Objective
from seqgen.objectives.teacher_forcing import token_nll
from seqgen.sampling import categorical
from seqgen.schedules import check_epsilon_schedule, epsilon

SOFT_FEEDS = ("softmax", "gumbel")


def check_scheduled_sampling(cfg: ScheduledSamplingConfig) -> None:
    """Raise UserError naming the first inconsistent setting of a scheduled-sampling section."""
    check_epsilon_schedule(cfg)
    key = "objective.scheduled_sampling"
    if cfg.mode == "sequential" and cfg.feed in SOFT_FEEDS:
        raise UserError(f"{key}.feed={cfg.feed} needs {key}.mode=parallel (sequential mode feeds tokens: "
                        "sample or argmax)")
    if cfg.mode == "parallel" and cfg.passes < 1:
        raise UserError(f"{key}.passes must be >= 1, got {cfg.passes}")
    if cfg.feed == "gumbel" and cfg.gumbel_temperature <= 0:
        raise UserError(f"{key}.gumbel_temperature must be positive, got {cfg.gumbel_temperature}")


class ScheduledSampling(Objective):
    """Token-mean cross-entropy on the gold targets, with model tokens mixed into the inputs.

    Args:
        generator: the model to train.
        cfg: schedule, mode and feed (see `ScheduledSamplingConfig`).
        label_smoothing: of the cross-entropy, as in teacher forcing.
        steps_per_epoch: optimizer steps per pass over the training data (for `unit: epoch`).

    Raises:
        UserError: an inconsistent `cfg` (see `check_scheduled_sampling`).
    """

    def __init__(self, generator: Generator, cfg: ScheduledSamplingConfig, label_smoothing: float = 0.0,
                 steps_per_epoch: float = 1.0) -> None:
        super().__init__(generator)
        check_scheduled_sampling(cfg)
        self.cfg = cfg
        self.label_smoothing = label_smoothing
        self.steps_per_epoch = steps_per_epoch

    def forward(self, batch: Batch, step: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss and metrics of `batch` at training step `step`.

        Returns:
            The loss (mean over target tokens) and detached 0-d metrics: loss, epsilon,
            model_input_fraction (of the real input positions after BOS, those fed a model token),
            and nll when label smoothing is on.
        """
        eps = epsilon(self.cfg, step, self.steps_per_epoch)
        mask = batch.target_mask  # (B, T)
        # Position 0 is always BOS; a later input is mixed only where its target counts, so padding
        # keeps its gold PAD input.
        mixable = mask.clone()
        mixable[:, 0] = False
        # One coin per position, drawn for the whole (B, T) grid so that the draws do not depend on
        # the padding: True where the model's token is fed.
        use_model = mixable & ~(torch.rand(mask.shape, device=mask.device) < eps)

        memory = self.generator.encode(batch.context)
        if self.cfg.mode == "parallel":
            logits = self._parallel(batch.inputs, use_model, memory)
        elif self.cfg.use_cache:
            logits = self._sequential_cached(batch.inputs, use_model, memory)
        else:
            logits = self._sequential_uncached(batch.inputs, use_model, memory)

        tokens = mask.sum().clamp(min=1)
        loss = token_nll(logits, batch.targets, mask, self.label_smoothing).sum() / tokens
        metrics = {
            "loss": loss.detach(),
            "epsilon": torch.tensor(eps, device=loss.device),
            "model_input_fraction": (use_model.sum() / mixable.sum().clamp(min=1)).float(),
        }
        if self.label_smoothing:
            metrics["nll"] = token_nll(logits.detach(), batch.targets, mask).sum() / tokens
        return loss, metrics

    # -----------------------------------------------------------------------------------------------

    def _token(self, logits: torch.Tensor) -> torch.Tensor:
        """Ids (...,) made from detached logits (..., V): a sample or the argmax."""
        return logits.argmax(-1) if self.cfg.feed == "argmax" else categorical(logits)

    # Sequential mode makes the mixed inputs first, without gradient, then computes the loss in one
    # teacher-forced pass over them. The inputs depend only on detached quantities and a causal decoder's
    # logits at t depend only on the inputs up to t, so the loss and its gradients are those of stepping
    # through the sequence with gradient (identical without dropout; with dropout the token fed at t + 1
    # is drawn under a dropout mask independent of the loss pass's) at the cost of one inference pass and
    # one teacher-forcing step, instead of T small steps forward and backward.

    def _sequential_cached(self, inputs: torch.Tensor, use_model: torch.Tensor, memory: Any) -> torch.Tensor:
        """(B, T) gold inputs -> (B, T, V) logits; the mixing takes one `step` per position on the
        decoder's cache."""
        with torch.no_grad():
            state, x, fed = None, inputs[:, 0], [inputs[:, 0]]
            for t in range(inputs.shape[1] - 1):
                out, state = self.generator.step(x, memory, state)  # (B, V)
                x = torch.where(use_model[:, t + 1], self._token(out), inputs[:, t + 1])
                fed.append(x)
        return self.generator(torch.stack(fed, 1), memory)

    def _sequential_uncached(self, inputs: torch.Tensor, use_model: torch.Tensor, memory: Any) -> torch.Tensor:
        """As `_sequential_cached`, re-running the whole mixed prefix at every position (the reference)."""
        with torch.no_grad():
            fed = inputs[:, :1]
            for t in range(inputs.shape[1] - 1):
                out = self.generator(fed, memory)[:, -1]  # (B, V)
                x = torch.where(use_model[:, t + 1], self._token(out), inputs[:, t + 1])
                fed = torch.cat([fed, x[:, None]], 1)
        return self.generator(fed, memory)

    def _parallel(self, inputs: torch.Tensor, use_model: torch.Tensor, memory: Any) -> torch.Tensor:
        """(B, T) gold inputs -> (B, T, V) logits of the loss pass after `passes` mixing passes.

        The same coins serve every pass, so each pass refines the model tokens at the same positions
        from a prefix one pass closer to the model's own (passes = T - 1 gives sequential inputs).
        """
        soft = self.cfg.feed in SOFT_FEEDS
        gold = F.one_hot(inputs, self.generator.vocab.size).float() if soft else inputs
        where = use_model[:, 1:, None] if soft else use_model[:, 1:]
        mixed = gold
        with torch.no_grad():
            for _ in range(self.cfg.passes):
                # The prediction at t is the model's input at t + 1.
                predicted = self._feed(self.generator(mixed, memory)[:, :-1])
                mixed = torch.cat([gold[:, :1], torch.where(where, predicted, gold[:, 1:])], 1)
        return self.generator(mixed, memory)

    def _feed(self, logits: torch.Tensor) -> torch.Tensor:
        """What replaces a gold input, from logits (B, T, V): ids (B, T) or probabilities (B, T, V)."""
        if self.cfg.feed == "softmax":
            return logits.float().softmax(-1)
        if self.cfg.feed == "gumbel":
            return F.gumbel_softmax(logits.float(), tau=self.cfg.gumbel_temperature, hard=False)
        return self._token(logits)
