"""JS_π adversarial training: a critic tells data from the generator's rollouts, and the generator
descends the critic's estimate of JS_π.

The two players are separate modules, so that the training loop prepares each on its own (one DDP
module and one optimizer each) and alternates their updates:

- `CriticPlayer.forward(batch, fake)`: the critic's loss -V_π on the batch's real sequences
  (targets, EOS included) and on rollouts `fake` drawn for the same contexts without gradient;
- `GeneratorPlayer.forward(batch, step, critic)`: rolls out, scores the rollouts with the critic
  (frozen: no gradient reaches its parameters, no dropout, no spectral-norm power step) and returns
  the generator's loss, plus λ·L_TF when `tf_weight` is set.

How the generator's gradient passes the discrete rollouts is `estimator`:
- `straight_through`: Gumbel-softmax rollouts, the critic reading the relaxed tokens. Biased: it
  linearises the critic around each sample and reads it off the simplex's vertices, and on the
  enumerable toy its averaged gradient points away from ∇JS_π at small π even against the optimal
  critic (`seqgen experiment estimators` measures this).
- `reinforce`: the score function over sampled ids, with a leave-one-out baseline over the batch or
  over K rollouts of each context, optionally per-token rewards from the critic scoring prefixes.
  Unbiased for the critic it is given: at the optimal critic, its expectation is ∇JS_π.
- `rebar`: reinforce with the Gumbel-softmax relaxation as a control variate (`estimators`).
With `critic: oracle` on a toy source the critic is the optimal D*, computed exactly, so a run shows
the estimator's behaviour free of critic error (`optimal_critic`).

Both losses are means over sequences, so `weight(batch)` counts sequences. Rollouts have the length
of the batch's targets, so real and fake sequences have the same maximum length; a rollout that ends
early (every row reached EOS) is padded with masked positions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqgen.config import AdversarialConfig
from seqgen.data.batch import Batch, Context, Vocab
from seqgen.data.synthetic.toy import ToyDistribution
from seqgen.errors import UserError
from seqgen.gumbel import Rollout, gumbel_rollout
from seqgen.models.base import Generator
from seqgen.models.critics import build_critic, gradient_penalty
from seqgen.objectives import estimators
from seqgen.objectives.adversarial_losses import (
    check_pi,
    critic_accuracy,
    critic_loss,
    generator_loss,
    js_estimate,
    sequence_generator_loss,
    split_sizes,
)
from seqgen.objectives.base import Objective
from seqgen.objectives.optimal_critic import (
    OracleCritic,
    check_toy_source,
    critic_report,
)
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
    if cfg.rollouts_per_context < 1:
        raise UserError(f"{KEY}.rollouts_per_context must be >= 1, got {cfg.rollouts_per_context}")
    if cfg.critic_warmup_steps < 0:
        raise UserError(f"{KEY}.critic_warmup_steps must be >= 0, got {cfg.critic_warmup_steps}")
    if cfg.cv_weight < 0:
        raise UserError(f"{KEY}.cv_weight must be >= 0, got {cfg.cv_weight}")
    if not 0 < cfg.discount <= 1:
        raise UserError(f"{KEY}.discount must be in (0, 1], got {cfg.discount}")
    if cfg.estimator != "straight_through" and cfg.baseline == "rloo" and cfg.rollouts_per_context < 2:
        raise UserError(f"{KEY}.baseline=rloo needs {KEY}.rollouts_per_context >= 2 (the leave-one-out "
                        f"baseline of a context is the mean of its other rollouts), got "
                        f"{cfg.rollouts_per_context}")
    if cfg.estimator == "rebar" and cfg.reward == "prefix":
        raise UserError(f"{KEY}.reward=prefix works with {KEY}.estimator=reinforce only")


def build_critic_from(cfg: AdversarialConfig, vocab: Vocab, task: str,
                      toy: ToyDistribution | None = None) -> nn.Module:
    """The critic an adversarial section describes, for `vocab` and `task` (and, for the oracle critic,
    the run's toy P)."""
    if cfg.critic == "oracle":
        if task != "lm":
            raise UserError(f"{KEY}.critic=oracle needs task lm (an enumerable toy), got {task}")
        return OracleCritic(check_toy_source(toy), vocab, cfg.pi)
    return build_critic(cfg.critic, vocab.size, task=task, embedding_dim=cfg.critic_embedding_dim,
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
    return Rollout(probs=None if rollout.probs is None else F.pad(rollout.probs, (0, 0, 0, missing)),
                   tokens=F.pad(rollout.tokens, (0, missing), value=pad_id),
                   mask=F.pad(rollout.mask, (0, missing), value=False))


def _rows(context: Context | None, count: int) -> Context | None:
    """The first `count` contexts (None stays None)."""
    if context is None or context.batch_size == count:
        return context
    return context.select(torch.arange(count))


class GeneratorPlayer(nn.Module):
    """The generator's side: rollouts and the generator loss, by the configured gradient estimator.

    Args:
        generator: the model to train.
        cfg: the adversarial section.
        max_steps: N of the temperature schedule (train.max_steps).
        label_smoothing: of the optional teacher-forcing term.
        reference: the enumerable toy P of the run's data, if it is one: the critic's error against
            the optimal critic and the cosine of the gradient it implies with ∇JS_π are then logged.
    """

    def __init__(self, generator: Generator, cfg: AdversarialConfig, max_steps: int,
                 label_smoothing: float = 0.0, reference: ToyDistribution | None = None) -> None:
        super().__init__()
        self.generator = generator
        self.cfg = cfg
        self.max_steps = max_steps
        self.label_smoothing = label_smoothing
        self.reference = reference

    def tau(self, step: int) -> float:
        """The Gumbel-softmax temperature at generator step `step`."""
        c = self.cfg
        return temperature(c.temperature, step, self.max_steps, tau=c.tau, tau_min=c.tau_min,
                           beta_max=c.beta_max, rate=c.rate)

    def rollout(self, batch: Batch, step: int, count: int | None = None,
                rng: torch.Generator | None = None) -> Rollout:
        """Rollouts for the first `count` rows of `batch` (all by default), one per context: Gumbel-softmax
        rollouts for straight_through, sampled ids (no relaxed tokens, no gradient) otherwise.

        Returns:
            A Rollout with T = the batch's target length columns.
        """
        count = len(batch) if count is None else count
        length = batch.targets.shape[1]
        context = _rows(batch.context, count)
        model = self.generator
        if self.cfg.estimator != "straight_through":
            with torch.no_grad():
                tokens, mask = self._sample(model.encode(context), count, length, rng)
            return Rollout(probs=None, tokens=tokens, mask=mask)
        fake = gumbel_rollout(model, context=context, num_sequences=count, max_len=length, tau=self.tau(step),
                              hard=self.cfg.hard, feed=self.cfg.feed, generator=rng)
        return pad_rollout(fake, length, model.vocab.pad_id)

    def _sample(self, memory: Any, count: int, length: int,
                rng: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """`count` ancestral samples on `memory`, without gradient: (count, length) ids, PAD after each
        EOS, and their mask, padded to `length` columns when every row ended earlier."""
        tokens, mask = estimators.sample_rollout(self.generator, memory, count, length, rng)
        return (estimators.pad_columns(tokens, length, self.generator.vocab.pad_id),
                estimators.pad_columns(mask, length, False))

    def forward(self, batch: Batch, step: int, critic: nn.Module,
                rng: torch.Generator | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """The generator's loss on its rollouts for `batch`'s contexts.

        Args:
            batch: B real examples (their contexts; their targets for the teacher-forcing term).
            step: generator updates so far (sets τ).
            critic: the critic (unwrapped); frozen while it scores the rollouts.
            rng: source of the rollouts' randomness; None uses torch's default generator.

        Returns:
            The loss to backpropagate: the generator loss (straight-through) or a surrogate whose
            gradient is the estimator's (reinforce, rebar), a mean over rollouts, plus λ times the
            token-mean NLL of the batch when tf_weight > 0; and detached metrics: loss and
            generator_loss (the values of the objective, not of a surrogate), tau, d_fake (mean critic
            probability of the rollouts), tf_nll, and on a toy critic_error and critic_gradient_cosine.
        """
        if isinstance(critic, OracleCritic):
            critic.track(self.generator)
        estimate = self._straight_through if self.cfg.estimator == "straight_through" else self._score_function
        with frozen(critic):
            loss, metrics = estimate(batch, step, critic, rng)
            if self.reference is not None and not isinstance(critic, OracleCritic):
                metrics |= self._diagnostics(critic)
        metrics["tau"] = torch.tensor(self.tau(step), device=loss.device)
        value = metrics["generator_loss"]
        if self.cfg.tf_weight:
            mask = batch.target_mask
            logits_tf = self.generator(batch.inputs, self.generator.encode(batch.context))
            nll = token_nll(logits_tf, batch.targets, mask, self.label_smoothing).sum() / mask.sum().clamp(min=1)
            loss = loss + self.cfg.tf_weight * nll
            value = value + self.cfg.tf_weight * nll.detach()
            metrics["tf_nll"] = nll.detach()
        metrics["loss"] = value
        return loss, metrics

    def _straight_through(self, batch: Batch, step: int, critic: nn.Module,
                          rng: torch.Generator | None) -> tuple[Tensor, dict[str, Tensor]]:
        """The generator loss on Gumbel-softmax rollouts, differentiated through the relaxation."""
        fake = self.rollout(batch, step, rng=rng)
        logits = critic(fake.probs, fake.mask, batch.context)  # (B,)
        loss = generator_loss(logits, self.cfg.pi, self.cfg.generator_loss)
        return loss, {"generator_loss": loss.detach(), "d_fake": torch.sigmoid(logits.detach().float()).mean()}

    def _score_function(self, batch: Batch, step: int, critic: nn.Module,
                        rng: torch.Generator | None) -> tuple[Tensor, dict[str, Tensor]]:
        """The REINFORCE or REBAR surrogate over K sampled rollouts per context (see
        `seqgen.objectives.estimators`)."""
        cfg, model = self.cfg, self.generator
        k, length = cfg.rollouts_per_context, batch.targets.shape[1]
        n = len(batch) * k
        rows = torch.arange(len(batch), device=batch.targets.device).repeat_interleave(k)  # (N,)
        context = None if batch.context is None else batch.context.select(rows)
        memory = model.encode(batch.context)
        if k > 1:
            memory = model.select_memory(memory, rows)
        tokens, mask = self._sample(memory, n, length, rng)  # (N, T), decoded without gradient
        bos = torch.full_like(tokens[:, :1], model.vocab.bos_id)
        logits = model(torch.cat([bos, tokens[:, :-1]], 1), memory)  # (N, T, V), with gradient
        log_probs = logits.float().log_softmax(-1)
        token_log_q, log_q = estimators.sequence_log_probs(log_probs, tokens, mask)
        critic_logits = critic(tokens, mask, context)  # (N,)
        f = sequence_generator_loss(critic_logits, cfg.pi, cfg.generator_loss).detach()  # (N,)
        metrics = {"generator_loss": f.mean(), "d_fake": torch.sigmoid(critic_logits.detach().float()).mean()}
        if cfg.reward == "prefix":
            returns = self._prefix_returns(critic, tokens, mask, context)  # (N, T)
            advantage = returns - estimators.baseline(returns, cfg.baseline, k)
            return (advantage * token_log_q).sum(-1).mean(), metrics
        coefficient, control = f, torch.zeros((), device=f.device)
        if cfg.estimator == "rebar":
            def score(relaxed_tokens: Tensor) -> Tensor:
                return sequence_generator_loss(critic(relaxed_tokens, mask, context), cfg.pi, cfg.generator_loss)

            f_z_tilde, control = estimators.rebar_control(log_probs, tokens, mask, score, self.tau(step),
                                                           cfg.cv_weight, rng)
            coefficient = f - cfg.cv_weight * f_z_tilde
            metrics["relaxed_gap"] = (f - f_z_tilde).abs().mean()
        advantage = coefficient - estimators.baseline(coefficient, cfg.baseline, k)
        return (advantage * log_q).mean() + control, metrics

    def _prefix_returns(self, critic: nn.Module, tokens: Tensor, mask: Tensor,
                        context: Context | None) -> Tensor:
        """Per-token returns R_t = Σ_{s >= t} γ^(s-t) (f(x_≤s) - f(x_<s)), f(empty) = 0, from the critic
        scoring every prefix of every rollout; (N, T), zero after each rollout's end."""
        n, length = tokens.shape
        positions = torch.arange(length, device=tokens.device)
        prefix_mask = mask[:, None, :] & (positions[None, None, :] <= positions[None, :, None])  # (N, T, T)
        rows = torch.arange(n, device=tokens.device).repeat_interleave(length)
        with torch.no_grad():
            scores = critic(tokens[rows], prefix_mask.reshape(n * length, length),
                            None if context is None else context.select(rows))
        f = sequence_generator_loss(scores, self.cfg.pi, self.cfg.generator_loss).detach().view(n, length)
        increments = (f - F.pad(f, (1, 0))[:, :-1]) * mask
        return estimators.discounted_returns(increments, self.cfg.discount)

    def _diagnostics(self, critic: nn.Module) -> dict[str, Tensor]:
        """The learned critic against the optimal one on the toy: its Q-weighted logit error and the
        cosine of the gradient it implies with ∇JS_π (both exact sums over the support)."""
        model = self.generator
        was_training = model.training
        model.eval()
        try:
            report = critic_report(critic, model, self.reference, self.cfg.pi, self.cfg.generator_loss)
        finally:
            model.train(was_training)
        device = model.input_embeddings.device
        return {name: torch.tensor(value, device=device) for name, value in report.items()}


class CriticPlayer(nn.Module):
    """The critic's side: the π-weighted (or π-ratio) binary cross-entropy, optionally penalised.

    Args:
        critic: the critic to train.
        cfg: the adversarial section.
    """

    def __init__(self, critic: nn.Module, cfg: AdversarialConfig) -> None:
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
        fake_mask = fake.mask
        real_logits = self.critic(real_ids, real_mask, _rows(batch.context, n_real))
        fake_logits = self.critic(fake.critic_input(), fake_mask, _rows(batch.context, n_fake))
        loss = critic_loss(real_logits, fake_logits, self.cfg.pi, self.cfg.critic_loss)
        acc_real, acc_fake = critic_accuracy(real_logits.detach(), fake_logits.detach())
        metrics = {"loss": loss.detach(), "acc_real": acc_real, "acc_fake": acc_fake,
                   **js_estimate(real_logits.detach(), fake_logits.detach(), self.cfg.pi)}
        if self.cfg.gradient_penalty:
            m = min(n_real, n_fake)  # rows i < m of both sides share context i
            probs = fake.one_hot(self.critic.embeddings[0].num_embeddings).detach()
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
                 label_smoothing: float = 0.0, toy: ToyDistribution | None = None) -> None:
        super().__init__(generator)
        check_adversarial(cfg)
        self.cfg = cfg
        self.generator_player = GeneratorPlayer(generator, cfg, max_steps, label_smoothing, reference=toy)
        self.critic_player = CriticPlayer(build_critic_from(cfg, generator.vocab, task, toy), cfg)

    @property
    def critic(self) -> nn.Module:
        return self.critic_player.critic

    @property
    def trains_critic(self) -> bool:
        """False for the oracle critic, which is computed, not learned: only the generator is updated."""
        return not isinstance(self.critic, OracleCritic)

    def weight(self, batch: Batch) -> int:
        """Both losses are means over sequences."""
        return len(batch)

    @torch.no_grad()
    def fake_for_critic(self, batch: Batch, step: int, rng: torch.Generator | None = None) -> Rollout:
        """Rollouts (no gradient) for the critic's fake side of `batch`."""
        return self.generator_player.rollout(batch, step, self.critic_player.split(len(batch))[1], rng)
