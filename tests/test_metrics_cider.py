"""CIDEr-D: hand-computed cases and agreement with pycocoevalcap's Cider on random corpora."""

import math
import random

import pytest

from seqgen.metrics.cider import cider_d


def test_caption_equal_to_its_references_scores_ten():
    score, per_image = cider_d(["a man rides a horse", "two dogs play in snow"],
                               [["a man rides a horse"] * 3, ["two dogs play in snow"] * 2])
    assert per_image == pytest.approx([10.0, 10.0])
    assert score == pytest.approx(10.0)


def test_no_ngram_overlap_scores_zero():
    score, per_image = cider_d(["x y z w", "c d e f"], [["a b c d"], ["g h i j", "k l"]])
    assert per_image == [0.0, 0.0]
    assert score == 0.0


def test_hand_computed_partial_match_and_short_caption():
    # Every reference n-gram occurs in one of the 2 images, so each has idf log 2. Image 0: unigram
    # cosine 1/sqrt(2), no bigram in the hypothesis, bigram lengths 0 vs 1. Image 1: exact match, but
    # with 2 tokens only orders 1 and 2 have n-grams.
    score, per_image = cider_d(["a", "c d"], [["a b"], ["c d"]])
    first = 10.0 * (1 / math.sqrt(2)) * math.exp(-1 / 72) / 4
    assert per_image == pytest.approx([first, 5.0])
    assert score == pytest.approx((first + 5.0) / 2)


def test_repeated_ngrams_are_clipped_at_the_reference_weight():
    # Unigrams: hypothesis {a: 2 log 2}, reference {a: log 2, b: log 2}; clipping gives a dot of
    # (log 2)^2 rather than 2 (log 2)^2, so the cosine is 1 / (2 sqrt 2). Bigrams do not match.
    _, per_image = cider_d(["a a", "c d"], [["a b"], ["c d"]])
    assert per_image[0] == pytest.approx(10.0 / (2 * math.sqrt(2)) / 4)


def test_length_penalty_is_gaussian_in_the_length_difference():
    hyps, refs = ["a b c d x y", "e f g h"], [["a b c d"], ["e f g h"]]
    unpenalised = cider_d(hyps, refs, sigma=1e9)[1][0]
    for sigma in (6.0, 2.0):
        assert cider_d(hyps, refs, sigma=sigma)[1][0] == pytest.approx(unpenalised * math.exp(-4 / (2 * sigma**2)))
    assert unpenalised > 0


def test_ngrams_in_every_image_carry_no_weight():
    # Document frequencies come from the evaluated corpus: one image alone makes every idf 0.
    assert cider_d(["a b c d"], [["a b c d"]]) == (0.0, [0.0])
    # "the" is in both images' references, so a caption matching only on it scores 0.
    assert cider_d(["the x", "the c"], [["the a"], ["the b"]])[1] == [0.0, 0.0]


def test_invalid_inputs_raise():
    with pytest.raises(ValueError, match="2 hypotheses but 1"):
        cider_d(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match="at least one image"):
        cider_d([], [])
    with pytest.raises(ValueError, match="image 1"):
        cider_d(["a", "b"], [["a"], []])
    with pytest.raises(ValueError, match="image 0"):
        cider_d(["a"], ["a"])


def _random_corpus(rng: random.Random, vocab: list[str]) -> tuple[list[str], list[list[str]]]:
    def sentence() -> str:
        return " ".join(rng.choices(vocab, k=rng.randint(0, 12)))
    images = rng.randint(1, 8)
    hyps = [sentence() for _ in range(images)]
    refs = [[sentence() for _ in range(rng.randint(1, 5))] for _ in range(images)]
    # Copy some references into hypotheses so that high scores are exercised too.
    for i in range(images):
        if rng.random() < 0.3:
            hyps[i] = rng.choice(refs[i])
    return hyps, refs


def test_matches_pycocoevalcap_cider():
    cider_module = pytest.importorskip("pycocoevalcap.cider.cider")
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(10)]
    for _ in range(60):
        hyps, refs = _random_corpus(rng, vocab)
        expected, expected_per_image = cider_module.Cider().compute_score(
            {i: r for i, r in enumerate(refs)}, {i: [h] for i, h in enumerate(hyps)})
        score, per_image = cider_d(hyps, refs)
        assert score == pytest.approx(float(expected), abs=1e-12)
        assert per_image == pytest.approx(list(expected_per_image), abs=1e-12)
