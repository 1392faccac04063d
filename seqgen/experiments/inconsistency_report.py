"""The inconsistency study's expected outcomes and what it writes: the checks, the plain-text table,
results.json, report.md and its figures (`seqgen.experiments.inconsistency` runs the study)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from seqgen.data.synthetic import ToyDistribution
from seqgen.experiments.plots import plot_heatmaps, plot_kl_against_epsilon
from seqgen.experiments.report import (
    Row,
    aligned,
    checks_summary,
    figure_links,
    markdown_document,
    markdown_table,
    write_results,
)
from seqgen.metrics.exact import kl
from seqgen.metrics.scheduled_sampling import closed_form_optimum, two_token

if TYPE_CHECKING:
    from seqgen.experiments.inconsistency import StudyResult, ToyRun

KL_TOLERANCE = 0.02
"""Nats: how close a run must come to its population optimum (P, ∏_t P_t or Q*_ε) to count as there."""
MULTI_INFORMATION_TOLERANCE = 0.10
"""Relative: how close KL[P‖Q] of an ε = 0 run must come to P's multi-information."""


@dataclass
class Check(Row):
    """One expected outcome of the study, measured on the run it concerns."""

    run: str
    claim: str
    value: float
    target: float
    passed: bool


def checks(runs: list[ToyRun], toy: dict[str, float]) -> list[Check]:
    """The study's claims, each measured on the runs it concerns."""
    mi = toy["multi_information_p"]
    out = []
    for r in runs:
        if r.method == "teacher_forcing":
            out.append(_check(r, "KL[P‖Q] ≤ 0.02 (teacher forcing recovers P)", r.kl_p_q, KL_TOLERANCE))
        elif r.closed_form_epsilon == 0.0:
            out.append(_check(r, "KL[Q‖∏_t P_t] ≤ 0.02 (ε = 0 learns the product of the marginals)",
                              r.kl_q_prod_marginals, KL_TOLERANCE))
            out.append(_check(r, "|KL[P‖Q] − I(P)| / I(P) ≤ 10% (its KL[P‖Q] is P's multi-information)",
                              abs(r.kl_p_q - mi) / mi if mi > 0 else float("nan"), MULTI_INFORMATION_TOLERANCE))
        if r.epsilon is not None and r.kl_q_closed_form is not None:
            out.append(_check(r, "KL[Q‖Q*_ε] ≤ 0.02 (the closed-form optimum)", r.kl_q_closed_form,
                              KL_TOLERANCE))
    return out


def _check(run: ToyRun, claim: str, value: float, target: float) -> Check:
    return Check(run=run.name, claim=claim, value=value, target=target, passed=value <= target)


COLUMNS = (("kl_p_q", "KL[P‖Q]"), ("kl_q_p", "KL[Q‖P]"), ("kl_q_prod_marginals", "KL[Q‖∏P_t]"),
           ("kl_q_closed_form", "KL[Q‖Q*_ε]"), ("kl_p_closed_form", "KL[P‖Q*_ε]"),
           ("q_mass_outside", "mass outside"), ("seconds", "seconds"))


def _setting(method: str, epsilon: float | None) -> str:
    if method == "teacher_forcing":
        return "ε = 1 (always gold)"
    return f"ε = {epsilon:g}" if epsilon is not None else "ε annealed 1 → 0"


def _cell(value: float | None, key: str) -> str:
    return "—" if value is None else f"{value:.4f}" if key != "seconds" else f"{value:.1f}"


def _rows(result: StudyResult) -> tuple[list[str], list[list[str]]]:
    header = ["run", "setting", *(title for _, title in COLUMNS)]
    rows = [[r.name, _setting(r.method, r.epsilon), *(_cell(getattr(r, k), k) for k, _ in COLUMNS)]
            for r in result.runs]
    return header, rows


def _oracle_rows(result: StudyResult) -> tuple[list[str], list[list[str]]]:
    header = ["run", "setting", "NLL_oracle", "NLL_test", "seconds"]
    rows = [[r.name, _setting(r.method, None), f"{r.nll_oracle:.4f}", f"{r.nll_test:.4f}", f"{r.seconds:.1f}"]
            for r in result.oracle.runs]
    own = result.oracle.oracle["nll_oracle_own_samples"]
    rows.append(["oracle itself", "its own samples", f"{own:.4f}", "—", "—"])
    return header, rows


def text_table(result: StudyResult) -> str:
    """The toy runs (and the oracle runs) as plain-text tables, then the checks."""
    toy = result.toy
    lines = [(f"toy P ({toy['vocab_size']} symbols, length {toy['length']}): multi-information I(P) = "
              f"{toy['multi_information_p']:.4f} nats, training sample's KL from P = "
              f"{toy['kl_empirical_p']:.4f}"),
             *aligned(*_rows(result), left=2)]
    if result.oracle:
        info = result.oracle.oracle
        lines += ["", f"oracle LSTM ({info['vocab_size']} tokens, length {info['length']}), nats per token:",
                  *aligned(*_oracle_rows(result), left=2)]
    lines += ["", *(f"{'pass' if c.passed else 'MISS'}  {c.run}: {c.claim}: {c.value:.4f}"
                    for c in result.checks)]
    if result.checks:
        lines.append(checks_summary([c.passed for c in result.checks]))
    return "\n".join(lines)


def write(result: StudyResult, toy: ToyDistribution, tables: dict[str, torch.Tensor],
          out: Path) -> dict[str, Path]:
    """results.json, the figures (two-token toys: `kl_vs_epsilon` and `heatmaps` of the runs' Q in
    `tables`) and report.md into `out`; their paths by name."""
    files = {"results": out / "results.json", "report": out / "report.md"}
    write_results(files["results"], {"toy": result.toy, "runs": result.runs, "oracle": result.oracle,
                                     "checks": result.checks})
    if two_token(toy):
        grid = torch.linspace(0, 1, 101, dtype=torch.float64)
        p = toy.enumerate()[1]
        curve = [kl(p, closed_form_optimum(toy, float(e))) for e in grid]
        files["kl_vs_epsilon"] = out / "kl_vs_epsilon.png"
        plot_kl_against_epsilon(grid.tolist(), curve, result.runs, result.toy["multi_information_p"],
                                files["kl_vs_epsilon"])
        V = toy.vocab_size
        panels = {"P": p, "P(x1)·P(x2) = Q*_0": closed_form_optimum(toy, 0.0)}
        models = {"teacher_forcing": "Q, teacher forcing", "ss_eps0": "Q, scheduled sampling ε = 0"}
        for name, title in models.items():
            if name in tables:
                panels[title] = tables[name]
        files["heatmaps"] = out / "heatmaps.png"
        plot_heatmaps({k: v.view(V, V).tolist() for k, v in panels.items()}, toy.symbols, files["heatmaps"])
    files["report"].write_text(_report(result, files, out), encoding="utf-8")
    return files


def _report(result: StudyResult, files: dict[str, Path], out: Path) -> str:
    toy = result.toy
    lines = ["# Scheduled sampling's inconsistency, measured", "",
             (f"Toy P: a random `{toy['kind']}` table over {toy['vocab_size']} symbols × length "
              f"{toy['length']} (Dirichlet concentration {toy['concentration']:g}, seed {toy['seed']}); "
              f"H(P) = {toy['entropy_p']:.4f} nats, multi-information I(P) = Σ_t H(P_t) − H(P) = "
              f"{toy['multi_information_p']:.4f} nats. Every run trains the same LSTM on the same "
              f"{toy['num_train']} samples, whose empirical distribution is {toy['kl_empirical_p']:.4f} nats "
              "from P (KL[P̂‖P]). All divergences are exact sums over the toy's support, in nats; Q is the "
              "model conditioned on the support (`mass outside` is what it puts elsewhere). Q*_ε is the "
              "closed-form optimum of scheduled sampling, Q*_ε(x2 | x1) = ε·P(x2 | x1) + (1 − ε)·P(x2); "
              "teacher forcing is compared with Q*_1 = P and the annealed run with Q*_0 = ∏_t P_t."), "",
             markdown_table(*_rows(result)), "", "## Reading", "", _reading(result), "", "## Checks", ""]
    lines += [f"- {'pass' if c.passed else '**miss**'}: `{c.run}`: {c.claim}: {c.value:.4f}"
              for c in result.checks]
    if result.oracle:
        info = result.oracle.oracle
        source = f"the weights in `{info['weights']}`" if info["weights"] else "random N(0, 1) weights"
        lines += ["", "## The same comparison on an oracle LSTM", "",
                  (f"Oracle: {info['vocab_size']} tokens, length {info['length']}, {source}; "
                   f"{info['num_train']} training sequences; each figure over {info['num_samples']} "
                   "sequences, nats per token. NLL_oracle = −E_Q log P / T (sample quality), NLL_test = "
                   "−E_P log Q / T (coverage; its floor is the oracle's own entropy rate, estimated by the "
                   "last row)."), "",
                  markdown_table(*_oracle_rows(result))]
    return markdown_document([*lines, *figure_links(files, out)])


def _reading(result: StudyResult) -> str:
    """One paragraph that says what the numbers show, and which expected outcome they miss."""
    mi = result.toy["multi_information_p"]
    missed = {c.run for c in result.checks if not c.passed}
    parts = []
    for r in result.runs:
        if r.method == "teacher_forcing":
            parts.append(f"Teacher forcing ends {r.kl_p_q:.4f} nats from P"
                         + (", as a consistent objective should." if r.name not in missed
                            else f", short of the {KL_TOLERANCE} target."))
    zero = [r for r in result.runs if r.method == "scheduled_sampling" and r.closed_form_epsilon == 0.0]
    if zero:
        parts.append("Scheduled sampling that always feeds its own samples ("
                     + " and ".join("ε = 0" if r.epsilon is not None else "ε annealed to 0" for r in zero)
                     + ") ends " + " and ".join(f"{r.kl_q_prod_marginals:.4f}" for r in zero)
                     + " nats from the product of P's marginals ∏_t P_t, with KL[P‖Q] = "
                     + " and ".join(f"{r.kl_p_q:.4f}" for r in zero)
                     + f" against P's multi-information {mi:.4f}"
                     + (": the model learns to ignore its history, as the closed form predicts, although "
                        "every target it saw was gold." if not missed & {r.name for r in zero}
                        else ", which misses the closed form's prediction (see the checks)."))
    fixed = [r for r in result.runs if r.epsilon is not None and r.kl_q_closed_form is not None]
    if fixed:
        worst = max(fixed, key=lambda r: r.kl_q_closed_form)
        parts.append(f"Against its own closed-form optimum Q*_ε, the largest KL[Q‖Q*_ε] among the fixed ε is "
                     f"{worst.kl_q_closed_form:.4f} (ε = {worst.epsilon:g})"
                     + (", so KL[P‖Q] follows the curve KL[P‖Q*_ε] as ε grows, and only ε = 1, teacher "
                        "forcing, is consistent." if not missed & {r.name for r in fixed} else "."))
    misses = [c for c in result.checks if not c.passed]
    if misses:
        parts.append("Missed: " + "; ".join(f"{c.run} ({c.claim.split(' (')[0]}: {c.value:.4f})"
                                            for c in misses) + ".")
    else:
        parts.append("Every expected outcome is met.")
    if result.oracle:
        runs = {r.name: r for r in result.oracle.runs}
        a, b = runs["teacher_forcing"], runs["ss_annealed"]
        parts.append(f"On the oracle LSTM, scheduled sampling annealed to 0 has NLL_test {b.nll_test:.4f} "
                     f"against teacher forcing's {a.nll_test:.4f} "
                     f"({_compare(b.nll_test, a.nll_test)} coverage) and NLL_oracle "
                     f"{b.nll_oracle:.4f} against {a.nll_oracle:.4f} "
                     f"({_compare(b.nll_oracle, a.nll_oracle)} samples), in nats per token.")
    return " ".join(parts)


def _compare(value: float, reference: float) -> str:
    """How an NLL compares with a reference one (lower is better)."""
    return "worse" if value > reference else "better" if value < reference else "the same"
