"""The one batch type every task, objective and evaluator shares."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch


@dataclass
class Context:
    """What a conditional generator is conditioned on; absent (None) for language modelling.

    Attributes:
        source: (B, S) long, source-sentence token ids (translation), right-padded.
        source_mask: (B, S) bool, True on real source tokens.
        pixels: (B, 3, H, W) float, normalised images (captioning).
    """

    source: torch.Tensor | None = None
    source_mask: torch.Tensor | None = None
    pixels: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> Context:
        return Context(*(None if t is None else t.to(device) for t in (self.source, self.source_mask, self.pixels)))

    def select(self, index: torch.Tensor) -> Context:
        """Rows `index` (K,) of every tensor, e.g. to repeat each context once per beam."""
        return Context(*(None if t is None else t.index_select(0, index.to(t.device))
                         for t in (self.source, self.source_mask, self.pixels)))

    def padded(self, source_width: int | None, pad_id: int) -> Context:
        """The source right-padded (ids `pad_id`, mask False) to `source_width` columns; None: as it is."""
        if self.source is None or source_width is None:
            return self
        extra = source_width - self.source.shape[1]
        return replace(self, source=torch.nn.functional.pad(self.source, (0, extra), value=pad_id),
                       source_mask=torch.nn.functional.pad(self.source_mask, (0, extra), value=False))

    @property
    def batch_size(self) -> int:
        return next(t for t in (self.source, self.pixels) if t is not None).shape[0]


@dataclass
class Batch:
    """A batch of target sequences and, for conditional tasks, their contexts.

    Attributes:
        tokens: (B, L) long, `BOS x_1 .. x_n EOS PAD ..`: the model reads `tokens[:, :-1]` and
            predicts `tokens[:, 1:]`.
        mask: (B, L) bool, True on real tokens (BOS and EOS included, padding excluded).
        context: source ids / image pixels, or None for language modelling.
        references: per example, every reference text (all captions of an image; the target
            sentence otherwise), for BLEU-style evaluation.
        index: (B,) long, position of each example in its split (to gather results in order).
    """

    tokens: torch.Tensor
    mask: torch.Tensor
    context: Context | None = None
    references: list[list[str]] | None = field(default=None, repr=False)
    index: torch.Tensor | None = None

    @property
    def inputs(self) -> torch.Tensor:
        """(B, L-1) long: the teacher-forced inputs, BOS first."""
        return self.tokens[:, :-1]

    @property
    def targets(self) -> torch.Tensor:
        """(B, L-1) long: the next token at every input position."""
        return self.tokens[:, 1:]

    @property
    def target_mask(self) -> torch.Tensor:
        """(B, L-1) bool: which targets count in a loss (EOS included, padding excluded)."""
        return self.mask[:, 1:]

    @property
    def num_target_tokens(self) -> int:
        return int(self.target_mask.sum())

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def select(self, rows: torch.Tensor) -> Batch:
        """The examples at `rows` (K,) of this batch, with their contexts and references."""
        return Batch(
            tokens=self.tokens[rows],
            mask=self.mask[rows],
            context=None if self.context is None else self.context.select(rows),
            references=None if self.references is None else [self.references[i] for i in rows.tolist()],
            index=None if self.index is None else self.index[rows],
        )

    def padded(self, width: int, source_width: int | None, pad_id: int) -> Batch:
        """This batch right-padded (ids `pad_id`, mask False) to `width` token columns and, for
        translation, `source_width` source columns: the shapes it has as rows of a wider batch."""
        extra = width - self.tokens.shape[1]
        return replace(self, tokens=torch.nn.functional.pad(self.tokens, (0, extra), value=pad_id),
                       mask=torch.nn.functional.pad(self.mask, (0, extra), value=False),
                       context=None if self.context is None else self.context.padded(source_width, pad_id))

    def to(self, device: torch.device | str) -> Batch:
        return replace(
            self,
            tokens=self.tokens.to(device),
            mask=self.mask.to(device),
            context=None if self.context is None else self.context.to(device),
            index=None if self.index is None else self.index.to(device),
        )


@dataclass(frozen=True)
class Vocab:
    """Size of a tokenizer's vocabulary and the ids of its special tokens."""

    size: int
    pad_id: int
    bos_id: int
    eos_id: int
    unk_id: int
