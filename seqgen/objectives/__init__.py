"""Training objectives: one module each, behind the `Objective` seam (`seqgen.objectives.base`).

`OBJECTIVES` maps each `objective.name` to its class and config class; adding an objective is one
module and one line here (docs/adding_an_objective.md).
"""

from __future__ import annotations

from seqgen.config import ObjectiveConfig
from seqgen.models.base import Generator
from seqgen.objectives.adversarial import Adversarial, AdversarialConfig
from seqgen.objectives.base import Objective, Player, RunInfo
from seqgen.objectives.scheduled_sampling import ScheduledSampling, ScheduledSamplingConfig
from seqgen.objectives.teacher_forcing import TeacherForcing, TeacherForcingConfig
from seqgen.objectives.teacher_js_pi import TeacherJsPi, TeacherJsPiConfig
from seqgen.objectives.weighted_likelihood import WeightedLikelihood, WeightedLikelihoodConfig

__all__ = ["OBJECTIVES", "Adversarial", "AdversarialConfig", "Objective", "Player", "RunInfo",
           "ScheduledSampling", "ScheduledSamplingConfig", "TeacherForcing", "TeacherForcingConfig",
           "TeacherJsPi", "TeacherJsPiConfig", "WeightedLikelihood", "WeightedLikelihoodConfig", "build_objective"]

OBJECTIVES: dict[str, tuple[type[Objective], type[ObjectiveConfig]]] = {
    "teacher_forcing": (TeacherForcing, TeacherForcingConfig),
    "scheduled_sampling": (ScheduledSampling, ScheduledSamplingConfig),
    "adversarial": (Adversarial, AdversarialConfig),
    "weighted_likelihood": (WeightedLikelihood, WeightedLikelihoodConfig),
    "teacher_js_pi": (TeacherJsPi, TeacherJsPiConfig),
}


def build_objective(cfg: ObjectiveConfig, generator: Generator, run: RunInfo | None = None) -> Objective:
    """The objective `cfg` names (`cfg.name`), training `generator` in the run `run` describes."""
    return OBJECTIVES[cfg.name][0](generator, cfg, run or RunInfo())
