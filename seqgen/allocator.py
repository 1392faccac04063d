"""Keeping freed memory in the process on glibc, so that a CPU training step does not pay the kernel for
its large tensors every time.

glibc serves an allocation above its mmap threshold (at most 32 MiB by default) with a fresh mapping
and unmaps it on free. A training step's large activations and gradients (a (B, T, V) logits tensor is
tens of MiB) are allocated and freed every step, so every step maps them anew and the kernel zeroes
their pages: on 2 CPU cores the system time of a small LSTM's training came close to its user time.
Raising the mmap and trim thresholds keeps those blocks in the heap for reuse, at the cost of holding
the step's peak memory between steps (as CUDA's caching allocator does on a GPU).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
THRESHOLD = 1 << 30
"""Blocks up to 1 GiB come from the heap and freed memory up to 1 GiB stays there."""
OPT_OUT = "SEQGEN_RETURN_MEMORY"
"""Set to 1 to leave glibc's defaults alone (memory returned to the system as soon as it is freed)."""

_done = False


def retain_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process (once); whether they were changed. Does
    nothing off glibc, when the user's own `MALLOC_MMAP_THRESHOLD_`/`MALLOC_TRIM_THRESHOLD_` settings are
    present, or when `SEQGEN_RETURN_MEMORY=1`."""
    global _done
    if _done:
        return True
    if platform.libc_ver()[0] != "glibc" or os.environ.get(OPT_OUT) == "1" \
            or any(k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _done = bool(libc.mallopt(M_MMAP_THRESHOLD, THRESHOLD)) and bool(libc.mallopt(M_TRIM_THRESHOLD, THRESHOLD))
    except (OSError, AttributeError):
        return False
    return _done
