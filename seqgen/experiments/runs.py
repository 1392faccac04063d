"""How the studies make their training runs: recipes, nested dicts of `RunConfig` keys, written as the
`key=value` overrides that `load_config` reads, and one run trained quietly."""

from __future__ import annotations

import contextlib
import io
import json
import time
from typing import Any

from seqgen.config import RunConfig
from seqgen.models.base import Generator


def as_overrides(recipe: dict[str, Any], prefix: str = "") -> list[str]:
    """A nested recipe as `a.b=value` overrides, each value written as JSON, which `load_config` reads back
    unchanged (numbers in exponent notation included)."""
    items = []
    for key, value in recipe.items():
        if isinstance(value, dict):
            items += as_overrides(value, f"{prefix}{key}.")
        else:
            items.append(f"{prefix}{key}={json.dumps(value)}")
    return items


def train_run(cfg: RunConfig) -> tuple[Generator, float]:
    """Train one run (replacing its folder); the trained generator in eval mode and the seconds taken."""
    from seqgen.train import train

    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the loop's own lines; the study prints its own
        generator, _ = train(cfg, overwrite=True)
    return generator.eval(), time.perf_counter() - start
