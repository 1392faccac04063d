"""NLL_gen (seqgen.metrics.likelihood.nll_gen): by hand on a generator with known next-token
probabilities, and against `sequence_nll` on a real model."""

import math

import pytest
import torch

from seqgen.data.batch import Batch, Vocab
from seqgen.errors import UserError
from seqgen.metrics.likelihood import nll_gen, sequence_nll
from seqgen.models import build_generator
from seqgen.models.base import Generator
from seqgen.models.configs import RNNConfig

# PAD 0, BOS 1, EOS 2, UNK 3, words a = 4 and b = 5
VOCAB = Vocab(size=6, pad_id=0, bos_id=1, eos_id=2, unk_id=3)
A, B, EOS = 4, 5, 2

# next-token probabilities given the previous token (a bigram model), rows = previous token
PROBS = {
    1: {A: 0.5, B: 0.25, EOS: 0.25},  # after BOS
    A: {B: 0.5, EOS: 0.5},
    B: {A: 0.2, EOS: 0.8},            # b is never followed by b: probability 0
    EOS: {EOS: 0.9, A: 0.1},          # after EOS (only read in after_end="eos")
}


class Bigram(Generator):
    """Logits log P(next | previous token) from PROBS; -inf where the probability is 0."""

    family = "rnn"

    def __init__(self) -> None:
        super().__init__(VOCAB)
        table = torch.full((VOCAB.size, VOCAB.size), -math.inf)
        for prev, row in PROBS.items():
            for nxt, p in row.items():
                table[prev, nxt] = math.log(p)
        self.table = torch.nn.Parameter(table, requires_grad=False)

    def encode(self, context):
        return None

    def forward(self, inputs, memory=None):
        return self.table[inputs]  # (B, T, V)

    def step(self, inputs, memory, state):
        return self.table[inputs], state

    @property
    def input_embeddings(self):
        return self.table

    def save_weights(self, directory):
        raise NotImplementedError

    def load_weights(self, directory):
        raise NotImplementedError


def test_nll_gen_by_hand_on_a_bigram_model():
    ln = math.log
    # seq_len 4: "a b" -> a b EOS [pad]; "b" -> b EOS [pad pad]; "a b a b a" is cut to a b a b (no end)
    sentences = [[A, B], torch.tensor([B]), [A, B, A, B, A]]
    words = [-ln(0.5) - ln(0.5) - ln(0.8),               # BOS→a, a→b, b→EOS
             -ln(0.25) - ln(0.8),                         # BOS→b, b→EOS
             -ln(0.5) - ln(0.5) - ln(0.2) - ln(0.5)]      # BOS→a, a→b, b→a, a→b; EOS never scored
    pads_after_eos = 1 + 2 + 0                            # padded positions after the first one
    certain = sum(words) / (3 * 4)
    eos = (sum(words) - pads_after_eos * ln(0.9)) / (3 * 4)
    model = Bigram()
    assert nll_gen(model, sentences, seq_len=4) == pytest.approx(certain, rel=1e-6)
    assert nll_gen(model, sentences, seq_len=4, after_end="eos") == pytest.approx(eos, rel=1e-6)
    assert nll_gen(model, sentences, seq_len=4, batch_size=1) == pytest.approx(certain, rel=1e-6)
    # seq_len 6: the third sentence is whole, a b a b a EOS, and every sum is divided by 3 × 6
    whole = -ln(0.5) - ln(0.5) - ln(0.2) - ln(0.5) - ln(0.2) - ln(0.5)
    assert nll_gen(model, sentences, seq_len=6) == pytest.approx((words[0] + words[1] + whole) / 18, rel=1e-6)


def test_nll_gen_clips_each_probability_at_1e_minus_20():
    # b→b has probability 0: the position costs 20 ln 10 nats, not infinity
    got = nll_gen(Bigram(), [[B, B]], seq_len=3)
    assert got == pytest.approx((-math.log(0.25) + 20 * math.log(10) - math.log(0.8)) / 3, rel=1e-6)


def test_nll_gen_is_the_sequence_nll_over_seq_len_on_a_real_model():
    torch.manual_seed(0)
    model = build_generator(RNNConfig(embedding_dim=8, hidden_dim=8), Vocab(9, 0, 1, 2, 3), "lm").eval()
    sentences = [[5, 6, 7], [8, 4], [4, 4, 4, 5, 6]]
    tokens = torch.tensor([[1, 5, 6, 7, 2, 0, 0], [1, 8, 4, 2, 0, 0, 0], [1, 4, 4, 4, 5, 6, 2]])
    total = float(sequence_nll(model, Batch(tokens=tokens, mask=tokens != 0)).sum())
    assert nll_gen(model, sentences, seq_len=10) == pytest.approx(total / 30, rel=1e-5)
    # scoring EOS→EOS after the end adds positive terms
    assert nll_gen(model, sentences, seq_len=10, after_end="eos") > total / 30


def test_nll_gen_rejects_what_it_cannot_score():
    model = Bigram()
    with pytest.raises(UserError, match="words only"):
        nll_gen(model, [[A, EOS]], seq_len=4)
    with pytest.raises(UserError, match="seq_len"):
        nll_gen(model, [[A]], seq_len=0)
    with pytest.raises(UserError, match="after_end"):
        nll_gen(model, [[A]], seq_len=4, after_end="pad")
    with pytest.raises(UserError, match="at least one"):
        nll_gen(model, [], seq_len=4)
