"""Transformer generators: `transformers` models behind the Generator interface.

- lm: a causal LM (GPT-2 from a config, or any `AutoModelForCausalLM` checkpoint);
- translation: an encoder-decoder (BART/Marian/T5 from a config, or any `AutoModelForSeq2SeqLM`);
- captioning: a `VisionEncoderDecoderModel`, a ViT/ConvNeXt/ResNet image encoder with a GPT-2 decoder
  that cross-attends to its features.

The adapters always embed the decoder inputs themselves and pass `inputs_embeds`: ids through the
model's own embedding module, probability vectors through the same matrix as a product, times the
module's `embed_scale` when it has one (BART-style scaled embeddings). Marian-style models scale
`inputs_embeds` inside the decoder, so both paths are scaled alike. Hence ids and their one-hot
vectors give identical logits for every architecture.

`step` runs the model on its own key/value cache (`DynamicCache`, or `EncoderDecoderCache` when the
decoder cross-attends). transformers grows a cache in place, so `step` and `select_state` work on a
shallow copy: a state handed out stays valid, and rollouts may branch from it.
"""

from __future__ import annotations

import copy
import inspect
from abc import abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from transformers import (
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    BartConfig,
    BartForConditionalGeneration,
    ConvNextConfig,
    GPT2Config,
    GPT2LMHeadModel,
    MarianConfig,
    MarianMTModel,
    PreTrainedConfig,
    PreTrainedModel,
    ResNetConfig,
    T5Config,
    T5ForConditionalGeneration,
    VisionEncoderDecoderModel,
    ViTConfig,
)
from transformers.cache_utils import Cache, EncoderDecoderCache
from transformers.modeling_outputs import BaseModelOutput
from transformers.utils import logging as hf_logging

from seqgen.data.batch import Context, Vocab
from seqgen.errors import UserError
from seqgen.models.base import Generator, embed
from seqgen.models.configs import TransformerConfig

# Modules of an image encoder that only feed its pooled output, which captioning never reads.
_POOLING_ONLY = {"vit": "pooler", "convnext": "layernorm"}


@dataclass
class EncoderMemory:
    """What the decoder cross-attends to.

    Attributes:
        hidden: (B, S, D) encoder states (image features are flattened to S = h * w positions).
        mask: (B, S) bool, True on real source tokens; None attends to every position.
    """

    hidden: torch.Tensor
    mask: torch.Tensor | None = None

    def select(self, index: torch.Tensor) -> EncoderMemory:
        index = index.to(self.hidden.device)
        return EncoderMemory(self.hidden.index_select(0, index),
                             None if self.mask is None else self.mask.index_select(0, index))


@dataclass
class DecoderState:
    """A decoding position: the model's key/value cache and how many positions it holds."""

    cache: Cache
    position: int


def _copy_cache(cache: Cache) -> Cache:
    """A cache holding the same tensors as `cache`, so that updating one leaves the other alone."""
    if isinstance(cache, EncoderDecoderCache):
        # The constructor recomputes `is_updated` (cross-attention keys already cached) per layer.
        return EncoderDecoderCache(_copy_cache(cache.self_attention_cache),
                                   _copy_cache(cache.cross_attention_cache))
    new = copy.copy(cache)
    new.layers = [copy.copy(layer) for layer in cache.layers]
    return new


class HFGenerator(Generator):
    """A `transformers` model behind the Generator interface; subclasses say how to run it.

    Args:
        vocab: vocabulary size and special ids; the model's vocabulary is resized to `vocab.size`.
        model: the wrapped model; `save_weights` writes it with `save_pretrained`.
    """

    family = "transformer"

    def __init__(self, vocab: Vocab, model: PreTrainedModel) -> None:
        super().__init__(vocab)
        self.model = model
        self._cache_arg = _cache_name(self.decoder)

    def _cached(self, out: Any) -> Cache | None:
        """The cache a forward returned."""
        return getattr(out, self._cache_arg)

    @property
    def decoder(self) -> PreTrainedModel:
        """The part of the model that reads the target tokens."""
        return self.model

    @property
    def input_embeddings(self) -> torch.Tensor:
        return self.decoder.get_input_embeddings().weight

    def _embed(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, T) ids or (B, T, V) probabilities -> (B, T, D) decoder input embeddings."""
        module = self.decoder.get_input_embeddings()
        if not inputs.is_floating_point():
            return module(inputs)
        scale = getattr(module, "embed_scale", None)
        vectors = embed(inputs, module.weight)
        return vectors if scale is None else vectors * scale

    def _check_length(self, length: int) -> None:
        limit = getattr(self.decoder.config, "max_position_embeddings", None)
        if limit is not None and length > limit:
            raise UserError(f"sequence of {length} positions exceeds the model's {limit} (lower "
                            "data.max_length or decode.max_new_tokens, or raise model.max_positions)")

    @abstractmethod
    def _decode(self, embeds: torch.Tensor, memory: EncoderMemory | None, cache: Cache | None,
                position: int, use_cache: bool) -> tuple[torch.Tensor, Cache | None]:
        """Run the decoder on (B, T, D) embeddings after `position` cached positions.

        Returns:
            (B, T, V) logits and the updated cache (None unless use_cache).
        """

    def forward(self, inputs: torch.Tensor, memory: EncoderMemory | None = None) -> torch.Tensor:
        """Teacher-forced logits (no cache).

        Args:
            inputs: (B, T) long ids or (B, T, V) float probability vectors.
            memory: what `encode` returned (None for a language model).

        Returns:
            (B, T, V) logits.
        """
        self._check_length(inputs.shape[1])
        logits, _ = self._decode(self._embed(inputs), memory, None, 0, use_cache=False)
        return logits.float()  # float32 under autocast too: every loss and metric is computed in it

    def step(self, inputs: torch.Tensor, memory: EncoderMemory | None,
             state: DecoderState | None) -> tuple[torch.Tensor, DecoderState]:
        """One position on the key/value cache.

        Args:
            inputs: (B,) long ids or (B, V) float probability vectors.
            memory: what `encode` returned.
            state: the previous step's state, or None at the first position.

        Returns:
            (B, V) logits for the next token and the new state (`state` itself is left unchanged).
        """
        cache, position = (None, 0) if state is None else (_copy_cache(state.cache), state.position)
        self._check_length(position + 1)
        logits, cache = self._decode(self._embed(inputs[:, None]), memory, cache, position, use_cache=True)
        return logits[:, -1].float(), DecoderState(cache, position + 1)

    def select_state(self, state: DecoderState | None, index: torch.Tensor) -> DecoderState | None:
        """Rows `index` (K,) of the cache, e.g. the surviving beams; `state` is left unchanged."""
        if state is None:
            return None
        cache = _copy_cache(state.cache)
        cache.reorder_cache(index.to(self.input_embeddings.device))
        return DecoderState(cache, state.position)

    def select_memory(self, memory: EncoderMemory | None, index: torch.Tensor) -> EncoderMemory | None:
        return None if memory is None else memory.select(index)

    def save_weights(self, directory: str | Path) -> None:
        """Write config.json and model.safetensors, loadable with transformers' `from_pretrained`."""
        with _no_progress_bars():
            self.model.save_pretrained(directory)

    def load_weights(self, directory: str | Path) -> None:
        """Load the weights written by `save_weights` into this model's parameters, in place.

        transformers' own loader reads them (safetensors only), since the files may name weights
        in a checkpoint layout that it converts on loading.

        Raises:
            UserError: no loadable weights in `directory`, or they do not fit this model.
        """
        try:
            with _no_progress_bars():
                saved = type(self.model).from_pretrained(directory, use_safetensors=True)
        except (OSError, ValueError, SafetensorError) as e:
            raise UserError(f"cannot load model weights from {directory}/model.safetensors: {_first_line(e)}") from None
        try:
            self.model.load_state_dict(saved.state_dict())
        except RuntimeError as e:
            raise UserError(f"weights in {directory} do not fit this model: "
                            f"{str(e).strip().splitlines()[-1].strip()}") from None


@contextmanager
def _no_progress_bars() -> Iterator[None]:
    """Silence transformers' per-file progress bars, which a training run would print at every save."""
    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


class CausalLMGenerator(HFGenerator):
    """A decoder-only language model (`task: lm`). `encode` returns None."""

    def encode(self, context: Context | None) -> None:
        return None

    def _decode(self, embeds: torch.Tensor, memory: EncoderMemory | None, cache: Cache | None,
                position: int, use_cache: bool) -> tuple[torch.Tensor, Cache | None]:
        positions = torch.arange(position, position + embeds.shape[1], device=embeds.device)[None]
        out = self.model(inputs_embeds=embeds, position_ids=positions, use_cache=use_cache,
                         **{self._cache_arg: cache})
        return out.logits, self._cached(out)


class Seq2SeqGenerator(HFGenerator):
    """An encoder-decoder translation model; the source ids are the encoder's input_ids."""

    @property
    def decoder(self) -> PreTrainedModel:
        return self.model.get_decoder()

    def encode(self, context: Context | None) -> EncoderMemory:
        """Run the encoder once.

        Args:
            context: `source` (B, S) ids and `source_mask` (B, S) bool.

        Returns:
            (B, S, D) encoder states and the source mask.
        """
        if context is None or context.source is None:
            raise ValueError("a translation model needs Context.source")
        limit = getattr(self.model.config, "max_position_embeddings", None)
        if limit is not None and context.source.shape[1] > limit:
            raise UserError(f"source of {context.source.shape[1]} tokens exceeds the model's {limit} "
                            "positions (lower data.max_length or raise model.max_positions)")
        mask = context.source_mask
        hidden = self.model.get_encoder()(input_ids=context.source, attention_mask=mask).last_hidden_state
        return EncoderMemory(hidden, mask)

    def _decode(self, embeds: torch.Tensor, memory: EncoderMemory | None, cache: Cache | None,
                position: int, use_cache: bool) -> tuple[torch.Tensor, Cache | None]:
        out = self.model(encoder_outputs=BaseModelOutput(last_hidden_state=memory.hidden),
                         attention_mask=memory.mask, decoder_inputs_embeds=embeds, use_cache=use_cache,
                         **{self._cache_arg: cache})
        return out.logits, self._cached(out)


class CaptionGenerator(HFGenerator):
    """A `VisionEncoderDecoderModel`: an image encoder and a causal decoder with cross-attention."""

    @property
    def decoder(self) -> PreTrainedModel:
        return self.model.decoder

    def encode(self, context: Context | None) -> EncoderMemory:
        """Run the image encoder once.

        Args:
            context: `pixels` (B, 3, H, W), normalised.

        Returns:
            (B, S, D) features: a ViT's patch states, or a convolutional feature map (B, C, h, w)
            flattened to S = h * w positions; projected to the decoder width where they differ.
        """
        if context is None or context.pixels is None:
            raise ValueError("a captioning model needs Context.pixels")
        hidden = self.model.encoder(pixel_values=context.pixels).last_hidden_state
        if hidden.dim() == 4:
            hidden = hidden.flatten(2).transpose(1, 2).contiguous()
        if hasattr(self.model, "enc_to_dec_proj"):
            hidden = self.model.enc_to_dec_proj(hidden)
        return EncoderMemory(hidden)

    def _decode(self, embeds: torch.Tensor, memory: EncoderMemory | None, cache: Cache | None,
                position: int, use_cache: bool) -> tuple[torch.Tensor, Cache | None]:
        out = self.model.decoder(inputs_embeds=embeds, encoder_hidden_states=memory.hidden, use_cache=use_cache,
                                 **{self._cache_arg: cache})
        return out.logits, self._cached(out)


def _cache_name(model: PreTrainedModel) -> str:
    """The name `model.forward` takes its key/value cache by, and its output returns it by: `cache` in
    transformers releases that renamed it, `past_key_values` before (the old name warns, then goes)."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


# ---------------------------------------------------------------------------------------------------
# Building


def build_transformer(vocab: Vocab, cfg: TransformerConfig, task: str, image_size: int = 64) -> HFGenerator:
    """Build a Transformer generator from a config or `from_pretrained`.

    Args:
        vocab: vocabulary size and special ids; a pretrained vocabulary of another size is resized.
        cfg: the model recipe (`arch`, sizes, `pretrained`, `vision_arch`, `config_overrides`, ...).
        task: "lm", "translation" or "captioning".
        image_size: captioning: side of the (square) input images.

    Raises:
        UserError: an architecture that does not fit the task, inconsistent sizes, or a checkpoint
            that cannot be loaded.
    """
    if task == "lm":
        model = (_pretrained(AutoModelForCausalLM, cfg) if cfg.pretrained
                 else GPT2LMHeadModel(_gpt2_config(vocab, cfg, task)))
        generator: HFGenerator = CausalLMGenerator(vocab, model)
    elif task == "translation":
        model = _pretrained(AutoModelForSeq2SeqLM, cfg) if cfg.pretrained else _seq2seq(vocab, cfg)
        generator = Seq2SeqGenerator(vocab, model)
    elif task == "captioning":
        model = (_pretrained(VisionEncoderDecoderModel, cfg) if cfg.pretrained
                 else _captioner(vocab, cfg, image_size))
        unused = getattr(model.encoder, _POOLING_ONLY.get(model.encoder.config.model_type, ""), None)
        if unused is not None:
            # Frozen, so that distributed training does not wait for gradients that never come.
            unused.requires_grad_(False)
        generator = CaptionGenerator(vocab, model)
    else:
        raise ValueError(f"unknown task {task!r}")
    if generator.decoder.get_input_embeddings().weight.shape[0] != vocab.size:
        generator.decoder.resize_token_embeddings(vocab.size)
    return generator


def _pretrained(auto: type, cfg: TransformerConfig) -> PreTrainedModel:
    """`auto.from_pretrained(cfg.pretrained)`, with its failures turned into one-line errors."""
    try:
        return auto.from_pretrained(cfg.pretrained, trust_remote_code=cfg.trust_remote_code,
                                    **cfg.config_overrides)
    except (OSError, ValueError, TypeError) as e:
        raise UserError(f"cannot load model.pretrained={cfg.pretrained} as {auto.__name__}: "
                        f"{_first_line(e)}") from None


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _configured(cls: type[PreTrainedConfig], cfg: TransformerConfig, **kwargs: Any) -> PreTrainedConfig:
    """`cls(**kwargs)` with `cfg.config_overrides` on top, each of which must be a setting of `cls`
    (or `attn_implementation`: eager, sdpa, ...)."""
    defaults = cls()
    for key in cfg.config_overrides:
        if not hasattr(defaults, key) and key != "attn_implementation":
            raise UserError(f"model.config_overrides: {key} is not a setting of {cls.__name__}")
    return cls(**{**kwargs, **cfg.config_overrides})


def _gpt2_config(vocab: Vocab, cfg: TransformerConfig, task: str, **extra: Any) -> GPT2Config:
    if cfg.arch != "gpt2":
        raise UserError(f"model.arch={cfg.arch} is an encoder-decoder; task {task} needs model.arch=gpt2")
    return _configured(GPT2Config, cfg, vocab_size=vocab.size, n_embd=cfg.hidden_size,
                       n_layer=cfg.num_hidden_layers, n_head=cfg.num_attention_heads,
                       n_positions=cfg.max_positions, bos_token_id=vocab.bos_id,
                       eos_token_id=vocab.eos_id, pad_token_id=vocab.pad_id, resid_pdrop=cfg.dropout,
                       embd_pdrop=cfg.dropout, attn_pdrop=cfg.dropout, **extra)


def _seq2seq(vocab: Vocab, cfg: TransformerConfig) -> PreTrainedModel:
    """A BART, Marian or T5 model from a config sized by `cfg`."""
    if cfg.arch == "gpt2":
        raise UserError("model.arch=gpt2 is decoder-only; translation needs bart, marian or t5")
    d, layers, heads = cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads
    ids = dict(vocab_size=vocab.size, pad_token_id=vocab.pad_id, bos_token_id=vocab.bos_id,
               eos_token_id=vocab.eos_id, decoder_start_token_id=vocab.bos_id)
    if cfg.arch == "t5":
        return T5ForConditionalGeneration(_configured(
            T5Config, cfg, d_model=d, d_kv=d // heads, d_ff=4 * d, num_layers=layers,
            num_decoder_layers=layers, num_heads=heads, dropout_rate=cfg.dropout, **ids))
    sizes = dict(d_model=d, encoder_layers=layers, decoder_layers=layers, encoder_attention_heads=heads,
                 decoder_attention_heads=heads, encoder_ffn_dim=4 * d, decoder_ffn_dim=4 * d,
                 max_position_embeddings=cfg.max_positions, forced_eos_token_id=vocab.eos_id,
                 dropout=cfg.dropout, attention_dropout=cfg.dropout)
    if cfg.arch == "bart":
        return BartForConditionalGeneration(_configured(BartConfig, cfg, **sizes, **ids))
    # Marian checkpoints scale their embeddings by sqrt(d_model); models built here do as well.
    return MarianMTModel(_configured(MarianConfig, cfg, **sizes, **ids, scale_embedding=True))


def _image_encoder(cfg: TransformerConfig, image_size: int) -> PreTrainedModel:
    """The captioning image encoder: `vision_pretrained`, or a ViT/ConvNeXt/ResNet sized by `cfg`.

    The convolutional nets get three stages of widths d/4, d/2, d (d = hidden_size), each
    `num_hidden_layers` deep: a 64x64 image gives a 4x4 map of d-wide features.
    """
    if cfg.vision_pretrained:
        try:
            encoder = AutoModel.from_pretrained(cfg.vision_pretrained,
                                                trust_remote_code=cfg.trust_remote_code)
        except (OSError, ValueError) as e:
            raise UserError(f"cannot load model.vision_pretrained={cfg.vision_pretrained}: "
                            f"{_first_line(e)}") from None
    else:
        d, depth = cfg.hidden_size, cfg.num_hidden_layers
        widths = [max(1, d // 4), max(1, d // 2), d]
        if cfg.vision_arch == "vit":
            if image_size % cfg.patch_size:
                raise UserError(f"data.image_size={image_size} is not a multiple of "
                                f"model.patch_size={cfg.patch_size}")
            config = ViTConfig(hidden_size=d, num_hidden_layers=depth,
                               num_attention_heads=cfg.num_attention_heads, intermediate_size=4 * d,
                               image_size=image_size, patch_size=cfg.patch_size,
                               hidden_dropout_prob=cfg.dropout)
        elif cfg.vision_arch == "convnext":
            config = ConvNextConfig(hidden_sizes=widths, depths=[depth] * 3, num_stages=3,
                                    image_size=image_size)
        else:
            config = ResNetConfig(embedding_size=widths[0], hidden_sizes=widths, depths=[depth] * 3,
                                  layer_type="basic")
        encoder = AutoModel.from_config(config)
    if not hasattr(encoder.config, "hidden_size"):
        # VisionEncoderDecoderModel sizes its projection from `hidden_size`, which conv nets lack;
        # their last stage's width is what the flattened feature map carries.
        encoder.config.hidden_size = encoder.config.hidden_sizes[-1]
    return encoder


def _captioner(vocab: Vocab, cfg: TransformerConfig, image_size: int) -> VisionEncoderDecoderModel:
    encoder = _image_encoder(cfg, image_size)
    decoder = GPT2LMHeadModel(_gpt2_config(vocab, cfg, "captioning", is_decoder=True,
                                           add_cross_attention=True))
    model = VisionEncoderDecoderModel(encoder=encoder, decoder=decoder)
    model.config.decoder_start_token_id = vocab.bos_id
    model.config.pad_token_id = vocab.pad_id
    model.config.eos_token_id = vocab.eos_id
    return model

