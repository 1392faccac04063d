"""Training objectives: one small module each, behind the `Objective` seam."""

from __future__ import annotations

from seqgen.config import ObjectiveConfig
from seqgen.data.synthetic.toy import ToyDistribution
from seqgen.models.base import Generator
from seqgen.objectives.adversarial import Adversarial
from seqgen.objectives.base import Objective
from seqgen.objectives.scheduled_sampling import ScheduledSampling
from seqgen.objectives.teacher_forcing import TeacherForcing

__all__ = ["Adversarial", "Objective", "ScheduledSampling", "TeacherForcing", "build_objective"]


def build_objective(cfg: ObjectiveConfig, generator: Generator, steps_per_epoch: float = 1.0, *,
                    task: str = "lm", max_steps: int = 1, toy: ToyDistribution | None = None) -> Objective:
    """The objective a recipe names, wrapping `generator`.

    Args:
        cfg: the recipe's objective section.
        generator: the model to train.
        steps_per_epoch: optimizer steps per pass over the training data (for epoch-based schedules).
        task: the run's task (what context the adversarial critic reads).
        max_steps: train.max_steps (the adversarial temperature schedule's N).
        toy: the run's data distribution when it is an enumerable toy (the adversarial oracle critic
            and critic diagnostics use it).
    """
    if cfg.name == "teacher_forcing":
        return TeacherForcing(generator, label_smoothing=cfg.label_smoothing)
    if cfg.name == "scheduled_sampling":
        return ScheduledSampling(generator, cfg.scheduled_sampling, label_smoothing=cfg.label_smoothing,
                                 steps_per_epoch=steps_per_epoch)
    if cfg.name == "adversarial":
        return Adversarial(generator, cfg.adversarial, task=task, max_steps=max_steps,
                           label_smoothing=cfg.label_smoothing, toy=toy)
    raise ValueError(f"unknown objective {cfg.name}")
