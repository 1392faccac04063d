"""Critics D(c, x) = sigmoid(logit) over relaxed token sequences, for JS_π adversarial training.

Every critic reads a sequence as (B, T, V) probability vectors (one-hot, straight-through or soft
Gumbel-softmax samples of the generator) multiplied by its own embedding matrix, so the gradient of
its logit reaches every generator step; real data may come as (B, T) ids, which are looked up and
give exactly the one-hot result. The pipeline is the same for every kind:

    x   = tokens @ E, zeroed where mask is False      (B, T, D)   one per embedding matrix
    h   = features(x, mask)                          (B, F)      CNN / RNN / Transformer
    h   = [h; context_features(c)]                   (B, F + C)  translation, captioning
    out = head(h)                                    (B,)        logits, averaged over matrices

Masked positions (padding, positions after a rollout's first EOS) never influence the logit: their
embeddings are zeroed and every pooling reads unmasked positions only. A conditional critic joins
the sequence and context features through a hidden layer, so that its logit is not a sum of a
sequence score and a context score, which could not judge whether the two fit together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm
from transformers import BertConfig, BertModel

from seqgen.data.batch import Context
from seqgen.errors import UserError
from seqgen.models.base import embed
from seqgen.models.encoders import RNNS, ConvEncoder
from seqgen.randomness import Source, uniform

TASKS = ("lm", "translation", "captioning")


class Critic(nn.Module):
    """The shared pipeline; subclasses define `features`.

    Args:
        vocab_size: V.
        task: "lm", "translation" (the context is source ids) or "captioning" (image pixels).
        embedding_dim: D, the width of each embedding matrix.
        feature_dim: F, the width of what `features` returns.
        hidden_dim: width of the context features and of the conditional head's hidden layer.
        dropout: dropout before the output layer.
        num_representations: embedding matrices (RelGAN's multiple representations); the
            features and head are shared, the logits averaged.
    """

    def __init__(self, vocab_size: int, *, task: str, embedding_dim: int, feature_dim: int, hidden_dim: int,
                 dropout: float, num_representations: int) -> None:
        super().__init__()
        if task not in TASKS:
            raise UserError(f"unknown critic task {task!r}; choose from {', '.join(TASKS)}")
        self.task = task
        self.embeddings = nn.ModuleList(nn.Embedding(vocab_size, embedding_dim)
                                        for _ in range(num_representations))
        self.context_encoder: nn.Module | None = None
        if task == "translation":
            self.context_encoder = nn.Sequential(nn.Linear(embedding_dim, hidden_dim), nn.Tanh())
        elif task == "captioning":
            self.context_encoder = ConvEncoder(hidden_dim)
        if self.context_encoder is None:
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(feature_dim, 1))
        else:
            self.head = nn.Sequential(nn.Linear(feature_dim + hidden_dim, hidden_dim), nn.ReLU(),
                                      nn.Dropout(dropout), nn.Linear(hidden_dim, 1))

    def features(self, x: Tensor, mask: Tensor) -> Tensor:
        """Sequence features.

        Args:
            x: (B, T, D) embeddings, zero at masked positions.
            mask: (B, T) bool, True on positions to read.

        Returns:
            (B, F) features that do not depend on masked positions.
        """
        raise NotImplementedError

    def forward(self, tokens: Tensor, mask: Tensor, context: Context | None = None) -> Tensor:
        """Score sequences (and their contexts).

        Args:
            tokens: (B, T, V) float probability vectors, or (B, T) long ids.
            mask: (B, T) bool, False on padding and after the first EOS.
            context: B contexts for translation/captioning critics; None for language modelling.

        Returns:
            (B,) float32 logits; D = sigmoid(logit) is the probability that a sequence came from the data.
        """
        mask = mask.to(torch.bool)
        context_features = self._context_features(context)
        logits = []
        for embedding in self.embeddings:
            x = embed(tokens, embedding.weight) * mask[..., None]  # (B, T, D)
            h = self.features(x, mask)  # (B, F)
            if context_features is not None:
                h = torch.cat([h, context_features], dim=-1)
            logits.append(self.head(h).squeeze(-1))
        return torch.stack(logits).float().mean(0)  # float32 under autocast too, as the losses need

    def _context_features(self, context: Context | None) -> Tensor | None:
        """(B, hidden_dim) context features, or None for a language-model critic."""
        if self.task == "lm":
            if context is not None:
                raise ValueError("a language-model critic takes no context")
            return None
        if self.task == "translation":
            if context is None or context.source is None:
                raise ValueError("a translation critic needs Context.source")
            source_mask = (context.source_mask if context.source_mask is not None
                           else torch.ones_like(context.source, dtype=torch.bool))
            return self.context_encoder(masked_mean(self.embeddings[0](context.source), source_mask))
        if context is None or context.pixels is None:
            raise ValueError("a captioning critic needs Context.pixels")
        return self.context_encoder(context.pixels)["summary"]


class Highway(nn.Module):
    """One highway layer: h' = t * relu(W h) + (1 - t) * h, t = sigmoid(W_t h) (SeqGAN's critic)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.transform = nn.Linear(dim, dim)
        self.gate = nn.Linear(dim, dim)

    def forward(self, h: Tensor) -> Tensor:
        gate = torch.sigmoid(self.gate(h))
        return gate * torch.relu(self.transform(h)) + (1 - gate) * h


class CNNCritic(Critic):
    """SeqGAN/RelGAN's critic: convolutions of several window widths, max over time, highway layers.

    Window w at position t covers positions t-w+1..t (zeros before the start), so every unmasked
    token lies in a window that is pooled, however short the sequence.

    Args:
        window_sizes: convolution widths, `hidden_dim` filters each.
        num_layers: highway layers.
        Others: see `Critic`.
    """

    def __init__(self, vocab_size: int, *, task: str = "lm", embedding_dim: int = 64, hidden_dim: int = 128,
                 num_layers: int = 1, dropout: float = 0.0, num_representations: int = 1,
                 window_sizes: Sequence[int] = (2, 3, 4, 5)) -> None:
        feature_dim = hidden_dim * len(window_sizes)
        super().__init__(vocab_size, task=task, embedding_dim=embedding_dim, feature_dim=feature_dim,
                         hidden_dim=hidden_dim, dropout=dropout, num_representations=num_representations)
        self.convs = nn.ModuleList(nn.Conv1d(embedding_dim, hidden_dim, w) for w in window_sizes)
        self.highways = nn.Sequential(*(Highway(feature_dim) for _ in range(num_layers)))

    def features(self, x: Tensor, mask: Tensor) -> Tensor:
        x = x.transpose(1, 2)  # (B, D, T)
        pooled = []
        for conv in self.convs:
            h = torch.relu(conv(nn.functional.pad(x, (conv.kernel_size[0] - 1, 0))))  # (B, F, T)
            pooled.append(masked_max(h.transpose(1, 2), mask))  # (B, F)
        return self.highways(torch.cat(pooled, dim=-1))


class RNNCritic(Critic):
    """An LSTM/GRU over the sequence; features are its output at the true length or the masked mean.

    The RNN reads left to right and masks are prefixes (True, then False), so neither pooling sees
    what follows the last unmasked position.

    Args:
        cell: "lstm" or "gru".
        pooling: "last" (output at the last unmasked position) or "mean" (over unmasked positions).
        num_layers: stacked RNN layers (dropout between them).
        Others: see `Critic`.
    """

    def __init__(self, vocab_size: int, *, task: str = "lm", embedding_dim: int = 64, hidden_dim: int = 128,
                 num_layers: int = 1, dropout: float = 0.0, num_representations: int = 1, cell: str = "gru",
                 pooling: str = "last") -> None:
        super().__init__(vocab_size, task=task, embedding_dim=embedding_dim, feature_dim=hidden_dim,
                         hidden_dim=hidden_dim, dropout=dropout, num_representations=num_representations)
        self.rnn = RNNS[cell](embedding_dim, hidden_dim, num_layers, batch_first=True,
                              dropout=dropout if num_layers > 1 else 0.0)
        self.pooling = pooling

    def features(self, x: Tensor, mask: Tensor) -> Tensor:
        out, _ = self.rnn(x)  # (B, T, H)
        if self.pooling == "mean":
            return masked_mean(out, mask)
        last = (mask.sum(1) - 1).clamp(min=0)  # (B,) index of the last unmasked position
        return out[torch.arange(out.shape[0], device=out.device), last]


class TransformerCritic(Critic):
    """A small bidirectional Transformer encoder (`transformers`' BertModel built from a config) fed
    `inputs_embeds` and the attention mask; features are the masked mean of its last hidden states.

    BERT's own word embeddings are never read (the critic embeds the tokens itself), so they are
    a single row.

    Args:
        hidden_dim: the encoder's width (embeddings are projected to it when embedding_dim differs).
        num_layers: encoder layers.
        num_attention_heads: attention heads (must divide hidden_dim).
        max_positions: longest sequence the critic reads (size of its position embeddings).
        Others: see `Critic`.
    """

    def __init__(self, vocab_size: int, *, task: str = "lm", embedding_dim: int = 64, hidden_dim: int = 128,
                 num_layers: int = 1, dropout: float = 0.0, num_representations: int = 1,
                 num_attention_heads: int = 4, max_positions: int = 512) -> None:
        super().__init__(vocab_size, task=task, embedding_dim=embedding_dim, feature_dim=hidden_dim,
                         hidden_dim=hidden_dim, dropout=dropout, num_representations=num_representations)
        self.proj = nn.Linear(embedding_dim, hidden_dim) if embedding_dim != hidden_dim else nn.Identity()
        config = BertConfig(vocab_size=1, pad_token_id=0, hidden_size=hidden_dim,
                            num_hidden_layers=num_layers, num_attention_heads=num_attention_heads, intermediate_size=4 * hidden_dim,
                            max_position_embeddings=max_positions, type_vocab_size=1,
                            hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
        self.encoder = BertModel(config, add_pooling_layer=False)
        self.max_positions = max_positions

    def features(self, x: Tensor, mask: Tensor) -> Tensor:
        if x.shape[1] > self.max_positions:
            raise UserError(f"sequence of {x.shape[1]} positions exceeds the critic's max_positions="
                            f"{self.max_positions}")
        hidden = self.encoder(inputs_embeds=self.proj(x), attention_mask=mask.long()).last_hidden_state
        return masked_mean(hidden, mask)


CRITICS: dict[str, type[Critic]] = {"cnn": CNNCritic, "rnn": RNNCritic, "transformer": TransformerCritic}


@dataclass
class CriticConfig:
    """The critic of adversarial training (`objective.critic`); each key is the `build_critic` argument
    of the same name."""

    kind: Literal["cnn", "rnn", "transformer", "oracle"] = "cnn"
    """The architecture; it reads (relaxed) token sequences through its own embedding matrix. `oracle`
    (enumerable toy data only): the optimal critic D* = πP / (πP + (1 - π)Q), computed exactly from the
    toy's P and the generator's current Q, with nothing to train."""
    embedding_dim: int = 64
    """Width of the critic's embedding matrices."""
    hidden_dim: int = 128
    """Filters per window width (cnn), RNN size, or Transformer width; also the context's width."""
    num_layers: int = 1
    """Highway layers (cnn), RNN layers, or Transformer layers."""
    dropout: float = 0.0
    """Dropout probability."""
    spectral_norm: bool = False
    """Spectrally normalise every linear and convolution weight (one power iteration per training forward)."""
    num_representations: int = 1
    """Embedding matrices whose logits are averaged (RelGAN's multiple representations)."""
    window_sizes: list[int] = field(default_factory=lambda: [2, 3, 4, 5])
    """cnn: convolution widths."""
    cell: Literal["lstm", "gru"] = "gru"
    """rnn: the recurrent cell."""
    pooling: Literal["last", "mean"] = "last"
    """rnn: features of the last position, or the mean over positions."""
    num_attention_heads: int = 4
    """transformer: attention heads (must divide hidden_dim)."""
    max_positions: int = 512
    """transformer: longest sequence it reads."""

    def __post_init__(self) -> None:
        sizes = {"embedding_dim": self.embedding_dim, "hidden_dim": self.hidden_dim, "num_layers": self.num_layers,
                 "num_representations": self.num_representations, "num_attention_heads": self.num_attention_heads,
                 "max_positions": self.max_positions}
        for name, value in sizes.items():
            if value < 1:
                raise UserError(f"objective.critic.{name} must be >= 1, got {value}")
        if not 0 <= self.dropout < 1:
            raise UserError(f"objective.critic.dropout must be in [0, 1), got {self.dropout}")
        if not self.window_sizes or min(self.window_sizes) < 1:
            raise UserError(f"objective.critic.window_sizes must be widths >= 1, got {self.window_sizes}")
        if self.kind == "transformer" and self.hidden_dim % self.num_attention_heads:
            raise UserError(f"objective.critic.hidden_dim={self.hidden_dim} is not a multiple of "
                            f"objective.critic.num_attention_heads={self.num_attention_heads}")


def build_critic(kind: str, vocab_size: int, *, task: str = "lm", embedding_dim: int = 64,
                 hidden_dim: int = 128, num_layers: int = 1, dropout: float = 0.0, spectral_norm: bool = False,
                 num_representations: int = 1, window_sizes: Sequence[int] = (2, 3, 4, 5), cell: str = "gru",
                 pooling: str = "last", num_attention_heads: int = 4, max_positions: int = 512) -> Critic:
    """A freshly initialised critic; `build_critic(vocab_size=V, task=task, **asdict(CriticConfig(...)))`
    builds the one a recipe describes (the settings are checked there).

    Args:
        kind: "cnn", "rnn" or "transformer".
        vocab_size: V, the generator's vocabulary size.
        task: "lm", "translation" or "captioning" (what context the critic reads).
        Others: see `CriticConfig`.
    """
    if kind not in CRITICS:
        raise ValueError(f"unknown critic kind {kind!r}; choose from {', '.join(CRITICS)}")
    options = {
        "cnn": {"window_sizes": tuple(window_sizes)},
        "rnn": {"cell": cell, "pooling": pooling},
        "transformer": {"num_attention_heads": num_attention_heads, "max_positions": max_positions},
    }[kind]
    critic = CRITICS[kind](vocab_size, task=task, embedding_dim=embedding_dim, hidden_dim=hidden_dim,
                           num_layers=num_layers, dropout=dropout, num_representations=num_representations,
                           **options)
    if spectral_norm:
        apply_spectral_norm(critic)
    return critic


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectrally normalise the weight of every linear and convolution layer in `module`, in place
    (one power iteration per training forward, as in Miyato et al. 2018). Returns `module`."""
    layers = [m for m in module.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]
    for layer in layers:
        _spectral_norm(layer)
    return module


def gradient_penalty(critic: nn.Module, real: Tensor, fake: Tensor, mask: Tensor,
                     context: Context | None = None, generator: Source = None) -> Tensor:
    """WGAN-GP's penalty E[(‖∇_x̂ logit(x̂)‖₂ - 1)²] at x̂ = α real + (1 - α) fake, α ~ U(0, 1) per row.

    The gradient is kept in the graph (`create_graph`), so the penalty trains the critic.

    Args:
        critic: called as critic(tokens, mask, context) -> (B,) logits.
        real: (B, T, V) float one-hot data sequences.
        fake: (B, T, V) float relaxed generator sequences (detached or not: only x̂ is differentiated).
        mask: (B, T) bool, the positions the critic reads (e.g. the union of the real and fake masks).
        context: the B contexts, for conditional critics.
        generator: the source of α (`seqgen.randomness.Source`).

    Returns:
        A scalar >= 0.
    """
    alpha = uniform((real.shape[0],), real.device, generator)[:, None, None]
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    logits = critic(mixed, mask, context)
    (grad,) = torch.autograd.grad(logits.sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of x (B, T, F) over the positions where mask (B, T) is True; zeros for an empty row."""
    weights = mask.to(x.dtype)[..., None]
    return (x * weights).sum(1) / weights.sum(1).clamp(min=1)


def masked_max(x: Tensor, mask: Tensor) -> Tensor:
    """Max of x (B, T, F) over the positions where mask (B, T) is True; zeros for an empty row."""
    pooled = x.masked_fill(~mask[..., None], torch.finfo(x.dtype).min).amax(1)
    return torch.where(mask.any(1, keepdim=True), pooled, torch.zeros_like(pooled))
