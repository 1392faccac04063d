"""Scheduled sampling (Bengio et al. 2015; docs/theory/objectives.md#scheduled-sampling): the input at each position is the gold
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

`replacement: uniform` (the "uniform scheduled sampling" row of Bengio et al.'s Table 1) feeds, at a
position the coin gives up, a token drawn uniformly from the vocabulary's ordinary tokens instead of
one made from the model: the inputs then need no prediction, so both modes make them in one draw and
take the loss in the single pass with gradient.

The coins and samples come from the micro-batch's `RowNoise` (`seqgen.randomness`), so a resumed run
draws what the uninterrupted one would have and N processes draw what one does. No gradient flows
through a coin or a model token: they are made from detached logits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from seqgen.config import ObjectiveConfig
from seqgen.data.batch import Batch
from seqgen.errors import UserError
from seqgen.functional import token_nll
from seqgen.gumbel import gumbel_softmax
from seqgen.models.base import Generator
from seqgen.objectives.base import Objective, Player, RunInfo
from seqgen.objectives.teacher_forcing import check_label_smoothing
from seqgen.randomness import Source, fork, uniform
from seqgen.sampling import categorical
from seqgen.schedules import epsilon

SOFT_FEEDS = ("softmax", "gumbel")


@dataclass
class ScheduledSamplingConfig(ObjectiveConfig):
    """Scheduled sampling (Bengio et al. 2015): each input is the gold previous token with probability
    ε, else a token made from the model's own prediction at the previous position (or, with
    `replacement: uniform`, a token drawn uniformly from the vocabulary)."""

    name: Literal["scheduled_sampling"] = "scheduled_sampling"
    """Which objective trains the generator."""
    schedule: Literal["constant", "linear", "exponential", "inverse_sigmoid"] = "constant"
    """How ε decays over training units i: constant ε_i = epsilon; linear ε_i = max(epsilon_min,
    k - c·i); exponential ε_i = k^i (k < 1); inverse_sigmoid ε_i = k / (k + exp(i / k)) (k ≥ 1)."""
    epsilon: float = 0.5
    """Constant schedule: the probability of feeding the gold token."""
    k: float = 1.0
    """Linear: ε at i = 0. Exponential: the decay base (< 1). Inverse sigmoid: the steepness (≥ 1)."""
    c: float = 1e-3
    """Linear: the decrease of ε per unit."""
    epsilon_min: float = 0.0
    """Linear: the floor of ε."""
    unit: Literal["step", "epoch"] = "step"
    """What i counts: optimizer steps, or epochs (steps · accumulated batches / batches per epoch)."""
    mode: Literal["sequential", "parallel"] = "sequential"
    """`sequential`: exact, the inputs made one position at a time on the decoder's cache, then the
    loss in one pass over them. `parallel`: `passes` teacher-forced-style passes without gradient,
    each mixing model tokens into the inputs, and the loss on one more pass (Duckworth et al. 2019;
    passes = 1 is the two-pass scheme)."""
    passes: int = 1
    """Parallel mode: mixing passes before the loss pass."""
    replacement: Literal["model", "uniform"] = "model"
    """Where the token fed in place of a gold input comes from: `model`, the model's prediction at the
    previous position (made as `feed` says); `uniform`, a token drawn uniformly from the vocabulary's
    ordinary tokens (every id but PAD, BOS and EOS; UNK included), whatever the model predicts: the
    "uniform scheduled sampling" of Bengio et al. (2015). Uniform needs no prediction, so it costs one
    teacher-forcing pass in either mode (`passes` and `use_cache` then change nothing); `feed` must
    stay `sample`."""
    feed: Literal["sample", "argmax", "softmax", "gumbel"] = "sample"
    """What replaces a gold input: a token sampled from the prediction, its argmax, or (parallel mode
    only) the embedding mixture weighted by the softmax or by a Gumbel-softmax sample."""
    tau: float = 1.0
    """`feed: gumbel`: the Gumbel-softmax temperature τ."""
    use_cache: bool = True
    """Sequential mode: step on the decoder's cache (False re-runs the whole prefix at each position:
    same result, quadratic cost; kept as the reference)."""
    label_smoothing: float = 0.0
    """Mass of the cross-entropy's target spread uniformly over the vocabulary."""

    def __post_init__(self) -> None:
        if self.schedule == "constant" and not 0.0 <= self.epsilon <= 1.0:
            raise UserError(f"objective.epsilon must be in [0, 1], got {self.epsilon}")
        if self.schedule == "linear":
            if self.c < 0:
                raise UserError(f"objective.c must be >= 0 (the decrease of ε per unit), got {self.c}")
            if not 0.0 <= self.epsilon_min <= 1.0:
                raise UserError(f"objective.epsilon_min must be in [0, 1], got {self.epsilon_min}")
        if self.schedule == "exponential" and not 0.0 < self.k <= 1.0:
            raise UserError(f"objective.k must be in (0, 1] for the exponential schedule ε = k^i, got {self.k}")
        if self.schedule == "inverse_sigmoid" and not self.k >= 1.0:
            raise UserError(f"objective.k must be >= 1 for the inverse sigmoid schedule ε = k / (k + exp(i / k)), "
                            f"got {self.k}")
        if self.mode == "sequential" and self.feed in SOFT_FEEDS:
            raise UserError(f"objective.feed={self.feed} needs objective.mode=parallel (sequential mode feeds "
                            "tokens: sample or argmax)")
        if self.replacement == "uniform" and self.feed != "sample":
            raise UserError(f"objective.feed={self.feed} makes an input from the model's prediction, but "
                            "objective.replacement=uniform feeds a uniformly drawn token instead: leave feed "
                            "at sample, or set replacement=model")
        if self.passes < 1:
            raise UserError(f"objective.passes must be >= 1, got {self.passes}")
        if not self.tau > 0:
            raise UserError(f"objective.tau must be positive, got {self.tau}")
        check_label_smoothing(self.label_smoothing)


class ScheduledSampling(nn.Module, Objective):
    """Token-mean cross-entropy on the gold targets, with model tokens mixed into the inputs.

    One player: this module. Its coins and model tokens come from the micro-batch's `RowNoise`, so a
    resumed or multi-process run draws what one uninterrupted process would.

    Args:
        generator: the model to train.
        cfg: schedule, mode and feed.
        run: the run (steps_per_epoch, for `unit: epoch`).
    """

    def __init__(self, generator: Generator, cfg: ScheduledSamplingConfig | None = None,
                 run: RunInfo | None = None) -> None:
        super().__init__()
        self.generator = generator
        self.cfg = cfg or ScheduledSamplingConfig()
        self.steps_per_epoch = (run or RunInfo()).steps_per_epoch
        # The ids `replacement: uniform` draws from: all but PAD and BOS, which never follow BOS in an
        # input, and EOS, which no gold input holds and which ends a decoded sequence, so that an input
        # holding it is one that inference never reaches (it would not be a "word" of the noise).
        # UNK stays: it is an ordinary input, standing for the rare words of the data.
        vocab = generator.vocab
        self.excluded = sorted({vocab.pad_id, vocab.bos_id, vocab.eos_id} & set(range(vocab.size)))
        if self.cfg.replacement == "uniform" and vocab.size <= len(self.excluded):
            raise UserError("objective.replacement=uniform needs a vocabulary with tokens besides PAD, BOS "
                            "and EOS")

    def players(self) -> list[Player]:
        return [Player(self)]

    def forward(self, batch: Batch, step: int,
                noise: Source = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Loss and metrics of `batch` at training step `step`, its draws from `noise` (None: torch's
        default generator; a torch generator is one stream for all of them).

        Returns:
            The loss (mean over target tokens) and detached 0-d metrics: loss, epsilon,
            model_input_fraction (of the real input positions after BOS, those not fed the gold token:
            a model token, or a uniform one), and nll when label smoothing is on.
        """
        eps = epsilon(self.cfg, step, self.steps_per_epoch)
        mask = batch.target_mask  # (B, T)
        # Position 0 is always BOS; a later input is mixed only where its target counts, so padding
        # keeps its gold PAD input.
        mixable = mask.clone()
        mixable[:, 0] = False
        # One coin per position, drawn for the whole (B, T) grid so that the draws do not depend on
        # the padding: True where the model's token is fed.
        made = fork(noise, "tokens")
        use_model = mixable & ~(uniform(tuple(mask.shape), mask.device, fork(noise, "coins")) < eps)

        memory = self.generator.encode(batch.context)
        if self.cfg.replacement == "uniform":
            # The replacements do not depend on the model: sequential and parallel mode feed the same
            # inputs, made here in one draw for the whole (B, T) grid, and one pass takes the loss.
            logits = self.generator(torch.where(use_model, self._uniform_tokens(mask.shape, mask.device, made),
                                                batch.inputs), memory)
        elif self.cfg.mode == "parallel":
            logits = self._parallel(batch.inputs, use_model, memory, made)
        elif self.cfg.use_cache:
            logits = self._sequential_cached(batch.inputs, use_model, memory, made)
        else:
            logits = self._sequential_uncached(batch.inputs, use_model, memory, made)

        tokens = mask.sum().clamp(min=1)
        loss = token_nll(logits, batch.targets, mask, self.cfg.label_smoothing).sum() / tokens
        metrics = {
            "loss": loss.detach(),
            "epsilon": torch.tensor(eps, device=loss.device),
            "model_input_fraction": (use_model.sum() / mixable.sum().clamp(min=1)).float(),
        }
        if self.cfg.label_smoothing:
            metrics["nll"] = token_nll(logits.detach(), batch.targets, mask).sum() / tokens
        return loss, metrics

    # -----------------------------------------------------------------------------------------------

    def _uniform_tokens(self, shape: torch.Size, device: torch.device, noise: Source) -> torch.Tensor:
        """(B, T) ids drawn uniformly from the vocabulary less `excluded`, one uniform per position of
        the grid."""
        n = self.generator.vocab.size - len(self.excluded)
        # floor(u · n) with u in [0, 1) is uniform on 0 .. n - 1 (the clamp guards u · n rounding up
        # to n in float32); stepping over each excluded id in increasing order maps it onto the others.
        ids = (uniform(tuple(shape), device, noise) * n).long().clamp_(max=n - 1)
        for special in self.excluded:
            ids += ids >= special
        return ids

    def _token(self, logits: torch.Tensor, noise: Source) -> torch.Tensor:
        """Ids (B, ...) made from detached logits (B, ..., V): a sample or the argmax."""
        return logits.argmax(-1) if self.cfg.feed == "argmax" else categorical(logits, noise)

    # Sequential mode makes the mixed inputs first, without gradient, then computes the loss in one
    # teacher-forced pass over them. The inputs depend only on detached quantities and a causal decoder's
    # logits at t depend only on the inputs up to t, so the loss and its gradients are those of stepping
    # through the sequence with gradient (identical without dropout; with dropout the token fed at t + 1
    # is drawn under a dropout mask independent of the loss pass's) at the cost of one inference pass and
    # one teacher-forcing step, instead of T small steps forward and backward.

    def _sequential_cached(self, inputs: torch.Tensor, use_model: torch.Tensor, memory: Any,
                           noise: Source) -> torch.Tensor:
        """(B, T) gold inputs -> (B, T, V) logits; the mixing takes one `step` per position on the
        decoder's cache."""
        with torch.no_grad():
            state, x, fed = None, inputs[:, 0], [inputs[:, 0]]
            for t in range(inputs.shape[1] - 1):
                out, state = self.generator.step(x, memory, state)  # (B, V)
                x = torch.where(use_model[:, t + 1], self._token(out, noise), inputs[:, t + 1])
                fed.append(x)
        return self.generator(torch.stack(fed, 1), memory)

    def _sequential_uncached(self, inputs: torch.Tensor, use_model: torch.Tensor, memory: Any,
                             noise: Source) -> torch.Tensor:
        """As `_sequential_cached`, re-running the whole mixed prefix at every position (the reference)."""
        with torch.no_grad():
            fed = inputs[:, :1]
            for t in range(inputs.shape[1] - 1):
                out = self.generator(fed, memory)[:, -1]  # (B, V)
                x = torch.where(use_model[:, t + 1], self._token(out, noise), inputs[:, t + 1])
                fed = torch.cat([fed, x[:, None]], 1)
        return self.generator(fed, memory)

    def _parallel(self, inputs: torch.Tensor, use_model: torch.Tensor, memory: Any,
                  noise: Source) -> torch.Tensor:
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
                predicted = self._feed(self.generator(mixed, memory)[:, :-1], noise)
                mixed = torch.cat([gold[:, :1], torch.where(where, predicted, gold[:, 1:])], 1)
        return self.generator(mixed, memory)

    def _feed(self, logits: torch.Tensor, noise: Source) -> torch.Tensor:
        """What replaces a gold input, from logits (B, T, V): ids (B, T) or probabilities (B, T, V)."""
        if self.cfg.feed == "softmax":
            return logits.float().softmax(-1)
        if self.cfg.feed == "gumbel":
            return gumbel_softmax(logits, tau=self.cfg.tau, generator=noise)[0]
        return self._token(logits, noise)
