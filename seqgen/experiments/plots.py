"""The studies' figures, drawn on bare matplotlib Figures (Agg) so that pyplot's backend is left alone."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

DPI = 120


def plot_kl_against_epsilon(grid: Sequence[float], curve: Sequence[float], runs: Sequence[dict[str, Any]],
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
        points = [(r["closed_form_epsilon"], r["kl_p_q"]) for r in runs if _kind(r) == kind]
        if points:
            ax.scatter(*zip(*points), s=36, zorder=3, **style)
    ax.set_xlabel("ε (probability of feeding the gold token)")
    ax.set_ylabel("KL[P‖Q], nats")
    ax.set_title("Scheduled sampling's optimum moves away from P as ε falls")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)


def _kind(run: dict[str, Any]) -> str:
    if run["method"] == "teacher_forcing":
        return "teacher_forcing"
    return "fixed" if run["epsilon"] is not None else "annealed"


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
