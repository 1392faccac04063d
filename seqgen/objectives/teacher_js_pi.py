"""JS_π against a teacher (docs/theory/objectives.md#js-against-a-teacher): when a model of P is at hand,
the generalised Jensen-Shannon divergence between its next-token distribution and the student's is
computed exactly at every position, over the whole vocabulary, with no critic and no gradient estimator:

    L = sum over scored positions of JS_π[P(· | x_<t, c) ‖ Q(· | x_<t, c)] / (π (1 - π) N),

N the batch's target tokens (on the data's prefixes, the mean over them),

whose limits are KL[P‖Q] (π → 0, maximum likelihood against the teacher) and KL[Q‖P] (π → 1, mode
seeking); `normalize: false` trains on JS_π itself, which vanishes at both ends. The prefixes x_<t are
the data's, or for a fraction `on_policy` of the rows the student's own samples (as GKD's λ; π here is
GKD's β). The teacher is frozen, runs in eval mode, and must share the student's task and vocabulary
(`seqgen.objectives.teachers.load_teacher` says how a `transformers` model folder's vocabulary is checked).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from seqgen.config import ObjectiveConfig
from seqgen.data.batch import Batch
from seqgen.errors import UserError
from seqgen.functional import check_pi, js_pi_per_position
from seqgen.models import Generator
from seqgen.objectives import estimators
from seqgen.objectives.base import Objective, Player, RunInfo
from seqgen.objectives.teachers import DATA, distribution_teacher, load_teacher
from seqgen.randomness import Source, fork, uniform


@dataclass
class TeacherJsPiConfig(ObjectiveConfig):
    """JS_π between a teacher's and the student's next-token distributions, exactly, per position."""

    name: Literal["teacher_js_pi"] = "teacher_js_pi"
    """Which objective trains the generator."""
    teacher: str | None = None
    """The teacher: a run folder (its model/) or an exported model folder, of the same task and with the
    same vocabulary as the run (e.g. a larger model trained on the same tokenizer); a `transformers` model
    folder (config.json and weights, as `save_pretrained` writes them) whose tokenizer there is the run's,
    or without one whose vocab_size is the run's vocabulary size; or `data`, the distribution the run's
    data are drawn from (`data.source: toy` or `oracle`), so that the student is fitted to the known P."""
    pi: float = 0.5
    """π in (0, 1): → 0 behaves like KL[P‖Q] (mass covering), → 1 like KL[Q‖P] (mode seeking); GKD's β."""
    normalize: bool = True
    """Train on JS_π / (π (1 - π)), whose limits are the two KLs (False: on JS_π itself)."""
    on_policy: float = 0.0
    """Fraction in [0, 1] of the rows whose prefixes are the student's own samples (GKD's λ)."""
    temperature: float = 1.0
    """Both models' logits are divided by it before the divergence."""

    def __post_init__(self) -> None:
        check_pi(self.pi, "objective.pi")
        if not 0.0 <= self.on_policy <= 1.0:
            raise UserError(f"objective.on_policy must be in [0, 1], got {self.on_policy}")
        if not self.temperature > 0:
            raise UserError(f"objective.temperature must be positive, got {self.temperature}")

    def check_run(self, run) -> None:
        if not self.teacher:
            raise UserError("objective.teacher is required: a run, exported or transformers model folder of the "
                            "same task and vocabulary, or data (toy or oracle data)")
        if self.teacher == DATA and run.data.source not in ("toy", "oracle"):
            raise UserError(f"objective.teacher=data needs data.source=toy or oracle (the distribution the data "
                            f"are drawn from is the teacher), got data.source={run.data.source}")


class TeacherJsPi(nn.Module, Objective):
    """The student's loss against a frozen teacher; one player, this module (the teacher is held, not
    registered, so it is neither trained nor synchronised across processes)."""

    def __init__(self, generator: Generator, cfg: TeacherJsPiConfig | None = None,
                 run: RunInfo | None = None, teacher: Generator | None = None) -> None:
        super().__init__()
        self.generator = generator
        self.cfg = cfg or TeacherJsPiConfig()
        run = run or RunInfo()
        if teacher is None:
            if not self.cfg.teacher:
                raise UserError("objective.teacher is required: a run, exported or transformers model folder "
                                "of the same task and vocabulary, or data (toy or oracle data)")
            teacher = (distribution_teacher(run.distribution, generator.vocab) if self.cfg.teacher == DATA
                       else load_teacher(self.cfg.teacher, generator, run.task))
        self._teacher = (teacher,)

    @property
    def teacher(self) -> Generator:
        return self._teacher[0]

    def players(self) -> list[Player]:
        return [Player(self)]

    def forward(self, batch: Batch, step: int, noise: Source = None) -> tuple[Tensor, dict[str, Tensor]]:
        inputs, mask = self._prefixes(batch, noise)  # (B, T), (B, T)
        teacher = self.teacher.to(inputs.device)
        tau, pi = self.cfg.temperature, self.cfg.pi
        log_q = (self.generator(inputs, self.generator.encode(batch.context)).float() / tau).log_softmax(-1)
        with torch.no_grad():
            log_p = (teacher(inputs, teacher.encode(batch.context)).float() / tau).log_softmax(-1)
        # positions whose prefix P cannot produce (a special token in a sample) have no conditional: unscored
        defined = torch.isfinite(log_p).any(-1)
        mask = mask & defined
        log_p = torch.where(defined[..., None], log_p, log_q.detach())
        js = js_pi_per_position(log_p, log_q, pi) * mask  # (B, T)
        # The sum is divided by the data's target tokens (the units `weight` counts), also for rows whose
        # prefixes were sampled, so that micro-batches and processes combine exactly as one large batch.
        total = js.sum() / batch.target_mask.sum().clamp(min=1)
        loss = total / (pi * (1 - pi)) if self.cfg.normalize else total
        value = (js.sum() / mask.sum().clamp(min=1)).detach()  # the mean over the positions scored
        return loss, {"loss": loss.detach(), "js_pi": value, "js_pi_over_pi": value / pi,
                      "js_pi_over_1mpi": value / (1 - pi)}

    def _prefixes(self, batch: Batch, noise: Source) -> tuple[Tensor, Tensor]:
        """The model inputs (B, T) and the positions that count (B, T): the data's, or for the rows a coin
        picks with probability `on_policy`, the student's own samples (decoded without gradient)."""
        inputs, mask = batch.inputs, batch.target_mask
        if not self.cfg.on_policy:
            return inputs, mask
        length = batch.targets.shape[1]
        coins = uniform((len(batch),), inputs.device, fork(noise, "coins")) < self.cfg.on_policy  # (B,)
        if not coins.any():
            return inputs, mask
        model = self.generator
        with torch.no_grad():
            tokens, sampled_mask = estimators.sample_rollout(model, model.encode(batch.context), len(batch),
                                                             length, fork(noise, "rollout"))
        tokens = estimators.pad_columns(tokens, length, model.vocab.pad_id)
        sampled_mask = estimators.pad_columns(sampled_mask, length, False)
        bos = torch.full_like(tokens[:, :1], model.vocab.bos_id)
        sampled = torch.cat([bos, tokens[:, :-1]], 1)
        return (torch.where(coins[:, None], sampled, inputs), torch.where(coins[:, None], sampled_mask, mask))
