"""Exact divergences between continuous 2-D densities: a mixture of isotropic Gaussians P and one
isotropic Gaussian Q, their densities known in closed form, and KL[P‖Q], KL[Q‖P] and JS_π[P‖Q]
integrated numerically on a grid (docs/theory/metrics.md#js-pi).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from seqgen.errors import UserError

MIXTURES = ("theis", "random")
"""The mixtures P that `run_gaussians` can fit (see `GaussianMixture2D.theis` and `GaussianMixture2D`)."""
THEIS_SEED = 22
"""The seed of the default mixture (Theis et al.'s own)."""
LOG_2PI = math.log(2 * math.pi)



# ---------------------------------------------------------------------------------------------------
# The densities


def _isotropic_log_prob(x: Tensor, mean: Tensor, log_scale: Tensor) -> Tensor:
    """log N(x; mean, exp(log_scale)² I) in 2-D; x (N, 2), mean (..., 2), log_scale (...) -> (N, ...)."""
    sq = ((x.unsqueeze(-2) - mean) ** 2).sum(-1) if mean.dim() > 1 else ((x - mean) ** 2).sum(-1)
    return -0.5 * sq * torch.exp(-2 * log_scale) - 2 * log_scale - LOG_2PI


class GaussianMixture2D:
    """P: a seeded mixture of K isotropic Gaussians in 2-D, the recipe of Theis et al. (2016).

    Weights ~ Dirichlet(0.5), variances 1 / (U + 1)² with U ~ Uniform(0, 1) (scales in (0.5, 1]),
    means ~ N(0, 1.5² I). The constructor draws them with numpy's `default_rng(seed)` (the "random"
    mixture); `theis` draws them exactly as Theis et al.'s experiment did. Parameters are float64;
    `log_prob` computes in the input's dtype.

    Attributes:
        kind: "random" or "theis", how the parameters were drawn.
        seed: the seed they were drawn with.

    Args:
        seed: draws the parameters.
        num_components: K.

    Raises:
        UserError: K < 1.
    """

    def __init__(self, seed: int = 0, num_components: int = 10) -> None:
        _check_components(num_components)
        rng = np.random.default_rng(seed)
        self.weights = torch.from_numpy(rng.dirichlet(np.full(num_components, 0.5)))  # (K,)
        self.scales = torch.from_numpy(1.0 / (rng.uniform(size=num_components) + 1.0))  # (K,)
        self.means = torch.from_numpy(rng.normal(0.0, 1.5, size=(num_components, 2)))  # (K, 2)
        self.kind, self.seed = "random", seed

    @classmethod
    def theis(cls, seed: int = THEIS_SEED, num_components: int = 10) -> GaussianMixture2D:
        """Theis et al.'s mixture: the same recipe, drawn from numpy's legacy generator in their order.

        Their experiment seeds numpy's global generator and draws the weights `dirichlet([.5] * K)`,
        the variances `1 / (rand(K) + 1) ** 2` and the means `randn(100, K) * 1.5`, of which it keeps
        the first two rows (column k is the mean of component k; the 100 rows make the means independent
        of the dimension). `RandomState(seed)` is the same stream. With seed 22 most of the mass lies in
        a cluster of components around (-0.4, -1.1), with a second heavy component at (-0.1, 3.2) and
        light ones as far out as (3.7, 0.9) and (-3.7, -1.0), so the maximum-likelihood Gaussian is much
        broader than any mode.

        Args:
            seed: the seed of the legacy generator (theirs: 22).
            num_components: K (theirs: 10).

        Raises:
            UserError: K < 1.
        """
        _check_components(num_components)
        rng = np.random.RandomState(seed)
        weights = rng.dirichlet([0.5] * num_components)
        variances = 1.0 / (rng.rand(num_components) + 1.0) ** 2
        means = rng.randn(100, num_components)[:2] * 1.5  # (2, K)
        mixture = cls.__new__(cls)
        mixture.weights = torch.from_numpy(weights)
        mixture.scales = torch.from_numpy(np.sqrt(variances))
        mixture.means = torch.from_numpy(np.ascontiguousarray(means.T))  # (K, 2)
        mixture.kind, mixture.seed = "theis", seed
        return mixture

    @classmethod
    def named(cls, kind: str, seed: int) -> GaussianMixture2D:
        """The mixture `kind` ("theis" or "random", see `MIXTURES`) drawn with `seed`.

        Raises:
            UserError: an unknown kind.
        """
        if kind not in MIXTURES:
            raise UserError(f"unknown mixture {kind!r}; choose one of {', '.join(MIXTURES)}")
        return cls.theis(seed) if kind == "theis" else cls(seed)

    def log_prob(self, x: Tensor) -> Tensor:
        """log P(x) of points x (N, 2) -> (N,)."""
        means, scales, weights = (t.to(x.dtype) for t in (self.means, self.scales, self.weights))
        return torch.logsumexp(_isotropic_log_prob(x, means, scales.log()) + weights.log(), dim=-1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n samples (n, 2) float32, drawn with `generator`."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, 2, generator=generator, dtype=torch.float64)
        return (self.means[k] + self.scales[k, None] * noise).float()

    def moment_matched(self) -> IsotropicGaussian:
        """The isotropic Gaussian with P's mean and P's mean per-axis variance: the minimiser of
        KL[P‖Q] over isotropic Gaussians (maximum likelihood with infinite data)."""
        mean = self.weights @ self.means
        sq = ((self.means - mean) ** 2).sum(-1)  # (K,)
        variance = (self.weights * (2 * self.scales**2 + sq)).sum() / 2
        return IsotropicGaussian(mean, 0.5 * variance.log()).requires_grad_(False)

    def components(self) -> list[IsotropicGaussian]:
        """Each component as a Gaussian (its mean and scale), frozen."""
        return [IsotropicGaussian(m, s.log()).requires_grad_(False) for m, s in zip(self.means, self.scales)]


def _check_components(num_components: int) -> None:
    if num_components < 1:
        raise UserError(f"a mixture needs at least one component, got {num_components}")


class IsotropicGaussian(nn.Module):
    """Q = N(mean, scale² I) in 2-D, parameterised by `mean` (2,) and `log_scale` () for optimisation.

    The fits and constructors below return frozen Gaussians (no gradients); `copy` gives a trainable one.

    Args:
        mean: (2,) mean; its dtype is the module's.
        log_scale: () log of the standard deviation.
    """

    def __init__(self, mean: Tensor, log_scale: Tensor | float) -> None:
        super().__init__()
        self.mean = nn.Parameter(torch.as_tensor(mean).detach().clone())
        self.log_scale = nn.Parameter(torch.as_tensor(log_scale, dtype=self.mean.dtype).detach().clone())

    @classmethod
    def fit_samples(cls, x: Tensor) -> IsotropicGaussian:
        """The maximum-likelihood isotropic Gaussian of samples x (N, 2)."""
        mean = x.mean(0)
        return cls(mean, 0.5 * ((x - mean) ** 2).mean().log()).requires_grad_(False)

    @property
    def scale(self) -> Tensor:
        return self.log_scale.exp()

    def log_prob(self, x: Tensor) -> Tensor:
        """log Q(x) of points x (N, 2) -> (N,), differentiable in the parameters."""
        return _isotropic_log_prob(x, self.mean.to(x.dtype), self.log_scale.to(x.dtype))

    def rsample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n reparameterised samples (n, 2): mean + scale · ε, ε ~ N(0, I) drawn with `generator`."""
        noise = torch.randn(n, 2, generator=generator, dtype=self.mean.dtype)
        return self.mean + self.scale * noise

    def copy(self, dtype: torch.dtype = torch.float64) -> IsotropicGaussian:
        """A copy in `dtype` whose parameters require gradients (a starting point for a fit)."""
        return IsotropicGaussian(self.mean.detach().to(dtype), self.log_scale.detach().to(dtype))


# ---------------------------------------------------------------------------------------------------
# Numerical integration on a grid


@dataclass(frozen=True)
class Grid:
    """Cell centres of a square box for midpoint-rule integrals of 2-D densities (float64).

    For Gaussians the midpoint rule converges extremely fast: with a spacing of one standard deviation
    the error is already far below 1e-6, so the grid's job is mostly to cover the mass.
    """

    points: Tensor
    """(N, 2) cell centres."""
    cell_area: float
    low: float
    high: float

    @classmethod
    def covering(cls, p: GaussianMixture2D, size: int, *qs: IsotropicGaussian, margin: float = 7.0) -> Grid:
        """A grid covering every component of P and every Q to `margin` standard deviations.

        Args:
            p: the mixture.
            size: points per side at least; more are used where needed for a spacing of at most a third
                of the narrowest standard deviation (capped at 1000 per side).
            qs: Gaussians whose mass the grid must also hold.
            margin: half-width of the box around each mean, in that Gaussian's standard deviations.
        """
        centres = [p.means] + [q.mean.detach().double()[None] for q in qs]
        scales = [p.scales] + [q.scale.detach().double()[None] for q in qs]
        low = min(float((c - margin * s[:, None]).min()) for c, s in zip(centres, scales))
        high = max(float((c + margin * s[:, None]).max()) for c, s in zip(centres, scales))
        narrowest = min(float(s.min()) for s in scales)
        size = min(max(size, math.ceil(3 * (high - low) / narrowest)), 1000)
        step = (high - low) / size
        axis = low + step * (torch.arange(size, dtype=torch.float64) + 0.5)
        points = torch.cartesian_prod(axis, axis)
        return cls(points, step * step, low, high)

    def integrate(self, density: Tensor) -> Tensor:
        """Σ f(x) · cell area of density values f (N,) at the grid points."""
        return density.sum() * self.cell_area


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one intra-op thread: the fits are many small operations, which extra threads only
    slow down (several times over when the cores are busy)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def grid_divergences(log_p: Tensor, log_q: Tensor, grid: Grid, pi: float) -> dict[str, Tensor]:
    """KL[P‖Q], KL[Q‖P] and JS_π[P‖Q] by the midpoint rule, from log-densities at the grid points.

    Args:
        log_p: (N,) log P at `grid.points`.
        log_q: (N,) log Q at `grid.points` (differentiable: the result is too).
        grid: the grid.
        pi: the class prior π in (0, 1).

    Returns:
        "kl_p_q", "kl_q_p", "js_pi" (nats) and "mass_p", "mass_q" (the integrals of P and Q, ≈ 1 when
        the grid holds their mass), as 0-dim tensors.
    """
    p, q = log_p.exp(), log_q.exp()
    log_m = torch.logaddexp(math.log(pi) + log_p, math.log1p(-pi) + log_q)
    return {
        "kl_p_q": grid.integrate(p * (log_p - log_q)),
        "kl_q_p": grid.integrate(q * (log_q - log_p)),
        "js_pi": grid.integrate(pi * p * (log_p - log_m) + (1 - pi) * q * (log_q - log_m)),
        "mass_p": grid.integrate(p),
        "mass_q": grid.integrate(q),
    }


def score(p: GaussianMixture2D, q: IsotropicGaussian, pi: float, grid_size: int = 200) -> dict[str, float]:
    """KL[P‖Q], KL[Q‖P], JS_π[P‖Q] of a fitted Q, on a grid covering both (see `Grid.covering`).

    Returns:
        The floats of `grid_divergences`; "mass_p" and "mass_q" show how well the grid held the mass.
    """
    grid = Grid.covering(p, grid_size, q)
    with torch.no_grad(), one_thread():
        out = grid_divergences(p.log_prob(grid.points), q.log_prob(grid.points), grid, pi)
    return {k: float(v) for k, v in out.items()}
