"""System time of CPU training with glibc's defaults against seqgen's retained freed memory
(`seqgen.allocator`), side by side in one run.

Each round trains the same recipe twice as separate `seqgen train` processes, once with
`SEQGEN_RETURN_MEMORY=1` (glibc's defaults: blocks above 32 MiB mapped and unmapped every step) and once
without (seqgen raises the mmap and trim thresholds), alternating which goes first. Per process: wall
seconds, user and system CPU seconds and peak resident memory (from wait4). The recipe is an LSTM
language model on a random oracle whose (B, T, V) logits are 64 x 41 x 8004 floats (84 MB), above
glibc's largest dynamic mmap threshold, as COCO's 6,000-word vocabulary is.

    python benchmarks/bench_allocator.py --steps 300 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECIPE = """task: lm
seed: 0
data:
  source: oracle
  batch_size: 64
  synthetic: {{num_train: 4096, num_validation: 64, num_test: 64, vocab_size: 8000, length: 40}}
tokenizer: {{kind: fixed}}
model: {{family: rnn, cell: lstm, embedding_dim: 32, hidden_dim: 32, tie_embeddings: false}}
train: {{max_steps: {steps}, lr: 0.01, eval_every: 100000, save_every: 100000, num_samples: 0, tensorboard: false}}
eval: {{max_batches: 1}}
"""


def run(recipe: Path, out: Path, retain: bool, threads: int) -> dict[str, float]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    env.pop("SEQGEN_RETURN_MEMORY", None)
    if not retain:
        env["SEQGEN_RETURN_MEMORY"] = "1"
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "seqgen", "train", str(recipe), f"output_dir={out}",
                              "--overwrite"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"seqgen train failed (status {status})")
    return {"wall": wall, "user": usage.ru_utime, "sys": usage.ru_stime, "peak_mb": usage.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {"glibc defaults": [], "retained": []}
    with tempfile.TemporaryDirectory() as tmp:
        recipe = Path(tmp) / "recipe.yaml"
        recipe.write_text(RECIPE.format(steps=args.steps), encoding="utf-8")
        for r in range(args.rounds):
            order = [False, True] if r % 2 == 0 else [True, False]
            for retain in order:
                m = run(recipe, Path(tmp) / "run", retain, args.threads)
                results["retained" if retain else "glibc defaults"].append(m)
                print(f"round {r + 1} {'retained' if retain else 'glibc defaults':<15} wall {m['wall']:6.1f} s  "
                      f"user {m['user']:6.1f} s  sys {m['sys']:6.1f} s  peak {m['peak_mb']:6.0f} MB", flush=True)
    print(f"\n{args.steps} steps, {args.threads} thread(s), load average {os.getloadavg()[0]:.1f}; medians:")
    for name, ms in results.items():
        print(f"  {name:<15} " + "  ".join(f"{k} {statistics.median(m[k] for m in ms):.1f}"
                                           for k in ("wall", "user", "sys", "peak_mb")))
    base, new = (statistics.median(m["wall"] for m in results[k]) for k in ("glibc defaults", "retained"))
    print(f"  wall ratio retained / defaults: {new / base:.2f}")


if __name__ == "__main__":
    main()
