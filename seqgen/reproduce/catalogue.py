"""The benchmarks `seqgen reproduce` knows, by name."""

from __future__ import annotations

import importlib

from seqgen.errors import UserError
from seqgen.reproduce.benchmark import Benchmark

BENCHMARKS = {"seqgan-oracle": "seqgen.reproduce.seqgan_oracle",
              "coco-text": "seqgen.reproduce.coco_text",
              "multi30k": "seqgen.reproduce.multi30k",
              "shapes-captioning": "seqgen.reproduce.shapes_captioning"}
"""Benchmark name to the module defining it (its `BENCHMARK`)."""


def benchmark(name: str) -> Benchmark:
    """The benchmark called `name`.

    Raises:
        UserError: no benchmark has that name.
    """
    if name not in BENCHMARKS:
        raise UserError(f"unknown benchmark {name!r}; seqgen reproduces {', '.join(BENCHMARKS)}")
    return importlib.import_module(BENCHMARKS[name]).BENCHMARK
