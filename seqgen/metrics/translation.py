"""Corpus-level BLEU, chrF and TER through sacrebleu, with any number of references per example."""

from __future__ import annotations

from collections.abc import Sequence

import sacrebleu


def corpus_scores(hypotheses: Sequence[str], references: Sequence[Sequence[str]],
                  prefix: str = "eval/", ter: bool = False) -> tuple[dict[str, float], dict[str, str]]:
    """sacrebleu's corpus BLEU and chrF (and TER) with default settings.

    Args:
        hypotheses: one detokenised output per example.
        references: for each example, its reference texts (any number, at least one).
        prefix: namespace of the metric keys.
        ter: also compute TER (slower on long corpora).

    Returns:
        The scores (`{prefix}sacrebleu_bleu`, `{prefix}sacrebleu_chrf`, ...) and sacrebleu's signature of each.
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists")
    width = max((len(r) for r in references), default=1)
    # sacrebleu wants one stream per reference index; None marks a missing reference.
    streams = [[refs[j] if j < len(refs) else None for refs in references] for j in range(width)]
    metrics = {"sacrebleu_bleu": sacrebleu.BLEU(), "sacrebleu_chrf": sacrebleu.CHRF()}
    if ter:
        metrics["sacrebleu_ter"] = sacrebleu.TER()
    scores, signatures = {}, {}
    for name, metric in metrics.items():
        scores[prefix + name] = metric.corpus_score(list(hypotheses), streams).score
        signatures[prefix + name] = str(metric.get_signature())
    return scores, signatures
