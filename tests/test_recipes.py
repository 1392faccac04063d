"""Each debug recipe through the real CLI: train, evaluate, export, sample, resume; losses decrease."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from seqgen.tracking import read_log

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def seqgen(*args, cwd=ROOT, check=True):
    proc = subprocess.run([sys.executable, "-m", "seqgen", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"seqgen {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


@pytest.mark.parametrize("recipe", ["lm", "translation", "captioning", "lm_transformer"])
def test_debug_recipe_end_to_end(recipe, tmp_path):
    out = tmp_path / recipe
    seqgen("train", f"recipes/debug/{recipe}.yaml", f"output_dir={out}")

    # logged training losses decrease; the exported model and the best model exist
    losses = [r["train/loss"] for r in read_log(out / "logs" / "metrics.jsonl") if "train/loss" in r]
    assert len(losses) >= 4 and losses[-1] < 0.9 * losses[0], losses
    for folder in ("model", "best"):
        assert {"seqgen.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in (out / folder).iterdir()}
    trained = json.loads((out / "metrics.json").read_text())
    assert trained["step"] == 40

    # evaluation through the CLI
    proc = seqgen("eval", out, "--split", "test")
    metrics = json.loads((out / "metrics-test.json").read_text())["metrics"]
    assert 0 < metrics["eval/nll"] < 10 and "eval/ppl" in proc.stdout
    if recipe in ("translation", "captioning"):
        assert "eval/sacrebleu_bleu" in metrics and "signature: nrefs" in proc.stdout

    # sampling
    if recipe.startswith("lm"):
        lines = seqgen("generate", out, "--n", 3, "--seed", 1).stdout.splitlines()
        assert len(lines) == 3 and all(lines)
        again = seqgen("generate", out, "--n", 3, "--seed", 1).stdout.splitlines()
        assert lines == again
    elif recipe == "translation":
        src = tmp_path / "src.txt"
        src.write_text("der hund läuft im park .\ndie katze schläft im garten .\n")
        lines = seqgen("generate", out, "--input", src, "--beam", 3).stdout.splitlines()
        assert len(lines) == 2 and lines[0].startswith("der hund läuft im park .\t")
    elif recipe == "captioning":
        from seqgen.data.synthetic.shapes import make_split

        paths = []
        for i, example in enumerate(make_split(2, seed=5, image_size=32)):
            paths.append(tmp_path / f"shape{i}.png")
            paths[-1].write_bytes(example["image"])
        (tmp_path / "images.txt").write_text("\n".join(map(str, paths)) + "\n")
        lines = seqgen("generate", out, "--input", tmp_path / "images.txt").stdout.splitlines()
        assert len(lines) == 2 and all(line.split("\t")[1] for line in lines)

    # a run folder is never overwritten silently; resume continues to the new step count
    refused = seqgen("train", f"recipes/debug/{recipe}.yaml", f"output_dir={out}", check=False)
    assert refused.returncode == 2 and "already holds a run" in refused.stderr
    before = load_file(out / "checkpoints" / "step-0000040" / "model.safetensors")
    seqgen("train", f"recipes/debug/{recipe}.yaml", f"output_dir={out}", "train.max_steps=50", "--resume")
    trained = json.loads((out / "metrics.json").read_text())
    assert trained["step"] == 50 and trained["checkpoint"]["step"] == trained["best_step"] in (40, 50)
    after = load_file(out / "checkpoints" / "step-0000050" / "model.safetensors")
    assert any((before[k] != after[k]).any() for k in before)
