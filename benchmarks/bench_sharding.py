"""Sharded (FSDP2) against replicated (DDP) training with N processes: step time through seqgen's own loop,
and the training state each process holds (parameters, gradients, AdamW moments).

    python benchmarks/bench_sharding.py                      # 2 gloo processes on a CPU, GPT-2 debug size
    python benchmarks/bench_sharding.py --recipe recipes/debug/lm_transformer.yaml model.hidden_size=256 \
        model.num_hidden_layers=4 model.num_attention_heads=4  # a model whose step outweighs the collectives

Step time: `seqgen train RECIPE` under `accelerate launch`, train.sharding none then fsdp, `--rounds`
pairs; the tokens per second of each run's log windows after the first (the first holds start-up). Memory:
each process builds the recipe's generator, replicated or sharded with seqgen.sharding, takes one AdamW
step on a random batch and counts the bytes of its local parameters, gradients and optimizer states (a
shard's local part under FSDP2), and the most parameter bytes it held whole at once during the forward
(checked before every module's call: DDP holds them all; FSDP2 the units gathered at that moment, a
Transformer layer at a time for objectives that shard layer by layer).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _launch(args: argparse.Namespace, command: list[str]) -> subprocess.CompletedProcess:
    accelerate = str(Path(sys.executable).with_name("accelerate"))
    launcher = [accelerate, "launch", "--multi_gpu", "--num_processes", str(args.processes), "--num_machines", "1",
                "--main_process_port", "0",
                "--mixed_precision", "no", "--dynamo_backend", "no"]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([*launcher, *command], cwd=ROOT, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} failed:\n{done.stderr[-3000:]}")
    return done


def step_time(args: argparse.Namespace, sharding: str, out: Path) -> float:
    """Tokens per second of a `seqgen train` run, over its log windows after the first."""
    window = args.steps // 4
    _launch(args, ["-m", "seqgen", "train", args.recipe, f"output_dir={out}", f"train.max_steps={args.steps}",
                   f"train.log_every={window}", f"train.eval_every={10 * args.steps}", f"train.save_every={10 * args.steps}",
                   "train.num_samples=0", "train.tensorboard=false", f"train.sharding={sharding}", *args.overrides,
                   "--overwrite"])
    records = [json.loads(line) for line in (out / "logs" / "metrics.jsonl").read_text().splitlines()]
    rates = [r["train/tokens_per_second"] for r in records if "train/tokens_per_second" in r][1:]
    return statistics.mean(rates)


def memory_worker(recipe: str, sharding: str, out: str, *overrides: str) -> None:
    """Under the launcher: this process's training-state bytes after one step, the most parameter bytes
    held whole during its forward (and on CUDA its peak allocated memory), written to out/RANK.json."""
    import torch
    from accelerate import Accelerator

    from seqgen.config import load_config
    from seqgen.data.batch import Vocab
    from seqgen.models import build_generator
    from seqgen.objectives import OBJECTIVES
    from seqgen.processes import cpu_processes
    from seqgen.sharding import Sharding

    accelerator = Accelerator(cpu=cpu_processes())
    cfg = load_config(recipe, list(overrides))
    vocab = Vocab(size=cfg.tokenizer.vocab_size if cfg.tokenizer.kind != "fixed" else 1000, pad_id=0, bos_id=1,
                  eos_id=2, unk_id=3)
    torch.manual_seed(0)
    generator = build_generator(cfg.model, vocab, cfg.task).to(accelerator.device)
    if sharding == "fsdp":
        layers = OBJECTIVES[cfg.objective.name][0].fixed_calls  # as `seqgen train` shards this recipe
        call = Sharding([generator], [generator], accelerator.is_main_process, layers=layers).root
        forward = lambda ids: call(0, ids)  # noqa: E731
    else:
        forward = accelerator.prepare(generator)
    optimizer = torch.optim.AdamW(generator.parameters(), lr=1e-4)

    def local(t) -> int:
        t = t.to_local() if hasattr(t, "to_local") else t
        return t.numel() * t.element_size()

    # FSDP2 swaps a unit's DTensor shards for plain whole tensors while it is gathered
    whole = 0

    def count_whole(*_) -> None:
        nonlocal whole
        whole = max(whole, sum(local(p) for p in generator.parameters() if not hasattr(p, "to_local")))

    hooks = [m.register_forward_pre_hook(count_whole) for m in generator.modules()]
    ids = torch.randint(4, vocab.size, (8, 12), device=accelerator.device)
    forward(ids).logsumexp(-1).mean().backward()
    for hook in hooks:
        hook.remove()
    optimizer.step()

    params = list(generator.parameters())
    counts = {"whole_in_forward": whole,
              "parameters": sum(local(p) for p in params),
              "gradients": sum(local(p.grad) for p in params if p.grad is not None),
              "optimizer": sum(local(v) for s in optimizer.state.values() for v in s.values()
                               if torch.is_tensor(v) and v.dim() > 0)}
    if accelerator.device.type == "cuda":  # everything the step held at once, activations included
        counts["cuda_peak"] = torch.cuda.max_memory_allocated(accelerator.device)
    Path(out, f"{accelerator.process_index}.json").write_text(json.dumps(counts))
    accelerator.wait_for_everyone()


def memory(args: argparse.Namespace, sharding: str, out: Path) -> dict[str, float]:
    """The largest per-process byte counts over the processes, in MB."""
    out.mkdir(parents=True, exist_ok=True)
    _launch(args, [__file__, "--memory-worker", args.recipe, sharding, str(out), *args.overrides])
    counts = [json.loads((out / f"{r}.json").read_text()) for r in range(args.processes)]
    return {k: max(c[k] for c in counts) / 1e6 for k in counts[0]}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--memory-worker":
        memory_worker(*sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="recipes/debug/lm_transformer.yaml")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="OMP threads per process")
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps per timed run (4 log windows)")
    parser.add_argument("--rounds", type=int, default=2, help="DDP/FSDP pairs, alternated")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("overrides", nargs="*", help="recipe overrides for both runs, e.g. model.hidden_size=256")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        rates = {"none": [], "fsdp": []}
        for _ in range(args.rounds):
            for mode in rates:
                rates[mode].append(step_time(args, mode, Path(tmp) / f"time-{mode}"))
        mem = {mode: memory(args, mode, Path(tmp) / f"memory-{mode}") for mode in ("none", "fsdp")}
    speed = {mode: statistics.median(r) for mode, r in rates.items()}
    result = {"recipe": args.recipe, "overrides": args.overrides, "processes": args.processes, "threads": args.threads, "steps": args.steps,
              "tokens_per_second": rates, "step_time_fsdp_over_ddp": speed["none"] / speed["fsdp"],
              "memory_mb": mem,
              "memory_fsdp_over_ddp": {k: mem["fsdp"][k] / mem["none"][k] for k in mem["none"]}}
    print(f"{args.recipe} {' '.join(args.overrides)}, {args.processes} processes x {args.threads} threads, {args.steps} steps, "
          f"{args.rounds} rounds")
    print(f"tokens/s  DDP {speed['none']:,.0f}  FSDP2 {speed['fsdp']:,.0f}  step time FSDP2/DDP "
          f"{result['step_time_fsdp_over_ddp']:.2f} (target <= 1.5)")
    for key in mem["none"]:
        # the training state is sharded (1/N); parameters whole in the forward are a layer's, not 1/N
        aim = "" if key == "whole_in_forward" else f" (1/N = {1 / args.processes:.3f})"
        print(f"{key:<11} per process: DDP {mem['none'][key]:.3f} MB  FSDP2 {mem['fsdp'][key]:.3f} MB  "
              f"ratio {result['memory_fsdp_over_ddp'][key]:.3f}{aim}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
