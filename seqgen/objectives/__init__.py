"""Training objectives: one small module each, behind the `Objective` seam."""

from __future__ import annotations

from seqgen.config import ObjectiveConfig
from seqgen.models.base import Generator
from seqgen.objectives.base import Objective
from seqgen.objectives.teacher_forcing import TeacherForcing

__all__ = ["Objective", "TeacherForcing", "build_objective"]


def build_objective(cfg: ObjectiveConfig, generator: Generator, steps_per_epoch: float = 1.0) -> Objective:
    """The objective a recipe names, wrapping `generator`."""
    if cfg.name == "teacher_forcing":
        return TeacherForcing(generator, label_smoothing=cfg.label_smoothing)
    raise ValueError(f"unknown objective {cfg.name}")
