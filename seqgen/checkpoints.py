"""Resumable checkpoints that are never half-written.

Layout under `<output_dir>/checkpoints/`:
    step-000200/      accelerate `save_state` (weights as safetensors, optimizer, scheduler, RNG
                      states) + `trainer_state.json` (step, data position, best metric); sharded
                      training (`seqgen.sharding`): the schedules and RNG states from accelerate, the
                      parameters' and optimizers' shards in shards/, written by every process
    latest            the name of the newest complete checkpoint folder

A checkpoint is written into a temporary folder, then renamed into place, and only then does `latest`
(replaced atomically) point at it: a write interrupted at any moment leaves `latest` naming a complete
checkpoint, and the leftover temporary folder is removed on the next save.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator

from seqgen.errors import UserError
from seqgen.sharding import SHARDS, Sharding

STATE_FILE = "trainer_state.json"
logger = logging.getLogger(__name__)
_warned: set[Path] = set()


@dataclass
class TrainerState:
    """Everything besides the accelerate state that resuming needs: a pure position in the run."""

    step: int = 0
    """Optimizer steps taken."""
    epoch: int = 0
    """Epoch of the next training batch."""
    batch_in_epoch: int = 0
    """Global batches of that epoch already consumed."""
    best_value: float | None = None
    """The best value of train.best_metric so far (None: no evaluation yet)."""
    best_step: int | None = None
    """The step of that evaluation, whose weights best/ holds."""
    evals_without_improvement: int = 0
    """Evaluations since then (what early stopping counts)."""
    best_eval: dict | None = None
    """That evaluation's `metrics` and what it `scored` (`seqgen.evaluate.EvalResult`), which
    metrics.json reports when model/ is the best checkpoint."""
    scalers: list[dict] = field(default_factory=list)
    """Each player's gradient scaler state (its loss scale and growth count under fp16; empty dicts
    otherwise), in the order of the objective's players."""


class Checkpoints:
    """Writes, finds and prunes the checkpoints of one run."""

    def __init__(self, output_dir: str | Path, keep_last: int, sharding: Sharding | None = None,
                 optimizers: list[torch.optim.Optimizer] = ()) -> None:
        """`sharding` and `optimizers`: what a sharded run's checkpoints hold besides accelerate's state."""
        self.root = Path(output_dir) / "checkpoints"
        self.keep_last = max(1, keep_last)
        self.sharding = sharding
        self.optimizers = list(optimizers)

    def latest(self) -> Path | None:
        """The checkpoint `latest` names; when that pointer is missing or names no complete checkpoint
        (a folder edited by hand, a copy that lost it), the newest complete one, with a warning; None
        when there is none."""
        pointer = self.root / "latest"
        if pointer.is_file():
            path = self.root / pointer.read_text(errors="replace").strip()
            if path.name and (path / STATE_FILE).is_file():
                return path
        complete = sorted(p for p in self.root.glob("step-*") if (p / STATE_FILE).is_file())
        if not complete:
            return None
        if pointer not in _warned:  # once per run folder, however often it is looked up
            _warned.add(pointer)
            logger.warning("%s is missing or names no complete checkpoint; using %s, the newest complete one",
                           pointer, complete[-1].name)
        return complete[-1]

    def save(self, accelerator: Accelerator, state: TrainerState) -> Path:
        """Write checkpoint step-N of `state` (with the sharded modules and their optimizers when sharded)."""
        final = self.root / f"step-{state.step:07d}"
        tmp = self.root / f".tmp-{final.name}"
        if accelerator.is_main_process:
            for stale in self.root.glob(".tmp-*"):
                shutil.rmtree(stale, ignore_errors=True)
            tmp.mkdir(parents=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(tmp))
        if self.sharding is not None:
            self.sharding.save(self.optimizers, tmp)
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            (tmp / STATE_FILE).write_text(json.dumps(asdict(state), indent=2))
            usual_permissions(tmp)
            if final.exists():  # the same step saved again (the final save after an interval save)
                shutil.rmtree(final)
            os.replace(tmp, final)
            _write_atomic(self.root / "latest", final.name)
            self._prune(state.best_step)
        accelerator.wait_for_everyone()
        return final

    def load(self, accelerator: Accelerator, path: Path) -> TrainerState:
        """Read checkpoint `path` into the prepared (or sharded) modules and optimizers, the schedules and
        RNG states; returns its trainer state."""
        sharded = (path / SHARDS).is_dir()
        if sharded and self.sharding is None:
            raise UserError(f"cannot resume from checkpoint {path}: it holds shards (train.sharding=fsdp); resume "
                            "it with train.sharding=fsdp, launched as several processes")
        if self.sharding is not None and not sharded:
            raise UserError(f"cannot resume from checkpoint {path}: it was written unsharded; resume it with "
                            "train.sharding=none")
        try:
            accelerator.load_state(str(path))
            if self.sharding is not None:
                self.sharding.load(self.optimizers, path)
            return TrainerState(**json.loads((path / STATE_FILE).read_text()))
        except FileNotFoundError as e:
            # Accelerate looks for the safetensors weights, then for a pickled fallback; name the first.
            missing = re.sub(r"^pytorch_model(_\d+)?\.bin$", r"model\1.safetensors", Path(e.filename or "?").name)
            raise UserError(f"cannot resume from checkpoint {path}: {missing} is missing") from None
        except (OSError, ValueError, RuntimeError, KeyError, TypeError, pickle.UnpicklingError) as e:
            raise UserError(f"cannot resume from checkpoint {path}: {str(e).splitlines()[0]}") from None

    def _prune(self, best_step: int | None) -> None:
        done = sorted(p for p in self.root.glob("step-*") if (p / STATE_FILE).is_file())
        keep = set(done[-self.keep_last:])
        if best_step is not None:
            keep.add(self.root / f"step-{best_step:07d}")
        for path in done:
            if path not in keep:
                shutil.rmtree(path, ignore_errors=True)


def usual_permissions(directory: Path) -> None:
    """Give the files in `directory` the mode a new file gets under the process's umask: safetensors
    writes its files readable by their owner only, unlike every other file of a run."""
    mask = os.umask(0)
    os.umask(mask)
    for path in directory.iterdir():
        if path.is_file():
            path.chmod(0o666 & ~mask)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
