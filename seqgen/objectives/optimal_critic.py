"""The optimal critic of JS_π on an enumerable toy, and the exact references a learned critic and a
gradient estimator are measured against.

For a toy P whose every sequence can be listed, and the generator's current Q, the critic that
maximises V_π is D*(x) = πP(x) / (πP(x) + (1 - π)Q(x)), and at D* the minimax generator loss has the
gradient of JS_π itself. `OracleCritic` computes D* exactly, so that training or measuring with it
separates the error of a gradient estimator from the error of a learned critic. Q is the model's raw
probability of each sequence of the support; its mass outside the support (sequences P cannot produce)
gets D* = 0, as in `seqgen.metrics.exact.js_pi_with_leak`.

A critic reads relaxed tokens (points of the simplex, not only its vertices), so D* is extended to them
multilinearly: D(y) = Σ_x D*(x) Π_t y_t[x_t], with the positions after a support sequence's end
required empty (a factor 1 - Σ_v y_t[v] each). On one-hot sequences this is D* exactly; it is the
extension a straight-through estimator differentiates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqgen.data.batch import Context, Vocab
from seqgen.data.synthetic.toy import ToyDistribution
from seqgen.errors import UserError
from seqgen.functional import check_pi
from seqgen.metrics.exact import js_pi_with_leak, support_log_probs, support_tokens
from seqgen.models.base import Generator
from seqgen.objectives.adversarial_losses import sequence_generator_loss

# D is kept inside [D_MIN, 1 - D_MAX_GAP] in float64 so that logits stay finite: -69 for a sequence
# outside the support (D* = 0), +34.5 at most.
D_MIN, D_MAX_GAP = 1e-30, 1e-15


class OracleCritic(nn.Module):
    """D* of a toy P against the generator's current Q; nothing to train.

    Call `track(generator)` whenever the generator changes: D* depends on Q.

    Args:
        toy: the enumerable distribution P (the run's training data source).
        vocab: the generator's vocabulary (the toy's fixed tokenizer).
        pi: the class prior π in (0, 1).
    """

    def __init__(self, toy: ToyDistribution, vocab: Vocab, pi: float) -> None:
        super().__init__()
        check_pi(pi)
        self.toy, self.pi, self.vocab_size = toy, pi, vocab.size
        tokens, lengths = support_tokens(vocab, toy)
        self.register_buffer("support", tokens[:, 1:], persistent=False)  # (N, L + 1): x_1 .. x_n EOS PAD ..
        self.register_buffer("lengths", lengths, persistent=False)  # (N,)
        self.register_buffer("log_p", toy.enumerate()[1].log(), persistent=False)  # (N,) float64
        self.register_buffer("log_q", torch.full_like(self.log_p, -math.inf), persistent=False)

    @torch.no_grad()
    def track(self, generator: Generator) -> None:
        """Recompute Q of every support sequence from `generator` (in eval mode: no dropout)."""
        was_training = generator.training
        generator.eval()
        try:
            self.log_q = support_log_probs(generator, self.toy).to(self.log_p.device)
        finally:
            generator.train(was_training)

    def optimal(self) -> Tensor:
        """(N,) float64 D* of every support sequence at the tracked Q."""
        return optimal_logits(self.log_p, self.log_q, self.pi).sigmoid()

    def forward(self, tokens: Tensor, mask: Tensor, context: Context | None = None) -> Tensor:
        """Logits of D at sequences of ids or relaxed tokens (the multilinear extension, see the module).

        Args:
            tokens: (B, T) long ids or (B, T, V) float probability vectors.
            mask: (B, T) bool, False after a sequence's first EOS.
            context: must be None (the toy is a language-model source).

        Returns:
            (B,) float64 logits log D - log(1 - D), differentiable in float `tokens`.
        """
        if context is not None:
            raise ValueError("the oracle critic scores unconditional toy sequences")
        if not tokens.is_floating_point():
            tokens = F.one_hot(tokens, self.vocab_size).float()
        probs = tokens * mask[..., None].to(tokens.dtype)  # (B, T, V)
        width = self.support.shape[1]
        if probs.shape[1] < width:
            probs = F.pad(probs, (0, 0, 0, width - probs.shape[1]))
        positions = torch.arange(probs.shape[1], device=probs.device)
        # chosen[b, n, t] = y_t[x_t] for the support sequence n (its positions up to its EOS), and the
        # probability that position t is empty after its end
        chosen = probs[:, positions[:width, None], self.support.T].permute(0, 2, 1)  # (B, N, width)
        inside = positions[None, :width] <= self.lengths[:, None]  # (N, width)
        empty = 1 - probs.sum(-1)  # (B, T)
        after = positions[None, :] > self.lengths[:, None]  # (N, T)
        weight = (torch.where(inside, chosen, 1).prod(-1)
                  * torch.where(after[None], empty[:, None, :], 1).prod(-1))  # (B, N)
        d = (weight.double() * self.optimal()).sum(-1).clamp(D_MIN, 1 - D_MAX_GAP)  # (B,)
        return d.log() - (-d).log1p()


def optimal_logits(log_p: Tensor, log_q: Tensor, pi: float) -> Tensor:
    """logit D* = log(πP) - log((1 - π)Q), elementwise (finite wherever P and Q are positive)."""
    return (math.log(pi) + log_p) - (math.log(1 - pi) + log_q)


# ---------------------------------------------------------------------------------------------------
# Exact references on a toy: the gradient of JS_π, the gradient a critic implies, the critic's error


def exact_js_pi_gradient(generator: Generator, toy: ToyDistribution, pi: float) -> list[Tensor]:
    """∇ JS_π[P‖Q] in the generator's parameters, summed exactly over the support (Q's leak counted
    as one more outcome, `js_pi_with_leak`). The generator runs in its current mode.

    Returns:
        One tensor per parameter (zeros for parameters the loss does not reach).
    """
    with torch.enable_grad():
        log_q = support_log_probs(generator, toy)
        return _gradient(js_pi_with_leak(toy.enumerate()[1], log_q, pi), generator)


@torch.no_grad()
def support_critic_logits(critic: nn.Module, vocab: Vocab, toy: ToyDistribution) -> Tensor:
    """(N,) float64 logits of `critic` on every support sequence (read as ids, EOS included)."""
    tokens, lengths = support_tokens(vocab, toy)
    targets = tokens[:, 1:]
    mask = torch.arange(targets.shape[1])[None, :] <= lengths[:, None]
    device = next((t.device for t in [*critic.parameters(), *critic.buffers()]), torch.device("cpu"))
    return critic(targets.to(device), mask.to(device)).double().cpu()


def implied_gradient(critic: nn.Module, generator: Generator, toy: ToyDistribution, pi: float,
                     kind: str = "minimax") -> list[Tensor]:
    """The gradient that a generator loss built on `critic` asks for, taken exactly:
    ∇ Σ_x Q(x) f(x) over the support with f the critic's (frozen) per-sequence generator loss, so that
    neither sampling nor a relaxation enters. At D* and `minimax`, this is ∇JS_π.

    The model's mass outside the support is left out (the critic's values there cannot be listed);
    near a trained model it is small.
    """
    f = sequence_generator_loss(support_critic_logits(critic, generator.vocab, toy), pi, kind)  # (N,)
    with torch.enable_grad():
        return _gradient((support_log_probs(generator, toy).exp() * f).sum(), generator)


def critic_error(critic: nn.Module, generator: Generator, toy: ToyDistribution, pi: float) -> float:
    """The Q-weighted mean |logit D - logit D*| over the support (Q conditioned on the support), in
    nats: how far a learned critic is from the optimal one where the generator's samples fall."""
    with torch.no_grad():
        log_q = support_log_probs(generator, toy)
    return _logit_error(support_critic_logits(critic, generator.vocab, toy), log_q, toy.enumerate()[1], pi)


def critic_report(critic: nn.Module, generator: Generator, toy: ToyDistribution, pi: float,
                  kind: str = "minimax") -> dict[str, float]:
    """`critic_error` and the cosine of `implied_gradient` with `exact_js_pi_gradient`, from one pass
    over the support.

    Returns:
        {"critic_error": nats, "critic_gradient_cosine": in [-1, 1]}.
    """
    p = toy.enumerate()[1]
    learned = support_critic_logits(critic, generator.vocab, toy)  # (N,)
    with torch.enable_grad():
        log_q = support_log_probs(generator, toy)  # (N,), with gradient
        exact = _gradient(js_pi_with_leak(p, log_q, pi), generator, retain_graph=True)
        implied = _gradient((log_q.exp() * sequence_generator_loss(learned, pi, kind)).sum(), generator)
    return {"critic_error": _logit_error(learned, log_q.detach(), p, pi),
            "critic_gradient_cosine": cosine(implied, exact)}


def _gradient(loss: Tensor, generator: Generator, retain_graph: bool = False) -> list[Tensor]:
    """∇ loss in each of the generator's parameters (zeros for those it does not reach)."""
    params = list(generator.parameters())
    grads = torch.autograd.grad(loss, params, retain_graph=retain_graph, allow_unused=True)
    return [torch.zeros_like(w) if g is None else g for w, g in zip(params, grads)]


def _logit_error(learned: Tensor, log_q: Tensor, p: Tensor, pi: float) -> float:
    """Q-weighted mean |learned - logit D*| over the support, Q conditioned on it (all (N,) float64)."""
    optimal = optimal_logits(p.log(), log_q, pi)
    q = (log_q - log_q.logsumexp(0)).exp()
    finite = optimal.isfinite()  # support sequences P gives no mass have logit D* = -inf
    return float((q * (learned - optimal).abs()).masked_fill(~finite, 0).sum())


def cosine(a: Sequence[Tensor], b: Sequence[Tensor]) -> float:
    """Cosine of two gradients given as lists of tensors (NaN when either is zero)."""
    x = torch.cat([t.reshape(-1).double() for t in a])
    y = torch.cat([t.reshape(-1).double() for t in b])
    denominator = x.norm() * y.norm()
    return float(x @ y / denominator) if denominator > 0 else math.nan


def check_toy_source(toy: ToyDistribution | None) -> ToyDistribution:
    """The toy an oracle critic needs; UserError when the run's data are not an enumerable toy."""
    if toy is None:
        raise UserError("objective.critic.kind=oracle needs data.source=toy (the optimal critic is "
                        "computed from an enumerable P)")
    return toy
