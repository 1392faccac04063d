"""Metrics usable from notebooks and by `seqgen eval`: likelihood and sample quality."""

from seqgen.metrics.likelihood import NLLAccumulator
from seqgen.metrics.translation import corpus_scores

__all__ = ["NLLAccumulator", "corpus_scores"]
