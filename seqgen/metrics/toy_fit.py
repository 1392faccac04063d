"""The exact divergences of one fitted model Q from an enumerable toy P at one class prior π, as the
JS_π study reports them (docs/theory/metrics.md#js-pi)."""

from __future__ import annotations

from typing import Any

import torch

from seqgen.data.synthetic.toy import ToyDistribution
from seqgen.metrics.exact import support_log_probs, toy_metrics
from seqgen.models.base import Generator


def toy_divergences(generator: Generator, toy: ToyDistribution, pi: float | None) -> dict[str, Any]:
    """KL[P‖Q], KL[Q‖P], JS_π and its two scalings at `pi` (None without π), H(Q), TV and Q's mass
    outside the support, for Q the model conditioned on the toy's support (`seqgen.metrics.exact`)."""
    metrics = toy_metrics(generator, toy, pis=() if pi is None else (pi,))
    with torch.no_grad():
        log_q = support_log_probs(generator, toy)
    q = (log_q - log_q.logsumexp(0)).exp()
    row = {"kl_p_q": metrics["kl_p_q"], "kl_q_p": metrics["kl_q_p"], "js_pi": None, "js_pi_over_pi": None,
           "js_pi_over_1mpi": None}
    if pi is not None:
        name = f"js_pi{pi:g}"
        row |= {"js_pi": metrics[name], "js_pi_over_pi": metrics[f"{name}_over_pi"],
                "js_pi_over_1mpi": metrics[f"{name}_over_1mpi"]}
    return row | {"entropy_q": float(-torch.xlogy(q, q).sum()), "tv_p_q": metrics["tv_p_q"],
                  "q_mass_outside": metrics["q_mass_outside"]}
