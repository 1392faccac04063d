"""Launched by tests/test_distributed.py under `accelerate launch` (or alone, as one process): trains a
recipe and writes each process's final weights (every module the objective exports, e.g. an
adversarial run's critic, too, as `NAME.*`), so the test can compare the processes with each other and
with one process.

The objective is caught through the one seam the loop uses, `seqgen.objectives.OBJECTIVES`: each entry's
class is wrapped so that the instance the loop builds is kept."""

import os
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file
from torch.distributed.tensor import DTensor

import seqgen.objectives
from seqgen.config import load_config
from seqgen.train import train


def keep_objectives(built: list) -> None:
    """Wrap every registered objective class so that the instances built are appended to `built`."""
    for name, (cls, config) in list(seqgen.objectives.OBJECTIVES.items()):
        def make(*args, _cls=cls, **kw):
            built.append(_cls(*args, **kw))
            return built[-1]

        seqgen.objectives.OBJECTIVES[name] = (make, config)


def run(recipe: str, out: str, *overrides: str) -> None:
    """Train `recipe` into `out` and write this process's weights as out/rankR.safetensors."""
    built: list = []
    real = dict(seqgen.objectives.OBJECTIVES)
    keep_objectives(built)
    try:
        generator, _ = train(load_config(recipe, [f"output_dir={out}", *overrides]), overwrite=True)
    finally:
        seqgen.objectives.OBJECTIVES.update(real)
    assert len(built) == 1, f"expected one objective built, got {len(built)}"
    state = {k: v.detach().clone() for k, v in generator.state_dict().items()}  # tied weights: own copies
    for name, module in built[0].exports().items():
        if any(isinstance(p, DTensor) for p in module.parameters()):  # sharded: as the run exported it whole
            exported = load_file(Path(out) / "model" / f"{name}.safetensors")
            state.update({f"{name}.{k}": v for k, v in exported.items()})
        else:
            state.update({f"{name}.{k}": v.detach().clone() for k, v in module.state_dict().items()})
    save_file(state, str(Path(out) / f"rank{os.environ.get('RANK', '0')}.safetensors"))


if __name__ == "__main__":
    run(*sys.argv[1:])  # RECIPE OUT [key=value ...]; one run per launch (the end of a run ends the process group)
