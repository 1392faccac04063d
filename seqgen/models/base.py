"""The one Generator interface that both model families (RNNs and `transformers` models) implement.

A generator models Q(x_t | x_<t, c). Objectives, samplers and evaluators only ever talk to this
interface, so each of them works for every family and every task:

- `encode(context) -> memory` runs the encoder once (None for a language model);
- `forward(inputs, memory) -> logits (B, T, V)` scores a whole teacher-forced sequence;
- `step(inputs, memory, state) -> (logits (B, V), state)` decodes one position on a cache (the
  key/value cache of a Transformer, the hidden state of an RNN); `state=None` starts a sequence;
- `inputs` are token ids, (B, T) or (B,) for `step`, or probability vectors over the vocabulary,
  (B, T, V) or (B, V), which go through the embedding matrix as a matrix product so that relaxed
  (Gumbel-softmax) samples are differentiable. Ids and their one-hot vectors give identical logits.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import torch
from torch import nn

from seqgen.data.batch import Context, Vocab


def embed(inputs: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Embed ids (...,) by lookup or probability vectors (..., V) by a product with `weight` (V, D).

    Returns:
        (..., D) embeddings. A one-hot vector gives exactly the looked-up row.
    """
    if inputs.is_floating_point():
        return inputs.to(weight.dtype) @ weight
    return nn.functional.embedding(inputs, weight)


def select(tree: Any, index: torch.Tensor) -> Any:
    """Rows `index` of every tensor in a nested structure of tensors, tuples, lists, dicts and
    Contexts (a memory or an RNN state), along the batch dimension `dim` 0.

    Tensors whose batch dimension is not first must be wrapped by the generator that owns them.
    """
    if tree is None:
        return None
    if isinstance(tree, torch.Tensor):
        return tree.index_select(0, index.to(tree.device))
    if isinstance(tree, Context):
        return tree.select(index)
    if isinstance(tree, tuple):
        return tuple(select(t, index) for t in tree)
    if isinstance(tree, list):
        return [select(t, index) for t in tree]
    if isinstance(tree, dict):
        return {k: select(v, index) for k, v in tree.items()}
    raise TypeError(f"cannot select rows of {type(tree).__name__}")


class Generator(nn.Module, ABC):
    """An autoregressive decoder with an optional encoder. See the module docstring.

    Attributes:
        vocab: vocabulary size and special-token ids shared with the tokenizer.
        family: "rnn" or "transformer".
    """

    family: str

    def __init__(self, vocab: Vocab) -> None:
        super().__init__()
        self.vocab = vocab

    @abstractmethod
    def encode(self, context: Context | None) -> Any:
        """Run the encoder once; returns the memory the decoder attends to (None without context)."""

    @abstractmethod
    def forward(self, inputs: torch.Tensor, memory: Any = None) -> torch.Tensor:
        """Teacher-forced logits.

        Args:
            inputs: (B, T) long ids or (B, T, V) float probability vectors.
            memory: what `encode` returned for these B examples.

        Returns:
            (B, T, V) logits for the token after each input position, float32 even under autocast
            (every loss and metric is computed in float32).
        """

    @abstractmethod
    def step(self, inputs: torch.Tensor, memory: Any, state: Any) -> tuple[torch.Tensor, Any]:
        """One incremental decoding step.

        Args:
            inputs: (B,) long ids or (B, V) float probability vectors: the token at this position.
            memory: what `encode` returned.
            state: the cache returned by the previous step, or None at the first position.

        Returns:
            (B, V) float32 logits for the next token, and the updated cache.
        """

    def select_state(self, state: Any, index: torch.Tensor) -> Any:
        """Reorder/repeat a cache along the batch (beam search). The default handles nested tensors."""
        return select(state, index)

    def select_memory(self, memory: Any, index: torch.Tensor) -> Any:
        """Reorder/repeat a memory along the batch (beam search, rollouts)."""
        return select(memory, index)

    @property
    @abstractmethod
    def input_embeddings(self) -> torch.Tensor:
        """(V, D) the decoder's input embedding matrix (what probability inputs are multiplied by)."""

    @abstractmethod
    def save_weights(self, directory: str | Path) -> None:
        """Write the weights as `model.safetensors` (and, for `transformers` models, their own
        config.json so that `from_pretrained(directory)` loads them)."""

    @abstractmethod
    def load_weights(self, directory: str | Path) -> None:
        """Load weights written by `save_weights` (safetensors only; nothing is unpickled)."""
