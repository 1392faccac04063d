"""The teachers `teacher_js_pi` reads: an exported model of the same task and vocabulary, or the known
distribution a synthetic source draws its data from, read as a generator over the run's vocabulary
(`forward(inputs, memory) -> (B, T, V)` next-token logits; -inf everywhere at a position whose prefix
the distribution cannot produce, where P has no conditional)."""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import Tensor, nn

from seqgen.data.batch import Vocab
from seqgen.data.synthetic.oracle import OracleLSTM
from seqgen.data.synthetic.toy import ToyDistribution
from seqgen.errors import UserError
from seqgen.models import Generator, load_generator

DATA = "data"


class OracleTeacher(nn.Module):
    """The oracle LSTM a run's data are drawn from, read as a generator over the run's vocabulary: at each
    position its next-symbol distribution given the prefix's symbols, EOS with probability 1 once the
    oracle's length is reached. A position whose prefix holds a token the oracle never emits (a special
    token in a student's sample) has no conditional under P: its logits are all -inf.

    Args:
        oracle: the run's `TaskData.distribution`.
        vocab: the run's vocabulary: the special tokens, then the oracle's symbols in order.
    """

    def __init__(self, oracle: OracleLSTM, vocab: Vocab) -> None:
        super().__init__()
        self.oracle, self.vocab = oracle, vocab
        self.first = vocab.size - oracle.vocab_size  # id of symbol 0 (the special tokens come first)

    def encode(self, context: object) -> None:
        return None

    @torch.no_grad()
    def forward(self, inputs: Tensor, memory: object = None) -> Tensor:
        """inputs (B, T) ids, BOS first -> (B, T, V) logits of the next token."""
        b, t_max = inputs.shape
        symbols = inputs - self.first  # (B, T), the oracle's ids where valid
        is_symbol = (symbols >= 0) & (symbols < self.oracle.vocab_size)
        # a prefix is P's only if every token after BOS is a symbol
        valid = torch.cat([torch.ones_like(is_symbol[:, :1]), is_symbol[:, 1:].long().cumprod(1).bool()], 1)
        out = torch.full((b, t_max, self.vocab.size), float("-inf"), device=inputs.device)
        x, h, c = self.oracle._start(b)
        for t in range(t_max):
            if t > 0:
                x = self.oracle.embedding[symbols[:, t].clamp(0, self.oracle.vocab_size - 1)]
            if t < self.oracle.length:
                logits, h, c = self.oracle._step(x, h, c)
                out[:, t, self.first:] = logits.float()
            else:
                out[:, t, self.vocab.eos_id] = 0.0
        return out.masked_fill(~valid[..., None], float("-inf"))


def distribution_teacher(p: ToyDistribution | OracleLSTM | None, vocab: Vocab) -> nn.Module:
    """The run's own data distribution (`TaskData.distribution`) as a teacher."""
    if isinstance(p, OracleLSTM):
        return OracleTeacher(p, vocab)
    if isinstance(p, ToyDistribution):
        return ToyTeacher(p, vocab)
    raise UserError("objective.teacher=data needs data.source=toy or oracle")


class ToyTeacher(nn.Module):
    """An enumerable toy P read as a generator over the run's vocabulary: at each prefix of its support,
    P's next symbol (or EOS, for a sequence that ends there) given the prefix, from the prefix masses of
    every sequence of the support.

    Args:
        toy: the run's `TaskData.distribution`.
        vocab: the run's vocabulary: the special tokens, then the toy's symbols in order.
    """

    def __init__(self, toy: ToyDistribution, vocab: Vocab) -> None:
        super().__init__()
        self.vocab = vocab
        first = vocab.size - toy.vocab_size  # id of symbol 0 (the special tokens come first)
        seqs, probs = toy.enumerate()
        prefix_mass: dict[tuple[int, ...], float] = defaultdict(float)
        next_mass: dict[tuple[int, ...], Tensor] = defaultdict(lambda: torch.zeros(vocab.size, dtype=torch.float64))
        for seq, prob in zip(seqs, probs.tolist()):
            ids = tuple(first + x for x in seq)
            for k in range(len(ids) + 1):
                prefix_mass[ids[:k]] += prob
                next_mass[ids[:k]][ids[k] if k < len(ids) else vocab.eos_id] += prob
        self.table = {prefix: (mass / prefix_mass[prefix]).log().float()
                      for prefix, mass in next_mass.items() if prefix_mass[prefix] > 0}

    def encode(self, context: object) -> None:
        return None

    @torch.no_grad()
    def forward(self, inputs: Tensor, memory: object = None) -> Tensor:
        """inputs (B, T) ids, BOS first -> (B, T, V) logits of the next token."""
        b, t_max = inputs.shape
        out = torch.full((b, t_max, self.vocab.size), float("-inf"))
        rows = inputs.tolist()
        for i, row in enumerate(rows):
            for t in range(t_max):
                log_p = self.table.get(tuple(row[1:t + 1]))
                if log_p is not None:
                    out[i, t] = log_p
        return out.to(inputs.device)


def load_teacher(path: str, student: Generator, task: str) -> Generator:
    """The teacher model at `path`, in eval mode with requires_grad off; UserError when it does not share
    the student's task and vocabulary."""
    from seqgen.inference import resolve

    model_dir, _ = resolve(path)
    teacher, _, teacher_task, _ = load_generator(model_dir)
    if teacher_task != task:
        raise UserError(f"objective.teacher {path} is a {teacher_task} model; the run's task is {task}")
    if teacher.vocab != student.vocab:
        raise UserError(f"objective.teacher {path} has another vocabulary ({teacher.vocab.size} tokens) than the "
                        f"run ({student.vocab.size} tokens); train the student with the teacher's tokenizer "
                        f"(train.init_from a model trained on it, or the same tokenizer recipe)")
    return teacher.eval().requires_grad_(False)


