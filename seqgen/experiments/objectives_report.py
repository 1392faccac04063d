"""What the objectives study writes: the verdict, the plain-text tables, results.json, report.md and
objectives.png (`seqgen.experiments.objectives` runs the study)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from seqgen.experiments.plots import Frontier, plot_frontiers
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
    from seqgen.experiments.objectives import MethodSummary, ObjectivesResult, OracleRun, OracleStep


def verdict(methods: Sequence[MethodSummary]) -> str:
    """Which methods beat tempering teacher forcing, from the numbers: on the toy in every seed (and in
    some), by their own point and by the area their curves dominate; on the oracle the same."""
    every = [m for m in methods if m.beats_tempering]
    some = [m for m in methods if 0 < m.seeds_beating_tempering < len(m.seeds)]
    if every:
        line = (f"Beating tempered teacher forcing on the toy in every seed: {_names(every)}: no inverse "
                "temperature α of the maximum-likelihood model reaches their KL[Q‖P] at as low a KL[P‖Q].")
    else:
        line = ("No method beats tempering the maximum-likelihood model on the toy in every seed: each fit is "
                "matched or bettered on both KLs by teacher forcing at some inverse temperature α.")
    if some:
        line += " In some seeds only: " + ", ".join(
            f"`{m.method}` ({m.seeds_beating_tempering} of {len(m.seeds)})" for m in some) + "."
    wider = [m for m in methods if all(g > l for g, l in zip(m.area_gain, m.area_loss))]
    line += (f" Tempered in turn, these dominate more of the toy's plane than teacher forcing's curve in every "
             f"seed: {_names(wider)}." if wider else " Tempered in turn, no method's curve dominates more of the "
             "toy's plane than teacher forcing's in every seed.")
    oracle = [m for m in methods if m.oracle is not None]
    if oracle:
        below = [m for m in oracle if m.oracle.beats_tempering]
        wider = [m for m in oracle if m.oracle.area_gain > m.oracle.area_loss]
        line += (f" On the oracle, below teacher forcing's temperature curve: {_names(below) or 'none'}; "
                 f"with a curve dominating more of the (NLL_oracle, NLL_test) plane: {_names(wider) or 'none'}.")
    return line


def _names(methods: Sequence[MethodSummary]) -> str:
    return ", ".join(f"`{m.method}`" for m in methods)


def _distance(values: Sequence[float | None]) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "beyond the curve"
    text = spread(known)
    return text if len(known) == len(values) else f"{text} ({len(values) - len(known)} beyond the curve)"


def _method_rows(result: ObjectivesResult) -> tuple[list[str], list[list[str]]]:
    """Per method: mean over seeds [min, max] of each divergence and of the distance to TF's curve."""
    header = ["method", "KL[P‖Q]", "KL[Q‖P]", "TV", "JS_0.5", "distance to TF curve", "beats tempering",
              "area gain", "area loss"]
    tf = result.teacher_forcing
    rows = [["teacher forcing", number(tf.kl_p_q), number(tf.kl_q_p), number(tf.tv_p_q), number(tf.js_half),
             _distance([tf.distance_to_tf_curve]), "—", "—", "—"]]
    for m in result.methods:
        rows.append([m.method, spread(m.kl_p_q), spread(m.kl_q_p), spread(m.tv_p_q), spread(m.js_half),
                     _distance(m.distance_to_tf_curve), f"{m.seeds_beating_tempering} of {len(m.seeds)} seeds",
                     spread(m.area_gain), spread(m.area_loss)])
    return header, rows


def _oracle_rows(step: OracleStep) -> tuple[list[str], list[list[str]]]:
    header = ["run", "NLL_oracle", "NLL_test", "TF curve there", "distance", "below the curve", "area gain",
              "area loss", "seconds"]
    rows = [[r.name, number(r.nll_oracle), number(r.nll_test), number(r.frontier_nll_test),
             number(r.distance_to_tf_curve), "—" if r is step.teacher_forcing else ("yes" if r.beats_tempering else "no"),
             number(r.area_gain), number(r.area_loss), f"{r.seconds:.1f}"] for r in [step.teacher_forcing, *step.runs]]
    return header, rows


def _oracle_sweep_rows(step: OracleStep) -> tuple[list[str], list[list[str]]]:
    """NLL_oracle / NLL_test of every run at every α of the sweep."""
    runs = [step.teacher_forcing, *step.runs]
    alphas = [c["alpha"] for c in step.teacher_forcing.curve]
    return (["α", *(r.name for r in runs)],
            [[f"{a:g}", *(f"{c['nll_oracle']:.3f} / {c['nll_test']:.3f}" for r in runs for c in r.curve
                          if c["alpha"] == a)] for a in alphas])


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
    return keys | set(SIZES["full"].toy.adversarial) if spec.objective["name"] == "adversarial" else keys


def _setting(value: object) -> str:
    """An objective setting as the report shows it: a nested config by its kind."""
    return str(value.get("kind", value)) if isinstance(value, dict) else str(value)


def text_table(result: ObjectivesResult) -> str:
    info = result.toy
    lines = [(f"objectives on the toy ({info['vocab_size']} symbols, length {info['length']}), generator "
              f"{info['model']}; exact divergences of Q from P (nats), mean over seeds [min, max]"),
             *aligned(*_method_rows(result)), ""]
    if result.oracle is not None:
        o = result.oracle.oracle
        lines += [f"objectives on the oracle LSTM ({o['vocab_size']} tokens, length {o['length']}), nats per token",
                  *aligned(*_oracle_rows(result.oracle)), ""]
    return "\n".join([*lines, result.verdict])


def write(result: ObjectivesResult, out: Path) -> dict[str, Path]:
    """results.json, report.md and the figures in `out`."""
    files = {"results": out / "results.json", "report": out / "report.md", "figure": out / "objectives.png"}
    write_results(files["results"], {"size": result.size, "toy": result.toy,
                                     "teacher_forcing": result.teacher_forcing, "runs": result.runs,
                                     "tf_curve": result.tf_curve, "corner": result.corner,
                                     "oracle": result.oracle, "methods": result.methods,
                                     "verdict": result.verdict})
    labels = {m.method: m.label for m in result.methods}
    tf = result.teacher_forcing
    plot_frontiers(Frontier("teacher forcing", _toy_curve(tf.curve), [(tf.kl_q_p, tf.kl_p_q)]),
                   [Frontier(labels[m], _toy_curve(next(r.curve for r in result.runs if r.method == m)),
                             [(r.kl_q_p, r.kl_p_q) for r in result.runs if r.method == m]) for m in labels],
                   ALPHAS_SHOWN, ("KL[Q‖P], nats (quality: lower is better)", "KL[P‖Q], nats (coverage: lower is better)"),
                   "The toy: every objective tempered, against tempered teacher forcing (lower-left is better)",
                   files["figure"])
    if result.oracle is not None:
        files["oracle_figure"] = out / "objectives_oracle.png"
        step = result.oracle
        plot_frontiers(_oracle_frontier("teacher forcing", step.teacher_forcing),
                       [_oracle_frontier(labels[r.method], r) for r in step.runs], ALPHAS_SHOWN,
                       ("NLL_oracle, nats per token (quality: lower is better)",
                        "NLL_test, nats per token (coverage: lower is better)"),
                       "The oracle LSTM: every objective's temperature sweep (lower-left is better)",
                       files["oracle_figure"])
    files["report"].write_text(_report(result, files, out), encoding="utf-8")
    return files


ALPHAS_SHOWN = (0.5, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0)
"""Inverse temperatures labelled on teacher forcing's curves in the figures."""


def _toy_curve(curve: Sequence[dict[str, float]]) -> list[tuple[float, float, float]]:
    return [(c["alpha"], c["kl_q_p"], c["kl_p_q"]) for c in curve]


def _oracle_frontier(label: str, run: OracleRun) -> Frontier:
    return Frontier(label, [(c["alpha"], c["nll_oracle"], c["nll_test"]) for c in run.curve],
                    [(run.nll_oracle, run.nll_test)])


def _report(result: ObjectivesResult, files: dict[str, Path], out: Path) -> str:
    info, budget = result.toy, result.toy["budget"]
    lines = ["# Which training objective gives the better samples", "",
             (f"Every method starts from one teacher-forcing model and gets the same optimiser budget; each is "
              "then compared with tempering that model by an inverse temperature α (logits × α), which is what "
              "a user of the maximum-likelihood model can do for free. A method beats tempering when its own "
              "point lies below teacher forcing's temperature curve: no α is as good on both costs. Each model "
              "is tempered in turn, and its curve scored by the area of the plane it dominates and teacher "
              "forcing's curve does not (gain), and the reverse (loss), inside the box below teacher forcing's "
              "worst costs over the reported α."), "",
             "## Verdict", "", result.verdict, "",
             "## The enumerable toy", "",
             (f"P: a random `{info['kind']}` table over {info['vocab_size']} symbols × length {info['length']} "
              f"(Dirichlet concentration {info['concentration']:g}, seed {info['seed']}), H(P) = "
              f"{info['entropy_p']:.4f} nats, {info['num_train']} training samples. Generator: {info['model']}, "
              f"too small to represent P. Teacher forcing trains it ({info['teacher_forcing_steps']} steps); "
              f"every method then starts from that model with AdamW, {budget['steps']} steps, learning rate "
              f"{budget['lr']:g} ({budget['schedule']} schedule), batch {budget['batch_size']}; seeds "
              f"{', '.join(map(str, info['seeds']))} (size `{result.size}`). Q is the model conditioned on the "
              "support; all divergences are exact, in nats. KL[P‖Q] measures coverage, KL[Q‖P] quality. The "
              f"distance to teacher forcing's curve is a fit's KL[P‖Q] minus the lowest KL[P‖Q_α] among the α "
              "whose KL[Q_α‖P] is no larger than the fit's (\"beyond the curve\": no α reaches the fit's "
              f"KL[Q‖P]). Area box: KL[Q‖P] ≤ {result.corner[0]:.4f}, KL[P‖Q] ≤ {result.corner[1]:.4f} "
              "(nats²)."), "",
             "Means over seeds [min, max]:", "", markdown_table(*_method_rows(result)), ""]
    if result.oracle is not None:
        lines += _oracle_section(result.oracle)
    for m in result.methods:
        rows = [r for r in result.runs if r.method == m.method]
        objective = ", ".join(f"{k}={_setting(v)}" for k, v in m.objective.items() if k in _own_keys(m.method))
        lines += [f"### {m.label} (`{m.method}`)", "",
                  f"Objective on the toy (as the study sets it; the rest are the defaults, all in results.json): "
                  f"`{objective}`.", "",
                  markdown_table(["seed", "KL[P‖Q]", "KL[Q‖P]", "TV", "JS_0.5", "distance to TF curve", "area gain",
                                  "area loss"],
                                 [[str(r.seed), number(r.kl_p_q), number(r.kl_q_p), number(r.tv_p_q),
                                   number(r.js_half), number(r.distance_to_tf_curve), number(r.area_gain),
                                   number(r.area_loss)] for r in rows]), ""]
    lines += ["## Teacher forcing tempered on the toy", "", markdown_table(*_curve_rows(result)), "",
              "## Every toy run", "", markdown_table(*_run_rows(result))]
    return markdown_document([*lines, *figure_links(files, out)])


def _oracle_section(step: OracleStep) -> list[str]:
    o, budget = step.oracle, step.budget
    return ["## The oracle LSTM", "",
            (f"P: an oracle LSTM over {o['vocab_size']} tokens, length {o['length']}"
             f"{' (weights ' + o['weights'] + ')' if o['weights'] else ' (random weights)'}; its own samples "
             f"score NLL_oracle {o['nll_oracle_own_samples']:.4f}. Every method starts from the teacher-forcing "
             f"model with AdamW, {budget['steps']} steps, learning rate {budget['lr']:g} ({budget['schedule']} "
             f"schedule), batch {budget['batch_size']}. NLL_oracle: the oracle's NLL of {o['num_samples']} model "
             f"samples (quality); NLL_test: the model's NLL of {o['num_samples']} held-out oracle samples "
             "(coverage); nats per token. The distance is NLL_test minus teacher forcing's curve at the run's "
             f"NLL_oracle. Area box: NLL_oracle ≤ {o['corner'][0]:.4f}, NLL_test ≤ {o['corner'][1]:.4f} "
             "(nats²)."), "",
            markdown_table(*_oracle_rows(step)), "",
            "Every model's sweep, NLL_oracle / NLL_test at each α:", "", markdown_table(*_oracle_sweep_rows(step)), ""]
