"""An enumerable toy distribution P over short symbol sequences, with exact probabilities.

Every sequence of the support can be listed, so divergences between P and a model Q (KL[P‖Q], KL[Q‖P],
JS_π, KL[Q‖∏_t P_t]) are computed exactly rather than estimated. Two kinds:

- `joint`: a random table P(x_1 .. x_L) over all V^L fixed-length sequences;
- `markov`: a random Markov chain with an end state, P(x_1) P(x_2 | x_1) .. P(END | x_n), over
  sequences of 1..L symbols (END is forced after L symbols).

Symbols are indices 0..V-1 throughout; `symbols` names them for text ("a", "b", ...).
"""

from __future__ import annotations

import itertools
import string

import numpy as np
import torch

from seqgen.config import SyntheticConfig
from seqgen.errors import UserError

MAX_VOCAB = 16
MAX_LENGTH = 6
KINDS = ("joint", "markov")


def _log_dirichlet(rng: np.random.Generator, alpha: float, shape: tuple[int, ...]) -> np.ndarray:
    """Log of Dirichlet(alpha) draws over the last axis of `shape`.

    Drawn in log space (Gamma(a) = Gamma(a + 1) · U^(1/a)) because small concentrations give gamma
    draws that underflow to 0 in float64, which would make log P = -inf inside the support.
    """
    log_gamma = np.log(rng.gamma(alpha + 1.0, size=shape)) + np.log1p(-rng.random(shape)) / alpha
    return log_gamma - np.logaddexp.reduce(log_gamma, axis=-1, keepdims=True)


def _entropy(log_p: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) over the last axis of log-probabilities, with 0 · log 0 = 0."""
    p = log_p.exp()
    return -(p * log_p.masked_fill(p == 0, 0.0)).sum(-1)


class ToyDistribution:
    """A random `joint` or `markov` distribution over sequences of at most 16 symbols and length 6.

    Args:
        vocab_size: V, number of symbols (1..16).
        length: L, the length of `joint` sequences, the longest `markov` sequence (1..6).
        kind: `joint` or `markov`.
        concentration: Dirichlet concentration of every random table (smaller = peakier).
        seed: seeds the tables; the same arguments always give the same distribution.
    """

    def __init__(self, vocab_size: int, length: int, kind: str = "markov", concentration: float = 0.5,
                 seed: int = 0) -> None:
        if kind not in KINDS:
            raise UserError(f"toy distribution kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if not 1 <= vocab_size <= MAX_VOCAB:
            raise UserError(f"toy distribution vocab_size must be in 1..{MAX_VOCAB}, got {vocab_size}")
        if not 1 <= length <= MAX_LENGTH:
            raise UserError(f"toy distribution length must be in 1..{MAX_LENGTH}, got {length}")
        if not concentration > 0:
            raise UserError(f"toy distribution concentration must be positive, got {concentration}")
        self.kind = kind
        self.vocab_size = vocab_size
        self.max_length = length
        rng = np.random.default_rng(seed)
        V, L = vocab_size, length
        if kind == "joint":
            # (V,) * L: log P(x_1 .. x_L)
            self.log_table = torch.from_numpy(_log_dirichlet(rng, concentration, (V**L,))).view((V,) * L)
        else:
            # (V,): log P(x_1); (V, V + 1): log P(x_{t+1} | x_t), column V being END
            self.log_initial = torch.from_numpy(_log_dirichlet(rng, concentration, (V,)))
            self.log_transition = torch.from_numpy(_log_dirichlet(rng, concentration, (V, V + 1)))

    @classmethod
    def from_config(cls, cfg: SyntheticConfig) -> ToyDistribution:
        return cls(cfg.vocab_size, cfg.length, cfg.kind, cfg.concentration, cfg.seed)

    @property
    def symbols(self) -> list[str]:
        """The words of the V symbols: "a", "b", ..."""
        return list(string.ascii_lowercase[: self.vocab_size])

    @property
    def fixed_length(self) -> bool:
        """Whether every sequence has exactly `max_length` symbols."""
        return self.kind == "joint" or self.max_length == 1

    @property
    def end(self) -> int:
        """Index of the END column in `marginals()` (= V)."""
        return self.vocab_size

    def support(self) -> list[tuple[int, ...]]:
        """Every sequence the distribution can produce: V^L for `joint`, V + V^2 + .. + V^L for
        `markov` (shorter sequences first, each length in lexicographic order)."""
        lengths = [self.max_length] if self.kind == "joint" else range(1, self.max_length + 1)
        return [s for n in lengths for s in itertools.product(range(self.vocab_size), repeat=n)]

    def enumerate(self) -> tuple[list[tuple[int, ...]], torch.Tensor]:
        """Every sequence of the support and its probability.

        Returns:
            (sequences, probs): `support()` and (N,) float64 probabilities summing to 1.
        """
        seqs = self.support()
        return seqs, self.log_prob(seqs).exp()

    def log_prob(self, seqs: list[tuple[int, ...]]) -> torch.Tensor:
        """Exact log P of each sequence; -inf for a sequence outside the support (a symbol outside
        0..V-1, an empty sequence, or a length the distribution cannot produce).

        Returns:
            (N,) float64.
        """
        V, L, end = self.vocab_size, self.max_length, self.end
        valid = torch.tensor([
            (len(s) == L if self.kind == "joint" else 1 <= len(s) <= L) and all(0 <= x < V for x in s)
            for s in seqs
        ], dtype=torch.bool)
        # (N, L): valid sequences padded with END, invalid ones replaced by a harmless row
        padded = torch.tensor([list(s) + [end] * (L - len(s)) if ok else [0] * L
                               for s, ok in zip(seqs, valid.tolist())], dtype=torch.long).view(-1, L)
        if self.kind == "joint":
            log_p = self.log_table[tuple(padded.T)]
        else:
            # END -> END has probability 1 and END -> symbol 0, so padding adds nothing to log P
            log_initial = torch.cat([self.log_initial, torch.tensor([-torch.inf], dtype=torch.float64)])
            end_row = torch.full((1, V + 1), -torch.inf, dtype=torch.float64)
            end_row[0, end] = 0.0
            log_transition = torch.cat([self.log_transition, end_row])  # (V + 1, V + 1)
            log_p = log_initial[padded[:, 0]]
            for t in range(1, L):
                log_p = log_p + log_transition[padded[:, t - 1], padded[:, t]]
        return log_p.masked_fill(~valid, -torch.inf)

    def sample(self, n: int, seed: int) -> list[tuple[int, ...]]:
        """`n` independent sequences, the same for the same seed."""
        if n == 0:
            return []
        g = torch.Generator().manual_seed(seed)
        V, L = self.vocab_size, self.max_length
        if self.kind == "joint":
            flat = torch.multinomial(self.log_table.exp().flatten(), n, replacement=True, generator=g)
            digits = torch.stack([flat // V ** (L - 1 - t) % V for t in range(L)], dim=1)  # (n, L)
            return [tuple(row) for row in digits.tolist()]
        x = torch.multinomial(self.log_initial.exp(), n, replacement=True, generator=g)  # (n,)
        columns = [x]
        transition = self.log_transition.exp()  # (V, V + 1)
        for _ in range(1, L):
            # rows already ended keep drawing from a dummy row; their draws are cut below
            prev = columns[-1].clamp(max=V - 1)
            nxt = torch.multinomial(transition[prev], 1, generator=g).squeeze(1)
            columns.append(torch.where(columns[-1] == self.end, self.end, nxt))
        rows = torch.stack(columns, dim=1).tolist()  # (n, L), END-padded
        return [tuple(x for x in row if x != self.end) for row in rows]

    def sample_texts(self, n: int, seed: int) -> list[str]:
        """`sample(n, seed)` as space-separated symbols, e.g. "a c b"."""
        words = self.symbols
        return [" ".join(words[x] for x in seq) for seq in self.sample(n, seed)]

    def _symbol_mass(self) -> torch.Tensor:
        """(L, V) float64: P(the sequence has a t-th symbol and it is v)."""
        if self.kind == "joint":
            p = self.log_table.exp()
            return torch.stack([p.sum([d for d in range(self.max_length) if d != t])
                                if self.max_length > 1 else p for t in range(self.max_length)])
        mass = [self.log_initial.exp()]
        symbol_transition = self.log_transition.exp()[:, : self.vocab_size]
        for _ in range(1, self.max_length):
            mass.append(mass[-1] @ symbol_transition)
        return torch.stack(mass)

    def marginals(self) -> torch.Tensor:
        """Position marginals P_t of the END-padded sequences (x_1 .. x_n, END, .., END) of length L.

        Returns:
            (L, V + 1) float64: row t is P_t over the V symbols and END (column `end`, 0 for `joint`);
            each row sums to 1.
        """
        mass = self._symbol_mass()
        if self.kind == "joint":
            end = mass.new_zeros(self.max_length, 1)
        else:
            end = (1.0 - mass.sum(1, keepdim=True)).clamp(min=0.0)
        return torch.cat([mass, end], dim=1)

    def entropy(self) -> float:
        """H(P) in nats, exact."""
        if self.kind == "joint":
            return float(_entropy(self.log_table.flatten()))
        # chain rule: H(x_1) + Σ_t Σ_v P(x_t = v) H(x_{t+1} | x_t = v); after L symbols END is certain
        mass = self._symbol_mass()[:-1]  # (L - 1, V)
        return float(_entropy(self.log_initial) + (mass.sum(0) * _entropy(self.log_transition)).sum())

    def multi_information(self) -> float:
        """Total correlation Σ_t H(P_t) - H(P) in nats, ≥ 0; the KL from P to the product of its
        position marginals, KL[P ‖ ∏_t P_t].

        For `markov`, sequences are END-padded to length L (the padding is a one-to-one map, so H(P) is
        unchanged) and P_t is the marginal of `marginals()` including END.
        """
        marginals = self.marginals()
        return float(_entropy(marginals.log()).sum()) - self.entropy()
