"""The losses of JS_π adversarial training (docs/theory/objectives.md#generator-losses), as pure functions of critic logits.

The critic D = sigmoid(logit) maximises
    V_π(D, Q) = π E_{x~P} log D(x) + (1 - π) E_{x~Q} log(1 - D(x)),
whose maximum is JS_π[P‖Q] - H(π) at D*(x) = π P(x) / (π P(x) + (1 - π) Q(x)); V_π + H(π) is then
a lower bound on JS_π for any critic. Log-probabilities come from `logsigmoid`, which stays finite
for confident critics.

Expectations are batch means; every function also takes optional probability weights (summing to
one) in their place, so that exact expectations over an enumerated support use the same formulas.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from seqgen.errors import UserError
from seqgen.functional import binary_entropy, check_pi


def split_sizes(total: int, pi: float) -> tuple[int, int]:
    """How many real and fake sequences a batch of `total` holds for the "ratio" critic loss.

    Returns:
        (n_real, n_fake), n_real the nearest integer to π · total, each at least 1.

    Raises:
        UserError: pi outside (0, 1) or total < 2.
    """
    check_pi(pi)
    if total < 2:
        raise UserError(f"a critic batch needs at least 2 sequences (one real, one fake), got {total}")
    n_real = min(max(round(pi * total), 1), total - 1)
    return n_real, total - n_real


def critic_loss(real_logits: Tensor, fake_logits: Tensor, pi: float,
                weighting: Literal["weighted", "ratio"] = "weighted", *,
                real_weights: Tensor | None = None, fake_weights: Tensor | None = None) -> Tensor:
    """The critic's loss -V_π, to minimise.

    Args:
        real_logits: (N_real,) critic logits on data sequences.
        fake_logits: (N_fake,) critic logits on generator sequences.
        pi: the class prior π in (0, 1).
        weighting: "weighted": -[π E_real log D + (1 - π) E_fake log(1 - D)], for equal real and
            fake batch sizes; "ratio": the plain binary cross-entropy averaged over all N_real + N_fake
            sequences, for a batch whose real:fake counts are π : (1 - π) (see `split_sizes`), which
            equals the weighted loss in expectation.
        real_weights: (N_real,) probabilities replacing the mean over real sequences ("weighted" only).
        fake_weights: (N_fake,) probabilities replacing the mean over fake sequences ("weighted" only).

    Returns:
        A scalar in nats.

    Raises:
        UserError: pi outside (0, 1).
    """
    check_pi(pi)
    log_d_real = F.logsigmoid(_at_least_float32(real_logits))  # log D
    log_1md_fake = F.logsigmoid(-_at_least_float32(fake_logits))  # log(1 - D)
    if weighting == "ratio":
        if real_weights is not None or fake_weights is not None:
            raise ValueError("weights apply to the 'weighted' critic loss only")
        return -(log_d_real.sum() + log_1md_fake.sum()) / (log_d_real.numel() + log_1md_fake.numel())
    if weighting != "weighted":
        raise ValueError(f"weighting must be 'weighted' or 'ratio', got {weighting!r}")
    return -(pi * _expect(log_d_real, real_weights) + (1 - pi) * _expect(log_1md_fake, fake_weights))


@torch.no_grad()
def js_estimate(real_logits: Tensor, fake_logits: Tensor, pi: float, *, real_weights: Tensor | None = None,
                fake_weights: Tensor | None = None) -> dict[str, Tensor]:
    """The critic's lower bound on JS_π: V_π + H(π), with its /π and /(1 - π) scalings.

    JS_π/π tends to KL[P‖Q] as π → 0 and JS_π/(1 - π) to KL[Q‖P] as π → 1, so all three are logged.

    Args:
        real_logits, fake_logits, pi, real_weights, fake_weights: as for `critic_loss` ("weighted").

    Returns:
        {"js_pi", "js_pi_over_pi", "js_pi_over_1mpi"}: detached 0-d tensors in nats.
    """
    value = -critic_loss(real_logits, fake_logits, pi, "weighted", real_weights=real_weights,
                         fake_weights=fake_weights)
    js = value + binary_entropy(pi)
    return {"js_pi": js, "js_pi_over_pi": js / pi, "js_pi_over_1mpi": js / (1 - pi)}


def generator_loss(fake_logits: Tensor, pi: float,
                   kind: Literal["minimax", "non_saturating", "kl"] = "minimax", *, weights: Tensor | None = None) -> Tensor:
    """The generator's loss on the critic's logits for its own samples, to minimise.

    - "minimax": (1 - π) E_Q log(1 - D), <= 0; at D* its gradient is the gradient of JS_π.
    - "non_saturating": -(1 - π) E_Q log D, >= 0; the usual GAN heuristic, not a JS_π gradient.
    - "kl": -E_Q logit D; at D* this is KL[Q‖P] - log(π / (1 - π)).

    Args:
        fake_logits: (N,) critic logits on generator sequences.
        pi: the class prior π in (0, 1).
        kind: which loss.
        weights: (N,) probabilities replacing the batch mean.

    Returns:
        A scalar in nats.

    Raises:
        UserError: pi outside (0, 1) or an unknown kind.
    """
    return _expect(sequence_generator_loss(fake_logits, pi, kind), weights)


def sequence_generator_loss(fake_logits: Tensor, pi: float,
                            kind: Literal["minimax", "non_saturating", "kl"] = "minimax") -> Tensor:
    """The generator loss of each sequence, f(x), whose expectation under Q is `generator_loss`: the
    reward that the score-function estimators weight log Q(x) by.

    Args:
        fake_logits: (...) critic logits.
        pi, kind: as for `generator_loss`.

    Returns:
        (...) nats, float32 or wider.
    """
    check_pi(pi)
    logits = _at_least_float32(fake_logits)
    if kind == "minimax":
        return (1 - pi) * F.logsigmoid(-logits)
    if kind == "non_saturating":
        return -(1 - pi) * F.logsigmoid(logits)
    if kind == "kl":
        return -logits
    raise UserError(f"unknown generator loss {kind!r}; choose from minimax, non_saturating, kl")


@torch.no_grad()
def critic_accuracy(real_logits: Tensor, fake_logits: Tensor) -> tuple[Tensor, Tensor]:
    """Fractions of real sequences the critic calls real (logit > 0) and of fake ones it calls fake.

    Returns:
        (acc_real, acc_fake): detached 0-d float tensors in [0, 1].
    """
    return (real_logits > 0).float().mean(), (fake_logits < 0).float().mean()


def _expect(values: Tensor, weights: Tensor | None) -> Tensor:
    """The batch mean of `values`, or their expectation under probability `weights`."""
    return values.mean() if weights is None else (values * weights.to(values.dtype)).sum()


def _at_least_float32(x: Tensor) -> Tensor:
    """x in float32, or float64 when it already is (exact expectations keep their precision)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))
