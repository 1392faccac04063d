"""Diversity of a set of generated sentences: distinct-n, n-gram entropy and length statistics.

All n-gram statistics pool the n-grams of every sentence of the set (a sentence shorter than n adds
none); tokens may be any hashable values, tokenisation is the caller's.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from seqgen.errors import UserError

Sentence = Sequence[object]


def _pooled_ngrams(sentences: Sequence[Sentence], n: int) -> Counter:
    if not isinstance(n, int) or n < 1:
        raise UserError(f"diversity: n-gram order must be a positive integer, got {n!r}")
    counts: Counter = Counter()
    for sentence in sentences:
        sentence = list(sentence)
        counts.update(zip(*[sentence[i:] for i in range(n)]))
    return counts


def distinct_n(sentences: Sequence[Sentence], n: int) -> float:
    """Distinct-n: the number of distinct n-grams over the set divided by the number of n-grams.

    Returns:
        A value in (0, 1]; NaN when no sentence has n tokens.
    """
    counts = _pooled_ngrams(sentences, n)
    total = sum(counts.values())
    return len(counts) / total if total else math.nan


def ngram_entropy(sentences: Sequence[Sentence], n: int) -> float:
    """Shannon entropy in nats, -sum_g p(g) log p(g), of the n-gram frequency distribution over the set.

    p(g) is the count of n-gram g over all sentences divided by the total n-gram count.

    Returns:
        A value in [0, log(number of distinct n-grams)]; NaN when no sentence has n tokens.
    """
    counts = _pooled_ngrams(sentences, n)
    total = sum(counts.values())
    if not total:
        return math.nan
    return -math.fsum(c / total * math.log(c / total) for c in counts.values())


def length_stats(sentences: Sequence[Sentence]) -> dict[str, float]:
    """Mean, population standard deviation, minimum and maximum sentence length in tokens.

    Returns:
        `{"length_mean", "length_std", "length_min", "length_max"}`.
    """
    lengths = [len(sentence) for sentence in sentences]
    if not lengths:
        raise UserError("length statistics of an empty set of sentences")
    mean = math.fsum(lengths) / len(lengths)
    variance = math.fsum((x - mean) ** 2 for x in lengths) / len(lengths)
    return {"length_mean": mean, "length_std": math.sqrt(variance),
            "length_min": float(min(lengths)), "length_max": float(max(lengths))}


def diversity_scores(sentences: Sequence[Sentence], orders: Sequence[int] = (1, 2, 3, 4)) -> dict[str, float]:
    """Distinct-n and n-gram entropy for each n in `orders`, and the length statistics.

    Args:
        sentences: the generated sentences, each a sequence of tokens.
        orders: the n-gram orders n.

    Returns:
        `{"distinct{n}": ..., "ngram_entropy{n}_nats": ...}` for each n, plus the keys of `length_stats`.
    """
    sentences = [list(sentence) for sentence in sentences]
    scores = {}
    for n in orders:
        scores[f"distinct{n}"] = distinct_n(sentences, n)
        scores[f"ngram_entropy{n}_nats"] = ngram_entropy(sentences, n)
    scores.update(length_stats(sentences))
    return scores
