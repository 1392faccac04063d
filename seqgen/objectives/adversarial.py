"""JS_π adversarial training (SCIENCE.md section 3): a critic tells data from the generator's
Gumbel-softmax rollouts, and the generator learns from the critic's gradient.

The two players are separate modules, so that the training loop prepares each on its own (one DDP
module and one optimizer each) and alternates their updates:

- `CriticPlayer.forward(batch, fake)`: the critic's loss -V_π on the batch's real sequences
  (targets, EOS included) and on rollouts `fake` drawn for the same contexts without gradient;
- `GeneratorPlayer.forward(batch, step, critic)`: rolls out with gradient, scores the rollouts with
  the critic (frozen: no gradient reaches its parameters, no dropout, no spectral-norm power step)
  and returns the generator's loss, plus λ·L_TF when `tf_weight` is set.

Both losses are means over sequences, so `weight(batch)` counts sequences. Rollouts have the length
of the batch's targets, so real and fake sequences have the same maximum length; a rollout that ends
early (every row reached EOS) is padded with masked positions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqgen.config import AdversarialConfig
from seqgen.data.batch import Batch, Context
from seqgen.errors import UserError
from seqgen.gumbel import Rollout, gumbel_rollout
from seqgen.models.base import Generator
from seqgen.models.critics import Critic, build_critic, gradient_penalty
from seqgen.objectives.adversarial_losses import (
    check_pi,
    critic_accuracy,
    critic_loss,
    generator_loss,
    js_estimate,
    split_sizes,
)
from seqgen.objectives.base import Objective
from seqgen.objectives.teacher_forcing import token_nll
from seqgen.schedules import temperature

KEY = "objective.adversarial"


def check_adversarial(cfg: AdversarialConfig) -> None:
    """Raise UserError naming the first out-of-range setting of an adversarial section."""
    check_pi(cfg.pi)
    if cfg.critic_steps < 1:
        raise UserError(f"{KEY}.critic_steps must be >= 1, got {cfg.critic_steps}")
    positive = {"critic_lr": cfg.critic_lr, "tau": cfg.tau, "tau_min": cfg.tau_min,
                "critic_embedding_dim": cfg.critic_embedding_dim, "critic_hidden_dim": cfg.critic_hidden_dim,
                "critic_layers": cfg.critic_layers}
    for name, value in positive.items():
        if not value > 0:
            raise UserError(f"{KEY}.{name} must be positive, got {value}")
    nonnegative = {"gradient_penalty": cfg.gradient_penalty, "tf_weight": cfg.tf_weight, "rate": cfg.rate}
    for name, value in nonnegative.items():
        if value < 0:
            raise UserError(f"{KEY}.{name} must be >= 0, got {value}")
    if cfg.beta_max < 1:
        raise UserError(f"{KEY}.beta_max must be >= 1 (the final inverse temperature), got {cfg.beta_max}")
    if not 0 <= cfg.critic_dropout < 1:
        raise UserError(f"{KEY}.critic_dropout must be in [0, 1), got {cfg.critic_dropout}")


def build_critic_from(cfg: AdversarialConfig, vocab_size: int, task: str) -> Critic:
    """The critic an adversarial section describes, for a vocabulary of `vocab_size` and `task`."""
    return build_critic(cfg.critic, vocab_size, task=task, embedding_dim=cfg.critic_embedding_dim,
                        hidden_dim=cfg.critic_hidden_dim, num_layers=cfg.critic_layers,
                        dropout=cfg.critic_dropout, spectral_norm=cfg.spectral_norm)


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[nn.Module]:
    """`module` in eval mode with requires_grad off, restored on exit.

    Graphs built inside hold no path to its parameters, so a backward after the block still
    leaves their gradients untouched.
    """
    was_training = module.training
    flags = [p.requires_grad for p in module.parameters()]
    module.eval().requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)
        module.train(was_training)


def pad_rollout(rollout: Rollout, length: int, pad_id: int) -> Rollout:
    """`rollout` with masked positions appended up to `length` columns (zero vectors, PAD ids)."""
    missing = length - rollout.tokens.shape[1]
    if missing <= 0:
        return rollout
    return Rollout(probs=F.pad(rollout.probs, (0, 0, 0, missing)),
                   tokens=F.pad(rollout.tokens, (0, missing), value=pad_id),
                   mask=F.pad(rollout.mask, (0, missing), value=False))


def _rows(context: Context | None, count: int) -> Context | None:
    """The first `count` contexts (None stays None)."""
    if context is None or context.batch_size == count:
        return context
    return context.select(torch.arange(count))


class GeneratorPlayer(nn.Module):
    """The generator's side: rollouts and the generator loss.

    Args:
        generator: the model to train.
        cfg: the adversarial section.
        max_steps: N of the temperature schedule (train.max_steps).
        label_smoothing: of the optional teacher-forcing term.
    """

    def __init__(self, generator: Generator, cfg: AdversarialConfig, max_steps: int,
                 label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.generator = generator
        self.cfg = cfg
        self.max_steps = max_steps
        self.label_smoothing = label_smoothing

    def tau(self, step: int) -> float:
        """The Gumbel-softmax temperature at generator step `step`."""
        c = self.cfg
        return temperature(c.temperature, step, self.max_steps, tau=c.tau, tau_min=c.tau_min,
                           beta_max=c.beta_max, rate=c.rate)

    def rollout(self, batch: Batch, step: int, count: int | None = None,
                rng: torch.Generator | None = None) -> Rollout:
        """Gumbel-softmax rollouts for the first `count` rows of `batch` (all by default), one per context.

        Returns:
            A Rollout with (count, T, V) probs, T = the batch's target length.
        """
        count = len(batch) if count is None else count
        length = batch.targets.shape[1]
        context = _rows(batch.context, count)
        fake = gumbel_rollout(self.generator, context=context, num_sequences=count, max_len=length,
                              tau=self.tau(step), hard=self.cfg.hard, feed=self.cfg.feed, generator=rng)
        return pad_rollout(fake, length, self.generator.vocab.pad_id)

    def forward(self, batch: Batch, step: int, critic: Critic,
                rng: torch.Generator | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """The generator's loss on its rollouts for `batch`'s contexts.

        Args:
            batch: B real examples (their contexts; their targets for the teacher-forcing term).
            step: generator updates so far (sets τ).
            critic: the critic (unwrapped); frozen while it scores the rollouts.
            rng: source of the Gumbel noise; None uses torch's default generator.

        Returns:
            The loss (a mean over the B rollouts, plus λ times the token-mean NLL of the batch when
            tf_weight > 0) and detached metrics: loss, generator_loss, tau, d_fake (mean critic
            probability of the rollouts) and tf_nll.
        """
        fake = self.rollout(batch, step, rng=rng)
        with frozen(critic):
            logits = critic(fake.probs, fake.mask, batch.context)  # (B,)
        adversarial = generator_loss(logits, self.cfg.pi, self.cfg.generator_loss)
        loss = adversarial
        metrics = {"generator_loss": adversarial.detach(),
                   "tau": torch.tensor(self.tau(step), device=logits.device),
                   "d_fake": torch.sigmoid(logits.detach().float()).mean()}
        if self.cfg.tf_weight:
            mask = batch.target_mask
            logits_tf = self.generator(batch.inputs, self.generator.encode(batch.context))
            nll = token_nll(logits_tf, batch.targets, mask, self.label_smoothing).sum() / mask.sum().clamp(min=1)
            loss = loss + self.cfg.tf_weight * nll
            metrics["tf_nll"] = nll.detach()
        metrics["loss"] = loss.detach()
        return loss, metrics


class CriticPlayer(nn.Module):
    """The critic's side: the π-weighted (or π-ratio) binary cross-entropy, optionally penalised.

    Args:
        critic: the critic to train.
        cfg: the adversarial section.
    """

    def __init__(self, critic: Critic, cfg: AdversarialConfig) -> None:
        super().__init__()
        self.critic = critic
        self.cfg = cfg

    def split(self, batch_size: int) -> tuple[int, int]:
        """(real, fake) sequences of a critic batch of `batch_size` rows: B and B when `weighted`;
        π : (1 - π) of B when `ratio` (the first rows for both, so conditional pairs share contexts)."""
        if self.cfg.critic_loss == "ratio":
            return split_sizes(batch_size, self.cfg.pi)
        return batch_size, batch_size

    def forward(self, batch: Batch, fake: Rollout,
                rng: torch.Generator | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """The critic's loss on real `batch` and generator rollouts `fake`.

        Args:
            batch: B real examples; the first `split(B)[0]` are scored.
            fake: rollouts (without gradient) for the first `split(B)[1]` contexts of `batch`.
            rng: source of the gradient penalty's interpolation weights.

        Returns:
            The loss -V_π (+ the weighted gradient penalty) and detached metrics: loss (-V_π alone),
            acc_real, acc_fake, js_pi, js_pi_over_pi, js_pi_over_1mpi (and gradient_penalty).
        """
        n_real, n_fake = self.split(len(batch))
        real_ids, real_mask = batch.targets[:n_real], batch.target_mask[:n_real]
        probs, fake_mask = fake.probs.detach(), fake.mask
        real_logits = self.critic(real_ids, real_mask, _rows(batch.context, n_real))
        fake_logits = self.critic(probs, fake_mask, _rows(batch.context, n_fake))
        loss = critic_loss(real_logits, fake_logits, self.cfg.pi, self.cfg.critic_loss)
        acc_real, acc_fake = critic_accuracy(real_logits.detach(), fake_logits.detach())
        metrics = {"loss": loss.detach(), "acc_real": acc_real, "acc_fake": acc_fake,
                   **js_estimate(real_logits.detach(), fake_logits.detach(), self.cfg.pi)}
        if self.cfg.gradient_penalty:
            m = min(n_real, n_fake)  # rows i < m of both sides share context i
            real = F.one_hot(real_ids[:m], probs.shape[-1]).to(probs.dtype) * real_mask[:m, :, None]
            penalty = gradient_penalty(self.critic, real, probs[:m], real_mask[:m] | fake_mask[:m],
                                       _rows(batch.context, m), generator=rng)
            loss = loss + self.cfg.gradient_penalty * penalty
            metrics["gradient_penalty"] = penalty.detach()
        return loss, metrics


class Adversarial(Objective):
    """JS_π adversarial training: a container of the two players, which the loop updates in turn
    (`critic_steps` critic updates, then one generator update). It has no forward of its own.

    Attributes:
        generator: the Generator (for evaluation and export).
        generator_player: GeneratorPlayer owning `generator`.
        critic_player: CriticPlayer owning the critic.
        cfg: the adversarial section.
    """

    def __init__(self, generator: Generator, cfg: AdversarialConfig, *, task: str, max_steps: int,
                 label_smoothing: float = 0.0) -> None:
        super().__init__(generator)
        check_adversarial(cfg)
        self.cfg = cfg
        self.generator_player = GeneratorPlayer(generator, cfg, max_steps, label_smoothing)
        self.critic_player = CriticPlayer(build_critic_from(cfg, generator.vocab.size, task), cfg)

    @property
    def critic(self) -> Critic:
        return self.critic_player.critic

    def weight(self, batch: Batch) -> int:
        """Both losses are means over sequences."""
        return len(batch)

    @torch.no_grad()
    def fake_for_critic(self, batch: Batch, step: int, rng: torch.Generator | None = None) -> Rollout:
        """Rollouts (no gradient) for the critic's fake side of `batch`."""
        return self.generator_player.rollout(batch, step, self.critic_player.split(len(batch))[1], rng)
