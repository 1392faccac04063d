"""Encoders and the attention that the RNN decoder reads them with.

Every encoder returns a memory: a dict of tensors with the batch first, so that the generic
`seqgen.models.base.select` reorders it for beam search:

- "states": (B, S, D) the vectors attended to (source positions or image regions);
- "mask": (B, S) bool, True on real positions, or None when every position is real (images);
- "summary": (B, D) one vector per example that the decoder's initial state is bridged from.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from seqgen.errors import UserError
from seqgen.precision import recurrent_dtype


class _Recurrent:
    """A fused RNN layer that runs in float32 where autocast would send it to a CPU primitive that
    cannot run in low precision (`seqgen.precision.recurrent_dtype`); same parameters and state dict
    as torch's layer."""

    def forward(self, input: torch.Tensor | PackedSequence, hx=None):
        dtype = recurrent_dtype(input.data if isinstance(input, PackedSequence) else input)
        if dtype is None:
            return super().forward(input, hx)
        if hx is not None:
            hx = tuple(h.to(dtype) for h in hx) if isinstance(hx, tuple) else hx.to(dtype)
        with torch.autocast("cpu", enabled=False):
            return super().forward(input.to(dtype), hx)


class LSTM(_Recurrent, nn.LSTM):
    """torch's LSTM, in float32 where low precision cannot run it."""


class GRU(_Recurrent, nn.GRU):
    """torch's GRU, in float32 where low precision cannot run it."""


RNNS = {"lstm": LSTM, "gru": GRU}


class Attention(nn.Module):
    """Luong "general" attention: score(h, m) = h^T W m, with padding masked out."""

    def __init__(self, query_dim: int, memory_dim: int) -> None:
        super().__init__()
        # Projecting the query (not the memory) costs one matmul per decoder position and lets
        # the query and memory sizes differ.
        self.query = nn.Linear(query_dim, memory_dim, bias=False)

    def forward(self, query: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Attend from every query position to the memory.

        Args:
            query: (B, T, H) decoder states.
            memory: (B, S, D) encoder states.
            mask: (B, S) bool, True on real positions, or None.

        Returns:
            (B, T, D) attention-weighted sums of the memory.
        """
        scores = self.query(query) @ memory.transpose(1, 2)  # (B, T, S)
        if mask is not None:
            # finfo.min rather than -inf: an all-padding row (empty source) gets uniform weights, not NaN.
            scores = scores.masked_fill(~mask[:, None, :], torch.finfo(scores.dtype).min)
        return scores.softmax(dim=-1) @ memory  # (B, T, D)


class Bridge(nn.Module):
    """Maps an encoder summary (B, D) to the decoder RNN's initial state."""

    def __init__(self, summary_dim: int, cell: str, num_layers: int, hidden_dim: int) -> None:
        super().__init__()
        self.num_states = 2 if cell == "lstm" else 1  # LSTM: (h, c); GRU: h
        self.num_layers, self.hidden_dim = num_layers, hidden_dim
        self.proj = nn.Linear(summary_dim, self.num_states * num_layers * hidden_dim)

    def forward(self, summary: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Args: summary (B, D). Returns: h (L, B, H) for a GRU, or (h, c) for an LSTM."""
        B = summary.shape[0]
        x = torch.tanh(self.proj(summary)).view(B, self.num_states, self.num_layers, self.hidden_dim)
        states = x.permute(1, 2, 0, 3).contiguous()  # (num_states, L, B, H)
        return (states[0], states[1]) if self.num_states == 2 else states[0]


class SourceEncoder(nn.Module):
    """An RNN over source token ids, with its own embedding.

    Source and target share the vocabulary (one tokenizer) but not the embedding vectors, since the
    two sides are different languages. Packed sequences keep padding out of every state.
    """

    def __init__(self, vocab_size: int, cell: str, embedding_dim: int, hidden_dim: int, num_layers: int,
                 dropout: float, bidirectional: bool) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.drop = nn.Dropout(dropout)
        self.rnn = RNNS[cell](embedding_dim, hidden_dim, num_layers, batch_first=True,
                              dropout=dropout if num_layers > 1 else 0.0, bidirectional=bidirectional)
        self.num_directions = 2 if bidirectional else 1
        self.dim = self.num_directions * hidden_dim

    def forward(self, source: torch.Tensor, mask: torch.Tensor | None) -> dict[str, torch.Tensor | None]:
        """Args: source (B, S) ids, right-padded; mask (B, S) bool or None. Returns: the memory dict."""
        B, S = source.shape
        if mask is None:
            mask = torch.ones_like(source, dtype=torch.bool)
        # An empty source still gets one (padding) step: packing rejects zero lengths.
        lengths = mask.sum(dim=1).clamp(min=1).cpu()  # (B,)
        x = self.drop(self.embedding(source))  # (B, S, E)
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, final = self.rnn(packed)
        states, _ = pad_packed_sequence(out, batch_first=True, total_length=S)  # (B, S, dirs*H)
        h = final[0] if isinstance(final, tuple) else final  # (layers*dirs, B, H)
        summary = h[-self.num_directions:].transpose(0, 1).reshape(B, self.dim)  # top layer, all directions
        return {"states": states, "mask": mask, "summary": summary}


class ConvEncoder(nn.Module):
    """A small convolutional net trained from scratch: three stride-2 blocks, then a projection.

    A 64x64 image becomes an 8x8 grid of `dim`-sized region vectors.
    """

    def __init__(self, dim: int, widths: tuple[int, ...] = (32, 64, 128)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for width in widths:
            # GroupNorm(1, C) normalises each image on its own: no batch statistics to keep in sync.
            layers += [nn.Conv2d(in_ch, width, 3, stride=2, padding=1), nn.GroupNorm(1, width), nn.ReLU()]
            in_ch = width
        layers.append(nn.Conv2d(in_ch, dim, 3, padding=1))
        self.net = nn.Sequential(*layers)
        self.dim = dim

    def forward(self, pixels: torch.Tensor) -> dict[str, torch.Tensor | None]:
        """Args: pixels (B, 3, H, W). Returns: the memory dict with (B, H/8 * W/8, dim) states."""
        states = self.net(pixels).flatten(2).transpose(1, 2)  # (B, h*w, C)
        return {"states": states, "mask": None, "summary": states.mean(dim=1)}


class PretrainedImageEncoder(nn.Module):
    """Any vision model of `transformers` (`AutoModel.from_pretrained`), attended through its last
    hidden states: ViT-like models give (B, N, D) tokens, convolutional ones a (B, C, h, w) map.

    The whole model is trained with the decoder. A pooling head of its own (e.g. ViT's pooler) is not
    used: the summary is the mean of the attended features.
    """

    def __init__(self, name_or_path: str, trust_remote_code: bool = False) -> None:
        super().__init__()
        from transformers import AutoModel

        try:
            self.model = AutoModel.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as e:
            raise UserError(f"cannot load image encoder {name_or_path!r}: {str(e).splitlines()[0]}") from None
        config = self.model.config
        sizes = getattr(config, "hidden_sizes", None)
        self.dim = sizes[-1] if sizes else getattr(config, "hidden_size", None)
        if self.dim is None:
            raise UserError(f"image encoder {name_or_path!r} ({type(self.model).__name__}) has neither "
                            "hidden_sizes nor hidden_size in its config: it is not a vision model")
        # Position embeddings learnt at one resolution then serve images of any size.
        accepted = inspect.signature(self.model.forward).parameters
        self.kwargs = {"interpolate_pos_encoding": True} if "interpolate_pos_encoding" in accepted else {}

    def forward(self, pixels: torch.Tensor) -> dict[str, torch.Tensor | None]:
        """Args: pixels (B, 3, H, W). Returns: the memory dict with (B, N, D) states."""
        states = self.model(pixel_values=pixels, **self.kwargs).last_hidden_state
        if states.dim() == 4:
            states = states.flatten(2).transpose(1, 2)  # (B, C, h, w) -> (B, h*w, C)
        return {"states": states, "mask": None, "summary": states.mean(dim=1)}
