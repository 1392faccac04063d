"""Exact gradient descent on JS_π over an enumerable toy: what the JS_π objective asks of a model class,
free of a critic's and a gradient estimator's errors (docs/theory/objectives.md#js-adversarial-training)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from transformers import get_scheduler

from seqgen.config import RunConfig
from seqgen.data.synthetic import ToyDistribution
from seqgen.functional import check_pi
from seqgen.metrics.exact import js_pi_with_leak, support_log_probs
from seqgen.models.base import Generator


def fit_exact_js_pi(generator: Generator, toy: ToyDistribution, pi: float, steps: int, lr: float, *,
                    schedule: str = "constant", warmup_steps: int = 0, betas: Sequence[float] = (0.9, 0.999),
                    weight_decay: float = 0.0) -> Generator:
    """Minimise the exact JS_π[P‖Q] (`js_pi_with_leak`) over a copy of `generator`'s parameters by AdamW.

    Every step scores the whole support in one forward pass, so the gradient is exact: no critic, no
    sampled rollouts. The optimiser and schedule are the training loop's, so that a fit given a run's
    `train` settings (`exact_budget`) has the run's budget.

    Args:
        generator: the starting point (not modified), a language model over the toy's fixed vocabulary.
        toy: a fixed-length toy P.
        pi: the class prior π in (0, 1).
        steps: optimiser steps.
        lr: the peak learning rate.
        schedule: a `train.lr_schedule` name (constant, linear, cosine, inverse_sqrt).
        warmup_steps: steps of linear warm-up.
        betas, weight_decay: AdamW's.

    Returns:
        The fitted copy, in eval mode.
    """
    from seqgen.train import SCHEDULES

    check_pi(pi)
    model = copy.deepcopy(generator).eval()  # eval: no dropout, so the objective is deterministic
    model.requires_grad_(True)
    p = toy.enumerate()[1]
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=tuple(betas), weight_decay=weight_decay)
    scheduler = get_scheduler(SCHEDULES[schedule], optimizer, num_warmup_steps=warmup_steps,
                              num_training_steps=steps)
    for _ in range(steps):
        optimizer.zero_grad()
        js_pi_with_leak(p, support_log_probs(model, toy), pi).backward()
        optimizer.step()
        scheduler.step()
    return model.requires_grad_(False)


def exact_budget(cfg: RunConfig) -> dict[str, Any]:
    """`fit_exact_js_pi`'s optimiser settings equal to a run's: steps, learning rate, schedule, AdamW's."""
    t = cfg.train
    return {"steps": t.max_steps, "lr": t.lr, "schedule": t.lr_schedule, "warmup_steps": t.warmup_steps,
            "betas": t.betas, "weight_decay": t.weight_decay}
