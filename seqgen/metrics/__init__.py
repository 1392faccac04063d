"""Metrics usable from notebooks and by `seqgen eval`: likelihood and sample quality.

- likelihood: held-out per-token NLL, perplexity, bits per token (`nll_metrics`, `sequence_nll`);
- exact: divergences on enumerable toys (`toy_metrics`, `kl`, `js_pi`, ...);
- oracle: NLL_oracle and NLL_test against a synthetic oracle (`oracle_metrics`);
- translation: sacrebleu corpus BLEU/chrF/TER, multi-reference (`corpus_scores`);
- cider: CIDEr-D as the COCO caption evaluation computes it (`cider_d`);
- bleu: BLEU-n and Self-BLEU-n of unconditional text against whole reference sets, equal to NLTK's
  sentence-BLEU loop but linear in the number of sentences (`bleu_scores`, `self_bleu_scores`);
- diversity: distinct-n, n-gram entropy, length statistics (`diversity_scores`);
- two_sample: a fresh classifier's held-out accuracy on real vs generated sentences and the JS_1/2
  lower bounds it implies (`two_sample_test`).
"""

from seqgen.metrics.bleu import ReferenceIndex, bleu_scores, self_bleu_scores
from seqgen.metrics.cider import cider_d
from seqgen.metrics.diversity import diversity_scores
from seqgen.metrics.exact import (
           js_pi,
           kl,
           model_log_probs,
           optimal_critic_value,
           total_variation,
           toy_metrics,
)
from seqgen.metrics.likelihood import nll_metrics, sequence_nll
from seqgen.metrics.oracle import nll_oracle, nll_test, oracle_metrics
from seqgen.metrics.translation import corpus_scores
from seqgen.metrics.two_sample import two_sample_test

__all__ = [
           "ReferenceIndex",
           "bleu_scores",
           "cider_d",
           "corpus_scores",
           "diversity_scores",
           "js_pi",
           "kl",
           "model_log_probs",
           "nll_metrics",
           "nll_oracle",
           "nll_test",
           "optimal_critic_value",
           "oracle_metrics",
           "self_bleu_scores",
           "sequence_nll",
           "total_variation",
           "toy_metrics",
           "two_sample_test",
]
