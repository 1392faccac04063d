"""The one training loop: any objective, any generator, one CPU or many processes under Accelerate.

Read top to bottom: prepare the run folder, data, model, the objective's players and their optimizers;
resume if asked; then take optimizer steps, each updating every player in turn over
`gradient_accumulation_steps` global batches, evaluating, logging and checkpointing on the way;
finally export the model in `save_pretrained` style, with what the objective trained beside it: the
checkpoint that scored best on the validation metric, or the last step (`train.export`).

The loop knows objectives only through `seqgen.objectives.base`: players called as
module(batch, step, noise). Every process reads the same global batches and takes rows `rank::world`
of each, each micro-batch's loss is weighted by its share of the step's units, and each micro-batch's
random draws are a pure function of (seed, step, player, update, micro-batch, row)
(`seqgen.randomness`), so a step computes the same gradient whatever the number of processes and
micro-batches (up to float rounding), and a resumed run continues as the uninterrupted one.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import ProjectConfiguration, set_seed
from torch.distributed.tensor import DTensor
from transformers import get_scheduler

from seqgen.allocator import retain_freed_memory
from seqgen.checkpoints import Checkpoints, TrainerState
from seqgen.config import RunConfig, to_dict
from seqgen.data import load_tokenizer
from seqgen.data.shares import Share, shares
from seqgen.errors import UserError
from seqgen.evaluate import evaluate, sample_texts
from seqgen.models import Generator, build_generator, exported_step
from seqgen.objectives import Objective, Player, RunInfo, build_objective
from seqgen.precision import Precision
from seqgen.processes import load_data_once, make_accelerator
from seqgen.progress import progress
from seqgen.randomness import RowNoise, noise_key
from seqgen.run_folder import (
    RunLock,
    check_output_dir,
    copy_export,
    export,
    finished,
    flat_keys,
    init_source,
    restore,
    resume_changes,
    start_output_dir,
    stopped_before_first_checkpoint,
    trim_log,
    write_recipe,
)
from seqgen.sharding import Sharding
from seqgen.tracking import JSONLTracker

SCHEDULES = {"constant": "constant_with_warmup", "linear": "linear", "cosine": "cosine",
             "inverse_sqrt": "inverse_sqrt"}


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def train(cfg: RunConfig, *, resume: bool = False, overwrite: bool = False,
          accelerator: Accelerator | None = None) -> tuple[Generator, dict[str, float]]:
    """Train `cfg`'s generator with its objective; returns it, holding the exported weights, and their
    evaluation metrics.

    Writes to `cfg.output_dir`: recipe.yaml, tokenizer.json, logs/metrics.jsonl, checkpoints/,
    best/ (the best on `cfg.train.best_metric`), model/ (best/'s weights or the last step's, as
    `cfg.train.export` says), metrics.json (the exported checkpoint's metrics and how the run ended).

    Raises:
        UserError: the output folder already holds a run (and neither `resume` nor `overwrite`), the
            resumed run's recipe differs in a frozen section, bad data, or a diverged loss.
    """
    lock = RunLock()
    try:
        return _train(cfg, resume, overwrite, accelerator, lock)
    finally:  # however the run ends, in this process or not
        lock.release()


def _train(cfg: RunConfig, resume: bool, overwrite: bool, accelerator: Accelerator | None,
           lock: RunLock) -> tuple[Generator, dict[str, float]]:
    tc = cfg.train
    out = Path(cfg.output_dir)
    retain_freed_memory()  # each step's large tensors reused from the heap, not mapped anew by the kernel
    if accelerator is None:
        accelerator = make_accelerator(
            mixed_precision="no",  # seqgen.precision runs train.mixed_precision itself
            step_scheduler_with_optimizer=False,  # the loop steps the schedule once per optimizer step
            log_with=[JSONLTracker("seqgen", out / "logs")] + (["tensorboard"] if _tensorboard(tc) else []),
            project_config=ProjectConfiguration(project_dir=str(out), logging_dir=str(out / "logs")),
        )
    init_dir = init_source(tc.init_from, cfg) if tc.init_from and not resume else None
    # Everything the recipe names (data, tokenizer, model, objective) is built and checked before the
    # output folder is touched, so that a mistake leaves an existing run as it was.
    if accelerator.is_main_process:
        lock.take(out)
    if resume and stopped_before_first_checkpoint(cfg, out):
        accelerator.print(f"the run in {out} stopped before its first checkpoint; starting it again from step 0")
        resume, overwrite = False, True
    tokenizer = check_output_dir(cfg, out, resume, overwrite)
    if init_dir is not None:  # the initial weights only make sense with their own tokenizer
        tokenizer, _ = load_tokenizer(init_dir)
    set_seed(cfg.seed)

    data = load_data_once(cfg, tokenizer, accelerator)
    train_loader = data.splits["train"].loader(cfg.data, shuffle=cfg.data.shuffle, seed=cfg.seed)
    generator = build_generator(cfg.model, data.vocab, cfg.task, cfg.data.image_size)
    if init_dir is not None:
        generator.load_weights(init_dir)
    steps_per_epoch = len(train_loader.batch_sampler) / tc.gradient_accumulation_steps
    objective = build_objective(cfg.objective, generator,
                                RunInfo(cfg.task, tc.max_steps, steps_per_epoch, data.distribution))
    if not resume:
        start_output_dir(cfg, out, data.tokenizer, accelerator)
    if accelerator.is_main_process:
        lock.take(out)  # a new folder is locked once it exists
    precision = Precision(tc.mixed_precision, accelerator.device)
    players, sharding = _prepare(objective, generator, tc, accelerator, precision)
    checkpoints = Checkpoints(out, tc.keep_last, sharding, [p.optimizer for p in players])
    state = TrainerState()
    if resume:
        state = checkpoints.load(accelerator, checkpoints.latest())
        for player, scaler_state in zip(players, state.scalers):
            if scaler_state:  # empty: saved without fp16
                player.scaler.load_state_dict(scaler_state)
        ended = state.step >= tc.max_steps or _patience_spent(state, tc)
        if ended and finished(out, state.step):
            raise UserError(_finished_message(out, state, tc))
        if ended:
            accelerator.print(f"the run reached step {state.step} but was stopped before its export; "
                              f"finishing it")
        else:
            accelerator.print(f"resuming from step {state.step}")
        _reexport_best(state, generator, data, cfg, objective, out, sharding)
        changes, cfg = resume_changes(cfg, out, state.step)
        for line in changes:
            accelerator.print(line)
        if accelerator.is_main_process:  # records logged after the checkpoint are logged again
            trim_log(out / "logs" / "metrics.jsonl", state.step)
            if changes:
                write_recipe(cfg, out)
    tracked = {k: v if isinstance(v, (int, float, str, bool)) else json.dumps(v)
               for k, v in flat_keys(to_dict(cfg)).items()}
    accelerator.init_trackers("seqgen", config={**tracked, "num_processes": accelerator.num_processes})

    batches = shares(train_loader, state, accelerator.process_index, accelerator.num_processes)
    eval_split = cfg.eval.split if cfg.eval.split in data.splits else None
    bar = progress(desc="train", total=tc.max_steps, initial=state.step, show=accelerator.is_local_main_process)
    window = _Window(accelerator.device)
    nonfinite = torch.zeros((), dtype=torch.bool, device=accelerator.device)
    last_eval: dict | None = None  # the latest evaluation's metrics and what it scored
    # a run resumed after its end (stopped before the export) only exports
    stop = _patience_spent(state, tc)

    for player in players:
        player.module.train()
    while state.step < tc.max_steps and not stop:
        # --- one optimizer step: each player in turn (a critic before the generator), `repeats` updates
        # each (and its warm-up updates before the first step), each over `gradient_accumulation_steps`
        # global batches
        for player in players:
            warmup = player.spec.warmup if state.step == 0 else 0
            for update in range(player.spec.repeats + warmup):
                micro = [next(batches) for _ in range(tc.gradient_accumulation_steps)]
                _update(player, micro, objective, state.step, update, cfg.seed, accelerator, precision, sharding,
                        window, nonfinite, tc.max_grad_norm)
        state.step += 1
        bar.update(1)

        # --- logging, evaluation, checkpointing
        end = state.step == tc.max_steps
        saving = state.step % tc.save_every == 0 or end
        if state.step % tc.log_every == 0 or end or saving:
            if nonfinite.item():  # checked before anything is logged or saved
                raise TrainingDiverged(
                    f"the loss became NaN or infinite before step {state.step}; the last good checkpoint "
                    f"is {checkpoints.latest() or 'none'}; lower train.lr or set train.max_grad_norm")
        if state.step % tc.log_every == 0 or end:
            logs = window.reduce(accelerator)
            for player in players:
                logs[f"{player.spec.namespace}/lr"] = player.scheduler.get_last_lr()[0]
                if player.scaler.is_enabled():
                    logs[f"{player.spec.namespace}/loss_scale"] = player.scaler.get_scale()
            logs["train/epoch"] = state.epoch
            accelerator.log(logs, step=state.step)
            bar.set_postfix(loss=f"{logs.get('train/loss', float('nan')):.4f}")
            window = _Window(accelerator.device)
        improved = False
        if eval_split and (state.step % tc.eval_every == 0 or end):
            with _gathered(sharding):
                result = evaluate(generator, data, eval_split, cfg, accelerator,
                                  bleu=cfg.eval.bleu, max_batches=cfg.eval.max_batches, seed=cfg.seed)
                samples = sample_texts(generator, data, cfg, tc.num_samples, accelerator.device, seed=cfg.seed,
                                       split=eval_split) if tc.num_samples and accelerator.is_main_process else []
            last_eval = {"metrics": result.metrics, "scored": result.scored}
            accelerator.log(result.metrics, step=state.step)
            improved = _track_best(state, last_eval, tc)
            stop = _patience_spent(state, tc) and state.step < tc.max_steps
            if accelerator.is_main_process:
                _report(bar, state.step, result.metrics, samples)
                if stop:
                    bar.write(_stop_message(state, tc))
        if saving or improved or stop:
            state.scalers = [player.scaler.state_dict() for player in players]
            checkpoints.save(accelerator, state)
        # best/ is written after the checkpoint that records it, so that a run stopped in between finds
        # its best step in its latest checkpoint and writes best/ again from it when resumed
        if improved:
            _export(generator, data, cfg, objective, out / "best", state.step, sharding)
    bar.close()

    exported, measured = _exported(state, tc, last_eval)
    if exported != state.step:  # the best checkpoint, an earlier step: its weights are in best/
        accelerator.wait_for_everyone()
        _check_best(out, exported)
        if sharding is None:
            restore(generator, objective.exports(), out / "best")
    if sharding is None:
        if accelerator.is_main_process:
            export(generator, data.tokenizer, cfg, out / "model", objective.exports(), step=exported)
    else:  # model/ written from the shards or copied from best/, and read back whole on every process
        if exported == state.step:
            _export(generator, data, cfg, objective, out / "model", exported, sharding)
        elif accelerator.is_main_process:
            copy_export(out / "best", out / "model")
        accelerator.wait_for_everyone()
        generator = build_generator(cfg.model, data.vocab, cfg.task, cfg.data.image_size).to(accelerator.device)
        generator.load_weights(out / "model")
    if measured is None and eval_split is not None:  # a run resumed after its end, or an old checkpoint's
        result = evaluate(generator, data, eval_split, cfg, accelerator, bleu=cfg.eval.bleu,
                          max_batches=cfg.eval.max_batches, seed=cfg.seed)
        measured = {"metrics": result.metrics, "scored": result.scored}
    if accelerator.is_main_process:
        summary = _summary(state, tc, exported, measured)
        (out / "metrics.json").write_text(json.dumps(summary, indent=2))
        accelerator.print(f"model written to {out / 'model'}: {_exported_words(state, tc, exported)}")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return generator, measured["metrics"] if measured else {}


@dataclass
class _Prepared:
    """A player with its module, optimizer and schedule as Accelerate prepared them (or sharded), the
    function that runs it, and its own gradient scaler (a pass-through unless train.mixed_precision=fp16)."""

    spec: Player
    module: torch.nn.Module
    call: Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]]
    """(batch, step, noise) -> (loss, metrics): the module as prepared, or through the sharded root."""
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler


def _prepare(objective: Objective, generator: Generator, tc, accelerator: Accelerator,
             precision: Precision) -> tuple[list[_Prepared], Sharding | None]:
    """The objective's players, each with an AdamW optimizer (train.betas, train.weight_decay) and its
    schedule: train.lr under train.lr_schedule, or the player's own constant rate; and the sharding of
    their modules under train.sharding=fsdp (None: unsharded). Unsharded, everything is prepared in one
    call, so checkpoints hold every player, optimizer and schedule; sharded, the modules are sharded
    before their optimizers are made, and Accelerate prepares the schedules alone."""
    specs = objective.players()
    sharding = None
    if tc.sharding == "fsdp" and accelerator.num_processes == 1:
        accelerator.print("train.sharding=fsdp with one process: nothing to shard; training unsharded")
    elif tc.sharding == "fsdp":
        for spec in specs:
            spec.module.to(accelerator.device)
        sharding = Sharding([spec.module for spec in specs], [generator, *objective.exports().values()],
                            accelerator.is_main_process, layers=objective.fixed_calls)
    optimizers, schedules = [], []
    for spec in specs:
        # sharded: one multi-tensor update per step, not a DTensor dispatch per parameter and operation
        opt = torch.optim.AdamW(spec.module.parameters(), lr=tc.lr if spec.lr is None else spec.lr,
                                betas=tuple(tc.betas), weight_decay=tc.weight_decay,
                                foreach=True if sharding is not None else None)
        optimizers.append(opt)
        schedules.append(get_scheduler("constant", opt) if spec.lr is not None else
                         get_scheduler(SCHEDULES[tc.lr_schedule], opt, num_warmup_steps=tc.warmup_steps,
                                       num_training_steps=tc.max_steps))
    n = len(specs)
    if sharding is not None:
        schedules = accelerator.prepare(*schedules)
        schedules = list(schedules) if n > 1 else [schedules]  # prepare returns one object unpacked
        return [_Prepared(spec, spec.module, sharding.call(i), optimizers[i], schedules[i], precision.scaler())
                for i, spec in enumerate(specs)], sharding
    prepared = accelerator.prepare(*[spec.module for spec in specs], *optimizers, *schedules)
    return [_Prepared(spec, prepared[i], prepared[i], prepared[n + i], prepared[2 * n + i], precision.scaler())
            for i, spec in enumerate(specs)], None


def _update(player: _Prepared, micro: list[Share], objective: Objective, step: int, update: int, seed: int,
            accelerator: Accelerator, precision: Precision, sharding: Sharding | None, window: _Window,
            nonfinite: torch.Tensor, max_grad_norm: float | None) -> None:
    """One optimizer update of `player` over this process's shares of the global batches `micro`.

    Each micro-batch's loss is weighted by its share
    of the step's units, so the update is that of one large batch. Sets `nonfinite` (in place) when
    a loss is NaN or infinite. Under fp16 the player's own scaler scales the loss, unscales the
    gradients before clipping and skips the update when they overflowed.
    """
    step_weight = sum(objective.weight(share.whole) for share in micro)
    for i, share in enumerate(micro):
        local = share.local
        weight, tokens = objective.weight(local), local.num_target_tokens  # on the host, before the copy
        local = local.to(accelerator.device)
        noise = RowNoise(noise_key(seed, step, player.spec.namespace, update, i), share.rows, share.total,
                         accelerator.device)
        last = i == len(micro) - 1
        if sharding is not None:
            sharding.set_gradient_sync(last)
        with contextlib.nullcontext() if last or sharding else accelerator.no_sync(player.module):
            with precision.autocast():
                loss, metrics = player.call(local, step, noise)
            # DDP averages gradients over processes, hence the factor num_processes.
            accelerator.backward(player.scaler.scale(loss * (weight * accelerator.num_processes / max(step_weight, 1))))
        nonfinite |= ~torch.isfinite(loss.detach())
        window.add(player.spec.namespace, metrics, weight)
        window.tokens += tokens
    if max_grad_norm is not None:
        player.scaler.unscale_(player.optimizer)
        grad_norm = accelerator.clip_grad_norm_(player.module.parameters(), max_grad_norm)
        if isinstance(grad_norm, DTensor):  # sharded gradients: the norm over every shard
            grad_norm = grad_norm.full_tensor()
        window.add(player.spec.namespace, {"grad_norm": grad_norm}, step_weight)
    player.scaler.step(player.optimizer)
    player.scaler.update()
    player.scheduler.step()
    player.optimizer.zero_grad(set_to_none=True)


class _Window:
    """Weighted sums of the logged metrics since the last log. They stay on the device until `reduce`,
    so a step never waits on the host."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.sums: dict[str, torch.Tensor | float] = {}
        self.weights: dict[str, float] = {}
        self.tokens = 0
        self.start = time.perf_counter()

    def add(self, prefix: str, metrics: dict[str, torch.Tensor], weight: float) -> None:
        for k, v in metrics.items():
            key = f"{prefix}/{k}"
            self.sums[key] = self.sums.get(key, 0.0) + v * weight
            self.weights[key] = self.weights.get(key, 0.0) + weight

    def reduce(self, accelerator: Accelerator) -> dict[str, float]:
        """Weighted means of each metric over the window, across processes, and the token throughput."""
        keys = sorted(self.sums)
        values = torch.stack([torch.as_tensor(self.sums[k], device=self.device).double() for k in keys]
                             + [torch.tensor(float(x), dtype=torch.float64, device=self.device)
                                for x in [self.weights[k] for k in keys] + [self.tokens]])
        values = accelerator.reduce(values, reduction="sum")
        n = len(keys)
        logs = {k: values[i].item() / max(values[n + i].item(), 1e-12) for i, k in enumerate(keys)}
        logs["train/tokens_per_second"] = values[-1].item() / max(time.perf_counter() - self.start, 1e-9)
        return logs


def _track_best(state: TrainerState, evaluation: dict, tc) -> bool:
    """Record an evaluation (`metrics` and what they `scored`) in `state`; whether it is the best yet."""
    metrics = evaluation["metrics"]
    value = metrics.get(tc.best_metric)
    if value is None:
        raise UserError(f"train.best_metric {tc.best_metric} is not among the evaluation metrics: "
                        f"{', '.join(sorted(metrics))}")
    better = state.best_value is None or (value < state.best_value if tc.best_mode == "min"
                                          else value > state.best_value)
    if better:
        state.best_value, state.best_step, state.evals_without_improvement = value, state.step, 0
        state.best_eval = evaluation
    else:
        state.evals_without_improvement += 1
    return better


def _patience_spent(state: TrainerState, tc) -> bool:
    """Whether early stopping ends the run: train.early_stopping_patience evaluations in a row without
    improvement (judged with the recipe's patience, so a resumed run may raise it to continue)."""
    return tc.early_stopping_patience is not None and state.evals_without_improvement >= tc.early_stopping_patience


def _stop_message(state: TrainerState, tc) -> str:
    return (f"early stopping at step {state.step}: {tc.best_metric} did not improve in "
            f"{state.evals_without_improvement} evaluations (train.early_stopping_patience="
            f"{tc.early_stopping_patience}); best {tc.best_metric} = {state.best_value:.6g} at step {state.best_step}")


def _finished_message(out: Path, state: TrainerState, tc) -> str:
    """Why a finished run cannot be resumed, and which key would continue it."""
    if state.step >= tc.max_steps:
        return f"the run in {out} already reached step {state.step}; raise train.max_steps to continue it"
    return (f"the run in {out} stopped early at step {state.step} ({tc.best_metric} did not improve in "
            f"{state.evals_without_improvement} evaluations); raise train.early_stopping_patience to continue it")


def _reexport_best(state: TrainerState, generator: Generator, data, cfg: RunConfig, objective: Objective,
                   out: Path, sharding: Sharding | None) -> None:
    """Write best/ from a resumed checkpoint that is the best one when best/ does not hold it yet (the
    run stopped between that checkpoint and the export that follows it). Every process calls it."""
    if state.best_step == state.step and exported_step(out / "best") != state.step:
        _export(generator, data, cfg, objective, out / "best", state.step, sharding)


def _export(generator: Generator, data, cfg: RunConfig, objective: Objective, directory: Path, step: int,
            sharding: Sharding | None) -> None:
    """`export` the generator and the objective's exported modules to `directory` from the main process,
    read whole from their shards when sharded. Every process calls it (gathering shards is collective)."""
    if sharding is None:
        if PartialState().is_main_process:
            export(generator, data.tokenizer, cfg, directory, objective.exports(), step=step)
        return
    with sharding.whole() as modules:
        if modules is not None:
            export(modules[0], data.tokenizer, cfg, directory, dict(zip(objective.exports(), modules[1:])), step=step)


def _gathered(sharding: Sharding | None) -> contextlib.AbstractContextManager:
    """The sharded parameters whole for the duration (evaluation, samples); nothing when unsharded."""
    return contextlib.nullcontext() if sharding is None else sharding.gathered()


def _exported(state: TrainerState, tc, last_eval: dict | None) -> tuple[int, dict | None]:
    """The step model/ holds (the best evaluation's under train.export=best, once there is one; else
    the last step) and its evaluation when known (None: to be evaluated)."""
    if tc.export == "best" and state.best_step is not None:
        return state.best_step, state.best_eval
    return state.step, last_eval


def _check_best(out: Path, step: int) -> None:
    """best/ must hold the best step's weights before model/ is made of them."""
    recorded = exported_step(out / "best")
    if recorded is not None and recorded != step:
        raise UserError(f"{out / 'best'} holds step {recorded}, but the run's best evaluation was at step {step}; "
                        f"set train.export=last, or evaluate the checkpoints/ yourself")


def _summary(state: TrainerState, tc, exported: int, measured: dict | None) -> dict:
    """metrics.json: how the run ended, which checkpoint model/ holds, and that checkpoint's metrics
    with what they scored."""
    return {
        "step": state.step,
        "stopped_early": state.step < tc.max_steps,
        "best_metric": tc.best_metric,
        "best_mode": tc.best_mode,
        "best_value": state.best_value,
        "best_step": state.best_step,
        "checkpoint": {"path": "model", "step": exported, "export": _chosen(state, tc)},
        "scored": measured["scored"] if measured else None,
        **(measured["metrics"] if measured else {}),
    }


def _chosen(state: TrainerState, tc) -> str:
    """What chose the exported checkpoint: `best` (the best evaluation) or `last` (the last step)."""
    return "best" if tc.export == "best" and state.best_step is not None else "last"


def _exported_words(state: TrainerState, tc, exported: int) -> str:
    """Which step model/ holds and why, for the run's last line."""
    if _chosen(state, tc) == "best":
        return (f"step {exported}, the best {tc.best_metric} ({state.best_value:.6g}) of the run, which "
                f"ended at step {state.step}")
    why = "train.export=last" if tc.export == "last" else "no evaluation to choose by"
    return f"step {exported}, the last step ({why})"


CONTEXT_GAIN_FLOOR = 0.01
"""Nats per token below which a conditional model's own context is said not to help its predictions
(`eval/context_gain`); a model reading its sources gains tenths of a nat or more."""


def _report(bar, step: int, metrics: dict[str, float], samples: list[str]) -> None:
    shown = "  ".join(f"{k.split('/', 1)[-1]}={v:.4g}" for k, v in metrics.items()
                      if not k.endswith("tokens"))
    bar.write(f"step {step}: {shown}")
    gain = metrics.get("eval/context_gain")
    if gain is not None and gain < CONTEXT_GAIN_FLOOR:
        bar.write(f"  the model gains {gain:.4f} nats per token from its own contexts over other examples': "
                  "it does not read them yet (if that lasts, lower train.lr)")
    for text in samples:
        bar.write(f"  sample: {text}")


def _tensorboard(tc) -> bool:
    """Log to TensorBoard too when asked and the package is installed."""
    return tc.tensorboard and importlib.util.find_spec("tensorboard") is not None
