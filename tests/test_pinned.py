"""Pinned values (as torchtune's recipe tests): each debug recipe, trained a few steps on one thread,
logs the losses it logged when these tests were written. A change in the data, the initialisation, an
objective, the noise draws or the loop that moves a number fails here, even when every invariance
test still holds.

To re-record after an intended change, run

    SEQGEN_RECORD=1 OMP_NUM_THREADS=1 python -m pytest -q -rs -p no:cacheprovider tests/test_pinned.py

which skips the comparisons and prints each recipe's values in its skip reason; paste them into
PINNED below, and say in the commit why they moved.
"""

import math
import os
from pathlib import Path

import pytest
import torch

from seqgen.cli import main
from seqgen.tracking import read_log

ROOT = Path(__file__).resolve().parents[1]
STEPS = 3
COMMON = [f"train.max_steps={STEPS}", "train.log_every=1", f"train.eval_every={STEPS}",
          f"train.save_every={STEPS}", "train.num_samples=0", "train.tensorboard=false", "eval.max_batches=2"]
RECORD = os.environ.get("SEQGEN_RECORD") == "1"

# recipe -> metric -> the values logged at steps 1..STEPS (train/critic) or at the end (eval).
PINNED = {
    "lm": {"train/loss": [3.9531902737087674, 3.7293184068467884, 3.4103690253363714],
           "eval/nll": [3.420170565446218]},
    # Step 1 is lm's: ε = 1 at step 0 (linear from k = 1), so only gold tokens are fed.
    "lm_ss": {"train/loss": [3.9531902737087674, 3.7160665724012585, 3.426659901936849],
              "eval/nll": [3.4191511736975775]},
    "lm_adv": {"train/loss": [-0.41109001636505127, -0.3909049928188324, -0.3682312071323395],
               "critic/loss": [0.717841625213623, 0.7163594365119934, 0.6923350095748901],
               "eval/nll": [3.902659777137968]},
    "translation": {"train/loss": [4.361369609832764, 2.995823383331299, 2.380815029144287],
                    "eval/nll": [1.9076567351818086]},
}


@pytest.fixture
def one_thread():
    """The values are pinned for one thread: reductions split over threads round differently."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def logged(run: Path) -> dict[str, list[float]]:
    values: dict[str, list[float]] = {}
    for record in read_log(run / "logs" / "metrics.jsonl"):
        for key in ("train/loss", "critic/loss", "eval/nll"):
            if key in record:
                values.setdefault(key, []).append(record[key])
    return values


@pytest.mark.parametrize("recipe", ["lm", "lm_ss", "lm_adv", "translation"])
def test_recipe_logs_its_pinned_losses(recipe, tmp_path, monkeypatch, one_thread):
    monkeypatch.chdir(ROOT)
    try:
        main(["train", f"recipes/debug/{recipe}.yaml", f"output_dir={tmp_path / 'run'}", *COMMON])
    except SystemExit as e:
        pytest.fail(f"training {recipe} exited with {e.code}")
    values = logged(tmp_path / "run")
    assert len(values["train/loss"]) == STEPS and len(values["eval/nll"]) == 1
    assert all(math.isfinite(v) for vs in values.values() for v in vs)
    if RECORD:
        pytest.skip(f"recorded: {recipe!r}: {values!r},")
    assert recipe in PINNED, f"no pinned values for {recipe}: record them (see the module's docstring)"
    assert values.keys() == PINNED[recipe].keys()
    for key, expected in PINNED[recipe].items():
        assert values[key] == pytest.approx(expected, rel=1e-4, abs=1e-5), f"{recipe}: {key}"
