"""LSTM/GRU generators for language modelling, translation and captioning.

    h_t   = RNN(emb x_t)                  one fused cuDNN/CPU call over the whole sequence
    a_t   = attn(h_t, memory, mask)       Luong attention after the RNN (translation, captioning)
    o_t   = tanh(W [h_t; a_t])
    logit = out(proj(o_t))                out tied to the input embedding when tie_embeddings

There is no input feeding (a_{t-1} is not fed back into the RNN), which is what keeps `forward` a
single RNN call; `step` runs the same modules on one position, so both give the same logits. The
decoder's initial state is bridged from the encoder's summary; a language model starts from zeros.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model
from torch import nn

from seqgen.data.batch import Context, Vocab
from seqgen.errors import UserError
from seqgen.models.base import Generator, embed
from seqgen.models.configs import RNNConfig
from seqgen.models.encoders import RNNS, Attention, Bridge, ConvEncoder, PretrainedImageEncoder, SourceEncoder

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]  # GRU h or LSTM (h, c), each (L, B, H)
WEIGHTS = "model.safetensors"


class RNNGenerator(Generator):
    """An RNN decoder, with an attended encoder for translation (source RNN) and captioning (images).

    Args:
        vocab: vocabulary size and special ids.
        cfg: the model recipe (cell, sizes, dropout, tying, encoder choices).
        task: "lm", "translation" or "captioning".
    """

    family = "rnn"

    def __init__(self, vocab: Vocab, cfg: RNNConfig, task: str) -> None:
        super().__init__(vocab)
        if task not in ("lm", "translation", "captioning"):
            raise ValueError(f"unknown task {task!r}")
        self.task = task
        V, E, H, L = vocab.size, cfg.embedding_dim, cfg.hidden_dim, cfg.num_layers
        self.embedding = nn.Embedding(V, E)
        self.drop = nn.Dropout(cfg.dropout)
        self.rnn = RNNS[cfg.cell](E, H, L, batch_first=True, dropout=cfg.dropout if L > 1 else 0.0)

        self.encoder: nn.Module | None = None
        if task == "translation":
            self.encoder = SourceEncoder(V, cfg.cell, E, H, L, cfg.dropout, cfg.bidirectional_encoder)
        elif task == "captioning":
            self.encoder = (ConvEncoder(H) if cfg.image_encoder == "cnn"
                            else PretrainedImageEncoder(cfg.image_encoder, cfg.trust_remote_code))
        if self.encoder is not None:
            self.bridge = Bridge(self.encoder.dim, cfg.cell, L, H)
            self.attention = Attention(H, self.encoder.dim)
            self.combine = nn.Linear(H + self.encoder.dim, H)

        # Tying needs the output layer's input to be embedding-sized.
        self.proj = nn.Linear(H, E, bias=False) if cfg.tie_embeddings and H != E else nn.Identity()
        self.out = nn.Linear(E if cfg.tie_embeddings else H, V)
        if cfg.tie_embeddings:
            self.out.weight = self.embedding.weight

    @property
    def input_embeddings(self) -> torch.Tensor:
        return self.embedding.weight

    def encode(self, context: Context | None) -> dict[str, torch.Tensor | None] | None:
        """Run the encoder once.

        Returns:
            None for a language model; else {"states": (B, S, D), "mask": (B, S) bool or None,
            "summary": (B, D)} (see seqgen.models.encoders).
        """
        if self.task == "lm":
            return None
        if self.task == "translation":
            if context is None or context.source is None:
                raise ValueError("a translation generator needs Context.source")
            return self.encoder(context.source, context.source_mask)
        if context is None or context.pixels is None:
            raise ValueError("a captioning generator needs Context.pixels")
        return self.encoder(context.pixels)

    def forward(self, inputs: torch.Tensor, memory: dict | None = None) -> torch.Tensor:
        """Teacher-forced logits: inputs (B, T) ids or (B, T, V) probabilities -> (B, T, V)."""
        x = self.drop(embed(inputs, self.embedding.weight))  # (B, T, E)
        h, _ = self.rnn(x, self._initial_state(memory))  # (B, T, H)
        return self._logits(h, memory)

    def step(self, inputs: torch.Tensor, memory: dict | None,
             state: State | None) -> tuple[torch.Tensor, State]:
        """One position: inputs (B,) ids or (B, V) probabilities -> (B, V) logits and the new state."""
        if state is None:
            state = self._initial_state(memory)
        x = self.drop(embed(inputs, self.embedding.weight))  # (B, E)
        h, state = self._cells(x, state)  # (B, H)
        return self._logits(h[:, None], memory)[:, 0], state

    def select_state(self, state: State, index: torch.Tensor) -> State:
        """Reorder/repeat the RNN state along its batch dimension, which is dim 1: (L, B, H)."""
        if isinstance(state, tuple):
            return tuple(s.index_select(1, index.to(s.device)) for s in state)
        return state.index_select(1, index.to(state.device))

    def save_weights(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_model(self, str(directory / WEIGHTS))  # stores the tied embedding once

    def load_weights(self, directory: str | Path) -> None:
        path = Path(directory) / WEIGHTS
        if not path.is_file():
            raise UserError(f"no RNN weights at {path}")
        try:
            load_model(self, str(path), device=str(self.embedding.weight.device))
        except SafetensorError as e:
            raise UserError(f"{path} is not a readable safetensors file (truncated or corrupt?): {e}") from None
        except RuntimeError as e:
            detail = " ".join(str(e).split())
            raise UserError(f"weights at {path} do not fit this model (another recipe?): {detail}") from None

    def _cells(self, x: torch.Tensor, state: State | None) -> tuple[torch.Tensor, State]:
        """One position through every layer: x (B, E) -> the top layer's h (B, H) and the new state.

        Runs the cell functions on the RNN module's own weights, as the module does, because a
        length-one call of the fused module costs several times as much per position.
        """
        rnn, lstm = self.rnn, isinstance(self.rnn, nn.LSTM)
        # The cell functions are not autocast: they run in the weights' dtype, whatever dtype autocast
        # gave the input and the bridged initial state.
        x = x.to(rnn.weight_ih_l0.dtype)
        if state is None:
            zeros = x.new_zeros(rnn.num_layers, x.shape[0], rnn.hidden_size)
            state = (zeros, zeros) if lstm else zeros
        state = tuple(s.to(x.dtype) for s in state) if lstm else state.to(x.dtype)
        hs, cs = [], []
        for layer in range(rnn.num_layers):
            if layer:  # the module's dropout between layers
                x = F.dropout(x, rnn.dropout, self.training)
            weights = [getattr(rnn, f"{name}_l{layer}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            if lstm:
                x, c = torch.lstm_cell(x, (state[0][layer], state[1][layer]), *weights)
                cs.append(c)
            else:
                x = torch.gru_cell(x, state[layer], *weights)
            hs.append(x)
        return x, ((torch.stack(hs), torch.stack(cs)) if lstm else torch.stack(hs))

    def _initial_state(self, memory: dict | None) -> State | None:
        return None if memory is None else self.bridge(memory["summary"])  # None: zeros

    def _logits(self, h: torch.Tensor, memory: dict | None) -> torch.Tensor:
        """h (B, T, H) -> logits (B, T, V), attending to the memory when there is one."""
        if memory is not None:
            a = self.attention(h, memory["states"], memory["mask"])  # (B, T, D)
            h = torch.tanh(self.combine(torch.cat([h, a], dim=-1)))  # (B, T, H)
        return self.out(self.proj(self.drop(h))).float()  # (B, T, V), float32 under autocast too
