"""The seam between the training loop and every objective.

An objective hands the loop its players; the loop prepares each player's module with its own
optimizer and schedule, and in every optimizer step updates the players in order, each `repeats`
times, each update over `train.gradient_accumulation_steps` global batches. Every player's module is
called the same way,

    loss, metrics = module(batch, step, noise)

on this process's rows of one micro-batch (`Batch`), the number of optimizer steps taken so far, and
the micro-batch's random draws (`seqgen.randomness.RowNoise`: a pure function of the seed, the step,
the player, the update, the micro-batch and the row, so resumed and multi-process runs draw what one
uninterrupted process would). `loss` is the mean over the batch's units (`Objective.weight`);
`metrics` are detached 0-d tensors of the same units, logged under the player's namespace.

After training, the loop writes `exports()` beside the model (the critic of an adversarial run, say).
See docs/architecture.md for one batch's way from file to loss and docs/adding_an_objective.md for
a worked example.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from seqgen.data.batch import Batch
from seqgen.data.synthetic.oracle import OracleLSTM
from seqgen.data.synthetic.toy import ToyDistribution
from seqgen.models.base import Generator


@dataclass
class Player:
    """One module the loop updates with its own AdamW optimizer (train.betas and train.weight_decay).

    Attributes:
        module: called as module(batch, step, noise) -> (loss, metrics); holds the parameters updated.
        namespace: prefix of its logged metrics ("train" for the generator's loss).
        lr: None: train.lr under train.lr_schedule and train.warmup_steps; a number: this rate, constant.
        repeats: updates per optimizer step.
        warmup: extra updates before the first optimizer step's (e.g. a critic's against the starting
            generator).
    """

    module: nn.Module
    namespace: str = "train"
    lr: float | None = None
    repeats: int = 1
    warmup: int = 0


@dataclass(frozen=True)
class RunInfo:
    """What an objective may know of the run it trains.

    Attributes:
        task: "lm", "translation" or "captioning".
        max_steps: train.max_steps (for schedules over the whole run).
        steps_per_epoch: optimizer steps per pass over the training data (for epoch-based schedules).
        distribution: the data's distribution P when the data is synthetic (`TaskData.distribution`:
            an enumerable `ToyDistribution`, or the oracle LSTM), else None.
    """

    task: str = "lm"
    max_steps: int = 1
    steps_per_epoch: float = 1.0
    distribution: ToyDistribution | OracleLSTM | None = None


class Objective:
    """Trains `generator`: gives the loop its players, the units a batch's loss is averaged over, and
    what to export beside the model.

    Subclasses take (generator, cfg, run) with `cfg` their config class (a subclass of
    `seqgen.config.ObjectiveConfig`) and `run` a `RunInfo`.
    """

    generator: Generator
    fixed_calls: bool = False
    """Whether every process calls each layer of a player the same number of times per update, whatever
    its rows (no rollout that stops when its rows end, no call made for some rows only). Sharded
    training then gives each Transformer layer its own FSDP unit."""

    def players(self) -> list[Player]:
        """The players in update order."""
        raise NotImplementedError

    def weight(self, batch: Batch) -> int:
        """Units the loss of `batch` is averaged over (default: target tokens, EOS included), so that the
        loop weights micro-batches and processes exactly as one large batch would."""
        return batch.num_target_tokens

    def exports(self) -> dict[str, nn.Module]:
        """Modules trained beside the generator, written as NAME.safetensors next to the model."""
        return {}
