"""What both benchmark scripts share: device options, clocks, the matmul peak and the result table."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import transformers


def add_device_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--mixed-precision", choices=["no", "bf16"], default="no",
                        help="bf16 autocast in both loops (seqgen through Accelerate)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads for both loops (default: torch's choice)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of the script")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this file")


def fill_sizes(args: argparse.Namespace, sizes: dict[str, dict[str, object]]) -> None:
    """Give every size option left unset its value from `sizes["quick"]` or `sizes["full"]`."""
    for key, value in sizes["quick" if args.quick else "full"].items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)


def setup(args: argparse.Namespace) -> torch.device:
    """Apply --threads and return the device; both loops of a script run in this one process."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    return device


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels, so that a clock reading covers the work issued before it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, mixed_precision: str) -> contextlib.AbstractContextManager:
    if mixed_precision == "no":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds that `fn()` takes, the device's queue drained before and after."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def matmul_peak(device: torch.device, dtype: torch.dtype = torch.float32, n: int = 2048,
                reps: int = 5) -> float:
    """This machine's achieved dense matmul rate in GFLOP/s: the best of `reps` (n x n) @ (n x n)
    products (2 n^3 FLOPs each) after one warm-up product."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    torch.matmul(a, b)
    best = min(timed(lambda: torch.matmul(a, b), device) for _ in range(reps))
    return 2 * n**3 / best / 1e9


def machine(device: torch.device) -> dict[str, object]:
    """The facts a reader needs to compare figures across machines."""
    info: dict[str, object] = {"torch": torch.__version__, "transformers": transformers.__version__,
                               "python": platform.python_version(), "threads": torch.get_num_threads(),
                               "device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    else:
        info["cpu"] = platform.processor() or platform.machine()
        # Other processes on the same cores slow both loops, and unevenly: worth recording.
        info["load_average_1min"] = round(os.getloadavg()[0], 2)
    return info


def rate(tokens: list[int], seconds: list[float]) -> float:
    """Tokens per second over several timed windows (total over total, not a mean of rates)."""
    return sum(tokens) / sum(seconds)


def paired_ratio(ours: list[float], theirs: list[float]) -> float:
    """Median over repetitions of ours / theirs, each pair measured back to back: a burst of other load
    on the machine moves one pair, where it would move a ratio of totals."""
    return statistics.median(a / b for a, b in zip(ours, theirs))


def spread(rates: list[float]) -> str:
    """min-max of per-round rates, to show how much the figure moves between rounds."""
    if len(rates) < 2:
        return "-"
    return f"{min(rates):,.0f}-{max(rates):,.0f} (median {statistics.median(rates):,.0f})"


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' warnings about generation flags, which would bury the table."""
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers.logging.set_verbosity(verbosity)


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))


def write_json(path: Path | None, results: dict) -> None:
    if path is not None:
        path.write_text(json.dumps(results, indent=2))
        print(f"results written to {path}")
