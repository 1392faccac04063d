"""Quality–diversity frontiers: a model's curve over inverse temperatures, and how much of the plane one
curve dominates beyond another's.

A curve is a sequence of points (x, y), x the quality cost (KL[Q‖P], NLL_oracle) and y the coverage cost
(KL[P‖Q], NLL_test), lower being better on both, in the order of the inverse temperatures that made them;
between two neighbouring points the curve is the straight segment (the polyline is what a plot shows).
A point (x, y) of the plane is dominated by a curve when some point of the polyline is no worse on both
costs. Dominated areas are taken inside the box left of and below a reference corner (x_ref, y_ref);
their lower bound does not matter, since below and left of every curve nothing is dominated.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

Point = tuple[float, float]

GRID = 4096
"""Abscissas at which the areas are integrated (midpoint rule over [lowest x of either curve, x_ref])."""


def lower_envelope(curve: Sequence[Point], x: float) -> float | None:
    """The lowest y of the polyline `curve` over its points with abscissa at most `x`: the best coverage
    the curve reaches at a quality no worse than `x`; None when no point of the curve is that good."""
    best = math.inf
    for x0, y0 in curve:
        if x0 <= x:
            best = min(best, y0)
    for (x0, y0), (x1, y1) in itertools.pairwise(curve):
        if min(x0, x1) < x < max(x0, x1):  # the segment crosses abscissa x
            best = min(best, y0 + (y1 - y0) * (x - x0) / (x1 - x0))
    return None if best == math.inf else best


def distance_above(cost: float, level: float | None, tolerance: float) -> float | None:
    """A point's coverage `cost` minus a curve's `level` at the point's quality (`lower_envelope`):
    below zero the point lies below the curve; 0 within `tolerance` (a point on the curve, as the
    curve's own model at α = 1); None where the curve does not reach the point's quality."""
    if level is None:
        return None
    return 0.0 if abs(cost - level) <= tolerance else cost - level


def dominated_beyond(curve: Sequence[Point], reference: Sequence[Point], corner: Point) -> tuple[float, float]:
    """(gain, loss): the area of the box below `corner` that `curve` dominates and `reference` does not,
    and the area that `reference` dominates and `curve` does not (units of x times units of y).

    gain > 0 with loss = 0: `curve` is nowhere worse than `reference` and somewhere better; the net
    gain − loss is the difference of the two dominated areas (a hypervolume difference)."""
    x_ref, y_ref = corner
    x_low = min(x for x, _ in (*curve, *reference))
    if x_low >= x_ref:
        return 0.0, 0.0
    width = (x_ref - x_low) / GRID
    xs = x_low + (np.arange(GRID) + 0.5) * width
    a, b = (np.minimum(_envelope(c, xs), y_ref) for c in (curve, reference))
    return float(np.clip(b - a, 0, None).sum() * width), float(np.clip(a - b, 0, None).sum() * width)


def _envelope(curve: Sequence[Point], xs: np.ndarray) -> np.ndarray:
    """`lower_envelope` at every abscissa of `xs` (G,), +inf where the curve has no point that good: (G,)."""
    points = np.asarray(curve, dtype=float).reshape(-1, 2)
    x, y = points[:, 0], points[:, 1]
    out = np.where(x[None, :] <= xs[:, None], y[None, :], np.inf).min(1)
    if len(points) > 1:
        x0, y0, x1, y1 = x[:-1], y[:-1], x[1:], y[1:]
        crossing = (np.minimum(x0, x1)[None, :] < xs[:, None]) & (xs[:, None] < np.maximum(x0, x1)[None, :])
        with np.errstate(divide="ignore", invalid="ignore"):
            on_segment = y0 + (y1 - y0) * (xs[:, None] - x0) / (x1 - x0)
        out = np.minimum(out, np.where(crossing, on_segment, np.inf).min(1))
    return out
