"""CIDEr-D for captioning, exactly as the COCO caption evaluation code computes it.

The reference is `pycocoevalcap.cider.Cider` (coco-caption's `cider/cider_scorer.py`), which despite its
name is CIDEr-D (Vedantam et al. 2015, the variant used on the COCO leaderboard; the plain CIDEr of the
original cider repository has neither): it clips the hypothesis' tf-idf weights at the reference's and
applies a Gaussian length penalty. Given a corpus of N images, image i with hypothesis h_i and
references r_i1..r_im:

    df(g)      = number of images with n-gram g in at least one of their references
    g_n(s)     = vector over the n-grams g of sentence s: tf_s(g) * (log N - log max(1, df(g)))
    sim_n(h,r) = sum_g min(g_n(h)[g], g_n(r)[g]) * g_n(r)[g] / (||g_n(h)|| * ||g_n(r)||)
                 (0 when either norm is 0)
    CIDEr-D_n  = (10 / m) * sum_j exp(-(l(h) - l(r_j))^2 / (2 sigma^2)) * sim_n(h, r_j)
    CIDEr-D    = mean over n = 1..4 of CIDEr-D_n;   corpus score = mean over images.

Behaviour of the reference, kept so that scores are comparable with published ones:

- The length l(s) in the penalty is the number of tokens here; the reference counts bigrams (it tests
  n == 1 on a 0-based order), which gives the same difference unless a sentence is empty, and then
  the score is 0 either way.
- Document frequencies come from the references of the evaluated corpus only, so a one-image corpus
  scores 0 (every idf is log 1 - log 1) and scores depend on which images are evaluated together.
- Hypothesis n-grams absent from every reference get idf log N; they only enlarge ||g_n(h)||.

The COCO pipeline first runs the PTB tokenizer (Java) on all sentences; that is not reproduced here:
sentences are split on whitespace, and lowercasing or punctuation stripping is the caller's job.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

MAX_ORDER = 4

NGram = tuple[str, ...]


def _ngram_counts(sentence: str) -> list[Counter[NGram]]:
    """Counts of the 1..MAX_ORDER-grams of a whitespace-tokenised sentence, one Counter per order."""
    words = sentence.split()
    return [Counter(zip(*(words[k:] for k in range(n)))) for n in range(1, MAX_ORDER + 1)]


def _tfidf(counts: list[Counter[NGram]], idf: dict[NGram, float],
           unseen_idf: float) -> tuple[list[dict[NGram, float]], list[float]]:
    """tf-idf vectors (one dict per order) of a sentence and their Euclidean norms."""
    vectors, norms = [], []
    for order_counts in counts:
        vector = {g: tf * idf.get(g, unseen_idf) for g, tf in order_counts.items()}
        vectors.append(vector)
        norms.append(math.sqrt(sum(w * w for w in vector.values())))
    return vectors, norms


def cider_d(hypotheses: Sequence[str], references: Sequence[Sequence[str]],
            sigma: float = 6.0) -> tuple[float, list[float]]:
    """CIDEr-D of a corpus of captions, matching `pycocoevalcap.cider.Cider` (see the module docstring).

    Args:
        hypotheses: one generated caption per image, tokens separated by whitespace.
        references: for each image, its reference captions (at least one), tokenised the same way.
        sigma: standard deviation of the Gaussian length penalty, in tokens.

    Returns:
        The corpus CIDEr-D (mean over images) and the per-image scores, in input order, on the COCO
        scale (x10): each lies in [0, 10], and a caption equal to all of its image's references scores
        10 when it has at least 4 tokens and, at each order, an n-gram absent from some image's references.

    Raises:
        ValueError: the two sequences differ in length, the corpus is empty, or an image has no reference.
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists")
    if not hypotheses:
        raise ValueError("CIDEr-D needs at least one image")
    for i, refs in enumerate(references):
        if isinstance(refs, str) or not refs:
            raise ValueError(f"image {i} needs a non-empty list of reference captions, got {refs!r}")

    ref_counts = [[_ngram_counts(r) for r in refs] for refs in references]
    doc_freq: Counter[NGram] = Counter()
    for refs in ref_counts:
        doc_freq.update({g for counts in refs for order_counts in counts for g in order_counts})
    log_images = math.log(len(hypotheses))
    idf = {g: log_images - math.log(df) for g, df in doc_freq.items()}
    two_var = 2.0 * sigma * sigma

    scores = []
    for hyp, refs in zip(hypotheses, ref_counts):
        hyp_counts = _ngram_counts(hyp)
        hyp_vecs, hyp_norms = _tfidf(hyp_counts, idf, log_images)
        hyp_len = sum(hyp_counts[0].values())
        total = 0.0
        for counts in refs:
            ref_vecs, ref_norms = _tfidf(counts, idf, log_images)
            penalty = math.exp(-((hyp_len - sum(counts[0].values())) ** 2) / two_var)
            for hyp_vec, ref_vec, hyp_norm, ref_norm in zip(hyp_vecs, ref_vecs, hyp_norms, ref_norms):
                if hyp_norm == 0.0 or ref_norm == 0.0:
                    continue
                # CIDEr-D's clipping: the hypothesis weight is capped at the reference's.
                dot = sum(min(hyp_vec[g], ref_vec[g]) * ref_vec[g] for g in hyp_vec.keys() & ref_vec.keys())
                total += penalty * dot / (hyp_norm * ref_norm)
        scores.append(10.0 * total / (MAX_ORDER * len(refs)))
    return sum(scores) / len(scores), scores
