"""JS_π adversarial training: a critic tells data from the generator's rollouts, and the generator
descends the critic's estimate of JS_π.

The two players are separate modules, so that the training loop prepares each on its own (one DDP
module and one optimizer each) and alternates their updates:

- `CriticPlayer(batch, step, noise)`: the critic's loss -V_π on the batch's real sequences
  (targets, EOS included) and on rollouts drawn for the same contexts without gradient;
- `GeneratorPlayer(batch, step, noise)`: rolls out, scores the rollouts with the critic
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
With `critic.kind: oracle` on a toy source the critic is the optimal D*, computed exactly, so a run shows
the estimator's behaviour free of critic error (`optimal_critic`).

Both losses are means over sequences, so `weight(batch)` counts sequences. Rollouts have the length
of the batch's targets, so real and fake sequences have the same maximum length; a rollout that ends
early (every row reached EOS) is padded with masked positions.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqgen.config import ObjectiveConfig
from seqgen.data.batch import Batch, Context, Vocab
from seqgen.data.synthetic.toy import ToyDistribution
from seqgen.errors import UserError
from seqgen.functional import check_pi, token_nll
from seqgen.gumbel import Rollout, gumbel_rollout
from seqgen.models.base import Generator
from seqgen.models.critics import CriticConfig, build_critic, gradient_penalty
from seqgen.objectives import estimators
from seqgen.objectives.adversarial_losses import (
    critic_accuracy,
    critic_loss,
    generator_loss,
    js_estimate,
    sequence_generator_loss,
    split_sizes,
)
from seqgen.objectives.base import Objective, Player, RunInfo
from seqgen.objectives.optimal_critic import (
    OracleCritic,
    check_toy_source,
    critic_report,
)
from seqgen.objectives.teacher_forcing import check_label_smoothing
from seqgen.randomness import Source, fork
from seqgen.schedules import temperature


@dataclass
class AdversarialConfig(ObjectiveConfig):
    """JS_π adversarial training (docs/theory/objectives.md#js-adversarial-training): a critic tells
    data from the generator's rollouts, its real and fake terms weighted π and 1 - π."""

    name: Literal["adversarial"] = "adversarial"
    """Which objective trains the generator."""
    pi: float = 0.5
    """The critic's prior π on the real class: π → 0 behaves like maximum likelihood (KL[P‖Q]),
    π → 1 like the mode-seeking KL[Q‖P]."""
    critic: CriticConfig = field(default_factory=CriticConfig)
    """The critic's architecture and sizes."""
    estimator: Literal["straight_through", "reinforce", "rebar"] = "reinforce"
    """How the generator's gradient passes the discrete rollouts: `reinforce`, the score function over
    the sampled ids (unbiased: at the optimal critic its expectation is ∇JS_π); `straight_through`
    Gumbel-softmax (biased: it linearises the critic around each sample and reads it off the simplex's
    vertices; on the toy its gradient points away from ∇JS_π at small π); `rebar`, the score function with
    the Gumbel-softmax relaxation as a control variate (lower variance; exact for one token, biased
    across positions that read a sampled prefix). `seqgen experiment estimators` measures all three."""
    baseline: Literal["none", "batch", "rloo"] = "batch"
    """reinforce and rebar: what is subtracted from each rollout's reward: nothing; `batch`, the mean
    reward of the other rollouts of the micro-batch; `rloo`, the mean reward of the other rollouts of
    the same context (needs rollouts_per_context >= 2). Both keep the estimate unbiased."""
    rollouts_per_context: int = 1
    """K: rollouts drawn for each context (each row of a language-model batch) by reinforce and rebar."""
    reward: Literal["sequence", "prefix"] = "sequence"
    """reinforce: `sequence`, one reward per rollout; `prefix`, a reward per token, the change in the
    generator loss as the critic reads one more token, summed over the rest of the rollout with
    `discount` (at discount 1 the same gradient in expectation, with the prefix's score as baseline)."""
    discount: float = 1.0
    """reinforce with prefix rewards: γ in (0, 1]; below 1 it lowers the variance and adds a bias."""
    cv_weight: float = 1.0
    """rebar: η, the weight of the Gumbel-softmax control variate (0 gives reinforce)."""
    critic_lr: float = 1e-4
    """The critic's AdamW learning rate, constant (the generator uses train.lr and its schedule)."""
    critic_steps: int = 1
    """k: critic updates per generator update."""
    critic_warmup_steps: int = 0
    """Critic updates against the starting generator before the first generator update."""
    critic_loss: Literal["weighted", "ratio"] = "weighted"
    """`weighted`: binary cross-entropy with the real term weighted π and the fake term 1 - π over equal
    batches; `ratio`: unweighted, with real and fake examples in the ratio π : (1 - π)."""
    gradient_penalty: float = 0.0
    """Weight of a gradient penalty on the critic (0: none)."""
    generator_loss: Literal["minimax", "non_saturating", "kl"] = "minimax"
    """`minimax`: (1-π) E_Q log(1 - D), the gradient of JS_π at the optimal critic; `non_saturating`:
    -(1-π) E_Q log D; `kl`: -E_Q logit D, which targets KL[Q‖P]."""
    tf_weight: float = 0.0
    """λ: weight of a teacher-forcing term added to the generator's loss."""
    label_smoothing: float = 0.0
    """Label smoothing of the teacher-forcing term."""
    tau_schedule: Literal["constant", "exponential", "exp_decay", "linear"] = "exponential"
    """Gumbel-softmax temperature schedule (straight_through, and rebar's relaxation) over the adversarial
    steps n of N = train.max_steps: constant τ; exponential: inverse temperature β_n = beta_max^(n/N);
    exp_decay: τ_n = max(tau_min, exp(-rate·n)); linear: from tau to tau_min."""
    tau: float = 1.0
    """Constant and linear schedules: the (starting) temperature."""
    tau_min: float = 0.1
    """exp_decay and linear schedules: the smallest temperature."""
    beta_max: float = 1000.0
    """Exponential schedule: the final inverse temperature."""
    rate: float = 1e-3
    """exp_decay schedule: r."""
    hard: bool = True
    """straight_through: one-hot samples in the forward pass, the relaxed sample's gradient (False: the
    soft relaxed samples themselves)."""
    feed: Literal["sample", "gumbel"] = "sample"
    """straight_through: what the generator reads back at t + 1: the sampled token (RelGAN), or the
    relaxed Gumbel-softmax vector."""

    def __post_init__(self) -> None:
        check_pi(self.pi, "objective.pi")
        for name in ("critic_lr", "tau", "tau_min"):
            if not getattr(self, name) > 0:
                raise UserError(f"objective.{name} must be positive, got {getattr(self, name)}")
        for name in ("gradient_penalty", "tf_weight", "rate", "cv_weight", "critic_warmup_steps"):
            if getattr(self, name) < 0:
                raise UserError(f"objective.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("critic_steps", "rollouts_per_context"):
            if getattr(self, name) < 1:
                raise UserError(f"objective.{name} must be >= 1, got {getattr(self, name)}")
        if self.beta_max < 1:
            raise UserError(f"objective.beta_max must be >= 1 (the final inverse temperature), got {self.beta_max}")
        if not 0 < self.discount <= 1:
            raise UserError(f"objective.discount must be in (0, 1], got {self.discount}")
        if self.estimator != "straight_through" and self.baseline == "rloo" and self.rollouts_per_context < 2:
            raise UserError(f"objective.baseline=rloo needs objective.rollouts_per_context >= 2 (the "
                            f"leave-one-out baseline of a context is the mean of its other rollouts), got "
                            f"{self.rollouts_per_context}")
        if self.estimator != "straight_through" and (self.feed != "sample" or not self.hard):
            raise UserError("objective.feed and objective.hard shape straight-through rollouts only; with "
                            f"objective.estimator={self.estimator} the rollouts are sampled ids")
        if self.estimator == "rebar" and self.reward == "prefix":
            raise UserError("objective.reward=prefix works with objective.estimator=reinforce only")
        check_label_smoothing(self.label_smoothing)

    def check_run(self, run: Any) -> None:
        if self.critic.kind == "oracle" and run.data.source != "toy":
            raise UserError("objective.critic.kind=oracle needs data.source=toy (the optimal critic is computed "
                            f"from an enumerable P), got data.source={run.data.source}")


def build_critic_from(cfg: AdversarialConfig, vocab: Vocab, task: str,
                      toy: ToyDistribution | None = None) -> nn.Module:
    """The critic an adversarial section describes, for `vocab` and `task` (and, for the oracle critic,
    the run's toy P)."""
    if cfg.critic.kind == "oracle":
        if task != "lm":
            raise UserError(f"objective.critic.kind=oracle needs task lm (an enumerable toy), got {task}")
        return OracleCritic(check_toy_source(toy), vocab, cfg.pi)
    return build_critic(vocab_size=vocab.size, task=task, **dataclasses.asdict(cfg.critic))


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
        critic: the critic that scores the rollouts (held, not owned: its parameters belong to the
            critic's player).
        cfg: the adversarial section.
        max_steps: N of the temperature schedule (train.max_steps).
        reference: the enumerable toy P of the run's data, if it is one: the critic's error against
            the optimal critic and the cosine of the gradient it implies with ∇JS_π are then logged.
    """

    def __init__(self, generator: Generator, critic: nn.Module, cfg: AdversarialConfig, max_steps: int,
                 reference: ToyDistribution | None = None) -> None:
        super().__init__()
        self.generator = generator
        self._critic = (critic,)  # a tuple, so that the critic is not registered as a submodule
        self.cfg = cfg
        self.max_steps = max_steps
        self.reference = reference

    @property
    def critic(self) -> nn.Module:
        return self._critic[0]

    def tau(self, step: int) -> float:
        """The Gumbel-softmax temperature at generator step `step`."""
        c = self.cfg
        return temperature(c.tau_schedule, step, self.max_steps, tau=c.tau, tau_min=c.tau_min,
                           beta_max=c.beta_max, rate=c.rate)

    def rollout(self, batch: Batch, step: int, count: int | None = None,
                rng: Source = None) -> Rollout:
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
                rng: Source) -> tuple[Tensor, Tensor]:
        """`count` ancestral samples on `memory`, without gradient: (count, length) ids, PAD after each
        EOS, and their mask, padded to `length` columns when every row ended earlier."""
        tokens, mask = estimators.sample_rollout(self.generator, memory, count, length, rng)
        return (estimators.pad_columns(tokens, length, self.generator.vocab.pad_id),
                estimators.pad_columns(mask, length, False))

    def forward(self, batch: Batch, step: int,
                noise: Source = None) -> tuple[Tensor, dict[str, Tensor]]:
        """The generator's loss on its rollouts for `batch`'s contexts; the critic is frozen while it
        scores them.

        Args:
            batch: B real examples (their contexts; their targets for the teacher-forcing term).
            step: generator updates so far (sets τ).
            noise: the micro-batch's draws; None uses torch's default generator.

        Returns:
            The loss to backpropagate: the generator loss (straight-through) or a surrogate whose
            gradient is the estimator's (reinforce, rebar), a mean over rollouts, plus λ times the
            token-mean NLL of the batch when tf_weight > 0; and detached metrics: loss and
            generator_loss (the values of the objective, not of a surrogate), tau, d_fake (mean critic
            probability of the rollouts), tf_nll, and on a toy critic_error and critic_gradient_cosine.
        """
        critic = self.critic
        if isinstance(critic, OracleCritic):
            critic.track(self.generator)
        estimate = self._straight_through if self.cfg.estimator == "straight_through" else self._score_function
        with frozen(critic):
            loss, metrics = estimate(batch, step, critic, noise)
            if self.reference is not None and not isinstance(critic, OracleCritic):
                metrics |= self._diagnostics(critic)
        metrics["tau"] = torch.tensor(self.tau(step), device=loss.device)
        value = metrics["generator_loss"]
        if self.cfg.tf_weight:
            mask = batch.target_mask
            logits_tf = self.generator(batch.inputs, self.generator.encode(batch.context))
            nll = token_nll(logits_tf, batch.targets, mask, self.cfg.label_smoothing).sum() / mask.sum().clamp(min=1)
            loss = loss + self.cfg.tf_weight * nll
            value = value + self.cfg.tf_weight * nll.detach()
            metrics["tf_nll"] = nll.detach()
        metrics["loss"] = value
        return loss, metrics

    def _straight_through(self, batch: Batch, step: int, critic: nn.Module,
                          noise: Source) -> tuple[Tensor, dict[str, Tensor]]:
        """The generator loss on Gumbel-softmax rollouts, differentiated through the relaxation."""
        fake = self.rollout(batch, step, rng=fork(noise, "rollout"))
        logits = critic(fake.probs, fake.mask, batch.context)  # (B,)
        loss = generator_loss(logits, self.cfg.pi, self.cfg.generator_loss)
        return loss, {"generator_loss": loss.detach(), "d_fake": torch.sigmoid(logits.detach().float()).mean()}

    def _score_function(self, batch: Batch, step: int, critic: nn.Module,
                        noise: Source) -> tuple[Tensor, dict[str, Tensor]]:
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
        tokens, mask = self._sample(memory, n, length, fork(noise, "rollout"))  # (N, T), no gradient
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
                                                           cfg.cv_weight, fork(noise, "rebar"))
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
    """The critic's side: the π-weighted (or π-ratio) binary cross-entropy on real sequences and on the
    generator's rollouts for the same contexts, optionally penalised.

    Args:
        critic: the critic to train.
        sampler: the generator's player, which draws the rollouts (held, not owned: no gradient
            reaches the generator from the critic's loss).
        cfg: the adversarial section.
    """

    def __init__(self, critic: nn.Module, sampler: GeneratorPlayer, cfg: AdversarialConfig) -> None:
        super().__init__()
        self.critic = critic
        self._sampler = (sampler,)  # a tuple, so that the generator is not registered as a submodule
        self.cfg = cfg

    def split(self, batch_size: int) -> tuple[int, int]:
        """(real, fake) sequences of a critic batch of `batch_size` rows: B and B when `weighted`;
        π : (1 - π) of B when `ratio` (the first rows for both, so conditional pairs share contexts)."""
        if self.cfg.critic_loss == "ratio":
            return split_sizes(batch_size, self.cfg.pi)
        return batch_size, batch_size

    @torch.no_grad()
    def fake(self, batch: Batch, step: int, noise: Source = None) -> Rollout:
        """Rollouts (no gradient) for the critic's fake side of `batch`: the first `split(B)[1]` contexts."""
        return self._sampler[0].rollout(batch, step, self.split(len(batch))[1], fork(noise, "rollout"))

    def forward(self, batch: Batch, step: int, noise: Source = None) -> tuple[Tensor, dict[str, Tensor]]:
        """The critic's loss on real `batch` and the generator's rollouts for its contexts.

        Args:
            batch: B real examples; the first `split(B)[0]` are scored.
            step: optimizer steps so far (the rollouts' temperature).
            noise: the micro-batch's draws (rollouts, the gradient penalty's interpolation weights).

        Returns:
            The loss -V_π (+ the weighted gradient penalty) and detached metrics: loss (-V_π alone),
            acc_real, acc_fake, js_pi, js_pi_over_pi, js_pi_over_1mpi (and gradient_penalty).
        """
        fake = self.fake(batch, step, noise)
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
                                       _rows(batch.context, m), generator=fork(noise, "penalty"))
            loss = loss + self.cfg.gradient_penalty * penalty
            metrics["gradient_penalty"] = penalty.detach()
        return loss, metrics


class Adversarial(Objective):
    """JS_π adversarial training: two players, `critic_steps` critic updates (after
    `critic_warmup_steps` at the start) then one generator update per optimizer step; with the
    oracle critic, which is computed rather than learned, the generator's alone.

    Attributes:
        generator: the Generator (for evaluation and export).
        generator_player: GeneratorPlayer owning `generator`.
        critic_player: CriticPlayer owning the critic.
        cfg: the adversarial section.
    """

    def __init__(self, generator: Generator, cfg: AdversarialConfig | None = None,
                 run: RunInfo | None = None) -> None:
        cfg, run = cfg or AdversarialConfig(), run or RunInfo()
        self.generator = generator
        self.cfg = cfg
        toy = run.distribution if isinstance(run.distribution, ToyDistribution) else None
        critic = build_critic_from(cfg, generator.vocab, run.task, toy)
        self.generator_player = GeneratorPlayer(generator, critic, cfg, run.max_steps, reference=toy)
        self.critic_player = CriticPlayer(critic, self.generator_player, cfg)

    @property
    def critic(self) -> nn.Module:
        return self.critic_player.critic

    @property
    def trains_critic(self) -> bool:
        """False for the oracle critic, which is computed, not learned: only the generator is updated."""
        return not isinstance(self.critic, OracleCritic)

    def players(self) -> list[Player]:
        generator = Player(self.generator_player)
        if not self.trains_critic:
            return [generator]
        critic = Player(self.critic_player, "critic", lr=self.cfg.critic_lr, repeats=self.cfg.critic_steps,
                        warmup=self.cfg.critic_warmup_steps)
        return [critic, generator]

    def weight(self, batch: Batch) -> int:
        """Both losses are means over sequences."""
        return len(batch)

    def exports(self) -> dict[str, nn.Module]:
        return {"critic": self.critic} if self.trains_critic else {}
