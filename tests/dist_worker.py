"""Launched by tests/test_distributed.py under `accelerate launch`: trains a recipe and writes each
process's final weights, so the test can compare the processes with each other and with one process."""

import os
import sys
from pathlib import Path

from safetensors.torch import save_file

from seqgen.config import load_config
from seqgen.train import train

if __name__ == "__main__":
    recipe, out, *overrides = sys.argv[1:]
    generator, _ = train(load_config(recipe, [f"output_dir={out}", *overrides]), overwrite=True)
    state = {k: v.detach().clone() for k, v in generator.state_dict().items()}  # tied weights: own copies
    save_file(state, str(Path(out) / f"rank{os.environ.get('RANK', '0')}.safetensors"))
