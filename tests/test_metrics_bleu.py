"""Texygen BLEU / Self-BLEU against NLTK's sentence_bleu loop, and the diversity metrics by hand."""

import math
import random
import warnings
from pathlib import Path

import pytest

from seqgen.errors import UserError
from seqgen.metrics.bleu import (
    ReferenceIndex,
    bleu_scores,
    self_bleu,
    self_bleu_scores,
    self_bleu_sentence_scores,
    texygen_bleu,
)
from seqgen.metrics.diversity import distinct_n, diversity_scores, length_stats, ngram_entropy

bleu_score = pytest.importorskip("nltk.translate.bleu_score")

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ORDERS = (1, 2, 3, 4, 5)


def nltk_sentence(references, hypothesis, n):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bleu_score.sentence_bleu(references, hypothesis, weights=(1 / n,) * n,
                                        smoothing_function=bleu_score.SmoothingFunction().method1)


def nltk_bleu(hypotheses, references, n):
    return sum(nltk_sentence(references, h, n) for h in hypotheses) / len(hypotheses)


def nltk_self_bleu(sentences, n):
    scores = [nltk_sentence(sentences[:i] + sentences[i + 1:], s, n) for i, s in enumerate(sentences)]
    return sum(scores) / len(scores)


def random_sentence(rng, vocab="abcd"):
    length = rng.choice([0, 1, 1, 2, 3, 4, 5, 6, 7, 9, 14])
    return [rng.choice(vocab) for _ in range(length)]


def random_case(rng):
    """A small vocabulary so n-grams repeat, with empty, one-token and copied sentences."""
    hypotheses = [random_sentence(rng) for _ in range(rng.randint(1, 7))]
    references = [random_sentence(rng) for _ in range(rng.randint(1, 7))]
    if rng.random() < 0.4:
        hypotheses.append(list(rng.choice(references)))
    if rng.random() < 0.4:
        hypotheses.append(list(hypotheses[0]))
    if rng.random() < 0.3:
        hypotheses.append([rng.choice("ab") for _ in range(20)])  # longer than every reference
    if rng.random() < 0.3:
        references.append(["a", "a", "b", "a"] * 2)
    return hypotheses, references


def test_bleu_matches_nltk_on_random_cases():
    rng = random.Random(0)
    checked = 0
    for _ in range(120):
        hypotheses, references = random_case(rng)
        ours = bleu_scores(hypotheses, references, ORDERS)
        for n in ORDERS:
            expected = nltk_bleu(hypotheses, references, n)
            assert ours[f"bleu{n}_texygen"] == pytest.approx(expected, abs=1e-9, rel=0)
            checked += expected > 0
    assert checked > 200  # most cases score above zero, so the comparison is not of zeros


def test_self_bleu_matches_nltk_with_the_sentence_left_out_by_position():
    rng = random.Random(1)
    for _ in range(100):
        sentences, _ = random_case(rng)
        if len(sentences) < 2:
            sentences.append(random_sentence(rng))
        ours = self_bleu_scores(sentences, ORDERS)
        for n in ORDERS:
            assert ours[f"self_bleu{n}"] == pytest.approx(nltk_self_bleu(sentences, n), abs=1e-9, rel=0)


def test_self_bleu_keeps_duplicates_of_the_left_out_sentence():
    sentences = [["a", "b", "c"], ["a", "b", "c"], ["d", "e"]]
    # Each copy of "a b c" is a perfect match for the other; "d e" shares nothing with either.
    assert self_bleu(sentences, 2) == pytest.approx(2 / 3, abs=1e-12)
    assert self_bleu(sentences, 2) == pytest.approx(nltk_self_bleu(sentences, 2), abs=1e-12)
    # With the holder of a top count left out, the runner-up count is what clips.
    sentences = [["a", "a", "a"], ["a", "a"], ["b"], ["a", "b", "a"]]
    per_sentence = [scores[0] for scores in self_bleu_sentence_scores(sentences, (1,))]
    expected = [nltk_sentence(sentences[:i] + sentences[i + 1:], s, 1) for i, s in enumerate(sentences)]
    assert per_sentence == pytest.approx(expected, abs=1e-12)
    assert per_sentence[0] == pytest.approx(2 / 3 * math.exp(1 - 3 / 3), abs=1e-12)  # "a" clipped at 2


def test_edge_cases_by_hand():
    references = [["a", "b"], ["a", "b", "c", "d"]]
    assert texygen_bleu([[]], references, 4) == 0.0  # empty hypothesis
    assert texygen_bleu([["z"]], references, 2) == 0.0  # no unigram match
    # One matching token: p1 = 1, p2 = 0.1 / 1 (method1, no bigram at all); r = 2 so BP = exp(1 - 2).
    assert texygen_bleu([["a"]], references, 2) == pytest.approx(math.exp(-1) * math.sqrt(0.1), abs=1e-12)
    # Length 3 is as close to 2 as to 4: the shorter reference wins, so no brevity penalty.
    hypothesis = [["a", "b", "c"]]
    assert texygen_bleu(hypothesis, references, 1) == pytest.approx(1.0, abs=1e-12)
    assert texygen_bleu(hypothesis, references, 3) == pytest.approx(nltk_bleu(hypothesis, references, 3),
                                                                    abs=1e-12)


def test_reference_index_is_reusable_and_checks_orders():
    rng = random.Random(2)
    hypotheses, references = random_case(rng)
    index = ReferenceIndex(references, max_n=3)
    assert bleu_scores(hypotheses, index, (2, 3)) == bleu_scores(hypotheses, references, (2, 3))
    assert index.sentence_bleu(hypotheses[0], (3,))[0] == pytest.approx(
        nltk_sentence(references, hypotheses[0], 3), abs=1e-12)
    with pytest.raises(UserError, match="up to 3"):
        bleu_scores(hypotheses, index, (4,))


def test_user_errors():
    with pytest.raises(UserError, match="reference set is empty"):
        texygen_bleu([["a"]], [], 2)
    with pytest.raises(UserError, match="no sentences"):
        texygen_bleu([], [["a"]], 2)
    with pytest.raises(UserError, match="at least two"):
        self_bleu([["a"]], 2)
    with pytest.raises(UserError, match="positive integer"):
        bleu_scores([["a"]], [["a"]], (0,))


def test_diversity_by_hand():
    sentences = [["a", "b", "a"], ["a", "b"], [], ["c"]]
    # Unigrams: a:3, b:2, c:1 (6 in all); bigrams: (a,b):2, (b,a):1 (3 in all).
    assert distinct_n(sentences, 1) == pytest.approx(3 / 6)
    assert distinct_n(sentences, 2) == pytest.approx(2 / 3)
    assert math.isnan(distinct_n(sentences, 4))
    expected = -(0.5 * math.log(0.5) + 1 / 3 * math.log(1 / 3) + 1 / 6 * math.log(1 / 6))
    assert ngram_entropy(sentences, 1) == pytest.approx(expected, abs=1e-12)
    assert ngram_entropy([["a", "a"]], 1) == 0.0
    stats = length_stats(sentences)
    assert stats == pytest.approx({"length_mean": 1.5, "length_std": math.sqrt(1.25),
                                   "length_min": 0.0, "length_max": 3.0})
    scores = diversity_scores(sentences, orders=(1, 2))
    assert set(scores) == {"distinct1", "distinct2", "ngram_entropy1_nats", "ngram_entropy2_nats",
                           "length_mean", "length_std", "length_min", "length_max"}
    assert scores["ngram_entropy2_nats"] == pytest.approx(-(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3)))


def test_coco_subset_matches_nltk():
    coco = SHARED / "coco_captions"
    if not (coco / "test_coco.txt").exists():
        pytest.skip("reference data ../shared/data/coco_captions not present")
    references = [line.split() for line in (coco / "test_coco.txt").read_text().split("\n")[:300]]
    hypotheses = [line.split() for line in (coco / "image_coco.txt").read_text().split("\n")[:5]]
    ours = bleu_scores(hypotheses, references, (2, 5))
    assert ours["bleu5_texygen"] == pytest.approx(nltk_bleu(hypotheses, references, 5), abs=1e-9, rel=0)
    assert ours["bleu2_texygen"] == pytest.approx(nltk_bleu(hypotheses, references, 2), abs=1e-9, rel=0)
    assert self_bleu(hypotheses, 3) == pytest.approx(nltk_self_bleu(hypotheses, 3), abs=1e-9, rel=0)
