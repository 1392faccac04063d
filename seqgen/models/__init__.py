"""Generators of both families behind one interface, and their save/load in `save_pretrained` style.

An exported model folder holds:
    seqgen.json        task, model config and vocabulary (what `load_generator` rebuilds from)
    tokenizer.json     the run's tokenizer
    model.safetensors  the weights (and, for `transformers` models, their own config.json, so the folder
                       also loads with transformers' `from_pretrained`)
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from seqgen.config import ModelConfig, from_dict
from seqgen.data.batch import Vocab
from seqgen.errors import UserError
from seqgen.models.base import Generator
from seqgen.models.configs import MODEL_FAMILIES, RNNConfig, TransformerConfig

__all__ = ["MODEL_FAMILIES", "Generator", "RNNConfig", "TransformerConfig", "build_generator", "exported_step", "load_generator", "read_model_info", "save_generator"]

MODEL_INFO = "seqgen.json"


def build_generator(cfg: ModelConfig, vocab: Vocab, task: str, image_size: int = 64) -> Generator:
    """A freshly initialised (or `from_pretrained`) generator of the configured family."""
    if cfg.family == "rnn":
        from seqgen.models.rnn import RNNGenerator

        return RNNGenerator(vocab, cfg, task)
    from seqgen.models.hf import build_transformer

    return build_transformer(vocab, cfg, task, image_size=image_size)


def save_generator(model: Generator, directory: str | Path, cfg: ModelConfig, task: str,
                   image_size: int = 64, step: int | None = None) -> None:
    """Write weights and `seqgen.json` into `directory` (the tokenizer is saved by the caller); `step`,
    the optimizer steps the weights were trained for, is recorded when known."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_weights(directory)
    info = {"task": task, "image_size": image_size, "vocab": dataclasses.asdict(model.vocab),
            "model": dataclasses.asdict(cfg)}
    if step is not None:
        info["step"] = step
    (directory / MODEL_INFO).write_text(json.dumps(info, indent=2), encoding="utf-8")


def read_model_info(directory: str | Path) -> tuple[ModelConfig, Vocab, str, int]:
    """The model config, vocabulary, task and image size recorded in an exported model folder."""
    path = Path(directory) / MODEL_INFO
    if not path.is_file():
        raise UserError(f"{directory} is not a seqgen model folder (no {MODEL_INFO})")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return (from_dict(ModelConfig, _own_keys(info["model"]), "model."), Vocab(**info["vocab"]),
                info["task"], int(info.get("image_size", 64)))
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise UserError(f"{path} is not a valid model description: {e}") from None


def exported_step(directory: str | Path) -> int | None:
    """The training step an exported model folder records (None: not recorded, e.g. an untrained
    export, or none readable)."""
    try:
        step = json.loads((Path(directory) / MODEL_INFO).read_text(encoding="utf-8")).get("step")
    except (OSError, ValueError, AttributeError):
        return None
    return step if isinstance(step, int) else None


def load_generator(directory: str | Path) -> tuple[Generator, ModelConfig, str, int]:
    """Rebuild an exported generator and load its weights (safetensors only).

    Returns:
        The generator (in eval mode), its config, its task and the image size it was trained on.
    """
    cfg, vocab, task, image_size = read_model_info(directory)
    # A `transformers` model is rebuilt from its own saved config, not re-initialised then overwritten.
    build_cfg = dataclasses.replace(cfg, pretrained=str(directory)) if cfg.family == "transformer" else cfg
    model = build_generator(build_cfg, vocab, task, image_size)
    model.load_weights(directory)
    return model.eval(), cfg, task, image_size


def _own_keys(model: dict) -> dict:
    """`model` without the keys of the other family: folders exported when one config held both
    families' keys (each ignored by the other) still load."""
    family = MODEL_FAMILIES.get(model.get("family", "rnn"))
    if family is None:
        return model
    own = {f.name for f in dataclasses.fields(family)}
    other = {f.name for cls in MODEL_FAMILIES.values() for f in dataclasses.fields(cls)} - own
    return {k: v for k, v in model.items() if k not in other}
