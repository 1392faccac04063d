import itertools
import json
import math

import numpy as np
import pytest
import torch

from seqgen.errors import UserError
from seqgen.experiments.gaussians import (
    PIS_LOG,
    GaussianMixture2D,
    GaussiansResult,
    Grid,
    IsotropicGaussian,
    fit_exact,
    fit_exact_starts,
    grid_divergences,
    run_gaussians,
    score,
    spearman,
)
from seqgen.experiments.report import plain
from seqgen.functional import binary_entropy


@pytest.fixture(scope="module")
def mixture() -> GaussianMixture2D:
    return GaussianMixture2D(seed=0)


@pytest.fixture(scope="module")
def theis() -> GaussianMixture2D:
    return GaussianMixture2D.theis()


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[GaussiansResult, object]:
    out = tmp_path_factory.mktemp("gaussians")
    return run_gaussians(out, size="tiny", seed=0), out


def test_mixture_is_seeded_and_follows_the_recipe(mixture: GaussianMixture2D) -> None:
    again = GaussianMixture2D(seed=0)
    assert torch.equal(mixture.means, again.means) and torch.equal(mixture.weights, again.weights)
    assert not torch.equal(GaussianMixture2D(seed=1).means, mixture.means)
    assert mixture.means.shape == (10, 2)
    assert (mixture.kind, mixture.seed) == ("random", 0)
    assert float(mixture.weights.sum()) == pytest.approx(1.0)
    assert bool(((mixture.scales > 0.5) & (mixture.scales <= 1.0)).all())
    draws = mixture.sample(4000, torch.Generator().manual_seed(0))
    assert torch.equal(draws, mixture.sample(4000, torch.Generator().manual_seed(0)))
    assert draws.mean(0).double() == pytest.approx((mixture.weights @ mixture.means), abs=0.1)


def test_theis_mixture_is_numpys_legacy_stream_in_their_order(theis: GaussianMixture2D) -> None:
    # recomputed independently: one legacy stream, weights, then variances, then 100 rows of means
    rng = np.random.RandomState(22)
    weights = rng.dirichlet([0.5] * 10)
    variances = 1.0 / (rng.rand(10) + 1.0) ** 2
    means = rng.randn(100, 10) * 1.5
    assert (theis.kind, theis.seed) == ("theis", 22)
    assert np.array_equal(theis.weights.numpy(), weights)
    np.testing.assert_allclose(theis.scales.numpy() ** 2, variances, rtol=1e-14)
    assert np.array_equal(theis.means.numpy(), means[:2].T)  # column k of the first two rows is mean k
    # a few literal values of that stream, so that a change of numpy's legacy generator shows too
    assert float(theis.weights[6]) == pytest.approx(0.28109950916556048, rel=1e-12)
    assert float(theis.scales[0]) ** 2 == pytest.approx(0.5196754292866373, rel=1e-12)
    assert theis.means[4].tolist() == pytest.approx([3.7487649610171117, 0.8923926761495373], rel=1e-12)
    assert not torch.equal(GaussianMixture2D.theis(seed=23).means, theis.means)
    with pytest.raises(UserError, match="component"):
        GaussianMixture2D.theis(num_components=0)
    with pytest.raises(UserError, match="mixture"):
        GaussianMixture2D.named("uniform", 0)


def test_exact_fit_on_theis_mixture_leaves_maximum_likelihood_for_one_mode(theis: GaussianMixture2D) -> None:
    ml = score(theis, theis.moment_matched(), 0.5)["kl_p_q"]
    small = score(theis, fit_exact(theis, 0.01, steps=40, grid_size=120), 0.01)
    assert small["kl_p_q"] <= 1.05 * ml
    fit = fit_exact_starts(theis, 0.5, steps=40, grid_size=120)
    assert score(theis, fit.q, 0.5)["kl_p_q"] >= 2 * ml
    again = fit_exact_starts(theis, 0.5, steps=40, grid_size=120)
    assert (again.start, again.js_pi) == (fit.start, fit.js_pi)
    assert torch.equal(again.q.mean, fit.q.mean) and torch.equal(again.q.log_scale, fit.q.log_scale)
    # at π = 0.05 the moment-matched start alone stays on the broad local optimum; the other starts
    # find the one-mode fit with a lower JS_π, so the search over starts is what finds it
    broad = fit_exact(theis, 0.05, steps=40, grid_size=120, start=theis.moment_matched())
    best = fit_exact_starts(theis, 0.05, steps=40, grid_size=120)
    assert best.start.startswith("component")
    assert best.js_pi < score(theis, broad, 0.05)["js_pi"] - 1e-3
    assert score(theis, broad, 0.05)["kl_p_q"] <= 1.1 * ml < score(theis, best.q, 0.05)["kl_p_q"] / 2


def test_densities_are_normalised_on_the_grid(mixture: GaussianMixture2D) -> None:
    q = IsotropicGaussian(torch.tensor([3.0, -2.0], dtype=torch.float64), math.log(0.3))
    grid = Grid.covering(mixture, 100, q)
    assert float(grid.integrate(mixture.log_prob(grid.points).exp())) == pytest.approx(1.0, abs=1e-6)
    assert float(grid.integrate(q.log_prob(grid.points).exp().detach())) == pytest.approx(1.0, abs=1e-6)
    # the grid's E_P log P agrees with a Monte Carlo estimate from samples
    x = mixture.sample(100_000, torch.Generator().manual_seed(1)).double()
    log_p = mixture.log_prob(grid.points)
    assert float(grid.integrate(log_p.exp() * log_p)) == pytest.approx(float(mixture.log_prob(x).mean()), abs=0.02)


def test_rsample_is_reparameterised() -> None:
    q = IsotropicGaussian(torch.tensor([1.0, -2.0]), math.log(0.5)).copy(torch.float32)
    x = q.rsample(20_000, torch.Generator().manual_seed(0))
    draws = x.detach()
    assert draws.mean(0).tolist() == pytest.approx([1.0, -2.0], abs=0.02)
    assert float((draws - draws.mean(0)).std()) == pytest.approx(0.5, abs=0.01)
    x.sum().backward()  # d/d mean of Σ x = n per coordinate
    assert q.mean.grad.tolist() == pytest.approx([20_000.0, 20_000.0])
    assert q.log_scale.grad is not None


def test_divergences_of_a_distribution_to_itself_vanish(mixture: GaussianMixture2D) -> None:
    q = mixture.moment_matched()
    grid = Grid.covering(mixture, 150, q)
    log_q = q.log_prob(grid.points).detach()
    same = grid_divergences(log_q, log_q, grid, 0.3)
    assert all(abs(float(same[k])) < 1e-10 for k in ("kl_p_q", "kl_q_p", "js_pi"))
    other = grid_divergences(mixture.log_prob(grid.points), log_q, grid, 0.3)
    assert 0 < float(other["js_pi"]) < binary_entropy(0.3)
    assert float(other["kl_p_q"]) > 0 and float(other["kl_q_p"]) > 0


def test_moment_matched_gaussian_is_the_maximum_likelihood_fit(mixture: GaussianMixture2D) -> None:
    ml = mixture.moment_matched()
    best = score(mixture, ml, 0.5)["kl_p_q"]
    for d_mean, d_log_scale in ((0.1, 0.0), (0.0, 0.05), (0.0, -0.05)):
        other = IsotropicGaussian(ml.mean.detach() + d_mean, ml.log_scale.detach() + d_log_scale)
        assert score(mixture, other, 0.5)["kl_p_q"] > best


def test_exact_fit_lowers_js_and_approaches_maximum_likelihood_for_small_pi(mixture: GaussianMixture2D) -> None:
    ml = mixture.moment_matched()
    far = IsotropicGaussian(torch.tensor([-1.0, -1.0], dtype=torch.float64), math.log(0.6))
    for pi in (0.5, 0.9):
        fitted = fit_exact(mixture, pi, steps=40, grid_size=120, start=far)
        assert score(mixture, fitted, pi)["js_pi"] < score(mixture, far, pi)["js_pi"] - 0.01
    small = fit_exact(mixture, 0.02, steps=40, grid_size=120)
    assert score(mixture, small, 0.02)["js_pi"] <= score(mixture, ml, 0.02)["js_pi"]
    assert torch.allclose(small.mean.detach(), ml.mean.detach(), atol=0.05)
    assert float(small.scale) == pytest.approx(float(ml.scale), abs=0.02)


def test_spearman_uses_ranks() -> None:
    assert spearman([1, 2, 3, 4], [1, 8, 27, 64]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 1, 2]) == pytest.approx(-0.8)
    assert spearman([1, 2, 3], [1, 1, 2]) == pytest.approx(math.sqrt(3) / 2)  # tied ranks 1.5, 1.5, 3
    with pytest.raises(UserError):
        spearman([1, 2], [1])


def test_tiny_study_shows_the_trend(tiny_study: tuple[GaussiansResult, object]) -> None:
    result, out = tiny_study
    assert (result.mixture["kind"], result.mixture["seed"]) == ("theis", 22)
    for method in ("exact", "adversarial"):
        rows = [r for r in result.fits if r.method == method]
        assert [r.pi for r in rows] == list(PIS_LOG)
        assert all(abs(r.mass_p - 1) < 1e-3 and abs(r.mass_q - 1) < 1e-3 for r in rows)
    exact = [r for r in result.fits if r.method == "exact"]
    kl_q_p, kl_p_q = [r.kl_q_p for r in exact], [r.kl_p_q for r in exact]
    assert all(b <= a + 1e-4 for a, b in itertools.pairwise(kl_q_p))
    assert all(b >= a - 1e-4 for a, b in itertools.pairwise(kl_p_q))
    ml = result.moment_matched["kl_p_q"]
    assert kl_p_q[0] <= 1.05 * ml and kl_p_q[-1] >= 2 * ml  # from maximum likelihood to one mode
    assert result.spearman["adversarial"]["kl_q_p"] < 0 < result.spearman["adversarial"]["kl_p_q"]
    saved = json.loads((out / "gaussians.json").read_text())
    assert saved["fits"] == [plain(r) for r in result.fits] and "js_pi_critic" not in saved["fits"][0]
    assert saved["fits"][-1]["js_pi_critic"] == result.fits[-1].js_pi_critic
    for name in ("gaussians_fits.png", "gaussians_kl.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_study_on_the_random_mixture(tmp_path) -> None:
    result = run_gaussians(tmp_path, pis=(0.1, 0.9), size="tiny", seed=3, mixture="random")
    mixture = GaussianMixture2D(seed=3)
    assert (result.mixture["kind"], result.mixture["seed"], result.seed) == ("random", 3, 3)
    assert result.mixture["weights"] == mixture.weights.tolist()
    assert [(r.method, r.pi) for r in result.fits] == [("exact", 0.1), ("exact", 0.9),
                                                                ("adversarial", 0.1), ("adversarial", 0.9)]
    exact = [r for r in result.fits if r.method == "exact"]
    assert exact[1].kl_q_p < exact[0].kl_q_p
    other = run_gaussians(tmp_path / "other", pis=(0.1, 0.9), size="tiny", mixture="random", mixture_seed=4)
    assert other.mixture["weights"] == GaussianMixture2D(seed=4).weights.tolist()


def test_study_rejects_bad_arguments(tmp_path) -> None:
    with pytest.raises(UserError, match="size"):
        run_gaussians(tmp_path, size="huge")
    with pytest.raises(UserError, match="pi"):
        run_gaussians(tmp_path, pis=(0.5, 1.0), size="tiny")
    with pytest.raises(UserError, match="two class priors"):
        run_gaussians(tmp_path, pis=(0.5,), size="tiny")
    with pytest.raises(UserError, match="mixture"):
        run_gaussians(tmp_path, size="tiny", mixture="uniform")
