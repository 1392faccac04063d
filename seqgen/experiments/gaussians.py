"""The continuous JS_π interpolation study: one isotropic Gaussian Q fitted to a 2-D mixture of Gaussians P
(the setting of Theis, van den Oord and Bethge 2016).

P is a mixture of K = 10 isotropic Gaussians, so its density is known exactly. By default it is Theis et
al.'s own mixture (`GaussianMixture2D.theis`, seed `THEIS_SEED` of numpy's legacy generator): most of its
mass lies in one cluster of components, a second heavy component sits apart from it and light ones lie far
out, so the maximum-likelihood Gaussian is far broader than any mode.
The other option is a mixture drawn by the same recipe with numpy's default generator
(`GaussianMixture2D(seed)`), whose components overlap more, so that the fits move less with π.

Q is fitted for each class prior π (by default the log grid `PIS_LOG`, 0.001 to 0.95) in two ways:

(a) exact: JS_π[P‖Q] is integrated numerically on a fixed grid (float64) and minimised over Q's three
    parameters by L-BFGS. JS_π is not convex in Q, so each fit starts from the moment-matched Gaussian
    (the maximum-likelihood isotropic Gaussian, the minimiser of KL[P‖Q] and the limit of the optimum
    as π → 0) and from each component of P, and keeps the lowest JS_π (`fit_exact_starts`);
(b) adversarial: a small MLP critic maximises V_π = π E_P log D + (1-π) E_Q log(1 - D) on samples of P
    and reparameterised samples of Q, and Q minimises the minimax generator loss (1-π) E_Q log(1 - D),
    starting from the maximum-likelihood fit to samples of P (the usual pre-training). Nothing exact
    steers it: it has one start and only samples of P.

Every fit is scored by KL[P‖Q], KL[Q‖P] and JS_π integrated on a grid that covers both P and that Q
(`seqgen.metrics.continuous`). The study measures at which π the exact optimum leaves the broad
maximum-likelihood Gaussian for one mode, and whether the adversarial fits follow it; RESULTS.md holds
the numbers (docs/theory/objectives.md#js-adversarial-training).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from seqgen.errors import UserError
from seqgen.experiments.plots import plot_gaussian_fits, plot_gaussian_kls
from seqgen.experiments.report import Row, write_results
from seqgen.experiments.sizes import study_size
from seqgen.functional import binary_entropy
from seqgen.metrics.continuous import (
    LOG_2PI,
    MIXTURES,
    THEIS_SEED,
    GaussianMixture2D,
    Grid,
    IsotropicGaussian,
    grid_divergences,
    one_thread,
    score,
)

PIS_LOG = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 0.75, 0.95)
"""The class priors of this study: a log grid, because on the default mixture the exact optimum changes
from the broad maximum-likelihood Gaussian to a one-mode fit at small π (RESULTS.md holds where)."""


@dataclass(frozen=True)
class StudySize:
    """How much work one study does."""

    name: str
    """Its name in the studies' size vocabulary (`seqgen.experiments.sizes`)."""
    grid_size: int
    """Grid points per side for fitting and scoring (the scoring grid may be finer, see `Grid.covering`)."""
    exact_steps: int
    """L-BFGS iterations per exact fit."""
    adversarial_steps: int
    """Q updates per adversarial fit."""
    batch: int
    """Samples of P and of Q per critic and Q step."""
    critic_steps: int
    """Critic updates per Q update."""
    hidden: int
    """Width of the critic's two hidden layers."""


SIZES = {
    "tiny": StudySize("tiny", grid_size=120, exact_steps=40, adversarial_steps=400, batch=128, critic_steps=2, hidden=32),
    "demo": StudySize("demo", grid_size=200, exact_steps=100, adversarial_steps=1500, batch=256, critic_steps=2,
                      hidden=64),
    "full": StudySize("full", grid_size=400, exact_steps=200, adversarial_steps=6000, batch=512, critic_steps=3,
                      hidden=128),
}


# ---------------------------------------------------------------------------------------------------
# The fits


def _check_pi(pi: float) -> None:
    if not 0 < pi < 1:
        raise UserError(f"the class prior pi must be in (0, 1), got {pi}")


@dataclass(frozen=True)
class ExactFit:
    """The result of `fit_exact_starts`."""

    q: IsotropicGaussian
    """The fitted Q with the lowest JS_π (float64, frozen)."""
    start: str
    """Which start it came from: "moment-matched", "component k" or "given"."""
    js_pi: float
    """Its JS_π on the fitting grid (nats)."""


def exact_starts(p: GaussianMixture2D) -> list[tuple[str, IsotropicGaussian]]:
    """The starts of an exact fit: the moment-matched Gaussian, then each component of P.

    JS_π is not convex in Q: the broad moment-matched Gaussian is a local optimum even at class priors
    where a fit on one mode is better, and L-BFGS from it stays there. A fit from each component reaches
    every one-mode optimum too, and the lowest of them all is the global optimum (as far as a
    K + 1-point search can tell).
    """
    components = [(f"component {k}", c) for k, c in enumerate(p.components())]
    return [("moment-matched", p.moment_matched()), *components]


def fit_exact_starts(p: GaussianMixture2D, pi: float, steps: int = 100, grid_size: int = 200,
                     starts: Sequence[tuple[str, IsotropicGaussian]] | None = None) -> ExactFit:
    """Minimise JS_π[P‖Q] by L-BFGS from several starts and keep the fit with the lowest JS_π.

    Every start is fitted on the same grid (covering P and every start), so their final JS_π compare
    exactly. A later start replaces the best only if it is lower by more than 1e-9 nats: starts that
    converge to the same optimum differ by rounding, and the earlier start (the moment-matched one
    first) wins such ties, which keeps the choice deterministic and stable.

    Args:
        p: the mixture P.
        pi: the class prior π in (0, 1).
        steps: L-BFGS iterations per start (each stops earlier once converged).
        grid_size: points per side of the fitting grid.
        starts: (name, initial Q) pairs, not modified (default: `exact_starts(p)`).

    Returns:
        The best fit, its start and its JS_π.

    Raises:
        UserError: π outside (0, 1) or no start.
    """
    _check_pi(pi)
    starts = exact_starts(p) if starts is None else list(starts)
    if not starts:
        raise UserError("an exact fit needs at least one start")
    grid = Grid.covering(p, grid_size, *(q for _, q in starts))
    log_p = p.log_prob(grid.points)
    best: ExactFit | None = None
    with one_thread():
        for name, start in starts:
            q = _lbfgs(log_p, grid, pi, start.copy(), steps)
            with torch.no_grad():
                js = float(grid_divergences(log_p, q.log_prob(grid.points), grid, pi)["js_pi"])
            if best is None or js < best.js_pi - 1e-9:
                best = ExactFit(q.requires_grad_(False), name, js)
    return best


def fit_exact(p: GaussianMixture2D, pi: float, steps: int = 100, grid_size: int = 200,
              start: IsotropicGaussian | None = None) -> IsotropicGaussian:
    """Minimise JS_π[P‖Q], integrated on a fixed grid, over Q's mean and log-scale by L-BFGS.

    Args:
        p: the mixture P.
        pi: the class prior π in (0, 1).
        steps: L-BFGS iterations per start (it stops earlier once converged).
        grid_size: points per side of the fitting grid, which covers P and the starts.
        start: the only initial Q, not modified (default: every start of `exact_starts`, the
            moment-matched Gaussian and each component, keeping the fit with the lowest JS_π; see
            `fit_exact_starts`).

    Returns:
        The fitted Q (float64).
    """
    return fit_exact_starts(p, pi, steps, grid_size, None if start is None else [("given", start)]).q


def _lbfgs(log_p: Tensor, grid: Grid, pi: float, q: IsotropicGaussian, steps: int) -> IsotropicGaussian:
    """Minimise JS_π[P‖Q] on `grid` over the trainable `q` in place by L-BFGS; returns `q`."""
    optimiser = torch.optim.LBFGS(q.parameters(), lr=1.0, max_iter=steps, tolerance_grad=1e-12,
                                  tolerance_change=1e-14, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimiser.zero_grad()
        loss = grid_divergences(log_p, q.log_prob(grid.points), grid, pi)["js_pi"]
        loss.backward()
        return loss

    optimiser.step(closure)
    return q


class _Critics(nn.Module):
    """One MLP critic per class prior, evaluated together: 2 -> hidden -> hidden -> 1 logit, LeakyReLU.

    The weights of all critics are stacked so that a step of every fit costs about as much as a step
    of one (the tiny matrices leave the CPU idle between operations otherwise). Initialised like
    `nn.Linear`, from `generator`.
    """

    def __init__(self, num: int, hidden: int, generator: torch.Generator) -> None:
        super().__init__()
        shapes = [(2, hidden), (hidden, hidden), (hidden, 1)]
        self.weights = nn.ParameterList(
            nn.Parameter((torch.rand(num, i, o, generator=generator) * 2 - 1) / math.sqrt(i)) for i, o in shapes)
        self.biases = nn.ParameterList(
            nn.Parameter((torch.rand(num, 1, o, generator=generator) * 2 - 1) / math.sqrt(i)) for i, o in shapes)

    def forward(self, x: Tensor) -> Tensor:
        """Logits (num, B) of points x (num, B, 2): log D - log(1 - D)."""
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b, x, w)
            if i < len(self.weights) - 1:
                x = F.leaky_relu(x, 0.2)
        return x.squeeze(-1)


def fit_adversarial(p: GaussianMixture2D, pis: Sequence[float], steps: int = 1500, batch: int = 256,
                    generator: torch.Generator | None = None, critic_steps: int = 2, hidden: int = 64,
                    critic_lr: float = 2e-3, q_lr: float = 1e-2,
                    start: IsotropicGaussian | None = None) -> list[tuple[IsotropicGaussian, float]]:
    """Fit Q adversarially at each π: a critic D maximises V_π, Q minimises (1-π) E_Q log(1 - D(x)).

    The critic's loss is the π-weighted binary cross-entropy -[π E_P log D + (1-π) E_Q log(1 - D)]
    (equal real and fake batches); `critic_steps` critic updates precede each Q update, which
    backpropagates through reparameterised samples of Q. Both use Adam. The fits are independent
    (each π has its own critic, Q and samples) but run as one batched computation. The reported Q is
    the average of Q's parameters over the last quarter of the updates, which smooths the adversarial
    jitter.

    Args:
        p: the mixture P (only its samples are used).
        pis: the class priors π, each in (0, 1).
        steps: Q updates.
        batch: samples of P and of Q per π and step.
        generator: draws the critics' initial weights and every sample (seed it for determinism).
        critic_steps: critic updates per Q update.
        hidden: width of the critics' two hidden layers.
        critic_lr: the critics' Adam learning rate.
        q_lr: Q's Adam learning rate.
        start: the initial Q of every fit (default: the maximum-likelihood fit to 10 000 samples of P,
            the usual pre-training); not modified.

    Returns:
        Per π: the fitted Q (float32) and the critic's final JS_π estimate V_π(D, Q) + H(π) on 8192
        fresh samples of each (in expectation a lower bound on JS_π; sampling noise can exceed it).
    """
    for pi in pis:
        _check_pi(pi)
    generator = generator or torch.Generator().manual_seed(0)
    n = len(pis)
    q0 = (start or IsotropicGaussian.fit_samples(p.sample(10_000, generator))).copy(torch.float32)
    mean = nn.Parameter(q0.mean.detach().expand(n, 2).clone())  # (n, 2)
    log_scale = nn.Parameter(q0.log_scale.detach().expand(n).clone())  # (n,)
    critics = _Critics(n, hidden, generator)
    critic_opt = torch.optim.Adam(critics.parameters(), lr=critic_lr, betas=(0.5, 0.999))
    q_opt = torch.optim.Adam([mean, log_scale], lr=q_lr, betas=(0.5, 0.999))
    pi = torch.tensor(pis, dtype=torch.float32)  # (n,)

    def sample_p(size: int) -> Tensor:
        return p.sample(n * size, generator).view(n, size, 2)

    def sample_q(size: int, mean: Tensor, log_scale: Tensor) -> Tensor:
        noise = torch.randn(n, size, 2, generator=generator)
        return mean[:, None] + log_scale.exp()[:, None, None] * noise

    def value(real: Tensor, fake: Tensor) -> Tensor:
        """V_π(D, Q) per π (n,): the logits' log-sigmoids are log D and log(1 - D)."""
        return pi * F.logsigmoid(critics(real)).mean(1) + (1 - pi) * F.logsigmoid(-critics(fake)).mean(1)

    averaged, start_averaging = torch.zeros(n, 3), steps - max(1, steps // 4)
    with one_thread():
        for step in range(steps):
            for _ in range(critic_steps):
                critic_opt.zero_grad()
                # the fits are independent, so the sum's gradient is each fit's own
                (-value(sample_p(batch), sample_q(batch, mean, log_scale).detach()).sum()).backward()
                critic_opt.step()
            q_opt.zero_grad()
            ((1 - pi) * F.logsigmoid(-critics(sample_q(batch, mean, log_scale))).mean(1)).sum().backward()
            q_opt.step()
            if step >= start_averaging:
                averaged += torch.cat([mean.detach(), log_scale.detach()[:, None]], 1)
    averaged /= steps - start_averaging
    with torch.no_grad():
        estimates = value(sample_p(8192), sample_q(8192, averaged[:, :2], averaged[:, 2]))
    return [(IsotropicGaussian(a[:2], a[2]).requires_grad_(False), float(v) + binary_entropy(float(x)))
            for a, v, x in zip(averaged, estimates, pis)]


# ---------------------------------------------------------------------------------------------------
# The study


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation ρ: the Pearson correlation of the ranks (ties get their mean rank).

    Returns:
        ρ in [-1, 1]; NaN when either side is constant.
    """
    if len(x) != len(y) or len(x) < 2:
        raise UserError(f"spearman needs two sequences of equal length >= 2, got {len(x)} and {len(y)}")
    rx, ry = _ranks(x), _ranks(y)
    dx, dy = rx - rx.mean(), ry - ry.mean()
    denominator = math.sqrt(float((dx**2).sum() * (dy**2).sum()))
    return float((dx * dy).sum()) / denominator if denominator > 0 else math.nan


def _ranks(values: Sequence[float]) -> Tensor:
    v = torch.tensor(values, dtype=torch.float64)
    # the mean of the 1-based positions a value would take in sorted order: (#less + #less-or-equal + 1) / 2
    less = (v[None, :] < v[:, None]).sum(1)
    less_equal = (v[None, :] <= v[:, None]).sum(1)
    return (less + less_equal + 1).double() / 2


@dataclass
class FitRow(Row):
    """One fit of Q at one π, scored on a grid covering P and Q (`score`)."""

    pi: float
    method: str
    """"exact" or "adversarial"."""
    start: str
    """The exact fit's winning start (see `exact_starts`); "maximum likelihood" for adversarial fits."""
    mean: list[float]
    scale: float
    kl_p_q: float
    kl_q_p: float
    js_pi: float
    """Nats, like the KLs."""
    mass_p: float
    """The grid integral of P (≈ 1), and of Q below."""
    mass_q: float
    seconds: float
    """The fit's wall time; the adversarial fits run together and each gets an equal share."""
    js_pi_critic: float | None = None
    """Adversarial fits: the critic's estimate of JS_π (see `fit_adversarial`); exact fits have none."""

    def absent(self) -> tuple[str, ...]:
        return ("js_pi_critic",) if self.method == "exact" else ()


@dataclass
class GaussiansResult(Row):
    """What `run_gaussians` measured (the content of gaussians.json)."""

    size: str
    seed: int
    mixture: dict[str, Any]
    """The mixture P: its "kind", "seed", "weights", "means", "scales"."""
    moment_matched: dict[str, Any]
    """The maximum-likelihood fit's "mean", "scale", "kl_p_q", "kl_q_p"."""
    fits: list[FitRow]
    """One per method and π (π ascending), the exact fits first."""
    spearman: dict[str, dict[str, float]]
    """Spearman's ρ of each KL against π per method, e.g. {"adversarial": {"kl_p_q": ..., "kl_q_p": ...}}."""


def run_gaussians(out_dir: str | Path, pis: Sequence[float] = PIS_LOG, size: str | StudySize = "full",
                  seed: int = 0, mixture: str = "theis", mixture_seed: int | None = None) -> GaussiansResult:
    """Fit Q by both methods at every π, score the fits, write `gaussians.json` and two figures.

    The exact fits take the best of several starts (`fit_exact_starts`); the adversarial fits all start
    from the maximum-likelihood fit to samples of P and nothing of the exact divergences steers them.

    Writes into `out_dir`: `gaussians.json` (the result), `gaussians_fits.png` (each fitted Q's
    2-standard-deviation circle, coloured by π, over P's density, one panel per method) and
    `gaussians_kl.png` (KL[P‖Q] and KL[Q‖P] against π on a log axis for both methods); both also show
    the maximum-likelihood fit.

    Args:
        out_dir: output folder (created).
        pis: class priors, each in (0, 1).
        size: a `StudySize`, or its name (`SIZES`): "tiny" (for tests), "demo" or "full".
        seed: seeds the adversarial fits (and the random mixture unless `mixture_seed` is given).
        mixture: "theis" (Theis et al.'s mixture, `GaussianMixture2D.theis`) or "random" (a mixture
            drawn by the same recipe with numpy's default generator, `GaussianMixture2D`).
        mixture_seed: draws the mixture (default: `THEIS_SEED` for "theis", `seed` for "random").

    Returns:
        The fits and their scores (`GaussiansResult`), as written to gaussians.json.

    Raises:
        UserError: an unknown size or mixture, fewer than two π, or a π outside (0, 1).
    """
    cfg = study_size(SIZES, size)
    pis = sorted(float(pi) for pi in pis)
    if len(pis) < 2:  # Spearman's ρ against π needs two
        raise UserError(f"the study needs at least two class priors pi, got {len(pis)}")
    for pi in pis:
        _check_pi(pi)
    if mixture_seed is None:
        mixture_seed = THEIS_SEED if mixture == "theis" else seed
    p = GaussianMixture2D.named(mixture, mixture_seed)
    rows: list[FitRow] = []
    for pi in pis:
        started = time.perf_counter()
        fit = fit_exact_starts(p, pi, cfg.exact_steps, cfg.grid_size)
        rows.append(_row(p, fit.q, pi, "exact", fit.start, cfg.grid_size, time.perf_counter() - started))
    started = time.perf_counter()
    fits = fit_adversarial(p, pis, cfg.adversarial_steps, cfg.batch, torch.Generator().manual_seed(seed),
                           cfg.critic_steps, cfg.hidden)
    seconds = (time.perf_counter() - started) / len(pis)  # the fits run together: each gets an equal share
    for pi, (q, estimate) in zip(pis, fits):
        rows.append(_row(p, q, pi, "adversarial", "maximum likelihood", cfg.grid_size, seconds, estimate))
    ml = p.moment_matched()
    result = GaussiansResult(
        size=cfg.name,
        seed=seed,
        mixture={"kind": p.kind, "seed": p.seed, "weights": p.weights.tolist(), "means": p.means.tolist(),
                 "scales": p.scales.tolist()},
        moment_matched={"mean": ml.mean.tolist(), "scale": float(ml.scale),
                        **{k: v for k, v in score(p, ml, 0.5, cfg.grid_size).items() if k.startswith("kl")}},
        fits=rows,
        spearman={method: {kl: spearman(pis, [getattr(r, kl) for r in rows if r.method == method])
                           for kl in ("kl_p_q", "kl_q_p")} for method in ("exact", "adversarial")},
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_results(out / "gaussians.json", result)
    plot_gaussian_fits(p, rows, result.moment_matched, out / "gaussians_fits.png")
    plot_gaussian_kls(rows, result.moment_matched, out / "gaussians_kl.png")
    return result


def _row(p: GaussianMixture2D, q: IsotropicGaussian, pi: float, method: str, start: str, grid_size: int,
         seconds: float, js_pi_critic: float | None = None) -> FitRow:
    return FitRow(pi=pi, method=method, start=start, mean=q.mean.tolist(), scale=float(q.scale),
                  **score(p, q, pi, grid_size), seconds=seconds, js_pi_critic=js_pi_critic)
