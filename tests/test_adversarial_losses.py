"""JS_π adversarial losses checked against exact divergences on enumerated supports."""

from __future__ import annotations

import math

import pytest
import torch

from seqgen.errors import UserError
from seqgen.functional import binary_entropy, check_pi
from seqgen.metrics.exact import js_pi, kl, optimal_critic
from seqgen.objectives.adversarial_losses import (
    critic_accuracy,
    critic_loss,
    generator_loss,
    js_estimate,
    split_sizes,
)

PIS = [0.1, 0.5, 0.8]


def _random_pq(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(n, generator=g, dtype=torch.float64) + 0.05
    q = torch.rand(n, generator=g, dtype=torch.float64) + 0.05
    return p / p.sum(), q / q.sum()


def _logit(d: torch.Tensor) -> torch.Tensor:
    return torch.log(d) - torch.log1p(-d)


def _two_point(theta: torch.Tensor) -> torch.Tensor:
    """Q(θ) = (sigmoid θ, 1 - sigmoid θ)."""
    s = torch.sigmoid(theta)
    return torch.stack([s, 1 - s])


@pytest.mark.parametrize("pi", PIS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weighted_critic_loss_at_optimum_is_minus_js_plus_entropy(pi, seed):
    p, q = _random_pq(7, seed)
    logits = _logit(optimal_critic(p, q, pi))
    loss = critic_loss(logits, logits, pi, "weighted", real_weights=p, fake_weights=q)
    expected = -(js_pi(p, q, pi) - binary_entropy(pi))
    assert float(loss) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    estimate = js_estimate(logits, logits, pi, real_weights=p, fake_weights=q)
    assert float(estimate["js_pi"]) == pytest.approx(js_pi(p, q, pi), rel=1e-9, abs=1e-12)
    assert float(estimate["js_pi_over_pi"]) == pytest.approx(js_pi(p, q, pi) / pi, rel=1e-9, abs=1e-12)
    assert float(estimate["js_pi_over_1mpi"]) == pytest.approx(js_pi(p, q, pi) / (1 - pi), rel=1e-9,
                                                               abs=1e-12)


@pytest.mark.parametrize("pi", PIS)
def test_js_estimate_is_a_lower_bound_tight_only_at_the_optimum(pi):
    p, q = _random_pq(6, 3)
    best = _logit(optimal_critic(p, q, pi))
    exact = js_pi(p, q, pi)
    for shift in (0.3, -0.5):
        worse = best + shift * torch.linspace(-1, 1, 6, dtype=torch.float64)
        estimate = float(js_estimate(worse, worse, pi, real_weights=p, fake_weights=q)["js_pi"])
        assert estimate < exact - 1e-4


def test_ratio_loss_is_plain_bce_and_matches_weighted_when_counts_are_in_ratio():
    n_real, n_fake = split_sizes(10, 0.3)
    assert (n_real, n_fake) == (3, 7)
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(n_real, generator=g), torch.randn(n_fake, generator=g)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.cat([real, fake]), torch.cat([torch.ones(n_real), torch.zeros(n_fake)]))
    ratio = critic_loss(real, fake, 0.3, "ratio")
    assert float(ratio) == pytest.approx(float(bce), rel=1e-6)
    # With equal per-sample weights the weighted loss over these unequal halves is the same sum.
    assert float(critic_loss(real, fake, 0.3, "weighted")) == pytest.approx(float(ratio), rel=1e-6)


def test_split_sizes_keep_both_classes():
    assert split_sizes(8, 0.5) == (4, 4)
    assert split_sizes(4, 0.01) == (1, 3)
    assert split_sizes(4, 0.99) == (3, 1)
    with pytest.raises(UserError, match="pi"):
        split_sizes(8, 1.0)
    with pytest.raises(UserError, match="at least 2"):
        split_sizes(1, 0.5)


@pytest.mark.parametrize("pi", [0.0, 1.0, -0.2, 1.5])
def test_every_loss_refuses_a_class_prior_outside_the_open_unit_interval(pi):
    logits = torch.zeros(3)
    for call in (lambda: check_pi(pi), lambda: critic_loss(logits, logits, pi),
                 lambda: generator_loss(logits, pi), lambda: split_sizes(8, pi)):
        with pytest.raises(UserError, match=r"the class prior pi must be in \(0, 1\)"):
            call()


def test_losses_stay_finite_for_confident_critics():
    huge = torch.tensor([200.0, -200.0], requires_grad=True)
    for loss in (critic_loss(huge, huge, 0.5), generator_loss(huge, 0.5, "minimax"),
                 generator_loss(huge, 0.5, "non_saturating")):
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(huge.grad).all()
        huge.grad = None


@pytest.mark.parametrize("pi", PIS)
@pytest.mark.parametrize("q1", [0.15, 0.5, 0.9])
def test_kl_generator_loss_at_optimal_critic(pi, q1):
    p = torch.tensor([0.3, 0.7], dtype=torch.float64)
    q = torch.tensor([q1, 1 - q1], dtype=torch.float64)
    logits = _logit(optimal_critic(p, q, pi))
    loss = generator_loss(logits, pi, "kl", weights=q)
    assert float(loss) == pytest.approx(kl(q, p) - math.log(pi / (1 - pi)), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("pi", PIS)
@pytest.mark.parametrize("theta0", [-1.2, 0.4, 1.5])
def test_minimax_gradient_at_optimal_critic_is_the_js_gradient(pi, theta0):
    p = torch.tensor([0.35, 0.65], dtype=torch.float64)
    theta = torch.tensor(theta0, dtype=torch.float64, requires_grad=True)
    q = _two_point(theta)
    d_star = optimal_critic(p, q.detach(), pi)  # held fixed: the critic does not move with θ
    generator_loss(_logit(d_star), pi, "minimax", weights=q).backward()
    h = 1e-5
    finite_difference = (js_pi(p, _two_point(torch.tensor(theta0 + h, dtype=torch.float64)), pi)
                         - js_pi(p, _two_point(torch.tensor(theta0 - h, dtype=torch.float64)), pi)) / (2 * h)
    assert float(theta.grad) == pytest.approx(finite_difference, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("kind", ["minimax", "non_saturating", "kl"])
@pytest.mark.parametrize("pi", PIS)
def test_generator_losses_push_q_towards_p_and_stop_at_p(kind, pi):
    """Two points, P = (0.35, 0.65), Q(θ) = (σ(θ), 1 - σ(θ)), the critic at D*(Q): the gradient
    of every loss points away from P (descent moves Q towards P) and vanishes at Q = P."""
    p = torch.tensor([0.35, 0.65], dtype=torch.float64)
    p_theta = math.log(0.35 / 0.65)
    for theta0 in (p_theta - 1.0, p_theta, p_theta + 0.7):
        theta = torch.tensor(theta0, dtype=torch.float64, requires_grad=True)
        q = _two_point(theta)
        logits = _logit(optimal_critic(p, q.detach(), pi))
        generator_loss(logits, pi, kind, weights=q).backward()
        if theta0 == p_theta:
            assert abs(float(theta.grad)) < 1e-9
        else:
            assert math.copysign(1, float(theta.grad)) == math.copysign(1, theta0 - p_theta)


def test_generator_loss_signs():
    logits = torch.randn(50, generator=torch.Generator().manual_seed(0)) * 3
    assert float(generator_loss(logits, 0.3, "minimax")) < 0
    assert float(generator_loss(logits, 0.3, "non_saturating")) > 0
    assert float(generator_loss(logits, 0.3, "kl")) == pytest.approx(-float(logits.mean()), rel=1e-6)
    # At Q = P the optimal critic is D* = π everywhere.
    at_p = torch.full((4,), math.log(0.3 / 0.7))
    assert float(generator_loss(at_p, 0.3, "minimax")) == pytest.approx(0.7 * math.log(0.7), rel=1e-6)
    assert float(generator_loss(at_p, 0.3, "non_saturating")) == pytest.approx(-0.7 * math.log(0.3), rel=1e-6)
    with pytest.raises(UserError, match="generator loss"):
        generator_loss(logits, 0.3, "wasserstein")


def test_critic_accuracy():
    acc_real, acc_fake = critic_accuracy(torch.tensor([1.0, -2.0, 3.0, 0.5]), torch.tensor([-1.0, 2.0]))
    assert float(acc_real) == pytest.approx(0.75)
    assert float(acc_fake) == pytest.approx(0.5)
