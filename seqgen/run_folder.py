"""A run folder: what it holds, and the checks and writes that keep it whole.

    recipe.yaml, tokenizer.json   written when the run starts
    checkpoints/                  resumable training state (`seqgen.checkpoints`)
    logs/metrics.jsonl            the logged metrics
    best/                         the generator that scored best on train.best_metric (save_pretrained
                                  style), with what the objective trained beside it (NAME.safetensors)
    model/                        the exported generator: best/'s weights, or the last step's
                                  (train.export); its seqgen.json records the step
    metrics.json                  the exported checkpoint's validation metrics, what was scored, and how
                                  the run ended (steps taken, early stopping, best step)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator

try:
    import fcntl
except ImportError:  # not on Windows: runs there are not locked
    fcntl = None
from pathlib import Path

import torch
import yaml
from accelerate import Accelerator
from safetensors.torch import load_file, save_file
from transformers import PreTrainedTokenizerFast

from seqgen.checkpoints import Checkpoints, usual_permissions
from seqgen.config import RunConfig, from_dict, load_yaml, save_config, to_dict
from seqgen.data import load_tokenizer, save_tokenizer
from seqgen.errors import UserError
from seqgen.models import MODEL_INFO, Generator, read_model_info, save_generator

RECIPE_FILE = "recipe.yaml"
# Sections of a recipe that must not change when a run is resumed: they define the weights' meaning.
FROZEN_ON_RESUME = ("task", "tokenizer", "model")
# Keys whose values a resumed run takes from its checkpoint (the optimizers' and schedules' states).
RESTORED_ON_RESUME = ("train.lr", "train.betas", "train.weight_decay", "train.lr_schedule", "train.warmup_steps",
                      "objective.critic_lr")


def check_output_dir(cfg: RunConfig, out: Path, resume: bool, overwrite: bool) -> PreTrainedTokenizerFast | None:
    """Check the run folder against `resume`/`overwrite`, changing nothing; return the resumed run's
    tokenizer (None for a new run)."""
    if resume and overwrite:
        raise UserError("choose one of --resume and --overwrite")
    if out.exists() and not out.is_dir():
        raise UserError(f"output_dir {out} is a file, not a folder")
    existing = out if out.exists() else next((p for p in out.parents if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise UserError(f"cannot make output_dir {out}: {existing} is a file")
    if existing is not None and not os.access(existing, os.W_OK):
        raise UserError(f"cannot write output_dir {out}: {existing} is not writable")
    if resume:
        if Checkpoints(out, 1).latest() is None:
            raise UserError(f"nothing to resume in {out}: no complete checkpoint")
        check_same_run(cfg, out / RECIPE_FILE)
        tokenizer, _ = load_tokenizer(out / "tokenizer.json")
        return tokenizer
    held = (out / RECIPE_FILE).exists() or (out / "checkpoints").exists()
    if held and not overwrite:
        raise UserError(f"output directory {out} already holds a run; pass --resume to continue it or "
                        f"--overwrite to replace it (or set output_dir=...)")
    return None


class RunLock:
    """An exclusive lock on a run folder, held by the process that writes it for as long as it does,
    so that a second `seqgen train` on the same output_dir (a resume, an --overwrite) stops with one
    line instead of mixing its files with the running one's. The lock is the folder's own `flock`
    (released by the system when the process ends, however it ends), so no stale lock file is left."""

    def __init__(self) -> None:
        self.fd: int | None = None

    def take(self, out: Path) -> None:
        """Lock `out` if it exists and is not locked yet; UserError when another process holds it."""
        if self.fd is not None or not out.is_dir() or fcntl is None:
            return
        fd = os.open(out, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise UserError(f"output_dir {out} is in use by another seqgen process; wait for it to finish "
                            f"or choose another output_dir") from None
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def stopped_before_first_checkpoint(cfg: RunConfig, out: Path) -> bool:
    """Whether `out` holds this run (its recipe, frozen sections equal) but no complete checkpoint: a run
    stopped before it saved anything, which resuming starts again from step 0."""
    if not (out / RECIPE_FILE).is_file() or Checkpoints(out, 1).latest() is not None:
        return False
    check_same_run(cfg, out / RECIPE_FILE)
    return True


def start_output_dir(cfg: RunConfig, out: Path, tokenizer: PreTrainedTokenizerFast, accelerator: Accelerator) -> None:
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


def check_same_run(cfg: RunConfig, recipe: Path) -> None:
    """A resumed run must keep the task, tokenizer and model it was started with."""
    old, new = to_dict(_saved_recipe(recipe)), to_dict(cfg)
    for section in FROZEN_ON_RESUME:
        diff = first_difference(old[section], new[section], section)
        if diff:
            raise UserError(f"cannot resume: {diff} differs from the run in {recipe.parent} "
                            f"(start a new run with another output_dir, or --overwrite)")


def resume_changes(cfg: RunConfig, out: Path, step: int) -> tuple[list[str], RunConfig]:
    """What a resumed run changes from the recipe it was started with: one line per changed key, and
    the recipe the run continues with (`cfg`, except the keys restored from the checkpoint), which
    replaces recipe.yaml."""
    old, new = flat_keys(to_dict(_saved_recipe(out / RECIPE_FILE))), flat_keys(to_dict(cfg))
    kept, lines = dict(new), []
    for key in sorted(old.keys() | new.keys()):
        if key == "output_dir" or old.get(key) == new.get(key):
            continue
        if key in RESTORED_ON_RESUME:
            kept[key] = old[key]
            lines.append(f"warning: {key} changed ({old.get(key)!r} -> {new.get(key)!r}) but is ignored: the "
                         f"resumed optimizer and schedule continue from the checkpoint")
        else:
            lines.append(f"warning: {key} changed ({old.get(key)!r} -> {new.get(key)!r}); the run uses the new "
                         f"value from step {step} on, and recipe.yaml records it")
    return lines, from_dict(RunConfig, _nested(kept))


def write_recipe(cfg: RunConfig, out: Path) -> None:
    """Replace the run's recipe.yaml, atomically."""
    tmp = out / f".tmp-{RECIPE_FILE}"
    save_config(cfg, tmp)
    os.replace(tmp, out / RECIPE_FILE)


def _saved_recipe(recipe: Path) -> RunConfig:
    try:
        return from_dict(RunConfig, load_yaml(recipe.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError) as e:
        raise UserError(f"cannot read the run's recipe {recipe}: {e}") from None


def flat_keys(d: dict, prefix: str = "") -> dict:
    """A nested recipe dict as flat `a.b` keys (an empty mapping, e.g. config_overrides, stays a value)."""
    flat = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            flat.update(flat_keys(v, f"{prefix}{k}."))
        else:
            flat[f"{prefix}{k}"] = v
    return flat


def _nested(flat: dict) -> dict:
    out: dict = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def first_difference(old, new, key: str) -> str | None:
    """The first key (dotted, from `key`) whose value differs between two nested dicts, shown as
    `key (old -> new)`; None when they are equal."""
    if isinstance(old, dict) and isinstance(new, dict):
        for k in old.keys() | new.keys():
            diff = first_difference(old.get(k), new.get(k), f"{key}.{k}")
            if diff:
                return diff
        return None
    return None if old == new else f"{key} ({old!r} -> {new!r})"


def init_source(path: str, cfg: RunConfig) -> Path:
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
    diff = first_difference(to_dict(model), to_dict(cfg.model), "model")
    if diff:
        raise UserError(f"train.init_from {path} was trained with another model: {diff}")
    return directory


def finished(out: Path, step: int) -> bool:
    """Whether the run in `out` exported its model and final metrics at `step` (a run stopped between
    its last checkpoint and its export has not)."""
    try:
        metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (out / "model" / MODEL_INFO).is_file() and metrics.get("step") == step


def trim_log(path: Path, step: int) -> None:
    """Drop the records of a metrics.jsonl after `step` (those a resumed run logs again), atomically."""
    if not path.is_file():
        return
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if line.strip() and json.loads(line).get("step", 0) <= step]
    if len(kept) < len(lines):
        tmp = path.with_name(f".tmp-{path.name}")
        tmp.write_text("".join(kept), encoding="utf-8")
        os.replace(tmp, path)


def export(generator: Generator, tokenizer: PreTrainedTokenizerFast, cfg: RunConfig, directory: Path,
           extras: dict[str, torch.nn.Module] | None = None, *, step: int | None = None) -> None:
    """Write the generator in `save_pretrained` style (recording `step`, the optimizer steps it was
    trained for), and each of `extras` as NAME.safetensors beside it, replacing `directory` only once
    complete."""
    with _replacing(directory) as tmp:
        save_generator(generator, tmp, cfg.model, cfg.task, cfg.data.image_size, step=step)
        save_tokenizer(tokenizer, tmp)
        for name, module in (extras or {}).items():
            save_file({k: v.detach().contiguous().clone() for k, v in module.state_dict().items()},
                      str(tmp / f"{name}.safetensors"))
        usual_permissions(tmp)


def copy_export(source: Path, directory: Path) -> None:
    """Make `directory` a copy of the export in `source` (what `export` would write from the weights
    `source` holds), replacing `directory` only once complete."""
    with _replacing(directory) as tmp:
        shutil.copytree(source, tmp)


@contextlib.contextmanager
def _replacing(directory: Path) -> Iterator[Path]:
    """A fresh temporary folder beside `directory` to fill, which then replaces `directory`."""
    tmp = directory.with_name(f".tmp-{directory.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    yield tmp
    shutil.rmtree(directory, ignore_errors=True)
    tmp.rename(directory)


def restore(generator: Generator, extras: dict[str, torch.nn.Module], directory: Path) -> None:
    """Load into `generator` and each of `extras` the weights `export` wrote into `directory` (an
    extra without its file there keeps its weights: the objective exported nothing for it)."""
    generator.load_weights(directory)
    for name, module in extras.items():
        path = directory / f"{name}.safetensors"
        if path.is_file():
            module.load_state_dict(load_file(str(path)))
