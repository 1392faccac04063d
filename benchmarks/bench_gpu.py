"""Every GPU figure in one command, for a CUDA machine: each stage is one of the benchmark scripts here,
run as its own process with its output and JSON kept in OUT, then OUT/summary.md gathers them.

    python benchmarks/bench_gpu.py --out runs/bench-gpu               # on a CUDA machine, all stages
    python benchmarks/bench_gpu.py --out runs/bench-gpu --stages train sampling
    python benchmarks/bench_gpu.py --dry-run --out /tmp/bench-gpu     # every stage at its smoke size on
                                                                      # this machine's device (CPU here)

Stages (full sizes on CUDA, bf16 autocast):
- train: teacher forcing through seqgen's loop against a bare PyTorch + transformers loop on a
  GPT-2-medium-sized model (24 blocks, 1024 wide, 16 heads, vocabulary 50,257), 64 sentences x 64
  tokens per step (bench_train.py); tokens/s, achieved TFLOP/s and model FLOPs utilisation against the
  device's published dense bf16 peak (and against the matmul rate measured on it);
- scheduled_sampling: scheduled sampling (sequential with and without cache, parallel), weighted
  likelihood and teacher JS_π steps against teacher forcing's (bench_scheduled_sampling.py);
- adversarial: one adversarial iteration per estimator against a teacher-forcing step
  (bench_adversarial.py);
- sampling: `seqgen.sampling.generate` against transformers' `generate`, 64 rows (bench_sampling.py);
- sharding: FSDP2 against DDP through `seqgen train` on every visible GPU: step time and training state
  and peak CUDA memory per process (bench_sharding.py); needs 2 GPUs or more (on one, FSDP2 trains
  unsharded).

A stage that fails is recorded as failed in the summary and the others still run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent

GPT2_MEDIUM = ["--layers", "24", "--width", "1024", "--heads", "16", "--vocab", "50257"]
STAGES: dict[str, tuple[str, list[str]]] = {
    "train": ("bench_train.py", ["--models", "gpt2", *GPT2_MEDIUM, "--batch-size", "64", "--warmup", "5",
                                 "--steps", "20", "--rounds", "2"]),
    "scheduled_sampling": ("bench_scheduled_sampling.py", ["--batch-size", "64", "--rounds", "2"]),
    "adversarial": ("bench_adversarial.py", ["--batch-size", "64", "--rounds", "2"]),
    "sampling": ("bench_sampling.py", ["--batch-size", "64"]),
    "sharding": ("bench_sharding.py", ["--steps", "200", "--rounds", "2", "model.hidden_size=1024",
                                       "model.num_hidden_layers=24", "model.num_attention_heads=16",
                                       "data.batch_size=32"]),
}
DRY_RUN: dict[str, list[str]] = {
    "sharding": ["--steps", "8", "--rounds", "1"],
}
"""The smoke size of each stage (the others take their script's --quick)."""

PEAK_BF16_TFLOPS = {"H200": 989.4, "H100 PCIe": 756.0, "H100": 989.4, "A100": 312.0, "L40S": 362.1}
"""Published dense bf16 tensor-core peaks (NVIDIA data sheets, without sparsity), by device name; the
first name the device's contains is used."""


def command(stage: str, args: argparse.Namespace, out: Path) -> list[str]:
    script, full = STAGES[stage]
    cmd = [sys.executable, str(HERE / script)]
    if stage == "sharding":  # launches `seqgen train` under accelerate: the device follows the launcher
        return [*cmd, "--processes", str(args.processes), "--json", str(out / f"{stage}.json"),
                *(DRY_RUN[stage] if args.dry_run else full)]
    cmd += ["--device", args.device, "--mixed-precision", args.mixed_precision, "--json", str(out / f"{stage}.json")]
    return [*cmd, "--quick"] if args.dry_run else [*cmd, *full]


def _text(output: bytes | str | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


def peak_tflops(name: str) -> float | None:
    return next((peak for key, peak in PEAK_BF16_TFLOPS.items() if key in name), None)


def summary(results: dict[str, dict], out: Path, device_name: str) -> str:
    lines = [f"# GPU benchmarks on {device_name}", ""]
    for stage, result in results.items():
        lines += [f"## {stage}: {result['status']} ({result['seconds']:.0f} s)", "", "```",
                  f"{' '.join(result['command'])}", "", result["tail"].rstrip(), "```", ""]
    train = out / "train.json"
    peak = peak_tflops(device_name)
    if train.exists() and peak is not None:
        flops = json.loads(train.read_text()).get("gflops")
        if flops:
            mfu = {side: flops[f"{side}_gflops"] / 1e3 / peak for side in ("seqgen", "reference")}
            lines += [(f"Model FLOPs utilisation against the published bf16 peak of {peak:g} TFLOP/s: seqgen "
                       f"{mfu['seqgen']:.1%}, bare loop {mfu['reference']:.1%} (seqgen / bare "
                       f"{mfu['seqgen'] / mfu['reference']:.3f})."), ""]
    return "\n".join(lines)


def main() -> None:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for each stage's output and the summary")
    parser.add_argument("--stages", nargs="+", choices=list(STAGES), default=list(STAGES))
    parser.add_argument("--dry-run", action="store_true", help="each stage at its smoke size")
    parser.add_argument("--device", default="cuda" if cuda else "cpu")
    parser.add_argument("--mixed-precision", choices=["no", "bf16"], default="bf16" if cuda else "no")
    parser.add_argument("--processes", type=int, default=max(2, torch.cuda.device_count()),
                        help="processes of the sharding stage (default: every GPU, at least 2)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds a stage may run")
    args = parser.parse_args()
    if not cuda and not args.dry_run:
        raise SystemExit("bench_gpu.py: no CUDA device here; use --dry-run to check the stages")
    args.out.mkdir(parents=True, exist_ok=True)
    device_name = torch.cuda.get_device_name() if cuda else "CPU (dry run)"

    results: dict[str, dict] = {}
    for stage in args.stages:
        if stage == "sharding" and cuda and torch.cuda.device_count() < 2:
            print("sharding: skipped, one GPU (FSDP2 with one process trains unsharded)")
            continue
        cmd = command(stage, args, args.out)
        print(f"{stage}: {' '.join(cmd)}", flush=True)
        start = time.perf_counter()
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, check=False)
            status = "ok" if done.returncode == 0 else f"failed (exit {done.returncode})"
            stdout, stderr = done.stdout, done.stderr
        except subprocess.TimeoutExpired as e:
            status, stdout, stderr = f"timed out after {args.timeout:.0f} s", _text(e.stdout), _text(e.stderr)
        (args.out / f"{stage}.txt").write_text(stdout + stderr)
        # the summary shows the script's report (its stdout), or what a failure printed last
        shown = stdout if status == "ok" else stdout + stderr
        results[stage] = {"command": cmd, "status": status, "seconds": time.perf_counter() - start,
                          "tail": "\n".join(shown.splitlines()[-40:])}
        print(f"{stage}: {status}", flush=True)
    (args.out / "summary.md").write_text(summary(results, args.out, device_name))
    print(f"summary written to {args.out / 'summary.md'}")
    if any(r["status"] != "ok" for r in results.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
