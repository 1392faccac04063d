"""The one training loop: any objective, any generator, one CPU or many processes under Accelerate.

Read top to bottom: prepare the run folder, data, model, objective and optimizer; resume if asked;
then take optimizer steps, each over `gradient_accumulation_steps` global batches, evaluating, logging
and checkpointing on the way; finally export the model in `save_pretrained` style.

Every process reads the same global batches and takes rows `rank::world` of each, and each
micro-batch's loss is weighted by its share of the step's units (tokens), so a step computes the same
gradient whatever the number of processes and micro-batches (up to float rounding).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, set_seed
from safetensors.torch import save_file
from torch.utils.data import DataLoader
from transformers import get_scheduler

from seqgen.checkpoints import Checkpoints, TrainerState
from seqgen.config import RunConfig, from_dict, load_yaml, save_config, to_dict
from seqgen.data import TaskData, load_data, load_tokenizer, save_tokenizer
from seqgen.data.batch import Batch
from seqgen.data.synthetic.toy import ToyDistribution
from seqgen.errors import UserError
from seqgen.evaluate import evaluate, sample_texts
from seqgen.models import MODEL_INFO, Generator, build_generator, read_model_info, save_generator
from seqgen.objectives import Adversarial, Objective, build_objective
from seqgen.progress import progress
from seqgen.tracking import JSONLTracker

RECIPE_FILE = "recipe.yaml"
# Sections of a recipe that must not change when a run is resumed: they define the weights' meaning.
FROZEN_ON_RESUME = ("task", "tokenizer", "model")
CRITIC_FILE = "critic.safetensors"
# Namespaces of the logged training metrics of the generator (or the one objective) and of the critic.
TRAIN, CRITIC = "train", "critic"
SCHEDULES = {"constant": "constant_with_warmup", "linear": "linear", "cosine": "cosine",
             "inverse_sqrt": "inverse_sqrt"}


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def train(cfg: RunConfig, *, resume: bool = False, overwrite: bool = False,
          accelerator: Accelerator | None = None) -> tuple[Generator, dict[str, float]]:
    """Train `cfg`'s generator with its objective; returns it and its final evaluation metrics.

    Writes to `cfg.output_dir`: recipe.yaml, tokenizer.json, logs/metrics.jsonl, checkpoints/,
    model/ (the final generator), best/ (the best on `cfg.train.best_metric`), metrics.json.

    Raises:
        UserError: the output folder already holds a run (and neither `resume` nor `overwrite`), the
            resumed run's recipe differs in a frozen section, bad data, or a diverged loss.
    """
    tc = cfg.train
    out = Path(cfg.output_dir)
    if accelerator is None:
        accelerator = Accelerator(
            cpu=cpu_processes(),
            mixed_precision=tc.mixed_precision,
            step_scheduler_with_optimizer=False,  # the loop steps the schedule once per optimizer step
            log_with=[JSONLTracker("seqgen", out / "logs")] + (["tensorboard"] if _tensorboard(tc) else []),
            project_config=ProjectConfiguration(project_dir=str(out), logging_dir=str(out / "logs")),
        )
    init_dir = _init_source(tc.init_from, cfg) if tc.init_from and not resume else None
    # Everything the recipe names (data, tokenizer, model, objective) is built and checked before the
    # output folder is touched, so that a mistake leaves an existing run as it was.
    tokenizer = _check_output_dir(cfg, out, resume, overwrite)
    if init_dir is not None:  # the initial weights only make sense with their own tokenizer
        tokenizer, _ = load_tokenizer(init_dir)
    set_seed(cfg.seed)

    with accelerator.main_process_first():  # one process fills the datasets cache, the others read it
        data = load_data(cfg, tokenizer)
    train_loader = data.splits["train"].loader(cfg.data, shuffle=cfg.data.shuffle, seed=cfg.seed)
    generator = build_generator(cfg.model, data.vocab, cfg.task, cfg.data.image_size)
    if init_dir is not None:
        generator.load_weights(init_dir)
    toy = ToyDistribution.from_config(cfg.data.synthetic) if cfg.data.source == "toy" else None
    objective = build_objective(cfg.objective, generator, task=cfg.task, max_steps=tc.max_steps,
                                steps_per_epoch=len(train_loader.batch_sampler) / tc.gradient_accumulation_steps,
                                toy=toy)
    if not resume:
        _start_output_dir(cfg, out, data.tokenizer, accelerator)
    players = _players(objective, tc, accelerator)
    checkpoints = Checkpoints(out, tc.keep_last)
    state = TrainerState()
    if resume:
        state = checkpoints.load(accelerator, checkpoints.latest())
        if state.step >= tc.max_steps:
            raise UserError(f"the run in {out} already reached step {state.step}; raise train.max_steps "
                            f"to continue it")
        accelerator.print(f"resuming from step {state.step}")
    accelerator.init_trackers("seqgen", config={**_flat(to_dict(cfg)),
                                                "num_processes": accelerator.num_processes})

    batches = _global_batches(train_loader, state)
    # The (unwrapped) objective: the container of the prepared players when adversarial, else the prepared one.
    inner = objective if isinstance(objective, Adversarial) else accelerator.unwrap_model(players[0].module)
    critic = inner.critic if isinstance(inner, Adversarial) else None
    exported_critic = critic if critic is not None and objective.trains_critic else None
    eval_split = cfg.eval.split if cfg.eval.split in data.splits else None
    bar = progress(desc="train", total=tc.max_steps, initial=state.step, show=accelerator.is_local_main_process)
    window = _Window(accelerator.device)
    nonfinite = torch.zeros((), dtype=torch.bool, device=accelerator.device)
    final_metrics: dict[str, float] = {}
    stop = False

    def forward(player: _Player, local: Batch, key: tuple[int, int]) -> tuple[torch.Tensor, dict]:
        """One micro-batch's loss for `player`; `key` (repeat, micro-batch) seeds its rollouts."""
        if critic is None:
            return player.module(local, state.step)
        rng = _rollout_rng(cfg.seed, state.step, player.prefix, key, accelerator)
        if player.prefix == CRITIC:
            return player.module(local, inner.fake_for_critic(local, state.step, rng), rng)
        return player.module(local, state.step, critic, rng)

    for player in players:
        player.module.train()
    while state.step < tc.max_steps and not stop:
        # --- one optimizer step: `critic_steps` critic updates first when adversarial, then the
        # generator's; each update over `gradient_accumulation_steps` global batches
        for player in players:
            # the critic's warm-up against the starting generator comes before the first generator update
            warmup = _critic_warmup(objective) if player.prefix == CRITIC and state.step == 0 else 0
            for repeat in range(player.repeats + warmup):
                micro = [next(batches) for _ in range(tc.gradient_accumulation_steps)]
                _update(player, micro, inner.weight, functools.partial(forward, player), repeat, accelerator,
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
                logs[f"{player.prefix}/lr"] = player.scheduler.get_last_lr()[0]
            logs["train/epoch"] = state.epoch
            accelerator.log(logs, step=state.step)
            bar.set_postfix(loss=f"{logs.get('train/loss', float('nan')):.4f}")
            window = _Window(accelerator.device)
        improved = False
        if eval_split and (state.step % tc.eval_every == 0 or end):
            result = evaluate(inner.generator, data, eval_split, cfg, accelerator,
                              bleu=cfg.eval.bleu, max_batches=cfg.eval.max_batches, seed=cfg.seed)
            final_metrics = result.metrics
            accelerator.log(result.metrics, step=state.step)
            improved = _track_best(state, result.metrics, tc)
            stop = tc.early_stopping_patience is not None and \
                state.evals_without_improvement >= tc.early_stopping_patience
            if accelerator.is_main_process:
                _report(bar, state.step, result.metrics, sample_texts(
                    inner.generator, data, cfg, tc.num_samples, accelerator.device, seed=cfg.seed,
                    split=eval_split) if tc.num_samples else [])
                if improved:
                    _export(inner.generator, data, cfg, out / "best", exported_critic)
        if saving or improved or stop:
            checkpoints.save(accelerator, state)
    bar.close()

    if accelerator.is_main_process:
        _export(inner.generator, data, cfg, out / "model", exported_critic)
        (out / "metrics.json").write_text(json.dumps({"step": state.step, **final_metrics}, indent=2))
        accelerator.print(f"model written to {out / 'model'}")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return inner.generator, final_metrics


@dataclass
class _Player:
    """A prepared module that the loop updates, with its optimizer and schedule.

    Attributes:
        module: called on each micro-batch; returns (loss, metrics).
        prefix: namespace of its logged metrics ("train" or "critic").
        repeats: updates of this player per optimizer step of the loop.
    """

    module: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    prefix: str = TRAIN
    repeats: int = 1


def _players(objective: Objective, tc, accelerator: Accelerator) -> list[_Player]:
    """The prepared players in update order: the objective alone, or the critic then the generator
    (the generator alone when the critic is computed, not learned).

    The generator uses train.lr/betas/weight_decay and the train schedule; the critic its own
    learning rate (same betas and weight decay) at a constant rate. Everything is prepared in one call,
    so checkpoints hold both players, their optimizers and schedules.
    """
    def optimizer(module: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
        return torch.optim.AdamW(module.parameters(), lr=lr, betas=tuple(tc.betas), weight_decay=tc.weight_decay)

    def schedule(opt: torch.optim.Optimizer):
        return get_scheduler(SCHEDULES[tc.lr_schedule], opt, num_warmup_steps=tc.warmup_steps,
                             num_training_steps=tc.max_steps)

    if not isinstance(objective, Adversarial):
        opt = optimizer(objective, tc.lr)
        module, opt, sched = accelerator.prepare(objective, opt, schedule(opt))
        return [_Player(module, opt, sched)]
    gen_opt = optimizer(objective.generator_player, tc.lr)
    if not objective.trains_critic:
        gen, gen_opt, gen_sched = accelerator.prepare(objective.generator_player, gen_opt, schedule(gen_opt))
        return [_Player(gen, gen_opt, gen_sched)]
    critic_opt = optimizer(objective.critic_player, objective.cfg.critic_lr)
    prepared = accelerator.prepare(objective.generator_player, objective.critic_player, gen_opt, critic_opt,
                                   schedule(gen_opt), get_scheduler("constant", critic_opt))
    gen, critic, gen_opt, critic_opt, gen_sched, critic_sched = prepared
    return [_Player(critic, critic_opt, critic_sched, CRITIC, objective.cfg.critic_steps),
            _Player(gen, gen_opt, gen_sched)]


def _critic_warmup(objective: Objective) -> int:
    """Extra critic updates before the first generator update (adversarial objectives)."""
    return objective.cfg.critic_warmup_steps if isinstance(objective, Adversarial) else 0


def _update(player: _Player, micro: list[Batch], weight_of: Callable[[Batch], int],
            forward: Callable[[Batch, tuple[int, int]], tuple[torch.Tensor, dict]], repeat: int,
            accelerator: Accelerator, window: _Window, nonfinite: torch.Tensor, max_grad_norm: float | None) -> None:
    """One optimizer update of `player` over the global batches `micro`.

    Each process takes its rows of every batch, and each micro-batch's loss is weighted by its share
    of the step's units, so the update is that of one large batch. Sets `nonfinite` (in place) when
    a loss is NaN or infinite.
    """
    step_weight = sum(weight_of(b) for b in micro)
    for i, global_batch in enumerate(micro):
        local = _shard(global_batch, accelerator)
        weight, tokens = weight_of(local), local.num_target_tokens  # on the host, before the copy
        local = local.to(accelerator.device)
        last = i == len(micro) - 1
        with contextlib.nullcontext() if last else accelerator.no_sync(player.module):
            loss, metrics = forward(local, (repeat, i))
            # DDP averages gradients over processes, hence the factor num_processes.
            accelerator.backward(loss * (weight * accelerator.num_processes / max(step_weight, 1)))
        nonfinite |= ~torch.isfinite(loss.detach())
        window.add(player.prefix, metrics, weight)
        window.tokens += tokens
    if max_grad_norm is not None:
        grad_norm = accelerator.clip_grad_norm_(player.module.parameters(), max_grad_norm)
        window.add(player.prefix, {"grad_norm": grad_norm}, step_weight)
    player.optimizer.step()
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


def _rollout_rng(seed: int, step: int, phase: str, key: tuple[int, int],
                 accelerator: Accelerator) -> torch.Generator:
    """The random source of one micro-batch's rollouts: a pure function of the run's seed, the step,
    the phase, the micro-batch and the process, so each process draws its own noise for its own rows
    and a resumed run draws what the uninterrupted one would have."""
    name = f"{seed}/{step}/{phase}/{key[0]}/{key[1]}/{accelerator.process_index}".encode()
    value = int.from_bytes(hashlib.blake2b(name, digest_size=8).digest(), "little") & (2**63 - 1)
    return torch.Generator(device=accelerator.device).manual_seed(value)


def _init_source(path: str, cfg: RunConfig) -> Path:
    """The exported model folder that train.init_from names (itself, or a run folder's model/),
    checked against the recipe's task and model."""
    root = Path(path)
    directory = root / "model" if (root / "model" / MODEL_INFO).is_file() else root
    if not (directory / MODEL_INFO).is_file():
        raise UserError(f"train.init_from {path} is neither an exported model folder nor a run folder "
                        f"with a model/ (no {MODEL_INFO})")
    model, _, task, _ = read_model_info(directory)
    if task != cfg.task:
        raise UserError(f"train.init_from {path} is a {task} model, but the recipe's task is {cfg.task}")
    diff = _first_difference(to_dict(model), to_dict(cfg.model), "model")
    if diff:
        raise UserError(f"train.init_from {path} was trained with another model: {diff}")
    return directory


# ---------------------------------------------------------------------------------------------------


def _check_output_dir(cfg: RunConfig, out: Path, resume: bool, overwrite: bool):
    """Check the run folder against `resume`/`overwrite`, changing nothing; return the resumed run's
    tokenizer (None for a new run)."""
    if resume and overwrite:
        raise UserError("choose one of --resume and --overwrite")
    if out.exists() and not out.is_dir():
        raise UserError(f"output_dir {out} is a file, not a folder")
    if resume:
        if Checkpoints(out, 1).latest() is None:
            raise UserError(f"nothing to resume in {out}: no complete checkpoint")
        _check_same_run(cfg, out / RECIPE_FILE)
        tokenizer, _ = load_tokenizer(out / "tokenizer.json")
        return tokenizer
    held = (out / RECIPE_FILE).exists() or (out / "checkpoints").exists()
    if held and not overwrite:
        raise UserError(f"output directory {out} already holds a run; pass --resume to continue it or "
                        f"--overwrite to replace it (or set output_dir=...)")
    return None


def _start_output_dir(cfg: RunConfig, out: Path, tokenizer, accelerator: Accelerator) -> None:
    """Start a new run in `out`: remove an earlier run's files (what --overwrite replaces), then write
    recipe.yaml and tokenizer.json."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        for name in ("checkpoints", "model", "best", "logs"):
            shutil.rmtree(out / name, ignore_errors=True)
        for name in (RECIPE_FILE, "tokenizer.json", "metrics.json"):
            (out / name).unlink(missing_ok=True)
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / RECIPE_FILE)
        save_tokenizer(tokenizer, out)
    accelerator.wait_for_everyone()


def _check_same_run(cfg: RunConfig, recipe: Path) -> None:
    """A resumed run must keep the task, tokenizer and model it was started with."""
    try:
        saved = from_dict(RunConfig, load_yaml(recipe.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError) as e:
        raise UserError(f"cannot read the run's recipe {recipe}: {e}") from None
    old, new = to_dict(saved), to_dict(cfg)
    for section in FROZEN_ON_RESUME:
        diff = _first_difference(old[section], new[section], section)
        if diff:
            raise UserError(f"cannot resume: {diff} differs from the run in {recipe.parent} "
                            f"(start a new run with another output_dir, or --overwrite)")


def _first_difference(old, new, key: str) -> str | None:
    if isinstance(old, dict) and isinstance(new, dict):
        for k in old.keys() | new.keys():
            diff = _first_difference(old.get(k), new.get(k), f"{key}.{k}")
            if diff:
                return diff
        return None
    return None if old == new else f"{key} ({old!r} -> {new!r})"


def _global_batches(loader: DataLoader, state: TrainerState) -> Iterator[Batch]:
    """Training batches forever, from the data position in `state`, which it keeps up to date.

    The batch order of an epoch is a pure function of (seed, epoch), so resuming only needs the
    position; skipped batches are not collated.
    """
    while True:
        loader.batch_sampler.set_epoch(state.epoch)
        order = list(loader.batch_sampler)[state.batch_in_epoch:]
        rest = DataLoader(loader.dataset, batch_sampler=order, collate_fn=loader.collate_fn,
                          generator=loader.generator)
        for batch in rest:
            state.batch_in_epoch += 1
            yield batch
        state.epoch, state.batch_in_epoch = state.epoch + 1, 0


def _shard(batch: Batch, accelerator: Accelerator) -> Batch:
    """This process's rows of a global batch (rows rank, rank + N, ...)."""
    if accelerator.num_processes == 1:
        return batch
    return batch.select(torch.arange(accelerator.process_index, len(batch), accelerator.num_processes))


def _track_best(state: TrainerState, metrics: dict[str, float], tc) -> bool:
    value = metrics.get(tc.best_metric)
    if value is None:
        raise UserError(f"train.best_metric {tc.best_metric} is not among the evaluation metrics: "
                        f"{', '.join(sorted(metrics))}")
    better = state.best_value is None or (value < state.best_value if tc.best_mode == "min"
                                          else value > state.best_value)
    if better:
        state.best_value, state.best_step, state.evals_without_improvement = value, state.step, 0
    else:
        state.evals_without_improvement += 1
    return better


def _export(generator, data: TaskData, cfg: RunConfig, directory: Path, critic: torch.nn.Module | None = None) -> None:
    """Write the generator in `save_pretrained` style (and an adversarial run's critic as
    critic.safetensors), replacing `directory` only once complete."""
    tmp = directory.with_name(f".tmp-{directory.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    save_generator(generator, tmp, cfg.model, cfg.task, cfg.data.image_size)
    save_tokenizer(data.tokenizer, tmp)
    if critic is not None:
        save_file({k: v.detach().contiguous().clone() for k, v in critic.state_dict().items()},
                  str(tmp / CRITIC_FILE))
    shutil.rmtree(directory, ignore_errors=True)
    tmp.rename(directory)


def _report(bar, step: int, metrics: dict[str, float], samples: list[str]) -> None:
    shown = "  ".join(f"{k.split('/', 1)[-1]}={v:.4g}" for k, v in metrics.items()
                      if not k.endswith("tokens"))
    bar.write(f"step {step}: {shown}")
    for text in samples:
        bar.write(f"  sample: {text}")


def _flat(d: dict, prefix: str = "") -> dict:
    """Nested config as flat `a.b` keys (what trackers store)."""
    flat = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            flat.update(_flat(v, f"{prefix}{k}."))
        else:
            flat[f"{prefix}{k}"] = v if isinstance(v, (int, float, str, bool)) else json.dumps(v)
    return flat


def cpu_processes() -> bool:
    """True when launched as several processes (`accelerate launch --multi_gpu ...`) on a machine
    without CUDA: Accelerate then needs `cpu=True` to join them with gloo instead of running each alone."""
    return os.environ.get("LOCAL_RANK") is not None and not torch.cuda.is_available()


def _tensorboard(tc) -> bool:
    """Log to TensorBoard too when asked and the package is installed."""
    return tc.tensorboard and importlib.util.find_spec("tensorboard") is not None
