"""How the studies make their training runs: a study's folder, checked before any work, and one run
trained quietly (the recipes are `seqgen.experiments.recipes`)."""

from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path

from seqgen.config import RunConfig
from seqgen.errors import UserError
from seqgen.models.base import Generator


def study_folder(out_dir: str | Path, overwrite: bool) -> Path:
    """A study's folder, checked before any work: not a file, and empty unless `overwrite`.

    Raises:
        UserError: it is a file, or it holds something and `overwrite` is False.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UserError(f"{out} is not empty; pass --overwrite to replace the study there")
    return out


def train_run(cfg: RunConfig) -> tuple[Generator, float]:
    """Train one run (replacing its folder); the trained generator in eval mode and the seconds taken."""
    from seqgen.train import train

    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the loop's own lines; the study prints its own
        generator, _ = train(cfg, overwrite=True)
    return generator.eval(), time.perf_counter() - start
