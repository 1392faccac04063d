"""Evaluation of a generator on a split: held-out likelihood and, for conditional tasks, the BLEU and
chrF of decoded outputs. Work is sharded across processes and the sums gathered, so the numbers do
not depend on the number of processes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
from accelerate import Accelerator
from accelerate.utils import gather_object
from tqdm.auto import tqdm

from seqgen.config import DecodeConfig, RunConfig
from seqgen.data import Split, TaskData, decode
from seqgen.data.batch import Batch
from seqgen.metrics.likelihood import NLLAccumulator
from seqgen.metrics.translation import corpus_scores
from seqgen.models.base import Generator
from seqgen.sampling import generate


@dataclass
class EvalResult:
    """Metrics (`eval/...` keys), sacrebleu signatures, and a few decoded examples to show."""

    metrics: dict[str, float]
    signatures: dict[str, str] = field(default_factory=dict)
    examples: list[tuple[str, str]] = field(default_factory=list)  # (hypothesis, first reference)


def _shard(loader, accelerator: Accelerator, max_batches: int | None):
    """This process's share of an evaluation loader's batches: batch i goes to process i mod N."""
    for i, batch in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
        if i % accelerator.num_processes == accelerator.process_index:
            yield batch.to(accelerator.device)


@torch.no_grad()
def evaluate(model: Generator, data: TaskData, split: str, cfg: RunConfig, accelerator: Accelerator,
             *, bleu: bool | None = None, max_batches: int | None = None, prefix: str = "eval/",
             seed: int = 0) -> EvalResult:
    """Per-token NLL/perplexity of `split` and, when `bleu` (default: for conditional tasks), corpus
    BLEU and chrF of the outputs decoded with `cfg.decode` against every reference.

    Args:
        model: the (unwrapped) generator; it is put in eval mode and restored afterwards.
        data: the task's data; `data.splits[split]` is evaluated.
        split: split name.
        cfg: the run's config (batching and decoding).
        accelerator: for the device and for gathering across processes.
        bleu: decode and score; None decides by task (translation and captioning).
        max_batches: evaluate only the first batches (None: all).
        prefix: metric-key namespace.
        seed: seeds sampling when `cfg.decode.strategy` is `sample`.
    """
    was_training = model.training
    model.eval()
    part: Split = data.splits[split]
    nll = NLLAccumulator()
    loader = part.loader(cfg.data, shuffle=False, seed=cfg.seed)
    hide = None if accelerator.is_local_main_process else True  # None: shown on a terminal only
    for batch in tqdm(_shard(loader, accelerator, max_batches), desc=f"{split} nll", leave=False,
                      disable=hide):
        nll.add(model, batch)
    nll.merge(accelerator.reduce(nll.totals(accelerator.device), reduction="sum"))
    result = EvalResult(nll.result(prefix))

    if bleu if bleu is not None else data.task in ("translation", "captioning"):
        rng = torch.Generator(accelerator.device).manual_seed(seed)
        rows = []
        contexts = part.unique_contexts().loader(cfg.data, shuffle=False, seed=cfg.seed)
        for batch in tqdm(_shard(contexts, accelerator, max_batches), desc=f"{split} decode",
                          leave=False, disable=hide):
            rows += _decode_batch(model, batch, data, cfg.decode, rng)
        rows = sorted(gather_object(rows))  # every process's (index, hypothesis, references)
        hyps, refs = [r[1] for r in rows], [r[2] for r in rows]
        scores, result.signatures = corpus_scores(hyps, refs, prefix=prefix)
        result.metrics.update(scores)
        result.examples = [(h, r[0]) for h, r in zip(hyps, refs)]
    model.train(was_training)
    return result


def _decode_batch(model: Generator, batch: Batch, data: TaskData, cfg: DecodeConfig,
                  rng: torch.Generator) -> list[tuple[int, str, list[str]]]:
    out = generate(model, cfg, context=batch.context, rng=rng)
    return [(int(i), decode(data.tokenizer, ids.tolist()), refs)
            for i, ids, refs in zip(batch.index, out, batch.references)]


@torch.no_grad()
def sample_texts(model: Generator, data: TaskData, cfg: RunConfig, n: int, device: torch.device,
                 seed: int = 0, split: str = "validation") -> list[str]:
    """A few decoded outputs to print: unconditional samples, or outputs for the first contexts of
    `split` as `source => output`."""
    was_training = model.training
    model.eval()
    rng = torch.Generator(device).manual_seed(seed)
    if data.task == "lm":
        texts = [decode(data.tokenizer, ids.tolist())
                 for ids in generate(model, cfg.decode, num_sequences=n, rng=rng)]
    else:
        part = data.splits[split].unique_contexts()
        few = dataclasses.replace(cfg.data, batch_size=n, max_tokens=None)
        batch = next(iter(part.loader(few, shuffle=False, seed=0))).to(device)
        outs = generate(model, cfg.decode, context=batch.context, rng=rng)
        texts = [f"{_describe(data, batch, i)} => {decode(data.tokenizer, ids.tolist())}"
                 for i, ids in enumerate(outs[:n])]
    model.train(was_training)
    return texts


def _describe(data: TaskData, batch: Batch, i: int) -> str:
    if data.task == "translation":
        return decode(data.tokenizer, batch.context.source[i].tolist())
    return f"[image {int(batch.index[i])}]"
