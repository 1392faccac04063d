"""The SeqGAN "oracle LSTM": a fixed random LSTM whose exact log P(x) scores a generator's samples.

The oracle is a plain LSTM written with row vectors (x the embedded input, h and c the state):
i = σ(x·Wi + h·Ui + bi), f = σ(x·Wf + h·Uf + bf), o = σ(x·Wog + h·Uog + bog),
c̃ = tanh(x·Wc + h·Uc + bc), c ← f⊙c + i⊙c̃, h ← o⊙tanh(c), logits = h·Wo + bo.
It starts from h = c = 0 with x = embedding[0] (token 0 doubles as the start token, which is not part
of the sequence), draws each next token from softmax(logits) and feeds its embedding back. Sequences
have a fixed length and no end token. SeqGAN's oracle has 5000 tokens, embedding and hidden size 32 and
length 20; its weights were drawn from N(0, 1), as are those of `OracleLSTM.random`.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from seqgen.config import SyntheticConfig
from seqgen.errors import UserError

GATES = ("i", "f", "og", "c")
"""Suffixes of the input, forget and output gates and the candidate cell, in the weight files."""
ARRAYS = ("embedding", "Wi", "Ui", "bi", "Wf", "Uf", "bf", "Wog", "Uog", "bog", "Wc", "Uc", "bc", "Wo", "bo")
"""Names of the arrays of a weight file, in SeqGAN's order."""


def _expected_shapes(vocab_size: int, embedding_dim: int, hidden_dim: int) -> dict[str, tuple[int, ...]]:
    shapes = {"embedding": (vocab_size, embedding_dim), "Wo": (hidden_dim, vocab_size), "bo": (vocab_size,)}
    for gate in GATES:
        shapes |= {f"W{gate}": (embedding_dim, hidden_dim), f"U{gate}": (hidden_dim, hidden_dim),
                   f"b{gate}": (hidden_dim,)}
    return shapes


class OracleLSTM(nn.Module):
    """The oracle P over fixed-length sequences of token ids 0..V-1, with exact log-probabilities.

    Args:
        arrays: the 15 weight arrays named as in `ARRAYS` (shapes as in the SeqGAN weight file).
        length: T, the length of every sequence.
    """

    def __init__(self, arrays: dict[str, torch.Tensor], length: int) -> None:
        super().__init__()
        if length < 1:
            raise UserError(f"oracle length must be at least 1, got {length}")
        self.length = length
        self.register_buffer("embedding", arrays["embedding"].float())  # (V, E)
        # the four gates side by side, so that one product per step computes all of them
        self.register_buffer("W", torch.cat([arrays[f"W{g}"] for g in GATES], 1).float())  # (E, 4H)
        self.register_buffer("U", torch.cat([arrays[f"U{g}"] for g in GATES], 1).float())  # (H, 4H)
        self.register_buffer("b", torch.cat([arrays[f"b{g}"] for g in GATES]).float())  # (4H,)
        self.register_buffer("Wo", arrays["Wo"].float())  # (H, V)
        self.register_buffer("bo", arrays["bo"].float())  # (V,)

    @classmethod
    def from_config(cls, cfg: SyntheticConfig) -> OracleLSTM:
        """The oracle of `cfg.weights` (vocabulary and sizes from the file), or a random one."""
        if cfg.weights is not None:
            return cls.load(cfg.weights, cfg.length)
        return cls.random(cfg.vocab_size, cfg.hidden_dim, cfg.length, cfg.seed)

    @classmethod
    def load(cls, path: str | Path, length: int = 20) -> OracleLSTM:
        """Read a SeqGAN weight file (.npz of the 15 arrays of `ARRAYS`; nothing is unpickled).

        Raises:
            UserError: the file is missing or unreadable, or an array is missing or has a wrong shape.
        """
        try:
            npz = np.load(path, allow_pickle=False)
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise UserError(f"oracle weights {path} hold a single array, not an .npz archive of the "
                                f"named arrays")
            with npz:
                arrays = {name: npz[name] for name in npz.files}
        except FileNotFoundError:
            raise UserError(f"oracle weights not found: {path}") from None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
            raise UserError(f"cannot read oracle weights {path} (expected an .npz archive): {e}") from None
        missing = [name for name in ARRAYS if name not in arrays]
        if missing:
            raise UserError(f"oracle weights {path} lack the arrays {', '.join(missing)}")
        if arrays["embedding"].ndim != 2 or arrays["Ui"].ndim != 2:
            raise UserError(f"oracle weights {path}: embedding and Ui must be matrices")
        (vocab_size, embedding_dim), hidden_dim = arrays["embedding"].shape, arrays["Ui"].shape[0]
        for name, shape in _expected_shapes(vocab_size, embedding_dim, hidden_dim).items():
            if arrays[name].shape != shape:
                raise UserError(f"oracle weights {path}: array {name} has shape {arrays[name].shape}, "
                                f"expected {shape}")
            if not np.issubdtype(arrays[name].dtype, np.floating):
                raise UserError(f"oracle weights {path}: array {name} has dtype {arrays[name].dtype}, "
                                f"expected floats")
        return cls({name: torch.from_numpy(arrays[name]) for name in ARRAYS}, length)

    @classmethod
    def random(cls, vocab_size: int, hidden_dim: int, length: int, seed: int) -> OracleLSTM:
        """A random oracle, every weight drawn from N(0, 1) (embedding size = hidden_dim)."""
        if vocab_size < 1 or hidden_dim < 1:
            raise UserError(f"oracle vocab_size and hidden_dim must be positive, got {vocab_size} and "
                            f"{hidden_dim}")
        g = torch.Generator().manual_seed(seed)
        shapes = _expected_shapes(vocab_size, hidden_dim, hidden_dim)
        return cls({name: torch.randn(shapes[name], generator=g) for name in ARRAYS}, length)

    @property
    def vocab_size(self) -> int:
        return self.embedding.shape[0]

    @property
    def max_length(self) -> int:
        return self.length

    @property
    def fixed_length(self) -> bool:
        return True

    @property
    def symbols(self) -> list[str]:
        """The words of the tokens: "0", "1", ..., "V-1"."""
        return [str(i) for i in range(self.vocab_size)]

    def _step(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """One LSTM step on embedded inputs x (B, E) and state h, c (B, H): (logits (B, V), h, c)."""
        i, f, o, g = (x @ self.W + h @ self.U + self.b).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return torch.addmm(self.bo, h, self.Wo), h, c

    def _start(self, batch: int) -> tuple[torch.Tensor, ...]:
        """Start-token inputs (B, E) and zero states (B, H)."""
        h = self.embedding.new_zeros(batch, self.U.shape[0])
        return self.embedding[0].expand(batch, -1), h, h

    def sample(self, n: int, seed: int, batch_size: int = 256) -> torch.Tensor:
        """`n` sequences drawn from the oracle, the same for the same seed and batch_size.

        Returns:
            (n, T) long token ids, on the oracle's device.
        """
        return self.sample_with_log_prob(n, seed, batch_size)[0]

    @torch.no_grad()
    def sample_with_log_prob(self, n: int, seed: int,
                             batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        """`sample(n, seed, batch_size)` and the log P of each sequence, at no extra cost.

        Returns:
            (n, T) long token ids and (n,) float64 log-probabilities, on the oracle's device.
        """
        g = torch.Generator(device=self.embedding.device).manual_seed(seed)
        chunks = [self.embedding.new_zeros(0, self.length, dtype=torch.long)]
        log_probs = [self.embedding.new_zeros(0, dtype=torch.float64)]
        for start in range(0, n, batch_size):
            x, h, c = self._start(min(batch_size, n - start))
            tokens, total = [], torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
            for _ in range(self.length):
                logits, h, c = self._step(x, h, c)
                # inverse-CDF sampling: one uniform per row, where torch.multinomial is many times slower
                top = logits.amax(-1, keepdim=True)  # (B, 1)
                cdf = (logits - top).exp_().cumsum(-1)  # (B, V), unnormalised
                u = torch.rand(cdf.shape[0], 1, generator=g, device=cdf.device) * cdf[:, -1:]
                token = torch.searchsorted(cdf, u, right=True).clamp(max=self.vocab_size - 1)  # (B, 1)
                total += (logits.gather(1, token) - top - cdf[:, -1:].log()).squeeze(1).double()
                tokens.append(token.squeeze(1))
                x = self.embedding[tokens[-1]]
            chunks.append(torch.stack(tokens, dim=1))
            log_probs.append(total)
        return torch.cat(chunks), torch.cat(log_probs)

    def sample_texts(self, n: int, seed: int) -> list[str]:
        """`sample(n, seed)` as space-separated token ids, e.g. "17 4093 ..."."""
        return [" ".join(map(str, row)) for row in self.sample(n, seed).tolist()]

    @torch.no_grad()
    def log_prob(self, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Exact log P(x) of each sequence (of its first T tokens when T < length).

        Args:
            x: (n, T) long token ids, T ≤ length.

        Returns:
            (n,) float64 log-probabilities in nats, on the oracle's device.
        """
        if x.dim() != 2 or x.shape[1] > self.length:
            raise ValueError(f"expected (n, T ≤ {self.length}) token ids, got shape {tuple(x.shape)}")
        x = x.to(self.embedding.device)
        if x.numel() and (x.min() < 0 or x.max() >= self.vocab_size):
            raise ValueError(f"token ids must be in 0..{self.vocab_size - 1}")
        chunks = [torch.zeros(0, dtype=torch.float64, device=x.device)]
        for rows in x.split(batch_size):
            inp, h, c = self._start(rows.shape[0])
            total = torch.zeros(rows.shape[0], dtype=torch.float64, device=x.device)
            for t in range(rows.shape[1]):
                logits, h, c = self._step(inp, h, c)
                total += (logits.gather(1, rows[:, t : t + 1]).squeeze(1) - logits.logsumexp(-1)).double()
                inp = self.embedding[rows[:, t]]
            chunks.append(total)
        return torch.cat(chunks)

    def nll_per_token(self, x: torch.Tensor) -> float:
        """Mean negative log-likelihood per token (nats) of sequences x (n, T)."""
        return float(-self.log_prob(x).sum() / x.numel())
