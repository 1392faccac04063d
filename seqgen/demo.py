"""`seqgen demo`: the main jobs on embedded data, in a few minutes on a CPU.

Runs two studies at their demo size, each into its own folder:

- `inconsistency/`: scheduled sampling's inconsistency (`seqgen.experiments.inconsistency`): an LSTM
  trained by teacher forcing, by scheduled sampling at fixed ε and with ε annealed to 0, on an
  enumerable two-token toy distribution, measured exactly against the closed-form optimum of each
  objective; then teacher forcing against annealed scheduled sampling on a small random oracle LSTM;
- `js_pi/`: the JS_π interpolation (`seqgen.experiments.js_pi`), its continuous and sequence steps: one
  Gaussian fitted to a 2-D mixture by JS_π over a grid of π, then a generator too small for a toy
  distribution trained by teacher forcing and by JS_π adversarial training at each π, measured exactly.

Everything they need ships with the package.
"""

from __future__ import annotations

from pathlib import Path

import torch

from seqgen.experiments import inconsistency as inconsistency_study
from seqgen.experiments import js_pi as js_pi_study
from seqgen.experiments.inconsistency import StudyResult, run_inconsistency
from seqgen.experiments.js_pi import JsPiResult, run_js_pi


def demo(out: str | Path = "runs/demo", *, inconsistency_size: str | inconsistency_study.StudySize = "demo",
         js_pi_size: str | js_pi_study.StudySize = "demo") -> tuple[StudyResult, JsPiResult]:
    """Run both studies into `out`/inconsistency and `out`/js_pi (replacing an earlier demo there), print
    their tables and say where the reports and figures are; returns both results.

    Args:
        out: the demo's folder.
        inconsistency_size, js_pi_size: each study's size, a name or the size itself (default: their
            "demo" size; tests pass smaller ones).
    """
    # The demo's models are tiny: two threads gain little on them, and slow down by an order of magnitude
    # as soon as another process competes for the cores.
    torch.set_num_threads(1)
    out = Path(out)
    print(f"seqgen demo 1/2: scheduled sampling's inconsistency, measured exactly on a toy distribution "
          f"-> {out / 'inconsistency'}")
    inconsistency = run_inconsistency(out / "inconsistency", size=inconsistency_size, overwrite=True)
    _show(inconsistency)
    print()
    print(f"seqgen demo 2/2: JS_π from mass-covering to mode-seeking, on a 2-D mixture and a toy "
          f"distribution -> {out / 'js_pi'}")
    js_pi = run_js_pi(out / "js_pi", size=js_pi_size, oracle=False, overwrite=True)
    _show(js_pi)
    return inconsistency, js_pi


def _show(result: StudyResult | JsPiResult) -> None:
    print()
    print(result.table())
    print()
    print(f"report:  {result.files['report']}")
    print(f"results: {result.files['results']}")
    figures = [str(path) for path in result.files.values() if path.suffix == ".png"]
    print(f"figures: {', '.join(figures)}")
