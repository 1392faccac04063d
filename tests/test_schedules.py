"""Scheduled sampling's ε schedules and the Gumbel temperature schedules, formula by formula."""

import math

import pytest

from seqgen.config import TrainConfig
from seqgen.errors import UserError
from seqgen.objectives import AdversarialConfig, ScheduledSamplingConfig
from seqgen.schedules import TEMPERATURE_SCHEDULES, epsilon, temperature


def ss(**keys) -> ScheduledSamplingConfig:
    return ScheduledSamplingConfig(**keys)


@pytest.mark.parametrize("cfg, expected", [
    (ss(schedule="constant", epsilon=0.25), {0: 0.25, 7: 0.25, 10**6: 0.25}),
    (ss(schedule="linear", k=1.0, c=0.1, epsilon_min=0.3), {0: 1.0, 2: 0.8, 5: 0.5, 7: 0.3, 100: 0.3}),
    # k > 1 holds ε at 1 for a while (clamped), then decays.
    (ss(schedule="linear", k=1.5, c=0.25, epsilon_min=0.0), {0: 1.0, 2: 1.0, 3: 0.75, 10: 0.0}),
    (ss(schedule="exponential", k=0.9), {0: 1.0, 1: 0.9, 3: 0.729, 20: 0.9 ** 20}),
    (ss(schedule="inverse_sigmoid", k=10.0), {0: 10 / 11, 10: 10 / (10 + math.e),
                                              50: 10 / (10 + math.exp(5)), 10**6: 0.0}),
    (ss(schedule="inverse_sigmoid", k=1.0), {0: 0.5, 2: 1 / (1 + math.exp(2))}),
])
def test_epsilon_follows_its_formula(cfg, expected):
    for step, value in expected.items():
        assert epsilon(cfg, step) == pytest.approx(value, abs=1e-12), step


def test_epoch_unit_decays_once_per_whole_epoch():
    cfg = ss(schedule="exponential", k=0.5, unit="epoch")
    # 2.5 optimizer steps per epoch (e.g. 5 batches, 2 accumulated per step): epochs end at 2.5, 5, 7.5.
    got = [epsilon(cfg, step, steps_per_epoch=2.5) for step in range(9)]
    assert got == [1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125]
    # A step that ends an epoch exactly counts in the next one despite float rounding (10 / (10/3)).
    assert epsilon(cfg, 10, steps_per_epoch=10 / 3) == 0.125
    assert epsilon(ss(schedule="exponential", k=0.5), 3, steps_per_epoch=2.5) == 0.125  # unit step ignores it


@pytest.mark.parametrize("keys, key", [
    ({"schedule": "constant", "epsilon": 1.2}, "objective.epsilon "),
    ({"schedule": "constant", "epsilon": -0.1}, "objective.epsilon "),
    ({"schedule": "linear", "c": -0.01}, "objective.c "),
    ({"schedule": "linear", "epsilon_min": 1.5}, "objective.epsilon_min "),
    ({"schedule": "exponential", "k": 1.5}, "objective.k "),
    ({"schedule": "exponential", "k": 0.0}, "objective.k "),
    ({"schedule": "inverse_sigmoid", "k": 0.5}, "objective.k "),
])
def test_out_of_range_parameters_are_one_line_errors_when_the_config_is_made(keys, key):
    with pytest.raises(UserError, match=key) as info:
        ss(**keys)
    assert "\n" not in str(info.value)


def test_parameters_of_other_schedules_are_not_checked():
    assert epsilon(ss(schedule="exponential", k=0.99, epsilon=7.0), 1) == pytest.approx(0.99)
    assert epsilon(ss(schedule="constant", epsilon=0.0, k=0.1), 5) == 0.0


def test_temperature_schedules():
    N = 100
    assert TEMPERATURE_SCHEDULES == ("constant", "exponential", "exp_decay", "linear")
    assert [temperature("constant", n, N, tau=0.7) for n in (0, 50, 200)] == [0.7] * 3
    # RelGAN: β_n = β_max^(n/N), τ = 1/β.
    assert temperature("exponential", 0, N, beta_max=1000.0) == pytest.approx(1.0)
    assert temperature("exponential", 50, N, beta_max=1000.0) == pytest.approx(1000.0 ** -0.5)
    assert temperature("exponential", 100, N, beta_max=1000.0) == pytest.approx(1e-3)
    assert temperature("exponential", 300, N, beta_max=10.0) == pytest.approx(0.1)
    # Jang et al.: τ_n = max(τ_min, exp(-r n)).
    assert temperature("exp_decay", 0, N, rate=1e-2, tau_min=0.5) == 1.0
    assert temperature("exp_decay", 30, N, rate=1e-2, tau_min=0.5) == pytest.approx(math.exp(-0.3))
    assert temperature("exp_decay", 90, N, rate=1e-2, tau_min=0.5) == 0.5
    # Linear from tau to tau_min over N steps, then held.
    assert temperature("linear", 0, N, tau=2.0, tau_min=0.5) == 2.0
    assert temperature("linear", 40, N, tau=2.0, tau_min=0.5) == pytest.approx(1.4)
    assert temperature("linear", 100, N, tau=2.0, tau_min=0.5) == pytest.approx(0.5)
    assert temperature("linear", 150, N, tau=2.0, tau_min=0.5) == pytest.approx(0.5)


def test_temperature_rejects_an_unknown_schedule():
    with pytest.raises(ValueError, match="unknown temperature schedule 'cosine'"):
        temperature("cosine", 0, 10)


@pytest.mark.parametrize("make, match", [
    (lambda: AdversarialConfig(tau_schedule="constant", tau=0.0), "objective.tau must be positive"),
    (lambda: AdversarialConfig(tau_schedule="linear", tau_min=-0.1), "objective.tau_min must be positive"),
    (lambda: AdversarialConfig(tau_schedule="exponential", beta_max=0.5), "objective.beta_max must be >= 1"),
    (lambda: AdversarialConfig(tau_schedule="exp_decay", rate=-1.0), "objective.rate must be >= 0"),
    (lambda: TrainConfig(max_steps=0), "train.max_steps must be positive"),  # N of every schedule
])
def test_temperature_parameters_are_checked_where_they_are_set(make, match):
    with pytest.raises(UserError, match=match):
        make()
