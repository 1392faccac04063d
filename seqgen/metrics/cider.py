"""CIDEr-D for captioning, exactly as the COCO caption evaluation code computes it.

The reference is `pycocoevalcap.cider.Cider` (coco-caption's `cider/cider_scorer.py`), which despite its
name is CIDEr-D (Vedantam et al. 2015, the variant used on the COCO leaderboard): it clips the hypothesis'
tf-idf weights at the reference's and applies a Gaussian length penalty. Given a corpus of N images, image
i with hypothesis h_i and references r_i1..r_im:

    df(g)      = number of images with n-gram g in at least one of their references
    g_n(s)     = vector over the n-grams g of sentence s: tf_s(g) * (log N - log max(1, df(g)))
    sim_n(h,r) = sum_g min(g_n(h)[g], g_n(r)[g]) * g_n(r)[g] / (||g_n(h)|| * ||g_n(r)||)
                 (0 when either norm is 0)
    CIDEr-D_n  = (10 / m) * sum_j exp(-(l(h) - l(r_j))^2 / (2 sigma^2)) * sim_n(h, r_j)
    CIDEr-D    = mean over n = 1..4 of CIDEr-D_n;   corpus score = mean over images.

Quirks of the reference kept on purpose, so scores are comparable with published ones:

- The length l(s) in the penalty is the number of bigrams of s (the reference counts the n-grams at
  index n == 1), i.e. max(len(s) - 1, 0) tokens rather than len(s).
- Document frequencies come from the references of the evaluated corpus only, so a one-image corpus
  scores 0 (every idf is log 1 - log 1) and scores depend on which images are evaluated together.
- Hypothesis n-grams absent from every reference get idf log N; they only enlarge ||g_n(h)||.

The COCO pipeline first runs the PTB tokenizer (Java) on all sentences; that is not reproduced here:
sentences are split on whitespace, and lowercasing or punctuation stripping is the caller's job.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MAX_ORDER = 4


def _ngram_occurrences(sentences: Sequence[str], ids: dict[tuple[str, ...], int]) -> tuple[np.ndarray, np.ndarray]:
    """Every 1..MAX_ORDER-gram occurrence of the sentences, as parallel arrays.

    Args:
        sentences: whitespace-tokenised sentences.
        ids: n-gram -> integer id; new n-grams are added to it.

    Returns:
        (sentence index, n-gram id) of each occurrence, both int64 of shape (occurrences,).
    """
    sentence_index, ngram_id = [], []
    for i, sentence in enumerate(sentences):
        words = sentence.split()
        start = len(ngram_id)
        for n in range(1, MAX_ORDER + 1):
            ngram_id.extend([ids.setdefault(g, len(ids)) for g in zip(*(words[k:] for k in range(n)))])
        sentence_index.extend([i] * (len(ngram_id) - start))
    return np.asarray(sentence_index, dtype=np.int64), np.asarray(ngram_id, dtype=np.int64)


def cider_d(hypotheses: Sequence[str], references: Sequence[Sequence[str]],
            sigma: float = 6.0) -> tuple[float, list[float]]:
    """CIDEr-D of a corpus of captions, matching `pycocoevalcap.cider.Cider` (see the module docstring).

    Args:
        hypotheses: one generated caption per image, tokens separated by whitespace.
        references: for each image, its reference captions (at least one), tokenised the same way.
        sigma: standard deviation of the Gaussian length penalty, in tokens.

    Returns:
        The corpus CIDEr-D (mean over images) and the per-image scores, in input order. Scores are on
        the COCO scale (x10): a caption equal to all of its image's references scores 10 when its
        n-grams are rare in the corpus, less when they are common.

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
    num_images = len(hypotheses)
    refs_per_image = np.array([len(refs) for refs in references], dtype=np.int64)
    ref_image = np.repeat(np.arange(num_images), refs_per_image)  # (num_refs,)
    num_refs = len(ref_image)

    # Hypotheses are sentences num_refs.. so one id space covers both; each (sentence, n-gram) pair is
    # then one vector entry with its term frequency.
    ids: dict[tuple[str, ...], int] = {}
    occ_sentence, occ_ngram = _ngram_occurrences([r for refs in references for r in refs], ids)
    hyp_sentence, hyp_ngram = _ngram_occurrences(hypotheses, ids)
    vocab = max(len(ids), 1)
    keys = np.concatenate([occ_sentence, hyp_sentence + num_refs]) * vocab + np.concatenate([occ_ngram, hyp_ngram])
    keys, tf = np.unique(keys, return_counts=True)
    sentence, ngram = np.divmod(keys, vocab)
    order = np.array([len(g) - 1 for g in ids], dtype=np.int64)[ngram] if ids else ngram
    image = np.concatenate([ref_image, np.arange(num_images)])[sentence]
    is_ref = sentence < num_refs

    # Document frequency: number of images whose references contain the n-gram.
    doc_freq = np.bincount(np.unique(image[is_ref] * vocab + ngram[is_ref]) % vocab, minlength=vocab)
    idf = np.log(num_images) - np.log(np.maximum(doc_freq, 1))
    weight = tf * idf[ngram]

    num_sentences = num_refs + num_images
    norm = np.sqrt(np.bincount(sentence * MAX_ORDER + order, weight * weight, minlength=num_sentences * MAX_ORDER))
    norm = norm.reshape(num_sentences, MAX_ORDER)
    # The reference's "length" counts bigrams (it tests n == 1 on a 0-based order index).
    length = np.bincount(sentence, tf * (order == 1), minlength=num_sentences)

    # Match every reference entry with its image's hypothesis entry for the same n-gram (if any).
    hyp_keys = image[~is_ref] * vocab + ngram[~is_ref]  # sorted, since keys were sorted by sentence
    hyp_weight = weight[~is_ref]
    ref_keys = image[is_ref] * vocab + ngram[is_ref]
    pos = np.minimum(np.searchsorted(hyp_keys, ref_keys), max(len(hyp_keys) - 1, 0))
    ref_weight = weight[is_ref]
    matched = hyp_keys[pos] == ref_keys if len(hyp_keys) else np.zeros(len(ref_keys), dtype=bool)
    # CIDEr-D's clipping: the hypothesis weight is capped at the reference's.
    clipped = np.where(matched, np.minimum(hyp_weight[pos] if len(hyp_keys) else 0.0, ref_weight) * ref_weight, 0.0)
    dot = np.bincount(sentence[is_ref] * MAX_ORDER + order[is_ref], clipped, minlength=num_refs * MAX_ORDER)
    dot = dot.reshape(num_refs, MAX_ORDER)

    denom = norm[num_refs:][ref_image] * norm[:num_refs]  # (num_refs, MAX_ORDER)
    cosine = np.divide(dot, denom, out=np.zeros_like(dot), where=denom != 0)
    delta = length[num_refs:][ref_image] - length[:num_refs]
    penalty = np.exp(-(delta ** 2) / (2 * sigma ** 2))
    per_ref = cosine.sum(axis=1) * penalty
    scores = 10.0 * np.bincount(ref_image, per_ref, minlength=num_images) / (MAX_ORDER * refs_per_image)
    return float(scores.mean()), scores.tolist()
