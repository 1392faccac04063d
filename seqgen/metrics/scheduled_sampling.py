"""The population optimum of scheduled sampling on an enumerable two-token toy, in closed form
(docs/theory/objectives.md#scheduled-sampling)."""

from __future__ import annotations

import torch

from seqgen.data.synthetic.toy import ToyDistribution
from seqgen.errors import UserError


def closed_form_optimum(toy: ToyDistribution, epsilon: float) -> torch.Tensor:
    """Q*_ε(x1, x2) = P(x1)·(ε·P(x2 | x1) + (1 − ε)·P(x2)): the population optimum of scheduled sampling
    on a two-token distribution, when no gradient flows through the model's samples
    (docs/theory/objectives.md#scheduled-sampling).

    Args:
        toy: a `joint` toy of length 2.
        epsilon: the probability of feeding the gold first token, in [0, 1].

    Returns:
        (V·V,) float64 probabilities in `toy.support()` order (x1 major), summing to 1.

    Raises:
        UserError: the toy is not a two-token joint table, or ε is outside [0, 1].
    """
    if not two_token(toy):
        raise UserError(f"the closed-form optimum needs a two-token joint toy, got kind={toy.kind} "
                        f"length={toy.max_length}")
    check_epsilon(epsilon)
    p = toy.log_table.exp()  # (V, V): P(x1, x2)
    p1, p2 = p.sum(1, keepdim=True), p.sum(0, keepdim=True)  # (V, 1), (1, V)
    return (p1 * (epsilon * p / p1 + (1 - epsilon) * p2)).flatten()


def check_epsilon(epsilon: float) -> None:
    """Raise UserError unless ε is in [0, 1]."""
    if not 0.0 <= epsilon <= 1.0:
        raise UserError(f"scheduled sampling's epsilon must be in [0, 1], got {epsilon}")


def two_token(toy: ToyDistribution) -> bool:
    """Whether `toy` is a two-token joint table (where the closed form holds)."""
    return toy.kind == "joint" and toy.max_length == 2
