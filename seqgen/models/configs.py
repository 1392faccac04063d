"""The recipe sections of the two model families (`model.family` picks one; its keys follow).

They live apart from the models so that reading a recipe does not import `transformers`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from seqgen.config import ModelConfig
from seqgen.errors import UserError


def _check_dropout(dropout: float) -> None:
    if not 0.0 <= dropout < 1.0:
        raise UserError(f"model.dropout must be in [0, 1), got {dropout}")


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise UserError(f"model.{name} must be >= 1, got {value}")


@dataclass
class RNNConfig(ModelConfig):
    """An LSTM/GRU decoder (with a source or image encoder for translation and captioning)."""

    family: Literal["rnn"] = "rnn"
    """`rnn`: torch LSTM/GRU decoders."""
    cell: Literal["lstm", "gru"] = "lstm"
    """RNN cell of decoder and encoder."""
    embedding_dim: int = 128
    """Token embedding size."""
    hidden_dim: int = 256
    """Hidden size of the decoder (and of each direction of the encoder)."""
    num_layers: int = 1
    """Stacked layers in the decoder and the encoder."""
    dropout: float = 0.0
    """Dropout on embeddings, between layers and before the output layer."""
    tie_embeddings: bool = True
    """Share the input embedding and output projection (with an extra projection when hidden_dim !=
    embedding_dim)."""
    bidirectional_encoder: bool = True
    """Translation: run the source encoder in both directions."""
    image_encoder: str = "cnn"
    """Captioning: `cnn` (a small convolutional net trained from scratch) or the name/path of any vision
    model in `transformers` (its last feature map is attended to)."""
    trust_remote_code: bool = False
    """Allow `from_pretrained` of the image encoder to run code from the model's repository."""

    def __post_init__(self) -> None:
        _check_dropout(self.dropout)
        _check_positive(embedding_dim=self.embedding_dim, hidden_dim=self.hidden_dim, num_layers=self.num_layers)


@dataclass
class TransformerConfig(ModelConfig):
    """A model from `transformers`: built from a config, or `from_pretrained`."""

    family: Literal["transformer"] = "transformer"
    """`transformer`: a model from `transformers`."""
    arch: Literal["gpt2", "bart", "marian", "t5"] = "gpt2"
    """Built from a config: `gpt2` (causal LM; also the captioning decoder) or an encoder-decoder for
    translation (`bart`, `marian`, `t5`)."""
    vision_arch: Literal["vit", "convnext", "resnet"] = "vit"
    """Captioning: the image encoder of the VisionEncoderDecoderModel."""
    pretrained: str | None = None
    """`from_pretrained` this name or path instead of building from a config."""
    vision_pretrained: str | None = None
    """Captioning: `from_pretrained` this image encoder."""
    num_hidden_layers: int = 2
    """Built from a config: layers (of the decoder, and of the encoder for encoder-decoders)."""
    hidden_size: int = 128
    """Built from a config: model width."""
    num_attention_heads: int = 4
    """Built from a config: attention heads."""
    max_positions: int = 128
    """Built from a config: longest sequence it can take."""
    patch_size: int = 8
    """Captioning with ViT: image patch size."""
    dropout: float = 0.0
    """Built from a config: its dropout probabilities (residual, embedding, attention)."""
    config_overrides: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments passed to the `transformers` config as they are."""
    trust_remote_code: bool = False
    """Allow `from_pretrained` to run code from the model's repository."""

    def __post_init__(self) -> None:
        _check_dropout(self.dropout)
        _check_positive(num_hidden_layers=self.num_hidden_layers, hidden_size=self.hidden_size,
                        num_attention_heads=self.num_attention_heads, max_positions=self.max_positions,
                        patch_size=self.patch_size)
        if self.pretrained is None and self.hidden_size % self.num_attention_heads:
            raise UserError(f"model.hidden_size={self.hidden_size} is not divisible by "
                            f"model.num_attention_heads={self.num_attention_heads}")


MODEL_FAMILIES: dict[str, type[ModelConfig]] = {"rnn": RNNConfig, "transformer": TransformerConfig}
