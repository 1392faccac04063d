"""Teacher forcing computes the cross-entropy it claims to."""

import math

import torch

from seqgen.data.batch import Batch, Vocab
from seqgen.models.base import Generator
from seqgen.objectives import (
    OBJECTIVES,
    Player,
    RunInfo,
    TeacherForcing,
    TeacherForcingConfig,
    build_objective,
)
from seqgen.randomness import RowNoise


class TableLM(Generator):
    """Logits depend only on the previous token: a learnable (V, V) table."""

    family = "rnn"

    def __init__(self, vocab):
        super().__init__(vocab)
        self.table = torch.nn.Parameter(torch.randn(vocab.size, vocab.size, generator=torch.Generator().manual_seed(0)))

    def encode(self, context):
        return None

    def forward(self, inputs, memory=None):
        return self.table[inputs]

    def step(self, inputs, memory, state):
        return self.table[inputs], state

    input_embeddings = property(lambda self: self.table)
    save_weights = load_weights = lambda self, d: None


def test_teacher_forcing_equals_hand_computed_cross_entropy():
    vocab = Vocab(size=6, pad_id=0, bos_id=1, eos_id=2, unk_id=3)
    model = TableLM(vocab)
    tokens = torch.tensor([[1, 4, 5, 2, 0], [1, 5, 2, 0, 0]])
    batch = Batch(tokens=tokens, mask=tokens != 0)
    loss, _ = TeacherForcing(model)(batch, step=0)
    table = model.table.detach().log_softmax(-1)
    # Predicted tokens: (4|1), (5|4), (2|5) and (5|1), (2|5): EOS counted, BOS and padding not.
    pairs = [(1, 4), (4, 5), (5, 2), (1, 5), (5, 2)]
    expected = -sum(table[a, b].item() for a, b in pairs) / len(pairs)
    assert math.isclose(loss.item(), expected, rel_tol=1e-6)
    assert TeacherForcing(model).weight(batch) == 5


def test_label_smoothing_spreads_mass_and_reports_plain_nll():
    vocab = Vocab(size=6, pad_id=0, bos_id=1, eos_id=2, unk_id=3)
    model = TableLM(vocab)
    tokens = torch.tensor([[1, 4, 2]])
    batch = Batch(tokens=tokens, mask=tokens != 0)
    smooth, metrics = TeacherForcing(model, TeacherForcingConfig(label_smoothing=0.1))(batch, step=0)
    plain, _ = TeacherForcing(model)(batch, step=0)
    table = model.table.detach().log_softmax(-1)
    uniform = -(table[1].mean() + table[4].mean()).item() / 2
    assert math.isclose(smooth.item(), 0.9 * plain.item() + 0.1 * uniform, rel_tol=1e-6)
    assert math.isclose(metrics["nll"].item(), plain.item(), rel_tol=1e-6)


def test_single_player_objectives_are_their_own_player():
    vocab = Vocab(size=6, pad_id=0, bos_id=1, eos_id=2, unk_id=3)
    model = TableLM(vocab)
    tokens = torch.tensor([[1, 4, 5, 2, 0], [1, 5, 2, 0, 0]])
    batch = Batch(tokens=tokens, mask=tokens != 0)
    run = RunInfo("lm", max_steps=10, steps_per_epoch=2.0)
    for name, keys in (("teacher_forcing", {"label_smoothing": 0.1}), ("scheduled_sampling", {"epsilon": 1.0})):
        cls, config = OBJECTIVES[name]
        objective = build_objective(config(**keys), model, run)
        assert type(objective) is cls and objective.generator is model
        (player,) = objective.players()
        assert player == Player(objective) and (player.namespace, player.lr, player.repeats, player.warmup) == \
            ("train", None, 1, 0)
        assert objective.weight(batch) == 5 and objective.exports() == {}
        # called as every player is: (batch, step, noise); with ε = 1 scheduled sampling is teacher forcing
        loss, metrics = player.module(batch, 3, RowNoise("k", None, len(batch)))
        expected, _ = TeacherForcing(model, TeacherForcingConfig(**keys) if name == "teacher_forcing" else None)(
            batch, step=3)
        assert math.isclose(loss.item(), expected.item(), rel_tol=1e-6) and metrics["loss"].ndim == 0
