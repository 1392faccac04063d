"""Schedules as pure functions of the training step: scheduled sampling's ε and the Gumbel-softmax
temperature of adversarial training (docs/theory/objectives.md#the-schedules).

Being pure functions of the step (never state kept between calls), they continue exactly where they
were when a run is resumed from a checkpoint.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from seqgen.objectives.scheduled_sampling import ScheduledSamplingConfig

TEMPERATURE_SCHEDULES = ("constant", "exponential", "exp_decay", "linear")

# exp(x) overflows a float above x ~ 709; the inverse sigmoid is 0 to double precision long before.
_MAX_EXPONENT = 700.0


def epsilon(cfg: ScheduledSamplingConfig, step: int, steps_per_epoch: float = 1.0) -> float:
    """The probability ε_i of feeding the gold token at training step `step`.

    Args:
        cfg: the schedule (its parameters are checked when the config is made).
        step: optimizer steps taken so far (0 for the first step).
        steps_per_epoch: optimizer steps per pass over the training data; with `unit: epoch`,
            i = floor(step / steps_per_epoch), so ε decays once per epoch as in Bengio et al.

    Returns:
        ε_i clamped to [0, 1].
    """
    if cfg.unit == "epoch":
        if steps_per_epoch <= 0:
            raise ValueError(f"steps_per_epoch must be positive, got {steps_per_epoch}")
        # The tolerance keeps a step that ends an epoch exactly (e.g. 10 / (10 / 3) = 2.9999...) in the next.
        i = math.floor(step / steps_per_epoch + 1e-9)
    else:
        i = step
    if cfg.schedule == "constant":
        value = cfg.epsilon
    elif cfg.schedule == "linear":
        value = max(cfg.epsilon_min, cfg.k - cfg.c * i)
    elif cfg.schedule == "exponential":
        value = cfg.k ** i
    elif cfg.schedule == "inverse_sigmoid":
        x = i / cfg.k
        value = 0.0 if x > _MAX_EXPONENT else cfg.k / (cfg.k + math.exp(x))
    else:
        raise ValueError(f"unknown ε schedule {cfg.schedule!r}")
    return min(1.0, max(0.0, value))


def temperature(kind: str, step: int, max_steps: int, *, tau: float = 1.0, tau_min: float = 0.1,
                beta_max: float = 1000.0, rate: float = 1e-3) -> float:
    """The Gumbel-softmax temperature τ_n at adversarial step n = `step` of N = `max_steps`.

    Args:
        kind: one of TEMPERATURE_SCHEDULES:
            `constant`: τ_n = tau;
            `exponential`: the inverse temperature β_n = beta_max^(n / N), τ_n = 1 / β_n (RelGAN);
            `exp_decay`: τ_n = max(tau_min, exp(-rate · n)) (Jang et al.);
            `linear`: τ_n goes from tau at n = 0 to tau_min at n = N, and stays there.
        step: the adversarial step n (>= 0).
        max_steps: the number of adversarial steps N (> 0).

    Its parameters are checked where they are set (the objective's config).
    """
    if kind not in TEMPERATURE_SCHEDULES:
        raise ValueError(f"unknown temperature schedule {kind!r}")
    progress = min(max(step, 0) / max_steps, 1.0)
    if kind == "constant":
        return tau
    if kind == "exponential":
        return beta_max ** -progress
    if kind == "exp_decay":
        return max(tau_min, math.exp(-rate * max(step, 0)))
    return tau + (tau_min - tau) * progress
