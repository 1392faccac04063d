"""Checks that a recipe is consistent beyond its types (`seqgen check`, and before every run)."""

from __future__ import annotations

import os
from pathlib import Path

from seqgen.config import RunConfig, load_config
from seqgen.data.sources import SYNTHETIC, check_task
from seqgen.errors import UserError

TRANSFORMER_ARCHS = {"lm": {"gpt2"}, "translation": {"bart", "marian", "t5"}, "captioning": {"gpt2"}}


def check_recipe(cfg: RunConfig) -> None:
    """Raise UserError naming the first inconsistency in `cfg`."""
    d, m = cfg.data, cfg.model
    check_task(cfg)
    cfg.objective.check_run(cfg)
    if d.source not in SYNTHETIC and not d.train:
        raise UserError("data.train is required (a file, or a split name for a hub dataset)")
    if d.source == "hub" and not d.hub_name:
        raise UserError("data.hub_name is required when data.source is hub")
    if d.source == "parallel" and "{lang}" not in (d.train or ""):
        raise UserError("data.train must contain {lang} for parallel text, e.g. data/train.{lang}.gz")
    _check_selection_data(cfg)
    if cfg.tokenizer.kind == "pretrained" and not cfg.tokenizer.name_or_path:
        raise UserError("tokenizer.name_or_path is required when tokenizer.kind is pretrained")
    if m.family == "transformer" and not m.pretrained and m.arch not in TRANSFORMER_ARCHS[cfg.task]:
        raise UserError(f"model.arch {m.arch} does not fit task {cfg.task}; use one of "
                        f"{', '.join(sorted(TRANSFORMER_ARCHS[cfg.task]))}")
    if m.family == "transformer" and not m.pretrained and m.max_positions < d.max_length + 2:
        raise UserError(f"model.max_positions ({m.max_positions}) must be at least data.max_length + 2 "
                        f"({d.max_length + 2}) to hold BOS and EOS")


def check_paths(paths: list[str]) -> int:
    """Load and check every recipe under `paths`; print one line each; return the number that failed."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(p.rglob("*.yaml")) + sorted(p.rglob("*.yml"))
        elif p.is_file():
            files.append(p)
        else:
            raise UserError(f"no such recipe or folder: {p}")
    if not files:
        raise UserError(f"no recipes found under {', '.join(paths)}")
    failures = 0
    for f in files:
        try:
            check_recipe(load_config(f))
            print(f"ok     {f}")
        except UserError as e:
            failures += 1
            print(f"error  {f}: {e}")
    return failures


def _check_selection_data(cfg: RunConfig) -> None:
    """The data that choose the exported checkpoint and the stopping step must not be the test data,
    or the test numbers measure a choice made on them."""
    d = cfg.data
    if d.validation is not None and d.test is not None and _same_data(d.validation, d.test):
        raise UserError(f"data.validation is the test data ({d.test}): early stopping and the exported "
                        f"checkpoint would be chosen on the test set; name a validation file, or hold out "
                        f"part of the training data with data.validation_fraction")
    if cfg.eval.split == "test" and (cfg.train.export == "best" or cfg.train.early_stopping_patience is not None):
        raise UserError("eval.split=test would choose the exported checkpoint or the stopping step on the test "
                        "set; evaluate on validation during training, or set train.export=last without "
                        "train.early_stopping_patience")


def _same_data(a: str, b: str) -> bool:
    """Whether two data paths (or hub split names) name the same data: equal once normalised, or the
    same existing file."""
    if os.path.normpath(a) == os.path.normpath(b):
        return True
    return Path(a).is_file() and Path(b).is_file() and Path(a).samefile(b)
