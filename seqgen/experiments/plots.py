"""The studies' figures, drawn on bare matplotlib Figures (Agg) so that pyplot's backend is left alone."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from matplotlib.figure import Figure

if TYPE_CHECKING:
    from seqgen.experiments.gaussians import FitRow
    from seqgen.experiments.inconsistency import ToyRun as InconsistencyToyRun
    from seqgen.experiments.js_pi import OracleRun, ToyRun
    from seqgen.metrics.continuous import GaussianMixture2D

DPI = 120


def plot_kl_against_epsilon(grid: Sequence[float], curve: Sequence[float], runs: Sequence[InconsistencyToyRun],
                            multi_information: float, path: Path) -> None:
    """KL[P‖Q] of the trained runs against ε, over the closed-form curve KL[P‖Q*_ε].

    Args:
        grid: ε values of the curve.
        curve: KL[P‖Q*_ε] at each ε of `grid`.
        runs: the study's runs (`method`, `epsilon`, `closed_form_epsilon`, `kl_p_q`); fixed-ε runs are
            placed at their ε, teacher forcing at 1 and the annealed run at 0.
        multi_information: P's multi-information, KL[P‖∏_t P_t], drawn as a reference line.
        path: the PNG to write.
    """
    fig = Figure(figsize=(6.4, 4.4))
    ax = fig.add_subplot()
    ax.plot(grid, curve, color="0.3", label="closed form KL[P‖Q*_ε]")
    ax.axhline(multi_information, color="0.6", linestyle=":", label="multi-information of P")
    styles = {"fixed": {"marker": "o", "color": "tab:blue", "label": "scheduled sampling, fixed ε"},
              "annealed": {"marker": "s", "color": "tab:orange",
                           "label": "scheduled sampling, ε annealed to 0"},
              "teacher_forcing": {"marker": "D", "color": "tab:green", "label": "teacher forcing"}}
    for kind, style in styles.items():
        points = [(r.closed_form_epsilon, r.kl_p_q) for r in runs if _kind(r) == kind]
        if points:
            ax.scatter(*zip(*points), s=36, zorder=3, **style)
    ax.set_xlabel("ε (probability of feeding the gold token)")
    ax.set_ylabel("KL[P‖Q], nats")
    ax.set_title("Scheduled sampling's optimum moves away from P as ε falls")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)


def _kind(run: InconsistencyToyRun) -> str:
    if run.method == "teacher_forcing":
        return "teacher_forcing"
    return "fixed" if run.epsilon is not None else "annealed"


def plot_heatmaps(tables: dict[str, Sequence[Sequence[float]]], symbols: Sequence[str], path: Path) -> None:
    """Side-by-side heat maps of two-token distributions on one colour scale.

    Args:
        tables: title -> (V, V) probabilities, rows x1 and columns x2.
        symbols: the V symbols, for the tick labels.
        path: the PNG to write.
    """
    fig = Figure(figsize=(3.0 * len(tables) + 1.0, 3.4))
    axes = fig.subplots(1, len(tables), squeeze=False)[0]
    top = max(max(map(max, table)) for table in tables.values())
    image = None
    for i, (ax, (title, table)) in enumerate(zip(axes, tables.items())):
        image = ax.imshow(table, vmin=0.0, vmax=top, cmap="viridis")
        ax.set_title(title, fontsize=9)
        ax.set_xticks(range(len(symbols)), symbols)
        ax.set_yticks(range(len(symbols)), symbols if i == 0 else [])
        ax.set_xlabel("x2")
        if i == 0:
            ax.set_ylabel("x1")
        if len(symbols) <= 6:  # small enough to print every probability in its cell
            for r, row in enumerate(table):
                for c, value in enumerate(row):
                    ax.text(c, r, f"{value:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if value < top / 2 else "black")
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="probability")
    fig.savefig(path, dpi=DPI, bbox_inches="tight")


def plot_kl_against_pi(runs: Sequence[ToyRun], reference: dict[str, float], path: Path) -> None:
    """KL[P‖Q] and KL[Q‖P] of JS_π fits against π, one panel each, over a reference fit's level.

    Args:
        runs: fits with `method` ("exact", "adversarial", "adversarial_optimal"; others are skipped),
            `pi`, `kl_p_q`, `kl_q_p`; several runs of a method at one π (seeds) are drawn as their mean
            with their range as a band.
        reference: `kl_p_q` and `kl_q_p` of the reference (teacher forcing), drawn as horizontal lines.
        path: the PNG to write.
    """
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    axes = fig.subplots(1, 2)
    styles = {"exact": {"marker": "o", "color": "tab:blue", "label": "exact JS_π descent"},
              "adversarial": {"marker": "s", "color": "tab:orange", "label": "adversarial, learned critic"},
              "adversarial_optimal": {"marker": "^", "color": "tab:purple", "label": "adversarial, optimal critic"}}
    for ax, (kl, label) in zip(axes, (("kl_p_q", "KL[P‖Q]"), ("kl_q_p", "KL[Q‖P]"))):
        for method, style in styles.items():
            pis = sorted({r.pi for r in runs if r.method == method})
            if not pis:
                continue
            values = [[getattr(r, kl) for r in runs if r.method == method and r.pi == pi] for pi in pis]
            ax.plot(pis, [sum(v) / len(v) for v in values], **style)
            if any(len(v) > 1 for v in values):
                ax.fill_between(pis, [min(v) for v in values], [max(v) for v in values], color=style["color"],
                                alpha=0.2, linewidth=0)
        ax.axhline(reference[kl], color="tab:green", linestyle="--", linewidth=1, label="teacher forcing")
        ax.set_xlabel("π")
        ax.set_ylabel(f"{label}, nats")
        ax.set_title(f"{label} of the JS_π fit against π")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.savefig(path, dpi=DPI)


def plot_oracle_tradeoff(curve: Sequence[dict[str, float]], runs: Sequence[OracleRun], own: float,
                         path: Path) -> None:
    """NLL_test against NLL_oracle: teacher forcing's temperature curve and the JS_π runs' points, whole
    (left) and zoomed on the runs (right).

    Args:
        curve: teacher forcing's sweep, rows with `alpha`, `nll_oracle`, `nll_test`.
        runs: the oracle runs (`method`, `pi`, `nll_oracle`, `nll_test`); teacher forcing is drawn as
            part of the curve, the adversarial runs as points labelled with their π.
        own: the oracle's NLL of its own samples, the floor of both axes in expectation.
        path: the PNG to write.
    """
    fig = Figure(figsize=(12, 4.8), layout="constrained")
    points = sorted(curve, key=lambda r: r["alpha"])
    adversarial = [r for r in runs if r.method == "adversarial"]
    for i, ax in enumerate(fig.subplots(1, 2)):
        ax.plot([r["nll_oracle"] for r in points], [r["nll_test"] for r in points], marker=".", color="0.4",
                label="teacher forcing, temperature swept")
        for r in points:
            ax.annotate(f"α={r['alpha']:g}", (r["nll_oracle"], r["nll_test"]), textcoords="offset points",
                        xytext=(4, 4), fontsize=7, color="0.4", annotation_clip=True)
        for r in runs:
            if r.method == "teacher_forcing":
                ax.scatter(r.nll_oracle, r.nll_test, marker="D", color="tab:green", zorder=3,
                           label="teacher forcing, α = 1")
        if adversarial:
            ax.scatter([r.nll_oracle for r in adversarial], [r.nll_test for r in adversarial], marker="s",
                       color="tab:orange", zorder=3, label="JS_π adversarial training")
            for r in adversarial if i else ():  # the runs' labels would overlap at the full scale
                ax.annotate(f"π={r.pi:g}", (r.nll_oracle, r.nll_test), textcoords="offset points",
                            xytext=(4, -10), fontsize=8, color="tab:orange", annotation_clip=True)
        ax.set_xlabel("NLL_oracle, nats/token (lower = better quality)")
        ax.set_ylabel("NLL_test, nats/token (lower = better coverage)")
        ax.grid(alpha=0.3)
    left, right = fig.axes
    left.axvline(own, color="0.6", linestyle=":", label="oracle's own samples")
    left.margins(0.1)
    left.set_title("Quality against coverage on the oracle LSTM")
    left.legend(fontsize=8)
    # the runs usually sit close together near α = 1: the right panel shows them and the curve there
    xs = [r.nll_oracle for r in runs]
    ys = [r.nll_test for r in runs]
    pad_x = max(0.5 * (max(xs) - min(xs)), 1e-3)
    pad_y = max(0.5 * (max(ys) - min(ys)), 1e-3)
    right.set_xlim(min(xs) - pad_x, max(xs) + pad_x)
    right.set_ylim(min(ys) - pad_y, max(ys) + pad_y)
    right.set_title("Zoomed on the runs")
    fig.savefig(path, dpi=DPI)


def plot_gaussian_fits(p: GaussianMixture2D, rows: Sequence[FitRow], ml: dict[str, Any], path: Path) -> None:
    """Each fitted Q's 2-standard-deviation circle, coloured by π, over P's density, one panel per method,
    with the maximum-likelihood fit `ml` ("mean", "scale")."""
    import torch
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import LogNorm

    circles = [(r.mean, r.scale) for r in rows] + [(ml["mean"], ml["scale"])]
    low = min(float((p.means - 3 * p.scales[:, None]).min()), *(min(m) - 2 * s for m, s in circles))
    high = max(float((p.means + 3 * p.scales[:, None]).max()), *(max(m) + 2 * s for m, s in circles))
    axis = torch.linspace(low, high, 300, dtype=torch.float64)
    xx, yy = torch.meshgrid(axis, axis, indexing="xy")
    density = p.log_prob(torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)).exp().reshape(xx.shape)
    # π spans decades (`gaussians.PIS_LOG`): a log colour scale keeps the small class priors apart
    pis = [r.pi for r in rows]
    cmap, norm = colormaps["viridis"], LogNorm(min(pis), max(max(pis), min(pis) * 1.01))
    angle = torch.linspace(0, 2 * math.pi, 200, dtype=torch.float64)

    def circle(mean: Sequence[float], scale: float) -> tuple:
        return ((mean[0] + 2 * scale * angle.cos()).numpy(), (mean[1] + 2 * scale * angle.sin()).numpy())

    fig = Figure(figsize=(11, 5), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, method in zip(axes, ("exact", "adversarial")):
        ax.contourf(xx.numpy(), yy.numpy(), density.numpy(), levels=30, cmap="Greys")
        ax.plot(*circle(ml["mean"], ml["scale"]), color="tab:red", ls="--", lw=1.2, zorder=3,
                label="maximum likelihood")
        for row in (r for r in rows if r.method == method):
            ax.plot(*circle(row.mean, row.scale), color=cmap(norm(row.pi)), lw=1.8)
            ax.plot(*row.mean, marker="+", color=cmap(norm(row.pi)))
        ax.set_aspect("equal")
        ax.set_xlim(low, high)
        ax.set_ylim(low, high)
        ax.set_title(f"{method} fits of JS_π")
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle("Fitted Gaussians Q (circles of radius 2σ, coloured by π) over the mixture's density P")
    bar = fig.colorbar(ScalarMappable(norm, cmap), ax=axes, label="π", shrink=0.8)
    # ticks at the fits' π, skipping any within 0.15 decades of a larger one so the labels stay legible
    ticks: list[float] = []
    for pi in sorted(set(pis), reverse=True):
        if not ticks or math.log10(ticks[-1] / pi) >= 0.15:
            ticks.append(pi)
    bar.set_ticks(ticks, labels=[f"{pi:g}" for pi in ticks])
    bar.ax.minorticks_off()
    fig.savefig(path, dpi=DPI)


def plot_gaussian_kls(rows: Sequence[FitRow], ml: dict[str, Any], path: Path) -> None:
    """KL[P‖Q] and KL[Q‖P] of the Gaussian fits against π on a log axis, both methods, over the
    maximum-likelihood fit's `ml`."""
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, (kl, label) in zip(axes, (("kl_p_q", "KL[P‖Q] (nats)"), ("kl_q_p", "KL[Q‖P] (nats)"))):
        for method, marker in (("exact", "o"), ("adversarial", "s")):
            curve = [r for r in rows if r.method == method]
            ax.plot([r.pi for r in curve], [getattr(r, kl) for r in curve], marker=marker, label=method)
        ax.axhline(ml[kl], color="tab:red", ls="--", lw=1, label="maximum likelihood")
        ax.set_xscale("log")  # the fits change character at small π (`gaussians.PIS_LOG`)
        ax.set_xlabel("π (log scale)")
        ax.set_ylabel(label)
        ax.set_title(f"{label.split(' ')[0]} of the JS_π fit against π")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.savefig(path, dpi=DPI)


@dataclass(frozen=True)
class Frontier:
    """One model family's quality–diversity curve for `plot_frontiers`.

    Attributes:
        label: the legend's name.
        curve: (α, quality cost, coverage cost) in α order, drawn as a line (one seed's).
        points: the models' own points (α = 1), one per seed: (quality cost, coverage cost).
    """

    label: str
    curve: Sequence[tuple[float, float, float]]
    points: Sequence[tuple[float, float]]


def plot_frontiers(reference: Frontier, others: Sequence[Frontier], marked: Sequence[float], labels: tuple[str, str],
                   title: str, path: Path) -> None:
    """Every family's curve and own points over the reference's (teacher forcing tempered): all of them
    (left) and zoomed on the reference's own point (right); lower-left is better.

    Args:
        reference: teacher forcing: its curve in grey with the α of `marked` labelled, its point a diamond.
        others: the other methods, one colour and marker each.
        marked: inverse temperatures to label on the reference's curve.
        labels: the x (quality cost) and y (coverage cost) axis labels.
        title: the left panel's title.
        path: the PNG to write.
    """
    from matplotlib import colormaps

    fig = Figure(figsize=(13, 5.4), layout="constrained")
    colours = colormaps["tab10"]
    markers = "osv^<>pPX*h"
    (x_tf, y_tf), = reference.points[:1]
    ref_x, ref_y = [c[1] for c in reference.curve], [c[2] for c in reference.curve]
    shown_ref = [(a, x, y) for a, x, y in reference.curve if a in marked]
    span_x = max(x for _, x, _ in shown_ref) - min(ref_x)
    span_y = max(y for _, _, y in shown_ref) - min(ref_y)
    for i, ax in enumerate(fig.subplots(1, 2)):
        ax.plot(ref_x, ref_y, color="0.3", lw=2.2, label=f"{reference.label} tempered")
        for a, x, y in shown_ref:
            ax.plot(x, y, marker=".", color="0.4")
            ax.annotate(f"α={a:g}", (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7, color="0.4",
                        annotation_clip=True)
        ax.scatter(x_tf, y_tf, marker="D", s=50, color="black", zorder=4, label=reference.label)
        for j, family in enumerate(others):
            colour = colours(j % 10)
            ax.plot([c[1] for c in family.curve], [c[2] for c in family.curve], color=colour, lw=0.9, alpha=0.7)
            ax.scatter(*zip(*family.points), s=36, marker=markers[j % len(markers)], color=colour, zorder=3,
                       label=family.label)
        if i == 0:  # the reference's curve over the marked α, and every model's own point
            xs = [x for _, x, _ in shown_ref] + [p[0] for f in others for p in f.points]
            ys = [y for _, _, y in shown_ref] + [p[1] for f in others for p in f.points]
            pad_x, pad_y = 0.05 * (max(xs) - min(xs)), 0.05 * (max(ys) - min(ys))
            ax.set_xlim(min(xs) - pad_x, max(xs) + pad_x)
            ax.set_ylim(min(ys) - pad_y, max(ys) + pad_y)
            ax.set_title(title, fontsize=10)
            ax.legend(fontsize=7, loc="upper right")
        else:
            ax.set_xlim(x_tf - 0.2 * span_x, x_tf + 0.2 * span_x)
            ax.set_ylim(y_tf - 0.2 * span_y, y_tf + 0.2 * span_y)
            ax.set_title(f"Zoomed on {reference.label}'s own point", fontsize=10)
        ax.set_xlabel(labels[0])
        ax.set_ylabel(labels[1])
        ax.grid(alpha=0.3)
    fig.savefig(path, dpi=DPI)
