"""`seqgen demo`: the main job on embedded data, in a few minutes on a CPU.

Runs the scheduled-sampling inconsistency study (`seqgen.experiments.inconsistency`) at its demo size:
an LSTM trained by teacher forcing, by scheduled sampling at fixed ε and with ε annealed to 0, on an
enumerable two-token toy distribution, measured exactly against the closed-form optimum of each
objective; then teacher forcing against annealed scheduled sampling on a small random oracle LSTM.
Everything it needs ships with the package.
"""

from __future__ import annotations

from pathlib import Path

import torch

from seqgen.experiments.inconsistency import StudyResult, run_inconsistency


def demo(out: str | Path = "runs/demo") -> StudyResult:
    """Run the study at demo size into `out` (replacing an earlier demo there), print its table and
    say where the report and figures are; returns the study's result."""
    # The demo's models are tiny: two threads gain little on them, and slow down by an order of magnitude
    # as soon as another process competes for the cores.
    torch.set_num_threads(1)
    print(f"seqgen demo: scheduled sampling's inconsistency, measured exactly on a toy distribution -> {out}")
    result = run_inconsistency(out, size="demo", overwrite=True)
    print()
    print(result.table())
    print()
    print(f"report:  {result.files['report']}")
    print(f"results: {result.files['results']}")
    figures = [str(path) for path in result.files.values() if path.suffix == ".png"]
    print(f"figures: {', '.join(figures)}")
    return result
