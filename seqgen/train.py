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
import importlib.util
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_scheduler

from seqgen.checkpoints import Checkpoints, TrainerState
from seqgen.config import RunConfig, from_dict, save_config, to_dict
from seqgen.data import TaskData, load_data, load_tokenizer, save_tokenizer
from seqgen.data.batch import Batch
from seqgen.errors import UserError
from seqgen.evaluate import evaluate, sample_texts
from seqgen.models import Generator, build_generator, save_generator
from seqgen.objectives import build_objective
from seqgen.tracking import JSONLTracker


RECIPE_FILE = "recipe.yaml"
# Sections of a recipe that must not change when a run is resumed: they define the weights' meaning.
FROZEN_ON_RESUME = ("task", "tokenizer", "model")
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
    tokenizer = _prepare_output_dir(cfg, out, resume, overwrite, accelerator)
    set_seed(cfg.seed)

    with accelerator.main_process_first():  # one process fills the datasets cache, the others read it
        data = load_data(cfg, tokenizer)
    if accelerator.is_main_process and tokenizer is None:
        save_tokenizer(data.tokenizer, out)
    train_loader = data.splits["train"].loader(cfg.data, shuffle=cfg.data.shuffle, seed=cfg.seed)
    generator = build_generator(cfg.model, data.vocab, cfg.task, cfg.data.image_size)
    objective = build_objective(cfg.objective, generator,
                                steps_per_epoch=len(train_loader.batch_sampler) / tc.gradient_accumulation_steps)
    optimizer = torch.optim.AdamW(objective.parameters(), lr=tc.lr, betas=tuple(tc.betas),
                                  weight_decay=tc.weight_decay)
    scheduler = get_scheduler(SCHEDULES[tc.lr_schedule], optimizer, num_warmup_steps=tc.warmup_steps,
                              num_training_steps=tc.max_steps)
    objective, optimizer, scheduler = accelerator.prepare(objective, optimizer, scheduler)
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
    inner = accelerator.unwrap_model(objective)
    eval_split = cfg.eval.split if cfg.eval.split in data.splits else None
    bar = tqdm(total=tc.max_steps, initial=state.step, desc="train", dynamic_ncols=True,
               disable=not accelerator.is_local_main_process)
    # Metric sums stay on the device between logs: no host sync inside a step.
    window_metrics: dict[str, torch.Tensor] = {}
    window_weight, window_tokens, window_start = 0.0, 0, time.perf_counter()
    nonfinite = torch.zeros((), dtype=torch.bool, device=accelerator.device)
    final_metrics: dict[str, float] = {}
    stop = False

    objective.train()
    while state.step < tc.max_steps and not stop:
        # --- one optimizer step over `gradient_accumulation_steps` global batches
        micro = [next(batches) for _ in range(tc.gradient_accumulation_steps)]
        step_weight = sum(inner.weight(b) for b in micro)
        for i, global_batch in enumerate(micro):
            local = _shard(global_batch, accelerator)
            weight, tokens = inner.weight(local), local.num_target_tokens  # on the host, before the copy
            local = local.to(accelerator.device)
            last = i == len(micro) - 1
            with contextlib.nullcontext() if last else accelerator.no_sync(objective):
                loss, metrics = objective(local, state.step)
                # DDP averages gradients over processes, hence the factor num_processes.
                accelerator.backward(loss * (weight * accelerator.num_processes / max(step_weight, 1)))
            nonfinite |= ~torch.isfinite(loss.detach())
            for k, v in metrics.items():
                window_metrics[k] = window_metrics.get(k, 0.0) + v * weight
            window_weight += weight
            window_tokens += tokens
        if tc.max_grad_norm is not None:
            grad_norm = accelerator.clip_grad_norm_(objective.parameters(), tc.max_grad_norm)
            window_metrics["grad_norm"] = window_metrics.get("grad_norm", 0.0) + grad_norm * step_weight
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
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
            logs = _reduce_window(accelerator, window_metrics, window_weight, window_tokens,
                                  time.perf_counter() - window_start)
            logs.update({"train/lr": scheduler.get_last_lr()[0], "train/epoch": state.epoch})
            accelerator.log(logs, step=state.step)
            bar.set_postfix(loss=f"{logs.get('train/loss', float('nan')):.4f}")
            window_metrics, window_weight, window_tokens = {}, 0.0, 0
            window_start = time.perf_counter()
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
                    _export(inner.generator, data, cfg, out / "best")
        if saving or improved or stop:
            checkpoints.save(accelerator, state)
    bar.close()

    if accelerator.is_main_process:
        _export(inner.generator, data, cfg, out / "model")
        (out / "metrics.json").write_text(json.dumps({"step": state.step, **final_metrics}, indent=2))
        accelerator.print(f"model written to {out / 'model'}")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return inner.generator, final_metrics


# ---------------------------------------------------------------------------------------------------


def _prepare_output_dir(cfg: RunConfig, out: Path, resume: bool, overwrite: bool,
                        accelerator: Accelerator):
    """Check the run folder against `resume`/`overwrite`; return the tokenizer to reuse, if any."""
    recipe = out / RECIPE_FILE
    held = recipe.exists() or (out / "checkpoints").exists()
    if resume and overwrite:
        raise UserError("choose one of --resume and --overwrite")
    if resume:
        if Checkpoints(out, 1).latest() is None:
            raise UserError(f"nothing to resume in {out}: no complete checkpoint")
        _check_same_run(cfg, recipe)
        tokenizer, _ = load_tokenizer(out / "tokenizer.json")
        return tokenizer
    if held and not overwrite:
        raise UserError(f"output directory {out} already holds a run; pass --resume to continue it or "
                        f"--overwrite to replace it (or set output_dir=...)")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if held:
            for name in ("checkpoints", "model", "best", "logs"):
                shutil.rmtree(out / name, ignore_errors=True)
            for name in (RECIPE_FILE, "tokenizer.json", "metrics.json"):
                (out / name).unlink(missing_ok=True)
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, recipe)
    accelerator.wait_for_everyone()
    return None


def _check_same_run(cfg: RunConfig, recipe: Path) -> None:
    """A resumed run must keep the task, tokenizer and model it was started with."""
    try:
        saved = from_dict(RunConfig, yaml.safe_load(recipe.read_text(encoding="utf-8")))
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


def _reduce_window(accelerator: Accelerator, sums: dict[str, float], weight: float, tokens: int,
                   seconds: float) -> dict[str, float]:
    """Weighted means of the logged metrics over the steps since the last log, across processes."""
    keys = sorted(sums)
    values = torch.stack([torch.as_tensor(sums[k], device=accelerator.device).double() for k in keys]
                         + [torch.tensor(float(x), dtype=torch.float64, device=accelerator.device)
                            for x in (weight, tokens)])
    values = accelerator.reduce(values, reduction="sum")
    total = max(values[-2].item(), 1e-12)
    logs = {f"train/{k}": values[i].item() / total for i, k in enumerate(keys)}
    logs["train/tokens_per_second"] = values[-1].item() / max(seconds, 1e-9)
    return logs


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


def _export(generator, data: TaskData, cfg: RunConfig, directory: Path) -> None:
    """Write the generator in `save_pretrained` style, replacing `directory` only once complete."""
    tmp = directory.with_name(f".tmp-{directory.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    save_generator(generator, tmp, cfg.model, cfg.task, cfg.data.image_size)
    save_tokenizer(data.tokenizer, tmp)
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
