"""Batching: which rows go together (a seeded batch sampler) and how they become a `Batch` (the collate).

A training epoch's batches are a pure function of (seed, epoch), so a resumed run sees the same batches
and every process of a multi-process run agrees on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch.utils.data import Dataset, Sampler

from seqgen.data.batch import Batch, Context, Vocab
from seqgen.data.images import load_pixels
from seqgen.errors import UserError


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of row indices: `batch_size` rows each, or as many rows as fit a token budget.

    With `max_tokens`, a batch costs (rows x its longest row's length), padding included. Rows are
    shuffled, sorted by length within chunks of about `bucket_batches` batches (so a batch holds rows of
    similar length and wastes little padding), cut greedily under the budget, and the batch order is
    shuffled. Without shuffling (evaluation) the order is fixed: dataset order with `batch_size`, all
    rows sorted by length with `max_tokens`.

    Args:
        lengths: (N,) cost of each row in tokens (BOS/EOS included).
        batch_size: rows per batch when `max_tokens` is None.
        max_tokens: token budget per batch.
        shuffle: reshuffle every epoch, seeded by (seed, epoch).
        seed: the run's seed.
        bucket_batches: batches' worth of rows sorted together when bucketing a shuffled order.

    Raises:
        UserError: a row longer than `max_tokens`.
    """

    def __init__(self, lengths: Sequence[int], *, batch_size: int, max_tokens: int | None = None,
                 shuffle: bool = False, seed: int = 0, bucket_batches: int = 100) -> None:
        self.lengths = np.asarray(lengths, dtype=np.int64)
        if max_tokens is not None and len(self.lengths) and self.lengths.max() > max_tokens:
            raise UserError(f"data.max_tokens={max_tokens} is smaller than the longest example "
                            f"({self.lengths.max()} tokens with BOS/EOS); raise it or lower data.max_length")
        if max_tokens is None and batch_size < 1:
            raise UserError(f"data.batch_size must be positive, got {batch_size}")
        self.batch_size = None if max_tokens is not None else batch_size  # None: sizes vary
        self.max_tokens = max_tokens
        self.shuffle = shuffle
        self.seed = seed
        self.bucket_batches = bucket_batches
        self.epoch = 0
        self._batches: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches())

    def batches(self) -> list[list[int]]:
        """This epoch's batches (computed once per epoch)."""
        if self._batches is None or self._batches[0] != self.epoch:
            self._batches = (self.epoch, self._make())
        return self._batches[1]

    def _make(self) -> list[list[int]]:
        n = len(self.lengths)
        rng = np.random.default_rng([self.seed & 0xFFFF_FFFF_FFFF_FFFF, self.epoch]) if self.shuffle else None
        order = rng.permutation(n) if rng is not None else np.arange(n)
        if self.max_tokens is None:
            return [order[i: i + self.batch_size].tolist() for i in range(0, n, self.batch_size)]
        chunk = n
        if rng is not None and n:
            chunk = max(1, self.bucket_batches * self.max_tokens // max(1, int(self.lengths.mean())))
        batches = []
        for start in range(0, n, chunk):
            part = order[start: start + chunk]
            batches += self._cut(part[np.argsort(self.lengths[part], kind="stable")])
        if rng is not None:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def _cut(self, rows: np.ndarray) -> list[list[int]]:
        """Greedy cut of length-sorted rows into batches under the budget."""
        batches, current, longest = [], [], 0
        for i in rows.tolist():
            length = int(self.lengths[i])
            if current and max(longest, length) * (len(current) + 1) > self.max_tokens:
                batches.append(current)
                current, longest = [], 0
            current.append(i)
            longest = max(longest, length)
        if current:
            batches.append(current)
        return batches


class Rows(Dataset):
    """The rows of a tokenised split as dicts, each with its `index` in the split; a batch's rows are
    fetched from Arrow in one call."""

    def __init__(self, dataset: datasets.Dataset, columns: Sequence[str]) -> None:
        self.dataset = dataset.select_columns([c for c in columns if c in dataset.column_names])

    def __len__(self) -> int:
        return len(self.dataset)

    def widths(self) -> tuple[np.ndarray, np.ndarray | None]:
        """(N,) columns each row's tokens take in a batch (BOS ids EOS) and, for translation, (N,) its
        source's (ids EOS; else None), read from the Arrow offsets without reading the ids."""
        table = self.dataset.with_format("arrow")
        target = _list_lengths(table["ids"]) + 2
        source = _list_lengths(table["source_ids"]) + 1 if "source_ids" in self.dataset.column_names else None
        return target, source

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any]]:
        columns = self.dataset[list(indices)]
        return [{"index": i, **{k: v[j] for k, v in columns.items()}} for j, i in enumerate(indices)]


def _list_lengths(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """(N,) int64 lengths of a list column."""
    return pc.list_value_length(column).to_numpy(zero_copy_only=False).astype(np.int64)


def pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id sequences.

    Returns:
        (B, L) long ids and (B, L) bool mask (True on real tokens), L the longest sequence.
    """
    width = max(len(s) for s in seqs)
    ids = torch.tensor([[*s, *[pad_id] * (width - len(s))] for s in seqs], dtype=torch.long)
    lengths = torch.tensor([len(s) for s in seqs])
    return ids, torch.arange(width) < lengths[:, None]


@dataclass
class Collator:
    """Rows -> `Batch` for every task: tokens = BOS ids EOS PAD..; translation adds the source
    (ids EOS PAD..), captioning the images of the rows' `image_row` in `images`, decoded and
    normalised (see `seqgen.data.images`)."""

    task: str
    vocab: Vocab
    image_size: int
    images: datasets.Dataset | None = None

    def __call__(self, rows: list[dict[str, Any]]) -> Batch:
        v = self.vocab
        tokens, mask = pad([[v.bos_id, *r["ids"], v.eos_id] for r in rows], v.pad_id)
        context = None
        if self.task == "translation":
            source, source_mask = pad([[*r["source_ids"], v.eos_id] for r in rows], v.pad_id)
            context = Context(source=source, source_mask=source_mask)
        elif self.task == "captioning":
            images = self.images[[r["image_row"] for r in rows]]["image"]
            context = Context(pixels=torch.stack([load_pixels(image, self.image_size) for image in images]))
        return Batch(tokens=tokens, mask=mask, context=context,
                     references=[list(r["references"]) for r in rows],
                     index=torch.tensor([r["index"] for r in rows], dtype=torch.long))

    def empty(self, width: int, source_width: int | None) -> Batch:
        """A batch of no rows with `width` token columns (and `source_width` source columns), shaped as
        the rows of a batch that this process holds none of."""
        context = None
        if self.task == "translation":
            context = Context(source=torch.zeros(0, source_width, dtype=torch.long),
                              source_mask=torch.zeros(0, source_width, dtype=torch.bool))
        elif self.task == "captioning":
            context = Context(pixels=torch.zeros(0, 3, self.image_size, self.image_size))
        return Batch(tokens=torch.zeros(0, width, dtype=torch.long), mask=torch.zeros(0, width, dtype=torch.bool),
                     context=context, references=[], index=torch.zeros(0, dtype=torch.long))
