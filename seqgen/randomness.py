"""The one randomness rule of training: every draw an objective makes is a pure function of the run's
seed, the step, the player, its update and micro-batch, and the row's place in the global batch.

So a resumed run draws what the uninterrupted one would have, and N processes, each holding rows
rank, rank + N, ... of a global batch, draw for their rows exactly what one process draws for the
same rows: training with N processes equals training with one (dropout aside, which uses torch's
global generator).
"""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor


class RowNoise:
    """Uniform draws for the rows one process holds of one micro-batch.

    Each `uniform(shape)` call draws the tensor for the whole global batch from one stream and returns
    this process's rows, so every process must make the same calls with the same shapes. A consumer
    whose number of calls depends on its rows (a rollout that stops once its rows have all ended)
    takes its own stream with `fork(name)`, so that the draws of later consumers do not depend on it.

    Args:
        key: names the stream (seed, step, player, update, micro-batch).
        rows: (B,) long, the global rows this process holds (None: all of them, one process).
        total: rows in the global batch.
        device: where the draws are made.
    """

    def __init__(self, key: str, rows: Tensor | None, total: int, device: torch.device | str = "cpu") -> None:
        self.key, self.total, self.device = key, total, torch.device(device)
        self.rows = None if rows is None else rows.to(self.device)
        digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
        self.generator = torch.Generator(device=self.device).manual_seed(
            int.from_bytes(digest, "little") & (2**63 - 1))

    @property
    def local_rows(self) -> int:
        return self.total if self.rows is None else len(self.rows)

    def uniform(self, shape: tuple[int, ...]) -> Tensor:
        """Uniform(0, 1) draws of `shape` = (n, ...): row i of this process's first dimension is row
        rows[i // c] · c + i % c of a (total · c, ...) draw, c = ceil(n / local rows); that is, the
        first dimension is read as c consecutive copies of each local row (rollouts per context), or,
        when n is smaller, as the first n local rows."""
        n, rest = shape[0], tuple(shape[1:])
        copies = max(1, -(-n // max(self.local_rows, 1)))
        full = torch.rand((self.total * copies, *rest), generator=self.generator, device=self.device)
        if self.rows is None:
            return full[:n]
        index = (self.rows[:, None] * copies + torch.arange(copies, device=self.device)).flatten()[:n]
        return full.index_select(0, index)

    def fork(self, name: str) -> RowNoise:
        """An independent stream for the same rows."""
        return RowNoise(f"{self.key}/{name}", self.rows, self.total, self.device)


def uniform(shape: tuple[int, ...], device: torch.device | str,
            source: torch.Generator | RowNoise | None = None) -> Tensor:
    """Uniform(0, 1) draws of `shape` from `source`: the rows' noise of a training micro-batch, a
    torch generator, or (None) torch's default generator."""
    if isinstance(source, RowNoise):
        return source.uniform(shape).to(device)
    return torch.rand(shape, device=device, generator=source)


def fork(source: Source, name: str) -> Source:
    """`source`'s own stream for one consumer when it is a `RowNoise`; a torch generator (or None) is
    shared as it is."""
    return source.fork(name) if isinstance(source, RowNoise) else source


def noise_key(seed: int, step: int, player: str, update: int, micro_batch: int) -> str:
    """The name of one micro-batch's stream (see `RowNoise`)."""
    return f"{seed}/{step}/{player}/{update}/{micro_batch}"


Source = torch.Generator | RowNoise | None
"""Where random draws come from: a micro-batch's `RowNoise`, a torch generator, or None (torch's default)."""
