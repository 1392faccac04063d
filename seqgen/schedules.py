"""Schedules as pure functions of the training step: scheduled sampling's ε and the Gumbel-softmax
temperature of adversarial training (SCIENCE.md sections 2 and 3).

Being pure functions of the step (never state kept between calls), they continue exactly where they
were when a run is resumed from a checkpoint.
"""

from __future__ import annotations

import math

from seqgen.config import ScheduledSamplingConfig
from seqgen.errors import UserError

TEMPERATURE_SCHEDULES = ("constant", "exponential", "exp_decay", "linear")

# exp(x) overflows a float above x ~ 709; the inverse sigmoid is 0 to double precision long before.
_MAX_EXPONENT = 700.0


def check_epsilon_schedule(cfg: ScheduledSamplingConfig) -> None:
    """Raise UserError naming the first parameter of `cfg`'s ε schedule that is out of range."""
    key = "objective.scheduled_sampling"
    if cfg.schedule == "constant" and not 0.0 <= cfg.epsilon <= 1.0:
        raise UserError(f"{key}.epsilon must be in [0, 1], got {cfg.epsilon}")
    if cfg.schedule == "linear":
        if cfg.c < 0:
            raise UserError(f"{key}.c must be >= 0 (the decrease of ε per unit), got {cfg.c}")
        if not 0.0 <= cfg.epsilon_min <= 1.0:
            raise UserError(f"{key}.epsilon_min must be in [0, 1], got {cfg.epsilon_min}")
    if cfg.schedule == "exponential" and not 0.0 < cfg.k <= 1.0:
        raise UserError(f"{key}.k must be in (0, 1] for the exponential schedule ε = k^i, got {cfg.k}")
    if cfg.schedule == "inverse_sigmoid" and not cfg.k >= 1.0:
        raise UserError(f"{key}.k must be >= 1 for the inverse sigmoid schedule ε = k / (k + exp(i / k)), "
                        f"got {cfg.k}")


def epsilon(cfg: ScheduledSamplingConfig, step: int, steps_per_epoch: float = 1.0) -> float:
    """The probability ε_i of feeding the gold token at training step `step`.

    Args:
        cfg: the schedule (its parameters are assumed checked by `check_epsilon_schedule`).
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

    Raises:
        UserError: an unknown kind or a parameter out of range.
    """
    if kind not in TEMPERATURE_SCHEDULES:
        raise UserError(f"unknown temperature schedule {kind!r}; use one of {', '.join(TEMPERATURE_SCHEDULES)}")
    if max_steps <= 0:
        raise UserError(f"the temperature schedule needs a positive number of steps, got {max_steps}")
    if tau <= 0 or tau_min <= 0:
        raise UserError(f"temperatures must be positive, got tau={tau}, tau_min={tau_min}")
    if beta_max < 1:
        raise UserError(f"the largest inverse temperature beta_max must be >= 1, got {beta_max}")
    if rate < 0:
        raise UserError(f"the temperature decay rate must be >= 0, got {rate}")
    progress = min(max(step, 0) / max_steps, 1.0)
    if kind == "constant":
        return tau
    if kind == "exponential":
        return beta_max ** -progress
    if kind == "exp_decay":
        return max(tau_min, math.exp(-rate * max(step, 0)))
    return tau + (tau_min - tau) * progress
