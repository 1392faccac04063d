"""Launched by tests/test_distributed.py under `accelerate launch`: trains a recipe and writes each
process's final weights (an adversarial run's critic too, as `critic.*`), so the test can compare the
processes with each other and with one process."""

import os
import sys
from pathlib import Path

from safetensors.torch import save_file

import seqgen.train
from seqgen.config import load_config

if __name__ == "__main__":
    recipe, out, *overrides = sys.argv[1:]
    built = []

    def keep(*args, **kw):
        built.append(build(*args, **kw))
        return built[-1]

    build, seqgen.train.build_objective = seqgen.train.build_objective, keep
    generator, _ = seqgen.train.train(load_config(recipe, [f"output_dir={out}", *overrides]), overwrite=True)
    state = {k: v.detach().clone() for k, v in generator.state_dict().items()}  # tied weights: own copies
    if hasattr(built[0], "critic"):
        state.update({f"critic.{k}": v.detach().clone() for k, v in built[0].critic.state_dict().items()})
    save_file(state, str(Path(out) / f"rank{os.environ.get('RANK', '0')}.safetensors"))
