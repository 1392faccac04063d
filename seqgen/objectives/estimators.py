"""Score-function gradient estimators for a generator scored by a critic on its discrete samples.

The generator minimises L = E_{x~Q} f(x), f the per-sequence generator loss that the critic gives x.
The score function (REINFORCE) writes ∇L = E[(f(x) - b) ∇ log Q(x)] for any baseline b independent
of x; backpropagating the surrogate mean((f - b).detach() · log Q(x)) gives that estimate. The
leave-one-out baselines used here (the other rollouts' mean reward) keep it unbiased.

REBAR adds the Gumbel-softmax relaxation as a control variate. With z = log θ + g the perturbed
log-probabilities that produced the sample b = argmax z, and z̃ a second draw from p(z | b),

    [f(b) - η f(σ_τ(z̃))] ∇ log Q(b) + η ∇ f(σ_τ(z)) - η ∇ f(σ_τ(z̃)),

where σ_τ is the softmax at temperature τ and the critic reads the relaxed sequences. For a generator
fed its own hard tokens, z and z̃ are taken position by position on the sampled prefix.

Rollouts are decoded without gradient on the generator's cache; log Q and the logits the relaxations
need then come from one teacher-forced pass over [BOS, ids].
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from seqgen.models.base import Generator
from seqgen.randomness import Source, uniform
from seqgen.sampling import categorical


@torch.no_grad()
def sample_rollout(model: Generator, memory: Any, batch_size: int, max_len: int,
                   generator: Source = None) -> tuple[Tensor, Tensor]:
    """Ancestral samples of the model, decoded on its cache from BOS, without gradient.

    Args:
        model: any generator, in whatever mode it is in.
        memory: `model.encode(context)` for the B rows (None for a language model).
        batch_size: B.
        max_len: positions decoded, EOS included; a row without EOS by then is cut there.
        generator: the only source of randomness (`seqgen.randomness.Source`), one call per position.

    Returns:
        tokens (B, T) long, PAD after the first EOS, and mask (B, T) bool, True up to and including
        it; T = max_len, or fewer when every row ended earlier.
    """
    vocab = model.vocab
    inputs = torch.full((batch_size,), vocab.bos_id, dtype=torch.long, device=model.input_embeddings.device)
    finished = torch.zeros_like(inputs, dtype=torch.bool)
    state, columns, masks = None, [], []
    for _ in range(max_len):
        logits, state = model.step(inputs, memory, state)
        masks.append(~finished)
        inputs = categorical(logits, generator).masked_fill(finished, vocab.pad_id)
        columns.append(inputs)
        finished = finished | (inputs == vocab.eos_id)
        if finished.all():
            break
    return torch.stack(columns, 1), torch.stack(masks, 1)


def sequence_log_probs(log_probs: Tensor, tokens: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """log Q of each token and of each sequence.

    Args:
        log_probs: (B, T, V) normalised teacher-forced log-probabilities over [BOS, tokens[:, :-1]].
        tokens: (B, T) long sampled ids.
        mask: (B, T) bool, the positions that belong to each sequence.

    Returns:
        token_log_q (B, T) float32 or wider, zero where masked, and its row sums (B,).
    """
    token = log_probs.gather(-1, tokens[..., None]).squeeze(-1) * mask
    return token, token.sum(-1)


def leave_one_out(values: Tensor, group: int) -> Tensor:
    """Each row's baseline: the mean of the other rows of its group.

    Args:
        values: (N, ...) per-rollout values, the K rollouts of a group in consecutive rows.
        group: K >= 2, rows per group (N a multiple of K).

    Returns:
        (N, ...) the leave-one-out means, detached.
    """
    values = values.detach()
    grouped = values.reshape(-1, group, *values.shape[1:])
    total = grouped.sum(1, keepdim=True)
    return ((total - grouped) / (group - 1)).reshape(values.shape)


def baseline(values: Tensor, kind: str, group: int) -> Tensor:
    """The baseline of each rollout's reward: zero ("none"), the other rollouts' mean in the
    micro-batch ("batch"), or in the rollout's group of K ("rloo"). One rollout alone gets zero."""
    if kind == "none" or (kind == "batch" and len(values) < 2):
        return torch.zeros_like(values)
    return leave_one_out(values, len(values) if kind == "batch" else group)


def discounted_returns(rewards: Tensor, discount: float) -> Tensor:
    """R_t = Σ_{s >= t} γ^(s - t) r_s along the last dimension: rewards (..., T) -> (..., T)."""
    out, running = torch.empty_like(rewards), torch.zeros_like(rewards[..., 0])
    for t in range(rewards.shape[-1] - 1, -1, -1):
        running = rewards[..., t] + discount * running
        out[..., t] = running
    return out


def conditional_gumbel(log_probs: Tensor, ids: Tensor, uniforms: Tensor) -> Tensor:
    """A draw of z = log θ + g given that argmax z = ids (Tucker et al. 2017), reparameterised in θ.

    The maximum of the perturbed log-probabilities is a Gumbel(0) variable (θ sums to one), and every
    other coordinate is a Gumbel of location log θ_i truncated below it:
        z_b = -log(-log v_b),   z_i = -log(-log v_i / θ_i - log v_b)  (i ≠ b).

    Args:
        log_probs: (..., V) normalised log θ (differentiable: so is the draw).
        ids: (...) long, the sampled categories b.
        uniforms: (..., V) independent Uniform(0, 1) draws v.

    Returns:
        (..., V) z with argmax z = ids.
    """
    tiny = torch.finfo(uniforms.dtype).tiny
    log_v = uniforms.clamp(min=tiny, max=1 - 1e-7).log()  # (..., V), < 0
    log_v_b = log_v.gather(-1, ids[..., None])  # (..., 1)
    top = -(-log_v_b).log()
    others = -(-log_v * (-log_probs).exp() - log_v_b).log()
    return others.scatter(-1, ids[..., None], top)


def rebar_control(log_probs: Tensor, ids: Tensor, mask: Tensor, score: Callable[[Tensor], Tensor], tau: float,
                  weight: float, generator: Source = None) -> tuple[Tensor, Tensor]:
    """The Gumbel-softmax control variate of REBAR for sampled `ids`.

    With z = log θ + g the perturbed log-probabilities that produced the ids (g drawn given the ids and
    then held fixed, so z carries the pathwise gradient of log θ) and z̃ a second, independent draw
    given the ids (reparameterised in θ), the estimator is the gradient of

        mean[(f(b) - η f(σ(z̃))).detach() · log Q(b)] + η mean[f(σ(z)) - f(σ(z̃))],

    whose second term this returns with f(σ(z̃)) for the first. For a single categorical (T = 1) its
    expectation is the exact gradient; over positions that read the sampled prefix, z and z̃ are taken
    on that prefix, and the pathwise terms miss how the prefix itself depends on the parameters.

    Args:
        log_probs: (B, T, V) normalised log θ at each position, differentiable.
        ids: (B, T) long sampled ids.
        mask: (B, T) bool, the positions that belong to each sequence.
        score: relaxed tokens (B, T, V) -> (B,) per-sequence loss f, differentiable in its input.
        tau: the relaxation's temperature.
        weight: η.
        generator: source of the uniforms.

    Returns:
        f(σ(z̃)) (B,) detached, and the control term η mean[f(σ(z)) - f(σ(z̃))] (a scalar).
    """
    frozen = log_probs.detach()
    g = conditional_gumbel(frozen, ids, uniform_like(frozen, generator)) - frozen
    z_tilde = conditional_gumbel(log_probs, ids, uniform_like(frozen, generator))
    f_z, f_z_tilde = score(relaxed(log_probs + g, tau, mask)), score(relaxed(z_tilde, tau, mask))
    return f_z_tilde.detach(), weight * (f_z - f_z_tilde).mean()


def relaxed(z: Tensor, tau: float, mask: Tensor) -> Tensor:
    """σ_τ(z) = softmax(z / τ): (B, T, V) relaxed tokens, zero vectors where `mask` (B, T) is False."""
    return (z / tau).softmax(-1) * mask[..., None]


def uniform_like(x: Tensor, generator: Source) -> Tensor:
    """Uniform(0, 1) noise of x's shape and device, from `generator`."""
    return uniform(tuple(x.shape), x.device, generator)


def pad_columns(x: Tensor, length: int, value: float | int | bool) -> Tensor:
    """(B, T) x padded on the right with `value` to `length` columns."""
    return F.pad(x, (0, length - x.shape[1]), value=value) if x.shape[1] < length else x
