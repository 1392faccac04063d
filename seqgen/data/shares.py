"""Each process's share of the global training batches.

The batch sampler cuts an epoch into global batches, the same on every process (a pure function of
seed and epoch). Process `rank` of N holds rows rank, rank + N, ... of each, and reads and collates only
those rows from the memory-mapped split: no process reads the whole corpus, and the images of a
captioning batch are decoded once, by the process that trains on them. The local rows are padded to
the global batch's widths, so every process sees what it would have seen as a slice of the whole
batch (the draws of `seqgen.randomness.RowNoise` depend on those widths).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader

from seqgen.data.batch import Batch


class Position(Protocol):
    """Where the run is in its data (`seqgen.checkpoints.TrainerState`): kept up to date by `shares`."""

    epoch: int
    batch_in_epoch: int


@dataclass
class Share:
    """One process's part of one global batch.

    Attributes:
        local: this process's rows, padded to the global batch's widths.
        rows: (B_local,) long, their places in the global batch (rank, rank + N, ...); None when one
            process holds the whole batch.
        whole: the global batch (B, L) as far as an objective's weight needs it: its real tokens' mask,
            zeros for the tokens and no context; `local` itself when one process holds the whole batch.
    """

    local: Batch
    rows: torch.Tensor | None
    whole: Batch

    @property
    def total(self) -> int:
        """Rows in the global batch."""
        return len(self.whole)


def shares(loader: DataLoader, position: Position, rank: int = 0, world: int = 1) -> Iterator[Share]:
    """This process's shares of the training batches of `loader` (a `Split.loader`), forever, from
    `position`, which it advances. Skipped batches are neither read nor collated.

    Args:
        loader: the split's training loader (its batch sampler, rows and collate).
        position: the epoch and the global batches of it already consumed.
        rank, world: this process and the number of processes.
    """
    sampler, rows, collate = loader.batch_sampler, loader.dataset, loader.collate_fn
    target_lengths, source_lengths = rows.widths()
    pad_id = collate.vocab.pad_id
    while True:
        sampler.set_epoch(position.epoch)
        order = list(sampler)[position.batch_in_epoch:]
        mine = [batch[rank::world] for batch in order]
        fetched = iter(DataLoader(rows, batch_sampler=[m for m in mine if m], collate_fn=collate,
                                  generator=loader.generator))
        for batch, held in zip(order, mine):
            position.batch_in_epoch += 1
            if world == 1:
                local = next(fetched)
                yield Share(local, None, local)
                continue
            width = int(target_lengths[batch].max())
            source_width = None if source_lengths is None else int(source_lengths[batch].max())
            # a batch with fewer rows than processes leaves some process none
            local = next(fetched).padded(width, source_width, pad_id) if held else collate.empty(width, source_width)
            yield Share(local, torch.arange(len(batch))[rank::world], _outline(target_lengths[batch], width))
        position.epoch, position.batch_in_epoch = position.epoch + 1, 0


def _outline(lengths: np.ndarray, width: int) -> Batch:
    """A (B, width) batch of zero tokens whose mask marks the first `lengths[i]` of row i."""
    mask = torch.arange(width) < torch.as_tensor(lengths)[:, None]
    return Batch(tokens=torch.zeros(mask.shape, dtype=torch.long), mask=mask)
