"""One command per published benchmark: `seqgen reproduce NAME` trains every row of the benchmark's table
(teacher forcing, scheduled sampling, JS_π adversarial at several π, the weighted-likelihood presets,
and a user's own recipe as one more row), measures each as the paper did, and writes the published
numbers beside seqgen's, with each row's quality–diversity curve against teacher forcing's.

Each benchmark has three sizes: `paper` (the published protocol), `cpu` (sized for 2 CPU
cores) and `tiny` (for tests). The benchmarks are listed in `seqgen.reproduce.catalogue`.
"""

from seqgen.reproduce.catalogue import BENCHMARKS, benchmark
from seqgen.reproduce.run import ReproductionResult, RowResult, reproduce

__all__ = ["BENCHMARKS", "ReproductionResult", "RowResult", "benchmark", "reproduce"]
