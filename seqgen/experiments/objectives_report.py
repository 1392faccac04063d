"""What the objectives study writes: the verdict, the plain-text tables, results.json, report.md and
objectives.png (`seqgen.experiments.objectives` runs the study)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from seqgen.experiments.plots import plot_objectives
from seqgen.experiments.report import (
    aligned,
    figure_links,
    markdown_document,
    markdown_table,
    number,
    spread,
    write_results,
)

if TYPE_CHECKING:
    from seqgen.experiments.objectives import MethodSummary, ObjectivesResult


def verdict(methods: Sequence[MethodSummary]) -> str:
    """Which methods beat tempering teacher forcing in every seed (and which in some), from the numbers."""
    every = [m for m in methods if m.beats_tempering]
    some = [m for m in methods if 0 < m.seeds_beating_tempering < len(m.seeds)]
    if every:
        names = ", ".join(f"{m.label} (`{m.method}`)" for m in every)
        line = (f"Beating tempered teacher forcing in every seed: {names}: no inverse temperature α of the "
                "maximum-likelihood model reaches their KL[Q‖P] at as low a KL[P‖Q].")
    else:
        line = ("No method beats tempering the maximum-likelihood model in every seed: each fit is matched "
                "or bettered on both KLs by teacher forcing at some inverse temperature α.")
    if some:
        line += " In some seeds only: " + ", ".join(
            f"`{m.method}` ({m.seeds_beating_tempering} of {len(m.seeds)})" for m in some) + "."
    return line


def _distance(values: Sequence[float | None]) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "beyond the curve"
    text = spread(known)
    return text if len(known) == len(values) else f"{text} ({len(values) - len(known)} beyond the curve)"


def _method_rows(result: ObjectivesResult) -> tuple[list[str], list[list[str]]]:
    """Per method: mean over seeds [min, max] of each divergence and of the distance to TF's curve."""
    header = ["method", "KL[P‖Q]", "KL[Q‖P]", "TV", "JS_0.5", "distance to TF curve", "beats tempering"]
    tf = result.teacher_forcing
    rows = [["teacher forcing", number(tf.kl_p_q), number(tf.kl_q_p), number(tf.tv_p_q), number(tf.js_half),
             _distance([tf.distance_to_tf_curve]), "—"]]
    for m in result.methods:
        rows.append([m.method, spread(m.kl_p_q), spread(m.kl_q_p), spread(m.tv_p_q), spread(m.js_half),
                     _distance(m.distance_to_tf_curve), f"{m.seeds_beating_tempering} of {len(m.seeds)} seeds"])
    return header, rows


def _run_rows(result: ObjectivesResult) -> tuple[list[str], list[list[str]]]:
    header = ["run", "KL[P‖Q]", "KL[Q‖P]", "TV", "JS_0.5", "mass outside", "TF frontier's KL[P‖Q]",
              "distance", "seconds"]
    rows = [[r.name, number(r.kl_p_q), number(r.kl_q_p), number(r.tv_p_q), number(r.js_half),
             number(r.q_mass_outside), number(r.frontier_kl_p_q), number(r.distance_to_tf_curve),
             f"{r.seconds:.1f}"] for r in [result.teacher_forcing, *result.runs]]
    return header, rows


def _curve_rows(result: ObjectivesResult) -> tuple[list[str], list[list[str]]]:
    return (["α", "KL[P‖Q_α]", "KL[Q_α‖P]", "TV", "JS_0.5"],
            [[f"{c['alpha']:g}", number(c["kl_p_q"]), number(c["kl_q_p"]), number(c["tv_p_q"]),
              number(c["js_half"])] for c in result.tf_curve])


def _own_keys(method: str) -> set[str]:
    """The objective keys the study sets for `method` (the rest are the objective's defaults)."""
    from seqgen.experiments.objectives import METHODS, SIZES

    (spec,) = [m for m in METHODS if m.name == method]
    keys = set(spec.objective)
    return keys | set(SIZES["full"].adversarial) if spec.objective["name"] == "adversarial" else keys


def _setting(value: object) -> str:
    """An objective setting as the report shows it: a nested config by its kind."""
    return str(value.get("kind", value)) if isinstance(value, dict) else str(value)


def text_table(result: ObjectivesResult) -> str:
    info = result.toy
    return "\n".join([(f"objectives on the toy ({info['vocab_size']} symbols, length {info['length']}), generator "
                      f"{info['model']}; exact divergences of Q from P (nats), mean over seeds [min, max]"),
                      *aligned(*_method_rows(result)), "", result.verdict])


def write(result: ObjectivesResult, out: Path, dense_curve: Sequence[dict[str, float]]) -> dict[str, Path]:
    """results.json, objectives.png (with the dense curve) and report.md in `out`."""
    files = {"results": out / "results.json", "report": out / "report.md", "figure": out / "objectives.png"}
    write_results(files["results"], {"size": result.size, "toy": result.toy,
                                     "teacher_forcing": result.teacher_forcing, "runs": result.runs,
                                     "tf_curve": result.tf_curve, "methods": result.methods,
                                     "verdict": result.verdict})
    plot_objectives(dense_curve, result.tf_curve, result.teacher_forcing, result.runs,
                    {m.method: m.label for m in result.methods}, files["figure"])
    files["report"].write_text(_report(result, files, out), encoding="utf-8")
    return files


def _report(result: ObjectivesResult, files: dict[str, Path], out: Path) -> str:
    info, budget = result.toy, result.toy["budget"]
    lines = ["# Which training objective gives the better fit", "",
             (f"P: the JS_π study's toy, a random `{info['kind']}` table over {info['vocab_size']} symbols × "
              f"length {info['length']} (Dirichlet concentration {info['concentration']:g}, seed {info['seed']}), "
              f"H(P) = {info['entropy_p']:.4f} nats, {info['num_train']} training samples. Generator: "
              f"{info['model']}, too small to represent P. Teacher forcing trains it "
              f"({info['teacher_forcing_steps']} steps); every method then starts from that model with the "
              f"same budget: AdamW, {budget['steps']} steps, learning rate {budget['lr']:g} "
              f"({budget['schedule']} schedule), batch {budget['batch_size']}; seeds "
              f"{', '.join(map(str, info['seeds']))} (size `{result.size}`). Q is the model conditioned on the "
              "support; all divergences are exact, in nats. KL[P‖Q] measures coverage, KL[Q‖P] quality; "
              "lower-left is better on both."), "",
             ("Teacher forcing's temperature curve is Q_α ∝ Q^α over the support. The distance to it is a fit's "
              "KL[P‖Q] minus the lowest KL[P‖Q_α] among the α whose KL[Q_α‖P] is no larger than the fit's: "
              "below zero, no temperature of the maximum-likelihood model is as good on both divergences "
              "(the fit beats tempering); \"beyond the curve\" means no α reaches the fit's KL[Q‖P]."), "",
             "## Methods", "", "Means over seeds [min, max]:", "", markdown_table(*_method_rows(result)), "",
             "## Verdict", "", result.verdict, ""]
    for m in result.methods:
        rows = [r for r in result.runs if r.method == m.method]
        objective = ", ".join(f"{k}={_setting(v)}" for k, v in m.objective.items() if k in _own_keys(m.method))
        lines += [f"### {m.label} (`{m.method}`)", "", f"Objective (as the study sets it; the rest are the defaults, all in results.json): `{objective}`.", "",
                  markdown_table(["seed", "KL[P‖Q]", "KL[Q‖P]", "TV", "JS_0.5", "distance to TF curve"],
                                 [[str(r.seed), number(r.kl_p_q), number(r.kl_q_p), number(r.tv_p_q),
                                   number(r.js_half), number(r.distance_to_tf_curve)] for r in rows]), "",
                  (f"Mean over seeds: KL[P‖Q] {spread(m.kl_p_q)}, KL[Q‖P] {spread(m.kl_q_p)}; below the "
                   f"curve in {m.seeds_beating_tempering} of {len(m.seeds)} seeds."), ""]
    lines += ["## Teacher forcing tempered", "", markdown_table(*_curve_rows(result)), "",
              "## Every run", "", markdown_table(*_run_rows(result))]
    return markdown_document([*lines, *figure_links(files, out)])
