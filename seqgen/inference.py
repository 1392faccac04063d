"""Using a trained model: evaluate it on a split or a file (`seqgen eval`), decode from it
(`seqgen generate`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import torch
from accelerate import Accelerator

from seqgen.config import DecodeConfig, RunConfig, load_config
from seqgen.data import decode, load_data, load_tokenizer
from seqgen.data.batch import Context
from seqgen.data.batching import pad
from seqgen.data.images import load_pixels
from seqgen.data.sources import SYNTHETIC
from seqgen.errors import UserError
from seqgen.evaluate import EvalResult, evaluate
from seqgen.models import exported_step, load_generator, read_model_info
from seqgen.processes import make_accelerator
from seqgen.run_folder import RECIPE_FILE
from seqgen.sampling import generate

GENERATE_CHUNK = 256
"""Sequences `seqgen generate` decodes at once."""
SOURCE_BY_SUFFIX = {".json": "json", ".jsonl": "jsonl", ".csv": "csv", ".parquet": "parquet"}


def resolve(path: str | Path) -> tuple[Path, Path | None]:
    """The exported model folder and the run folder (None for a bare model) that `path` names."""
    path = Path(path)
    if (path / RECIPE_FILE).is_file():
        if not (path / "model" / "seqgen.json").is_file():
            raise UserError(f"the run in {path} has no exported model yet (no {path / 'model'})")
        return path / "model", path
    if (path / "seqgen.json").is_file():
        return path, path.parent if (path.parent / RECIPE_FILE).is_file() else None
    raise UserError(f"{path} is neither a seqgen run folder nor an exported model folder")


def run_config(path: str | Path, overrides: list[str] = (), data: str | None = None,
               split: str = "test") -> tuple[RunConfig, Path]:
    """The recipe a model was trained with (or defaults that fit it), pointed at `data` if given."""
    model_dir, run_dir = resolve(path)
    model_cfg, _, task, image_size = read_model_info(model_dir)
    if run_dir is not None:
        cfg = load_config(run_dir / RECIPE_FILE, overrides)
    else:
        if data is None:
            raise UserError(f"{model_dir} has no recipe beside it: pass --data FILE to evaluate on")
        cfg = load_config(None, [f"task={task}", *overrides])
        cfg.model = model_cfg
        cfg.data.image_size = image_size
    if data is not None:
        suffix = Path(data.replace("{lang}", cfg.data.source_lang)).suffix
        default = "parallel" if task == "translation" else ("images" if task == "captioning" else "text")
        source = SOURCE_BY_SUFFIX.get(suffix, default)
        if cfg.data.source in (*SYNTHETIC, "hub") or run_dir is None:
            cfg.data = dataclasses.replace(cfg.data, source=source, validation_fraction=None)
        # the file is evaluated whole: nothing of it is held out as a validation split
        cfg.data = dataclasses.replace(cfg.data, **{split: data}, validation_fraction=None)
    return cfg, model_dir


def recipe_decode_length(path: str | Path, default: int = 64) -> int:
    """The `decode.max_new_tokens` of the run that `path` belongs to (`default` for a bare model)."""
    _, run_dir = resolve(path)
    return load_config(run_dir / RECIPE_FILE).decode.max_new_tokens if run_dir else default


def evaluate_model(path: str | Path, *, split: str = "test", data: str | None = None,
                   bleu: bool | None = None, quality: bool = True, two_sample: bool | None = None,
                   overrides: list[str] = (), accelerator: Accelerator | None = None
                   ) -> tuple[EvalResult, Path]:
    """Evaluate a run's exported model (or a bare model on `data`) on one split: likelihood, decoded
    outputs and, unless `quality` is False, sample quality (see `seqgen.evaluate`).

    Args:
        path: a run folder or an exported model folder.
        split: the split to evaluate.
        data: a file to evaluate instead of the recipe's split.
        bleu: decode and score with sacrebleu (None: for translation and captioning).
        quality: sample-quality metrics.
        two_sample: the classifier two-sample test (None: the recipe's `eval.two_sample_test`).
        overrides: recipe overrides (`decode.beam_size=5`, `eval.num_samples=2000`, ...).
        accelerator: shards the work across processes under `accelerate launch` (default: a new one).

    Returns:
        The result and the folder the metrics belong to (the run folder, or the model folder).
    """
    cfg, model_dir = run_config(path, overrides, data, split)
    accelerator = accelerator or make_accelerator()
    tokenizer, _ = load_tokenizer(model_dir / "tokenizer.json")
    with accelerator.main_process_first():  # one process fills the datasets cache, the others read it
        task_data = load_data(cfg, tokenizer, splits=(split,))
    if split not in task_data.splits:
        raise UserError(f"the recipe names no {split} data; pass --data FILE or --split")
    model, *_ = load_generator(model_dir)
    model.to(accelerator.device)
    result = evaluate(model, task_data, split, cfg, accelerator, bleu=bleu, quality=quality,
                      two_sample=two_sample, seed=cfg.seed)
    result.checkpoint = checkpoint_of(model_dir)
    return result, Path(path)


def checkpoint_of(model_dir: Path) -> dict[str, object]:
    """The exported model folder measured and the training step its weights are from (None when the
    folder does not record it)."""
    return {"path": str(model_dir), "step": exported_step(model_dir)}


@torch.no_grad()
def generate_texts(path: str | Path, decode_cfg: DecodeConfig, *, n: int = 10,
                   inputs: list[str] | None = None, seed: int = 0) -> Iterator[str]:
    """Decode `n` samples (language model) or one output per input (source sentence or image path),
    `GENERATE_CHUNK` at a time, each line as soon as its chunk is decoded (so any `n` fits in memory).
    The samples of a chunk come from one random stream seeded by `seed`, continued from chunk to chunk."""
    model_dir, _ = resolve(path)
    model, _, task, image_size = load_generator(model_dir)
    tokenizer, vocab = load_tokenizer(model_dir / "tokenizer.json")
    rng = torch.Generator().manual_seed(seed)
    if task == "lm":
        if inputs:
            raise UserError("a language model takes no --input")
        for start in range(0, n, GENERATE_CHUNK):
            rows = generate(model, decode_cfg, num_sequences=min(GENERATE_CHUNK, n - start), rng=rng)
            yield from (decode(tokenizer, ids.tolist()) for ids in rows)
        return
    if not inputs:
        raise UserError(f"a {task} model needs --input (source sentences or image paths, one per line)")
    for start in range(0, len(inputs), GENERATE_CHUNK):
        lines = inputs[start:start + GENERATE_CHUNK]
        if task == "translation":
            # The same source layout as the data pipeline's collate: ids, EOS, right padding.
            source, source_mask = pad([tokenizer(line, add_special_tokens=False)["input_ids"] + [vocab.eos_id]
                                       for line in lines], vocab.pad_id)
            context = Context(source=source, source_mask=source_mask)
        else:
            context = Context(pixels=torch.stack([load_pixels(path, image_size) for path in lines]))
        outs = generate(model, decode_cfg, context=context, rng=rng)
        yield from (f"{src}\t{decode(tokenizer, o.tolist())}" for src, o in zip(lines, outs))
