"""BLEU-n and Self-BLEU-n of unconditional text as the text-GAN literature (Texygen, RelGAN) defines them.

Each sentence is scored with NLTK's sentence-level BLEU::

    sentence_bleu(references, hypothesis, weights=(1/n,) * n,
                  smoothing_function=SmoothingFunction().method1)

and the metric is the mean over the scored sentences. BLEU-n takes the whole test set as the references
of every generated sentence; Self-BLEU-n takes every *other* generated sentence (the sentence itself is
left out by position; copies of it elsewhere in the set remain references).

Per sentence, with hypothesis length L, orders k = 1..n, c_k(g) the count of k-gram g in the hypothesis
and m_k(g) its largest count in any one reference:

- clipped matches M_k = sum_g min(c_k(g), m_k(g)); T_k = max(1, L - k + 1) (1 when L < k);
- if M_1 = 0 the score is 0 (this covers the empty hypothesis);
- p_k = M_k / T_k, or 0.1 / T_k when M_k = 0 (method1's epsilon);
- r = the reference length closest to L, the shorter on a tie; BP = 1 if L > r else exp(1 - r / L);
- score = BP * exp(fsum_k (1/n) * log p_k).

Scoring every hypothesis against every reference as NLTK does is quadratic in the number of sentences,
which is why peers cap the reference set and so change the score. Only the per-n-gram maximum count over
the references and the sorted set of reference lengths are needed, so here the full-set score costs
one pass over the references and one over the hypotheses. For Self-BLEU each n-gram keeps whether a
second sentence has it and, if it repeats within a sentence, its top count, the sentence holding it and
the runner-up count: enough to leave any one sentence out. The arithmetic follows NLTK's step for step
(same operations, same order), so the scores are those of its loop; agreement to 1e-9 is tested.

Tokens may be any hashable values (whitespace-split words, token ids); tokenisation is the caller's.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Iterable, Sequence

from seqgen.errors import UserError

Sentence = Sequence[object]

DEFAULT_ORDERS = (2, 3, 4, 5)
EPSILON = 0.1  # NLTK SmoothingFunction().method1: numerator given to an order without a single match


def _ngrams(tokens: Sequence[object], k: int) -> list[tuple]:
    """The k-grams (tuples) of `tokens` in order; none when there are fewer than k tokens."""
    return list(zip(*[tokens[i:] for i in range(k)]))


def _closest_length(lengths: list[int], hyp_len: int, exact_available: bool) -> int:
    """The length in `lengths` (sorted, distinct) closest to `hyp_len`, the shorter on a tie.

    `exact_available` says whether a reference of length `hyp_len` itself may be used; Self-BLEU turns
    it off when the only sentence of that length is the hypothesis.
    """
    if exact_available:
        return hyp_len
    at = bisect.bisect_left(lengths, hyp_len)
    below = lengths[at - 1] if at > 0 else None
    if at < len(lengths) and lengths[at] == hyp_len:
        at += 1
    above = lengths[at] if at < len(lengths) else None
    if above is None or (below is not None and hyp_len - below <= above - hyp_len):
        return below
    return above


def _sentence_scores(matches: list[int], hyp_len: int, ref_len: int, orders: Sequence[int]) -> list[float]:
    """NLTK's sentence BLEU with method1 smoothing for each order in `orders`, from the clipped matches
    of orders 1..max(orders) (`matches[k - 1]`), the hypothesis length and the closest reference length."""
    if matches[0] == 0:
        return [0.0] * len(orders)
    log_p = []
    for k, matched in enumerate(matches, start=1):
        total = max(1, hyp_len - k + 1)
        log_p.append(math.log(matched / total if matched else EPSILON / total))
    # NLTK returns the int 1 here, and exp(1 - r/L) otherwise (L > 0 is guaranteed by matches[0] > 0).
    penalty = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    scores = []
    for n in orders:
        weight = 1 / n
        scores.append(penalty * math.exp(math.fsum(weight * lp for lp in log_p[:n])))
    return scores


def _check_orders(orders: Sequence[int], max_n: int | None = None) -> tuple[int, ...]:
    orders = tuple(orders)
    if not orders:
        raise UserError("BLEU: no n-gram orders given")
    for n in orders:
        if not isinstance(n, int) or n < 1:
            raise UserError(f"BLEU: n-gram order must be a positive integer, got {n!r}")
        if max_n is not None and n > max_n:
            raise UserError(f"BLEU-{n} asked of a reference index built for orders up to {max_n}")
    return orders


def _means(per_sentence: Iterable[list[float]], orders: tuple[int, ...]) -> dict[int, float]:
    """Mean over sentences for each order, summed in sentence order as Texygen's `sum(...) / len(...)`."""
    sums = [0.0] * len(orders)
    count = 0
    for scores in per_sentence:
        for j, score in enumerate(scores):
            sums[j] += score
        count += 1
    if not count:
        raise UserError("BLEU: there are no sentences to score")
    return {n: total / count for n, total in zip(orders, sums)}


class ReferenceIndex:
    """A reference set reduced to what sentence BLEU against all of it needs, built once and reused.

    Holds, for every k-gram (k = 1..max_n) of the references, its largest count within one reference,
    and the distinct reference lengths. Scoring a hypothesis then costs O(its length * max_n),
    whatever the number of references.

    Args:
        references: the reference sentences, each a sequence of tokens (at least one sentence).
        max_n: the highest n-gram order that will be asked for.
    """

    def __init__(self, references: Iterable[Sentence], max_n: int = 5) -> None:
        _check_orders([max_n])
        self.max_n = max_n
        self.num_references = 0
        # Most n-grams occur at most once in a sentence: a set holds them, and only the few with a
        # repeat keep an explicit maximum count, so that most of the work runs in C set operations.
        present: set[tuple] = set()
        repeated: dict[tuple, int] = {}
        lengths: set[int] = set()
        for reference in references:
            reference = list(reference)
            lengths.add(len(reference))
            self.num_references += 1
            for k in range(1, max_n + 1):
                grams = _ngrams(reference, k)
                distinct = set(grams)
                present.update(distinct)
                if len(distinct) < len(grams):
                    for gram, count in Counter(grams).items():
                        if count > repeated.get(gram, 1):
                            repeated[gram] = count
        if not self.num_references:
            raise UserError("BLEU: the reference set is empty")
        self._present = present
        self._repeated = repeated
        self._length_set = lengths
        self._lengths = sorted(lengths)

    def sentence_bleu(self, hypothesis: Sentence, orders: Sequence[int] = DEFAULT_ORDERS) -> list[float]:
        """Sentence BLEU-n of one hypothesis against all the references, for each n in `orders`.

        Args:
            hypothesis: a sequence of tokens (may be empty: its score is 0).
            orders: n-gram orders n, each at most `max_n`.

        Returns:
            One score in [0, 1] per order, in the order of `orders`.
        """
        orders = _check_orders(orders, self.max_n)
        return self._scores(list(hypothesis), orders)

    def _scores(self, hypothesis: list, orders: tuple[int, ...]) -> list[float]:
        present, repeated = self._present, self._repeated
        matches = []
        for k in range(1, max(orders) + 1):
            grams = _ngrams(hypothesis, k)
            distinct = set(grams)
            if len(distinct) == len(grams):
                matches.append(len(distinct & present))
                continue
            matched = 0
            for gram, count in Counter(grams).items():
                if gram in present:
                    best = repeated.get(gram, 1)
                    matched += min(best, count)
            matches.append(matched)
        hyp_len = len(hypothesis)
        ref_len = _closest_length(self._lengths, hyp_len, hyp_len in self._length_set)
        return _sentence_scores(matches, hyp_len, ref_len, orders)

    def mean_bleu(self, hypotheses: Iterable[Sentence],
                  orders: Sequence[int] = DEFAULT_ORDERS) -> dict[int, float]:
        """Mean sentence BLEU-n over `hypotheses` for each n in `orders`, keyed by n."""
        orders = _check_orders(orders, self.max_n)
        return _means((self._scores(list(h), orders) for h in hypotheses), orders)


def _as_index(references: Sequence[Sentence] | ReferenceIndex, max_n: int) -> ReferenceIndex:
    if isinstance(references, ReferenceIndex):
        return references
    return ReferenceIndex(references, max_n)


def bleu_scores(hypotheses: Sequence[Sentence], references: Sequence[Sentence] | ReferenceIndex,
                orders: Sequence[int] = DEFAULT_ORDERS) -> dict[str, float]:
    """Texygen BLEU-n for several n: mean sentence BLEU of each hypothesis against all references.

    Args:
        hypotheses: generated sentences, each a sequence of tokens.
        references: the test sentences, or a `ReferenceIndex` of them (to reuse across calls).
        orders: the n of each BLEU-n.

    Returns:
        `{"bleu{n}_texygen": score}` for each n in `orders`.
    """
    orders = _check_orders(orders)
    means = _as_index(references, max(orders)).mean_bleu(hypotheses, orders)
    return {f"bleu{n}_texygen": score for n, score in means.items()}


def texygen_bleu(hypotheses: Sequence[Sentence], references: Sequence[Sentence] | ReferenceIndex,
                 n: int) -> float:
    """Texygen BLEU-n: mean over `hypotheses` of NLTK sentence BLEU-n against all of `references`."""
    return bleu_scores(hypotheses, references, (n,))[f"bleu{n}_texygen"]


class _LeaveOneOutIndex:
    """What the maximum count of an n-gram over all sentences but one needs, for a set of sentences.

    An n-gram occurring once in each sentence that has it only needs to know whether a second sentence
    has it (`shared`). For the few that repeat within a sentence, `top` keeps the largest count (>= 2),
    the sentence holding it and the runner-up count (>= 2, or 0), so any one sentence can be left out.
    """

    def __init__(self, sentences: list[list], max_n: int) -> None:
        # Per sentence and order: the set of its k-grams when none repeats, else their Counter.
        self.grams: list[list[set | Counter]] = []
        seen: set[tuple] = set()
        shared: set[tuple] = set()
        top: dict[tuple, list[int]] = {}
        for index, sentence in enumerate(sentences):
            per_order: list[set | Counter] = []
            for k in range(1, max_n + 1):
                grams = _ngrams(sentence, k)
                distinct = set(grams)
                shared.update(distinct & seen)
                seen.update(distinct)
                if len(distinct) == len(grams):
                    per_order.append(distinct)
                    continue
                counts = Counter(grams)
                per_order.append(counts)
                for gram, count in counts.items():
                    if count < 2:
                        continue
                    entry = top.get(gram)
                    if entry is None:
                        top[gram] = [count, index, 0]
                    elif count > entry[0]:
                        entry[2] = entry[0]
                        entry[0] = count
                        entry[1] = index
                    elif count > entry[2]:
                        entry[2] = count
            self.grams.append(per_order)
        self.shared = shared
        self.top = top
        self.length_counts = Counter(len(sentence) for sentence in sentences)
        self.lengths = sorted(self.length_counts)

    def scores(self, index: int, hyp_len: int, orders: tuple[int, ...]) -> list[float]:
        shared, top = self.shared, self.top
        matches = []
        for grams in self.grams[index][: max(orders)]:
            if isinstance(grams, set):
                matches.append(len(grams & shared))
                continue
            matched = 0
            for gram, count in grams.items():
                if gram not in shared:
                    continue
                entry = top.get(gram)
                other = 1
                if entry is not None:
                    other = max(1, entry[2] if entry[1] == index else entry[0])
                matched += min(other, count)
            matches.append(matched)
        ref_len = _closest_length(self.lengths, hyp_len, self.length_counts[hyp_len] >= 2)
        return _sentence_scores(matches, hyp_len, ref_len, orders)


def self_bleu_sentence_scores(sentences: Sequence[Sentence],
                              orders: Sequence[int] = DEFAULT_ORDERS) -> list[list[float]]:
    """Sentence BLEU-n of each sentence against all the other sentences, for each n in `orders`.

    The sentence itself is excluded by position only: its duplicates elsewhere in the set stay among
    its references.

    Args:
        sentences: generated sentences, each a sequence of tokens (at least two).
        orders: n-gram orders n.

    Returns:
        For each sentence, in order, one score per order in `orders`.
    """
    orders = _check_orders(orders)
    sentences = [list(sentence) for sentence in sentences]
    if len(sentences) < 2:
        raise UserError(f"Self-BLEU needs at least two sentences, got {len(sentences)}")
    index = _LeaveOneOutIndex(sentences, max(orders))
    return [index.scores(i, len(sentence), orders) for i, sentence in enumerate(sentences)]


def self_bleu_scores(sentences: Sequence[Sentence], orders: Sequence[int] = DEFAULT_ORDERS) -> dict[str, float]:
    """Self-BLEU-n for several n: mean sentence BLEU of each sentence against all the other sentences.

    Higher means a less diverse set. See `self_bleu_sentence_scores` for the per-sentence scores.

    Args:
        sentences: generated sentences, each a sequence of tokens (at least two).
        orders: the n of each Self-BLEU-n.

    Returns:
        `{"self_bleu{n}": score}` for each n in `orders`.
    """
    orders = _check_orders(orders)
    means = _means(self_bleu_sentence_scores(sentences, orders), orders)
    return {f"self_bleu{n}": score for n, score in means.items()}


def self_bleu(sentences: Sequence[Sentence], n: int) -> float:
    """Self-BLEU-n: mean over `sentences` of NLTK sentence BLEU-n against all the other sentences."""
    return self_bleu_scores(sentences, (n,))[f"self_bleu{n}"]
