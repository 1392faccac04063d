"""The studies' recipes as data: nested dicts of `RunConfig` keys, deep-merged, then checked.

A study writes each run's recipe as the merge of its size's recipe, what the run changes, the user's
overrides and the keys the study sets itself. Strings appear only at the command-line boundary, where
`parse_overrides` reads `key.sub=value` items once into the same nested form.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from seqgen.config import RunConfig, from_dict, parse_override
from seqgen.errors import UserError

Recipe = dict[str, Any]
"""A nested dict of `RunConfig` keys (a recipe, or changes to one)."""

QUIET_TRAIN: Recipe = {"eval_every": 10**9, "save_every": 10**9, "keep_last": 1, "num_samples": 0,
                       "tensorboard": False}
"""Training settings common to the studies' runs: no evaluation or checkpoint but the final one."""


def merge(base: Mapping[str, Any], *changes: Mapping[str, Any]) -> Recipe:
    """`base` with the leaves of each of `changes` replaced in turn, recursively (nothing is modified)."""
    out = copy.deepcopy(dict(base))
    for change in changes:
        for key, value in change.items():
            if isinstance(value, Mapping) and isinstance(out.get(key), dict):
                out[key] = merge(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
    return out


def parse_overrides(items: Sequence[str]) -> Recipe:
    """`key.sub=value` items (the command line's) as one nested recipe; each value is read as YAML."""
    out: Recipe = {}
    for item in items:
        key, parsed = parse_override(item)
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"override {item!r} sets a key below a value")
        node[leaf] = parsed
    return out


def group_overrides(items: Sequence[str], prefixes: Sequence[str], study_keys: Sequence[str]) -> dict[str, Recipe]:
    """The overrides by the runs they apply to: each item goes to the longest of `prefixes` it starts
    with ("" for none), that prefix removed, parsed (`parse_overrides`).

    Raises:
        UserError: an item sets (or contains) one of `study_keys`, which the study sets for each run.
    """
    groups: dict[str, list[str]] = {prefix: [] for prefix in ("", *prefixes)}
    for item in items:
        prefix = max((p for p in prefixes if item.startswith(p)), key=len, default="")
        rest = item.removeprefix(prefix)
        key = rest.partition("=")[0].strip()
        if any(key == k or key.startswith(k + ".") or k.startswith(key + ".") for k in study_keys):
            raise UserError(f"{key} is set by the study for each run and cannot be overridden")
        groups[prefix].append(rest)
    return {prefix: parse_overrides(items) for prefix, items in groups.items()}


def study_config(recipe: Mapping[str, Any], output_dir: str | Path) -> RunConfig:
    """A study's nested recipe as a RunConfig writing to `output_dir`, checked as `seqgen train` checks."""
    from seqgen.recipes import check_recipe

    cfg = from_dict(RunConfig, merge(recipe, {"output_dir": str(output_dir)}))
    check_recipe(cfg)
    return cfg
