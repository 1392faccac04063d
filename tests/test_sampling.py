import itertools
import math

import pytest
import torch

from seqgen.config import DecodeConfig
from seqgen.data.batch import Context, Vocab
from seqgen.errors import UserError
from seqgen.models.base import Generator
from seqgen.randomness import RowNoise
from seqgen.sampling import beam_search, categorical, filter_logits, generate

VOCAB = Vocab(size=7, pad_id=0, bos_id=1, eos_id=2, unk_id=3)
WORDS = (4, 5, 6)  # the tokens the test models emit besides EOS
NEVER = (0, 1, 3)  # PAD, BOS and UNK get probability 0


class TableModel(Generator):
    """logits(next) = bigram[x_t] + skip[x_{t-1}] + position[t] + shift[context.source[:, 0]].

    The cache holds the position and the token before the input, so a decoder that restarted the
    cache or forgot to reorder it along with its beams would score wrongly.
    """

    family = "rnn"

    def __init__(self, bigram: torch.Tensor, skip: torch.Tensor | None = None,
                 position: torch.Tensor | None = None, shift: torch.Tensor | None = None) -> None:
        super().__init__(VOCAB)
        zeros = torch.zeros(1, VOCAB.size)
        self.register_buffer("bigram", bigram.clone())
        self.register_buffer("skip", torch.zeros_like(bigram) if skip is None else skip.clone())
        self.register_buffer("position", zeros if position is None else position.clone())
        self.register_buffer("shift", zeros if shift is None else shift.clone())
        self.step_inputs: list[torch.Size] = []

    @classmethod
    def random(cls, seed: int, eos_bias: float = 0.0) -> "TableModel":
        g = torch.Generator().manual_seed(seed)
        v = VOCAB.size
        bigram = torch.randn(v, v, generator=g)
        bigram[:, VOCAB.eos_id] += eos_bias
        return cls(bigram, torch.randn(v, v, generator=g), torch.randn(8, v, generator=g),
                   torch.randn(4, v, generator=g))

    def encode(self, context):
        return None if context is None else self.shift[context.source[:, 0]]

    def _logits(self, previous, before, t, memory):
        logits = self.bigram[previous] + self.skip[before] + self.position[min(t, self.position.shape[0] - 1)]
        if memory is not None:
            logits = logits + memory
        logits[..., list(NEVER)] = -math.inf
        return logits

    def forward(self, inputs, memory=None):
        before = torch.cat([torch.full_like(inputs[:, :1], VOCAB.bos_id), inputs[:, :-1]], 1)
        return torch.stack([self._logits(inputs[:, t], before[:, t], t, memory)
                            for t in range(inputs.shape[1])], 1)

    def step(self, inputs, memory, state):
        self.step_inputs.append(inputs.shape)
        position, before = state if state is not None else (torch.zeros_like(inputs),
                                                              torch.full_like(inputs, VOCAB.bos_id))
        return self._logits(inputs, before, int(position[0]), memory), (position + 1, inputs)

    @property
    def input_embeddings(self):
        return torch.eye(VOCAB.size)

    def save_weights(self, directory):
        raise NotImplementedError

    def load_weights(self, directory):
        raise NotImplementedError


def hand_model(rows: dict[int, dict[int, float]], shift: torch.Tensor | None = None) -> TableModel:
    """A bigram model from explicit next-token probabilities (unlisted tokens get ~0)."""
    bigram = torch.full((VOCAB.size, VOCAB.size), -30.0)
    for previous, nexts in rows.items():
        for token, p in nexts.items():
            bigram[previous, token] = math.log(p)
    return TableModel(bigram, shift=shift)


def contexts(*first: int) -> Context:
    return Context(source=torch.tensor([[f, 5, 6] for f in first]))


def sequence_log_probs(model: TableModel, sequences: list[list[int]], context: Context,
                       row: int) -> list[float]:
    """Teacher-forced log-probability of each sequence (all of one length) given context `row`."""
    tokens = torch.tensor(sequences)
    inputs = torch.cat([torch.full((len(sequences), 1), VOCAB.bos_id), tokens[:, :-1]], 1)
    memory = model.encode(context)[row].expand(len(sequences), -1)
    return model(inputs, memory).log_softmax(-1).gather(2, tokens.unsqueeze(2)).sum((1, 2)).tolist()


def kept(logits: torch.Tensor) -> set[int]:
    return set(torch.nonzero(logits[0] > -math.inf).flatten().tolist())


# --- filter_logits


def test_temperature_divides_and_top_k_keeps_exactly_k():
    logits = torch.tensor([[0.5, 2.0, -1.0, 3.0, 1.0, 1.0, 1.0]])
    assert torch.equal(filter_logits(logits, temperature=2.0), logits / 2)
    out = filter_logits(logits, top_k=2)
    assert kept(out) == {1, 3}
    assert torch.equal(out[0, [1, 3]], logits[0, [1, 3]])
    # Ties at the k-th value: still exactly k tokens.
    assert len(kept(filter_logits(logits, top_k=4))) == 4
    assert len(kept(filter_logits(torch.zeros(1, 7), top_k=3))) == 3
    assert kept(filter_logits(logits, top_k=0)) == kept(filter_logits(logits, top_k=100)) == set(range(7))


def test_top_p_keeps_smallest_prefix_reaching_p():
    # Probabilities 0.5, 0.25, 0.125, 0.125 at ids 2, 0, 3, 1.
    logits = torch.log(torch.tensor([[0.25, 0.125, 0.5, 0.125]]))
    assert kept(filter_logits(logits, top_p=0.3)) == {2}
    assert kept(filter_logits(logits, top_p=0.45)) == {2}
    assert kept(filter_logits(logits, top_p=0.7)) == {2, 0}
    # 0.5 + 0.25 < 0.8 needs one of the two tied 0.125s: both are kept.
    assert kept(filter_logits(logits, top_p=0.8)) == {0, 1, 2, 3}
    assert kept(filter_logits(logits, top_p=1.0)) == {0, 1, 2, 3}
    flat = torch.log(torch.tensor([[0.2, 0.4, 0.2, 0.2]]))
    assert kept(filter_logits(flat, top_p=0.35)) == {1}
    assert kept(filter_logits(flat, top_p=0.5)) == {0, 1, 2, 3}
    out = filter_logits(logits, top_p=0.7)
    assert torch.equal(out[0, [0, 2]], logits[0, [0, 2]])


def test_top_p_applies_after_temperature_and_top_k():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2]]))
    assert kept(filter_logits(logits, top_p=0.6)) == {0, 1}
    # A high temperature flattens the distribution, so more tokens are needed to reach p.
    assert kept(filter_logits(logits, temperature=100.0, top_p=0.6)) == {0, 1}
    assert kept(filter_logits(logits, temperature=100.0, top_p=0.67)) == {0, 1, 2}
    # Renormalised over the top 2, 0.5 / 0.8 = 0.625 already reaches 0.6.
    assert kept(filter_logits(logits, top_k=2, top_p=0.6)) == {0}


@pytest.mark.parametrize("kwargs", [{"temperature": 0.0}, {"temperature": -1.0}, {"top_k": -1},
                                    {"top_p": 0.0}, {"top_p": 1.5}])
def test_invalid_filters_are_user_errors(kwargs):
    with pytest.raises(UserError):
        filter_logits(torch.zeros(1, 3), **kwargs)
    # and a recipe's decode section refuses them when it is made
    (key,) = kwargs
    with pytest.raises(UserError, match=f"decode.{key} must be"):
        DecodeConfig(**kwargs)


# --- generate


def test_context_batch_gives_one_row_per_context_for_every_strategy():
    model = TableModel.random(0)
    for strategy in ("greedy", "sample", "beam"):
        cfg = DecodeConfig(strategy=strategy, max_new_tokens=4, beam_size=3)
        out = generate(model, cfg, context=contexts(0, 1, 2, 3, 0), rng=torch.Generator().manual_seed(0))
        assert out.shape[0] == 5 and out.dtype == torch.long and 1 <= out.shape[1] <= 5
        lm = generate(model, cfg, num_sequences=6, rng=torch.Generator().manual_seed(0))
        assert lm.shape[0] == 6
    assert torch.equal(lm, lm[:1].expand(6, -1))  # beam search is deterministic


def test_greedy_follows_argmax_on_the_cache_and_contexts_matter():
    model = TableModel.random(1, eos_bias=-1.0)
    context = contexts(0, 1, 2)
    out = generate(model, DecodeConfig(strategy="greedy", max_new_tokens=5), context=context)
    assert all(shape == (3,) for shape in model.step_inputs)  # one position per step, never the prefix
    assert len({tuple(row.tolist()) for row in out}) > 1
    for row in range(3):
        tokens = out[row][out[row] != VOCAB.pad_id].tolist()
        memory = model.encode(context)[row: row + 1]
        logits = model(torch.tensor([[VOCAB.bos_id, *tokens[:-1]]]), memory)[0]
        assert logits.argmax(-1).tolist() == tokens


def test_eos_stops_a_row_and_pads_after_it():
    shift = torch.zeros(2, VOCAB.size)
    shift[0, 4] = shift[1, 5] = 20.0  # context 0 starts with 4, context 1 with 5
    model = hand_model({VOCAB.bos_id: {4: 0.5, 5: 0.5}, 4: {VOCAB.eos_id: 1.0}, 5: {6: 1.0}, 6: {5: 1.0}},
                       shift)
    for strategy in ("greedy", "sample"):
        out = generate(model, DecodeConfig(strategy=strategy, max_new_tokens=5), context=contexts(0, 1),
                       rng=torch.Generator().manual_seed(0))
        assert out.tolist() == [[4, 2, 0, 0, 0], [5, 6, 5, 6, 5]]  # row 1 is cut without EOS
    model.step_inputs.clear()
    out = generate(model, DecodeConfig(max_new_tokens=10), context=contexts(0, 0))
    assert out.tolist() == [[4, 2], [4, 2]]
    assert len(model.step_inputs) == 2  # stops as soon as every row has ended
    # max_new_tokens excludes EOS: an EOS right after the last allowed token is kept.
    one = DecodeConfig(max_new_tokens=1)
    assert generate(model, one, context=contexts(0, 1)).tolist() == [[4, 2], [5, 0]]
    assert generate(model, one, context=contexts(1)).tolist() == [[5]]


def test_top_k_1_equals_greedy():
    model = TableModel.random(2)
    context = contexts(0, 1, 2, 3)
    greedy = generate(model, DecodeConfig(strategy="greedy", max_new_tokens=6), context=context)
    sampled = generate(model, DecodeConfig(strategy="sample", top_k=1, temperature=3.0, max_new_tokens=6),
                       context=context, rng=torch.Generator().manual_seed(5))
    assert torch.equal(greedy, sampled)


def test_seeded_sampling_is_reproducible_and_alpha_is_inverse_temperature():
    model = TableModel.random(3, eos_bias=-2.0)
    cfg = DecodeConfig(strategy="sample", max_new_tokens=8)

    def draw(seed, **kwargs):
        rng = torch.Generator().manual_seed(seed)
        return generate(model, kwargs.pop("cfg", cfg), num_sequences=16, rng=rng, **kwargs)

    assert torch.equal(draw(0), draw(0))
    assert not torch.equal(draw(0), draw(1))
    cold = DecodeConfig(strategy="sample", max_new_tokens=8, temperature=0.5)
    assert torch.equal(draw(4, alpha=2.0), draw(4, cfg=cold))
    assert not torch.equal(draw(4, alpha=2.0), draw(4))
    with pytest.raises(UserError):
        draw(0, alpha=0.0)


@pytest.mark.parametrize("temperature,top_k", [(1.0, 0), (0.6, 0), (2.0, 3)])
def test_first_token_frequencies_match_filtered_softmax(temperature, top_k):
    model = TableModel.random(4)
    n = 20_000
    cfg = DecodeConfig(strategy="sample", temperature=temperature, top_k=top_k, max_new_tokens=1)
    first = generate(model, cfg, num_sequences=n, rng=torch.Generator().manual_seed(0))[:, 0]
    logits = model.step(torch.tensor([VOCAB.bos_id]), None, None)[0]
    expected = filter_logits(logits, temperature, top_k).softmax(-1)[0]
    counts = torch.bincount(first, minlength=VOCAB.size).double()
    possible = expected > 0
    assert counts[~possible].sum() == 0
    assert int(possible.sum()) == (top_k or 4)
    chi2 = float(((counts[possible] - n * expected[possible]) ** 2 / (n * expected[possible])).sum())
    assert chi2 < 16.3  # 99.9% quantile of chi-square with 3 degrees of freedom (at most 4 outcomes)


def test_categorical_draws_each_row_from_its_own_softmax():
    logits = torch.tensor([[0.0, 1.0, -math.inf, 2.0], [3.0, -math.inf, -math.inf, 0.0]]).log_softmax(-1)
    n = 20_000
    draws = categorical(logits.expand(n, 2, 4), torch.Generator().manual_seed(0))  # (n, 2)
    assert draws.shape == (n, 2)
    for row in range(2):
        counts = torch.bincount(draws[:, row], minlength=4).double()
        expected = logits[row].exp().double()
        possible = expected > 0
        assert counts[~possible].sum() == 0
        chi2 = float(((counts[possible] - n * expected[possible]) ** 2 / (n * expected[possible])).sum())
        assert chi2 < 13.8  # 99.9% quantile of chi-square with 2 degrees of freedom (at most 3 outcomes)


def test_categorical_draws_rows_from_row_noise_as_one_process_would():
    logits = torch.randn(4, 3, 6, generator=torch.Generator().manual_seed(1))
    whole = categorical(logits, RowNoise("k", None, 4))
    rows = torch.tensor([1, 3])
    assert torch.equal(categorical(logits[rows], RowNoise("k", rows, 4)), whole[rows])
    assert torch.equal(categorical(logits, RowNoise("k", None, 4)), whole)  # a pure function of the key
    others = [categorical(logits, RowNoise(f"k{i}", None, 4)) for i in range(5)]
    assert any(not torch.equal(other, whole) for other in others)


# --- beam search


def test_beam_size_1_equals_greedy():
    for seed in range(3):
        model = TableModel.random(seed, eos_bias=-1.0)
        context = contexts(0, 1, 2, 3)
        greedy = generate(model, DecodeConfig(strategy="greedy", max_new_tokens=6), context=context)
        for length_penalty in (0.0, 1.0):
            beam = beam_search(model, context, 1, 6, length_penalty)
            assert torch.equal(beam, greedy)


def test_beam_search_beats_greedy_where_greedy_is_short_sighted():
    # Greedy takes 4 (0.6) then EOS (0.4): 0.24. The beam keeps 5 (0.4), then EOS (0.99): 0.396.
    model = hand_model({VOCAB.bos_id: {4: 0.6, 5: 0.4}, 4: {4: 0.2, 5: 0.2, 6: 0.2, VOCAB.eos_id: 0.4},
                        5: {VOCAB.eos_id: 0.99, 4: 0.01}})
    cfg = DecodeConfig(strategy="greedy", max_new_tokens=4, beam_size=2, length_penalty=0.0)
    assert generate(model, cfg, num_sequences=1).tolist() == [[4, 2]]
    assert beam_search(model, None, 2, 4, 0.0).tolist() == [[5, 2]]


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_beam_search_finds_the_exact_best_sequence(length_penalty):
    max_new_tokens = 3
    model = TableModel.random(9, eos_bias=-0.5)
    context = contexts(0, 1, 2, 3)
    # Every complete sequence (up to 3 words, then EOS: 1 + 3 + 9 + 27 = 40, so 40 beams are exhaustive),
    # and every 4-token sequence without EOS, which is output cut back to its first 3 tokens.
    complete = [[*words, VOCAB.eos_id] for n in range(max_new_tokens + 1)
                for words in itertools.product(WORDS, repeat=n)]
    cut = [list(words) for words in itertools.product(WORDS, repeat=max_new_tokens + 1)]
    out = beam_search(model, context, len(complete), max_new_tokens, length_penalty)
    lengths = set()
    for row in range(4):
        scored = []
        for n in range(1, max_new_tokens + 2):
            group = [seq for seq in complete + cut if len(seq) == n]
            scored += [(score / n ** length_penalty, seq)
                       for score, seq in zip(sequence_log_probs(model, group, context, row), group)]
        best = max(scored)[1]
        best = best if best[-1] == VOCAB.eos_id else best[:max_new_tokens]
        lengths.add(len(best))
        assert out[row].tolist() == best + [VOCAB.pad_id] * (out.shape[1] - len(best))
    assert len(lengths) > 1  # the optimum is neither always the empty sentence nor always the longest


def test_a_finished_hypothesis_keeps_its_slot():
    model = hand_model({VOCAB.bos_id: {4: 0.7, VOCAB.eos_id: 0.3}, 4: {5: 0.55, 6: 0.45},
                        5: {5: 0.6, VOCAB.eos_id: 0.4}, 6: {VOCAB.eos_id: 1.0}})
    # Two slots: EOS (0.3) finishes in one, so only 4 5 (0.385) goes on, not 4 6 (0.315); its
    # extensions then fall below 0.3. With both slots live, 4 6 EOS (0.315) would have won.
    assert beam_search(model, None, 2, 5, 0.0).tolist() == [[VOCAB.eos_id]]
    assert beam_search(model, None, 3, 5, 0.0).tolist() == [[4, 6, VOCAB.eos_id]]


def test_beam_search_stops_once_the_best_finished_cannot_be_beaten():
    model = hand_model({VOCAB.bos_id: {VOCAB.eos_id: 0.7, 4: 0.3}, 4: {4: 0.99, VOCAB.eos_id: 0.01}})
    # Without length normalisation, extending 4 (log 0.3) can never beat the finished EOS (log 0.7).
    assert beam_search(model, None, 4, 5, 0.0).tolist() == [[VOCAB.eos_id]]
    assert model.step_inputs == [(4,)]
    # With it, 4 4 4 4 4 (cut; (log 0.3 + 5 log 0.99) / 6 = -0.21) beats EOS (log 0.7 = -0.36): the
    # search must not stop at the first step, although log 0.3 / 2 < log 0.7.
    assert beam_search(model, None, 4, 5, 1.0).tolist() == [[4, 4, 4, 4, 4]]


def test_invalid_beam_settings_are_user_errors():
    model = TableModel.random(0)
    with pytest.raises(UserError):
        beam_search(model, None, 0, 4, 1.0)
    with pytest.raises(UserError):
        generate(model, DecodeConfig(max_new_tokens=-1), num_sequences=2)
