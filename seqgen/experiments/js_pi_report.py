"""The JS_π study's expected outcomes and what it writes: the checks, the plain-text tables, results.json,
report.md and its figures (`seqgen.experiments.js_pi` runs the study)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from seqgen.experiments.plots import plot_kl_against_pi, plot_oracle_tradeoff
from seqgen.experiments.report import (
    Row,
    aligned,
    checks_summary,
    figure_links,
    markdown_document,
    markdown_table,
    number,
    spread,
    write_results,
)

if TYPE_CHECKING:
    from seqgen.experiments.gaussians import GaussiansResult
    from seqgen.experiments.js_pi import JsPiResult, OracleStep, ToyStep

METHODS = ("adversarial", "adversarial_optimal", "exact")
"""The toy's JS_π fits: adversarial with a learned critic, adversarial with the optimal critic, exact descent."""


def _grid(pis: Sequence[float]) -> str:
    return ", ".join(f"{pi:g}" for pi in pis)


SMALL_PI, LARGE_PI = 0.01, 0.25
"""Continuous step: at π <= SMALL_PI the fit should be maximum likelihood's, at π >= LARGE_PI on one mode."""
RHO_TARGET = 0.9
"""How monotone each KL must be in π, per seed: ρ(KL[P‖Q], π) >= 0.9 and ρ(KL[Q‖P], π) <= -0.9."""
EXACT_MATCH = 0.2
"""How close an optimal-critic run's final JS_π must come to the exact fit's at the same budget (relative)."""


@dataclass
class Check(Row):
    """One expected outcome of the study, measured."""

    step: str
    """"continuous" or "toy"."""
    method: str
    claim: str
    value: float
    passed: bool


def checks(continuous: GaussiansResult | None, toy: ToyStep | None) -> list[Check]:
    """As π grows, KL[Q‖P] should fall and KL[P‖Q] rise: Spearman's ρ of each against π, per method (and
    on the toy per seed, to `RHO_TARGET`); the toy's JS_π fits should lower JS_π from the
    teacher-forcing start at every π, and with D* end within `EXACT_MATCH` of exact descent."""
    checks = []
    if continuous is not None:
        ml = continuous.moment_matched["kl_p_q"]
        for method in ("exact", "adversarial"):
            rows = [r for r in continuous.fits if r.method == method]
            low = [r.kl_p_q / ml for r in rows if r.pi <= SMALL_PI]
            high = [r.kl_p_q / ml for r in rows if r.pi >= LARGE_PI]
            if low:
                checks.append(Check("continuous", method, f"KL[P‖Q] within 5% of maximum likelihood's at "
                                    f"π <= {SMALL_PI:g} (largest ratio)", max(low), max(low) <= 1.05))
            if high:
                checks.append(Check("continuous", method, f"on one mode at π >= {LARGE_PI:g}: KL[P‖Q] at least "
                                    "twice maximum likelihood's (smallest ratio)", min(high), min(high) >= 2))
            rho = continuous.spearman[method]
            checks.append(Check("continuous", method, "ρ(KL[Q‖P], π) < 0 (mode-seeking grows with π)",
                                rho["kl_q_p"], rho["kl_q_p"] < 0))
            checks.append(Check("continuous", method, "ρ(KL[P‖Q], π) > 0 (coverage falls with π)",
                                rho["kl_p_q"], rho["kl_p_q"] > 0))
    if toy is None:
        return checks
    for method in METHODS:
        by_seed = toy.spearman[method]
        worst_pq = min(rho["kl_p_q"] for rho in by_seed.values())
        worst_qp = max(rho["kl_q_p"] for rho in by_seed.values())
        every = "in every seed" if method != "exact" else "(deterministic)"
        checks.append(Check("toy", method, f"ρ(KL[P‖Q], π) >= {RHO_TARGET} {every}", worst_pq,
                            worst_pq >= RHO_TARGET))
        checks.append(Check("toy", method, f"ρ(KL[Q‖P], π) <= -{RHO_TARGET} {every}", worst_qp,
                            worst_qp <= -RHO_TARGET))
        rows = [r for r in toy.runs if r.method == method]
        worst = max(r.js_pi - r.js_pi_start for r in rows)
        checks.append(Check("toy", method, "JS_π lowered from the teacher-forcing start at every π (largest "
                            "change)", worst, worst < 0))
    exact = {r.pi: r.js_pi for r in toy.runs if r.method == "exact"}
    optimal = [r for r in toy.runs if r.method == "adversarial_optimal"]
    if optimal:
        gap = max(abs(r.js_pi - exact[r.pi]) / exact[r.pi] for r in optimal)
        checks.append(Check("toy", "adversarial_optimal", f"final JS_π within {EXACT_MATCH:.0%} of the exact "
                            "fit's at the same budget (largest relative gap)", gap, gap <= EXACT_MATCH))
    return checks


# ---------------------------------------------------------------------------------------------------
# Output


TOY_COLUMNS = (("kl_p_q", "KL[P‖Q]"), ("kl_q_p", "KL[Q‖P]"), ("js_pi", "JS_π"),
               ("js_pi_start", "JS_π at start"), ("js_pi_over_pi", "JS_π/π"),
               ("js_pi_over_1mpi", "JS_π/(1−π)"), ("critic_js_pi", "critic's JS_π"),
               ("critic_error", "critic error"), ("critic_gradient_cosine", "critic's gradient cos"),
               ("entropy_q", "H(Q)"), ("q_mass_outside", "mass outside"))


def _pi(pi: float | None) -> str:
    return "—" if pi is None else f"{pi:g}"


def _toy_rows(toy: ToyStep) -> tuple[list[str], list[list[str]]]:
    """Every toy run."""
    header = ["run", "π", *(title for _, title in TOY_COLUMNS), "seconds"]
    rows = [[r.name, _pi(r.pi), *(number(getattr(r, k)) for k, _ in TOY_COLUMNS), f"{r.seconds:.1f}"]
            for r in toy.runs]
    return header, rows


def _toy_summary_rows(toy: ToyStep) -> tuple[list[str], list[list[str]]]:
    """Per method and π: each divergence's mean over seeds [min, max]."""
    header = ["method", "π", "KL[P‖Q]", "KL[Q‖P]", "JS_π", "JS_π at start"]
    teacher = toy.runs[0]
    rows = [["teacher forcing", "—", number(teacher.kl_p_q), number(teacher.kl_q_p), "—", "—"]]
    for method in METHODS:
        for pi in dict.fromkeys(r.pi for r in toy.runs if r.method == method):
            runs = [r for r in toy.runs if r.method == method and r.pi == pi]
            rows.append([method, f"{pi:g}", *(spread([getattr(r, k) for r in runs]) for k in ("kl_p_q", "kl_q_p",
                                                                                              "js_pi")),
                         number(runs[0].js_pi_start)])
    return header, rows


def _spearman_rows(spearman: dict[str, dict[str, float]]) -> tuple[list[str], list[list[str]]]:
    header = ["method", "ρ(KL[P‖Q], π)", "ρ(KL[Q‖P], π)"]
    return header, [[m, number(rho["kl_p_q"], 2), number(rho["kl_q_p"], 2)] for m, rho in spearman.items()]


def _seeds_spearman_rows(toy: ToyStep) -> tuple[list[str], list[list[str]]]:
    """Per method: Spearman's ρ of each KL against π, mean over seeds [min, max], and the seeds' values."""
    header = ["method", "ρ(KL[P‖Q], π)", "ρ(KL[Q‖P], π)", "per seed (P‖Q / Q‖P)"]
    rows = []
    for method, by_seed in toy.spearman.items():
        rows.append([method, *(spread([rho[kl] for rho in by_seed.values()], 2) for kl in ("kl_p_q", "kl_q_p")),
                     ", ".join(f"{rho['kl_p_q']:+.2f} / {rho['kl_q_p']:+.2f}" for rho in by_seed.values())])
    return header, rows


def _continuous_rows(continuous: GaussiansResult) -> tuple[list[str], list[list[str]]]:
    header = ["method", "π", "KL[P‖Q]", "KL[Q‖P]", "JS_π", "critic's JS_π", "scale of Q"]
    rows = [[r.method, f"{r.pi:g}", number(r.kl_p_q), number(r.kl_q_p), number(r.js_pi), number(r.js_pi_critic),
             number(r.scale)] for r in sorted(continuous.fits, key=lambda r: (r.method, r.pi))]
    ml = continuous.moment_matched
    rows.append(["maximum likelihood", "—", number(ml["kl_p_q"]), number(ml["kl_q_p"]), "—", "—",
                 number(ml["scale"])])
    return header, rows


def _oracle_rows(oracle: OracleStep) -> tuple[list[str], list[list[str]]]:
    header = ["run", "π", "NLL_oracle", "NLL_test", "TF curve's NLL_test there", "distance to the curve",
              "seconds"]
    rows = [[r.name, _pi(r.pi), number(r.nll_oracle), number(r.nll_test), number(r.nll_test_tf_curve),
             number(r.distance_to_tf_curve), f"{r.seconds:.1f}"] for r in oracle.runs]
    rows.append(["oracle itself", "—", number(oracle.oracle["nll_oracle_own_samples"]), "—", "—", "—", "—"])
    return header, rows


def _sweep_rows(oracle: OracleStep) -> tuple[list[str], list[list[str]]]:
    return (["α", "NLL_oracle", "NLL_test"],
            [[f"{r['alpha']:g}", number(r["nll_oracle"]), number(r["nll_test"])] for r in oracle.sweep])


def text_table(result: JsPiResult) -> str:
    lines = []
    if result.continuous:
        lines += ["continuous: one Gaussian Q fitted to a 2-D mixture P (nats)",
                  *aligned(*_continuous_rows(result.continuous)),
                  *aligned(*_spearman_rows(result.continuous.spearman)), ""]
    if result.toy:
        info = result.toy.toy
        lines += [(f"sequences: toy P ({info['vocab_size']} symbols, length {info['length']}), generator "
                   f"{info['model']}; exact divergences of Q from P (nats)"),
                  *aligned(*_toy_summary_rows(result.toy)), *aligned(*_seeds_spearman_rows(result.toy)), ""]
    if result.oracle:
        info = result.oracle.oracle
        lines += [f"oracle LSTM ({info['vocab_size']} tokens, length {info['length']}), nats per token:",
                  *aligned(*_oracle_rows(result.oracle)), ""]
    lines += [f"{'pass' if c.passed else 'MISS'}  {c.step}, {c.method}: {c.claim}: {c.value:+.4f}"
              for c in result.checks]
    if result.checks:
        lines.append(checks_summary([c.passed for c in result.checks]))
    return "\n".join(lines).rstrip()


def write(result: JsPiResult, out: Path) -> dict[str, Path]:
    files = {"results": out / "results.json", "report": out / "report.md"}
    write_results(files["results"], {"continuous": result.continuous, "toy": result.toy,
                                     "oracle": result.oracle, "checks": result.checks})
    if result.continuous:
        files["gaussians_fits"] = out / "continuous" / "gaussians_fits.png"
        files["gaussians_kl"] = out / "continuous" / "gaussians_kl.png"
    if result.toy:
        files["toy_kl_vs_pi"] = out / "toy_kl_vs_pi.png"
        teacher = result.toy.runs[0]
        plot_kl_against_pi(result.toy.runs, {"kl_p_q": teacher.kl_p_q, "kl_q_p": teacher.kl_q_p},
                           files["toy_kl_vs_pi"])
    if result.oracle:
        files["oracle_nll"] = out / "oracle_nll.png"
        plot_oracle_tradeoff(result.oracle.sweep, result.oracle.runs,
                             result.oracle.oracle["nll_oracle_own_samples"], files["oracle_nll"])
    files["report"].write_text(_report(result, files, out), encoding="utf-8")
    return files


def _report(result: JsPiResult, files: dict[str, Path], out: Path) -> str:
    lines = ["# The JS_π interpolation, measured", "",
             ("JS_π[P‖Q] = π·KL[P‖M] + (1 − π)·KL[Q‖M] with M = π·P + (1 − π)·Q behaves like KL[P‖Q] "
              "(maximum likelihood) as π → 0 and like KL[Q‖P] as π → 1. Where the model class cannot hold "
              "P, fits by JS_π should move from covering P's mass to seeking its modes as π grows: "
              "KL[Q‖P] falls and KL[P‖Q] rises. All divergences are in nats."), ""]
    if result.continuous:
        c = result.continuous
        lines += ["## 1. Continuous: one Gaussian fitted to a 2-D mixture", "",
                  (f"P: a mixture of {len(c.mixture['weights'])} isotropic Gaussians "
                   + ("drawn as Theis et al. (2016) draw theirs" if c.mixture["kind"] == "theis" else
                      "with random weights, means and scales")
                   + f" (mixture seed {c.mixture['seed']}); Q: one isotropic Gaussian, fitted by exact JS_π "
                   "(numerical integration, L-BFGS from the maximum-likelihood fit and from every component, "
                   "the best kept) and adversarially (an MLP critic, reparameterised samples of Q, from the "
                   f"maximum-likelihood fit); size `{c.size}`, adversarial seed {c.seed} "
                   "(`seqgen.experiments.gaussians`)."), "",
                  markdown_table(*_continuous_rows(c)), "", markdown_table(*_spearman_rows(c.spearman)), ""]
    if result.toy:
        info = result.toy.toy
        budget = info["budget"]
        lines += ["## 2. Sequences: an enumerable toy and a generator too small for it", "",
                  (f"P: a random `{info['kind']}` table over {info['vocab_size']} symbols × length "
                   f"{info['length']} (Dirichlet concentration {info['concentration']:g}, seed "
                   f"{info['seed']}), "
                   f"H(P) = {info['entropy_p']:.4f}, multi-information {info['multi_information_p']:.4f}; "
                   f"{info['num_train']} training samples. Generator: {info['model']}. Teacher forcing "
                   "trains it first. From that model, at each π: JS_π adversarial training with a learned "
                   f"`{info['critic']}` critic (`adversarial`) and with the optimal critic D* computed exactly "
                   f"(`adversarial_optimal`), each with seeds {', '.join(map(str, info['seeds']))}, the "
                   f"`{info['estimator']}` gradient estimator and the minimax generator loss; and exact "
                   "gradient descent on JS_π summed over the support (`exact`: what the objective asks of "
                   "this model class, with no critic and no sampled gradient). All three get the same "
                   f"optimiser budget: AdamW, {budget['steps']} steps, learning rate {budget['lr']:g} "
                   f"({budget['schedule']} schedule). Q is the model conditioned on the support; the "
                   "learned critic's JS_π estimate V_π + H(π), its Q-weighted logit error against D* and "
                   "the cosine of the gradient it implies with ∇JS_π are read from the last logged tenth "
                   "of training."), "",
                  "Means over seeds [min, max]:", "", markdown_table(*_toy_summary_rows(result.toy)), "",
                  markdown_table(*_seeds_spearman_rows(result.toy)), "", "Every run:", "",
                  markdown_table(*_toy_rows(result.toy)), ""]
    if result.oracle:
        info = result.oracle.oracle
        source = f"the weights in `{info['weights']}`" if info["weights"] else "random N(0, 1) weights"
        lines += ["## 3. Oracle LSTM", "",
                  (f"Oracle: {info['vocab_size']} tokens, length {info['length']}, {source}; "
                   f"{info['num_train']} training sequences; each figure over {info['num_samples']} "
                   "sequences, nats per token. NLL_oracle = −E_Q log P / T (quality), NLL_test = "
                   "−E_P log Q / T (coverage). The last column is NLL_test of teacher forcing's "
                   "temperature curve (below) at the run's NLL_oracle: a run below it has a better "
                   "quality-coverage trade-off than teacher forcing at some temperature."), "",
                  markdown_table(*_oracle_rows(result.oracle)), "", "Teacher forcing over inverse temperatures α:",
                  "", markdown_table(*_sweep_rows(result.oracle)), ""]
    lines += ["## Reading", "", _reading(result), "", "## Checks", ""]
    lines += [f"- {'pass' if c.passed else '**miss**'}: {c.step}, {c.method}: {c.claim}: {c.value:+.4f}"
              for c in result.checks]
    return markdown_document([*lines, *figure_links(files, out)])


def _trend(rho: dict[str, float]) -> str:
    """How a method's two KLs moved with π, from their Spearman ρ."""
    falls, rises = rho["kl_q_p"] < 0, rho["kl_p_q"] > 0
    verdict = ("the expected trend" if falls and rises else
               "half of the expected trend" if falls or rises else "the opposite of the expected trend")
    return (f"{verdict} (ρ(KL[Q‖P], π) = {number(rho['kl_q_p'], 2)}, "
            f"ρ(KL[P‖Q], π) = {number(rho['kl_p_q'], 2)})")


def _reading(result: JsPiResult) -> str:
    """What the numbers show, step by step; a trend that is missing is said to be missing."""
    parts = []
    if result.continuous:
        rho = result.continuous.spearman
        parts.append(f"Continuous: the exact fits show {_trend(rho['exact'])}, the adversarial fits "
                     f"{_trend(rho['adversarial'])}.")
    if result.toy:
        runs, summary = result.toy.runs, result.toy.spearman_summary
        teacher = runs[0]
        parts.append(f"Sequences: teacher forcing ends at KL[P‖Q] = {teacher.kl_p_q:.4f} and KL[Q‖P] = "
                     f"{teacher.kl_q_p:.4f}.")
        names = {"exact": "exact JS_π descent", "adversarial": "adversarial training with a learned critic",
                 "adversarial_optimal": "adversarial training with D*"}
        for method in METHODS:
            rows = [r for r in runs if r.method == method]
            rho = {kl: summary[method][kl]["mean"] for kl in ("kl_p_q", "kl_q_p")}
            lowered = sum(r.js_pi < r.js_pi_start for r in rows)
            parts.append(f"From there, {names[method]} shows {_trend(rho)} (mean over seeds; worst seed "
                         f"{summary[method]['kl_p_q']['min']:+.2f} / {summary[method]['kl_q_p']['max']:+.2f}), "
                         f"and lowers JS_π below the teacher-forcing model's in {lowered} of {len(rows)} runs.")
    if result.oracle:
        adversarial = [r for r in result.oracle.runs if r.method == "adversarial"]
        below = [r for r in adversarial if r.nll_test_tf_curve is not None and r.nll_test < r.nll_test_tf_curve]
        off = [r for r in adversarial if r.nll_test_tf_curve is None]
        parts.append(
            f"Oracle: {len(below)} of {len(adversarial)} JS_π runs lie below teacher forcing's temperature "
            "curve (a better quality-coverage trade-off than tempering the teacher-forcing model)"
            + (f" (π = {_grid([r.pi for r in below])})" if below else "")
            + (f"; {len(off)} lie outside the curve's range of NLL_oracle" if off else "") + ".")
    misses = [c for c in result.checks if not c.passed]
    parts.append("Missed: " + "; ".join(f"{c.step}, {c.method} ({c.claim.split(' (')[0]})"
                                        for c in misses) + "." if misses else "Every expected trend is met.")
    return " ".join(parts)
