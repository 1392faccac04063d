"""The data pipeline of every task: raw examples -> tokenizer -> tokenised splits -> batches.

    data = load_data(cfg)                    # trains (or loads) the tokenizer, tokenises every split
    loader = data.splits["train"].loader(cfg.data, shuffle=True, seed=cfg.seed)
    loader.batch_sampler.set_epoch(epoch)    # then iterate: each item is a `Batch`

A tokenised split has one row per target sentence: columns `ids` (target ids, truncated to
data.max_length, without BOS/EOS), `text` (the target), `references` (every reference of the row's
context: all captions of its image; [text] otherwise), `group` (the context's index: the image, or the
row itself), `length` (tokens the row costs a batch), `truncated`, `unknown` (its <unk> ids);
translation adds `source_ids`, captioning `image_row` (the image's row in `Split.images`, decoded when a
batch is collated).

Tokenised splits are memory-mapped Arrow files in the datasets cache: a corpus larger than memory is
read a batch's rows at a time. Under several processes the main one reads the files through and
tokenises; each process then reads only its own rows of each batch (`seqgen.data.shares`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import datasets
import pyarrow.compute as pc
import torch
from torch.utils.data import DataLoader
from transformers import PreTrainedTokenizerFast

from seqgen.config import DataConfig, RunConfig
from seqgen.data.batch import Vocab
from seqgen.data.batching import BucketBatchSampler, Collator, Rows
from seqgen.data.sources import (
    SPLITS,
    RawSplit,
    caption_list,
    check_task,
    configured_splits,
    load_raw,
    synthetic_distribution,
    synthetic_symbols,
)
from seqgen.data.tokenizer import (
    decode,
    fixed_tokenizer,
    load_tokenizer,
    save_tokenizer,
    train_tokenizer,
    vocab_of,
)
from seqgen.errors import UserError

if TYPE_CHECKING:
    from seqgen.data.synthetic.oracle import OracleLSTM
    from seqgen.data.synthetic.toy import ToyDistribution

__all__ = ["Split", "TaskData", "build_tokenizer", "decode", "load_data", "load_tokenizer", "save_tokenizer"]

logger = logging.getLogger("seqgen.data")


@dataclass
class Split:
    """One tokenised split (columns: see the module docstring)."""

    name: str
    dataset: datasets.Dataset
    task: str
    vocab: Vocab
    images: datasets.Dataset | None = None
    """Captioning: the images that `image_row` points to (see `sources.RawSplit`)."""

    def __len__(self) -> int:
        return len(self.dataset)

    def unique_contexts(self) -> Split:
        """One row per group (the first caption of each image), for decoding once per context;
        the split itself for language modelling and translation, where every row is its own group."""
        if self.task != "captioning":
            return self
        groups = self.dataset["group"][:]  # a slice reads the whole column at once
        # rows of one group are contiguous: the tokenising map expands each image in place
        keep = [i for i, g in enumerate(groups) if i == 0 or g != groups[i - 1]]
        return replace(self, dataset=self.dataset.select(keep))

    def loader(self, cfg: DataConfig, *, shuffle: bool, seed: int,
               image_size: int | None = None) -> DataLoader:
        """Batches of this split (`Batch` objects) in the main process.

        Args:
            cfg: batch_size / max_tokens (and image_size unless given).
            shuffle: reshuffle every epoch; call `loader.batch_sampler.set_epoch(epoch)` before each.
            seed: the run's seed.
            image_size: captioning image side, overriding cfg.image_size.
        """
        lengths = self.dataset.with_format("numpy", columns=["length"])["length"]
        sampler = BucketBatchSampler(lengths, batch_size=cfg.batch_size,
                                     max_tokens=cfg.max_tokens, shuffle=shuffle, seed=seed)
        collate = Collator(self.task, self.vocab, image_size or cfg.image_size, self.images)
        rows = Rows(self.dataset, ("ids", "source_ids", "image_row", "references"))
        # The loader gets a generator of its own: each new iterator draws a seed from it, and drawing
        # from the global RNG instead would shift dropout after a resume.
        return DataLoader(rows, batch_sampler=sampler, collate_fn=collate, num_workers=0,
                          generator=torch.Generator())

    def texts(self) -> list[str]:
        """The target text of every row (for language modelling: the sentences)."""
        return self.dataset["text"][:]


@dataclass
class TaskData:
    """Everything a run needs from its data."""

    task: str
    tokenizer: PreTrainedTokenizerFast
    vocab: Vocab
    splits: dict[str, Split]
    stats: dict[str, dict[str, int]]
    """Per split: examples, blank_skipped, truncated, tokens (target tokens, BOS/EOS excluded), unknown
    (of those, <unk>) and, for captioning, images."""
    distribution: ToyDistribution | OracleLSTM | None = None
    """The distribution the examples were drawn from, for synthetic language-model sources (what the
    exact and oracle metrics compare a model with); None for data from files."""


def build_tokenizer(cfg: RunConfig,
                    train: datasets.Dataset | None = None) -> tuple[PreTrainedTokenizerFast, Vocab]:
    """The run's tokenizer: fixed to a synthetic source's symbols (whatever tokenizer.kind says),
    pretrained (tokenizer.name_or_path), or trained on the training split (word or BPE; for translation
    one joint tokenizer over both sides).

    Args:
        cfg: the run's recipe.
        train: the raw training rows (`sources.load_raw`), when already loaded.

    Raises:
        UserError: a tokenizer config that does not fit the data, or bad data.
    """
    check_task(cfg)
    tc = cfg.tokenizer
    symbols = synthetic_symbols(cfg.data)
    if symbols is not None:
        tokenizer = fixed_tokenizer(symbols)
    elif tc.kind == "fixed":
        raise UserError("tokenizer.kind=fixed needs a synthetic data.source (toy, oracle or shapes)")
    elif tc.kind == "pretrained":
        if not tc.name_or_path:
            raise UserError("tokenizer.name_or_path is required for tokenizer.kind=pretrained")
        return load_tokenizer(tc.name_or_path)
    else:
        if train is None:
            if "train" not in configured_splits(cfg.data):
                raise UserError(f"data.train is required to train a {tc.kind} tokenizer")
            train = load_raw(cfg, ["train"])["train"].rows
        tokenizer = train_tokenizer(_training_texts(train), tc)
    return tokenizer, vocab_of(tokenizer)


def trains_tokenizer(cfg: RunConfig) -> bool:
    """Whether `build_tokenizer` trains the run's tokenizer on the training split (word or BPE on real
    data), rather than fixing it to a synthetic source's symbols or loading a pretrained one."""
    return cfg.tokenizer.kind in ("word", "bpe") and synthetic_symbols(cfg.data) is None


def _training_texts(raw: datasets.Dataset):
    columns = [c for c in ("source", "text", "captions") if c in raw.column_names]
    for batch in raw.select_columns(columns).iter(batch_size=1000):
        for column in columns:
            for value in batch[column]:
                yield from (t for t in caption_list(value) if t.strip())


def load_data(cfg: RunConfig, tokenizer: PreTrainedTokenizerFast | None = None,
              splits: Sequence[str] = SPLITS, *, verify: bool = True) -> TaskData:
    """Load, check and tokenise the requested splits that the config provides.

    Args:
        cfg: the run's recipe.
        tokenizer: reuse this tokenizer (resuming, evaluating an exported model); None builds one with
            `build_tokenizer`.
        splits: among "train", "validation", "test".
        verify: read the files through to check them (`sources.load_raw`); False in the processes that
            follow the one that just did, and read its cache.

    Raises:
        UserError: bad data or config (one line naming the problem).
    """
    raw = load_raw(cfg, splits, verify=verify)
    if tokenizer is None:
        tokenizer, vocab = build_tokenizer(cfg, raw["train"].rows if "train" in raw else None)
    else:
        vocab = vocab_of(tokenizer)
    parts, stats = {}, {}
    for name, part in raw.items():
        parts[name], stats[name] = _tokenize(part, name, cfg, tokenizer, vocab)
    return TaskData(cfg.task, tokenizer, vocab, parts, stats, synthetic_distribution(cfg.data))


def _tokenize(part: RawSplit, name: str, cfg: RunConfig, tokenizer: PreTrainedTokenizerFast,
              vocab: Vocab) -> tuple[Split, dict[str, int]]:
    raw = part.rows
    features = {"group": datasets.Value("int64"), "text": datasets.Value("string"),
                "references": datasets.List(datasets.Value("string")),
                "ids": datasets.List(datasets.Value("int32")),
                "length": datasets.Value("int32"), "truncated": datasets.Value("bool"),
                "unknown": datasets.Value("int32")}
    if cfg.task == "translation":
        features["source_ids"] = datasets.List(datasets.Value("int32"))
    if cfg.task == "captioning":
        features["image_row"] = datasets.Value("int64")
    rows = raw.map(_encode, batched=True, with_indices=True, remove_columns=raw.column_names,
                   features=datasets.Features(features), desc=f"tokenising {name}",
                   fn_kwargs={"tokenizer": tokenizer, "task": cfg.task, "max_length": cfg.data.max_length,
                              "unk_id": vocab.unk_id})
    if cfg.task == "captioning":
        inputs = sum(len(caption_list(c)) for c in raw["captions"][:])
    else:
        inputs = len(raw)
    stats = {"examples": len(rows), "blank_skipped": inputs - len(rows), **_counts(rows)}
    split = Split(name, rows, cfg.task, vocab, part.images)
    if cfg.task == "captioning":
        stats["images"] = len(split.unique_contexts())
    if not len(rows):
        raise UserError(f"the {name} split has no non-blank examples")
    logger.info("%s: %d examples, %d tokens; %d blank skipped; %d truncated to data.max_length=%d",
                name, stats["examples"], stats["tokens"], stats["blank_skipped"], stats["truncated"],
                cfg.data.max_length)
    _warn_if_mostly_lost(name, stats, vocab, cfg.data.max_length)
    return split, stats


def _counts(rows: datasets.Dataset) -> dict[str, int]:
    """truncated (rows), tokens and unknown (target tokens, BOS/EOS excluded) of a tokenised split, summed
    over its Arrow columns a slice at a time: the token count reads the ids' offsets, not the ids, so a
    corpus is counted without being read or held."""
    counts = {"truncated": 0, "tokens": 0, "unknown": 0}
    columns = ["ids", "truncated", "unknown"]
    for part in rows.select_columns(columns).with_format("arrow").iter(batch_size=100_000):
        counts["truncated"] += pc.sum(part.column("truncated")).as_py() or 0
        counts["tokens"] += pc.sum(pc.list_value_length(part.column("ids"))).as_py() or 0
        counts["unknown"] += pc.sum(part.column("unknown")).as_py() or 0
    return counts


def _warn_if_mostly_lost(name: str, stats: dict[str, int], vocab: Vocab, max_length: int) -> None:
    """Warn when most of a split's sentences are cut by data.max_length, or most of its tokens are
    unknown to the vocabulary: the run would then learn little of the text it was given."""
    if stats["truncated"] * 2 > stats["examples"]:
        logger.warning("data.max_length=%d truncates %d of the %d %s sentences; raise it to keep them whole",
                       max_length, stats["truncated"], stats["examples"], name)
    unknown = stats["unknown"]
    if stats["tokens"] and unknown * 2 > stats["tokens"]:
        logger.warning("%d%% of the %s tokens are unknown to the vocabulary of %d (<unk>); raise "
                       "tokenizer.vocab_size or lower tokenizer.min_frequency", round(100 * unknown / stats["tokens"]),
                       name, vocab.size)


def _encode(batch: dict[str, list], indices: list[int], tokenizer: PreTrainedTokenizerFast, task: str,
            max_length: int, unk_id: int) -> dict[str, list]:
    """Tokenise a batch of raw rows (`datasets.map`, batched): skip blank rows (a translation pair
    with either side blank), expand each image into one row per caption, truncate."""
    out: dict[str, list] = {"group": [], "text": [], "references": []}
    if task == "captioning":
        out["image_row"] = []
        for group, image_row, value in zip(indices, batch["image_row"], batch["captions"]):
            captions = [c.strip() for c in caption_list(value) if c.strip()]
            for caption in captions:
                out["group"].append(group)
                out["text"].append(caption)
                out["references"].append(captions)
                out["image_row"].append(image_row)
    else:
        sources = batch["source"] if task == "translation" else [None] * len(indices)
        kept_sources = []
        for group, text, source in zip(indices, batch["text"], sources):
            text, source = (text or "").strip(), (source or "").strip()
            if not text or (task == "translation" and not source):
                continue
            out["group"].append(group)
            out["text"].append(text)
            out["references"].append([text])
            kept_sources.append(source)
    out["ids"], truncated = _ids(tokenizer, out["text"], max_length)
    out["length"] = [len(ids) + 2 for ids in out["ids"]]  # BOS and EOS
    if task == "translation":
        out["source_ids"], source_truncated = _ids(tokenizer, kept_sources, max_length)
        truncated = [a or b for a, b in zip(truncated, source_truncated)]
        out["length"] = [max(n, len(s) + 1) for n, s in zip(out["length"], out["source_ids"])]  # + EOS
    out["truncated"] = truncated
    out["unknown"] = [ids.count(unk_id) for ids in out["ids"]]
    return out


def _ids(tokenizer: PreTrainedTokenizerFast, texts: list[str],
         max_length: int) -> tuple[list[list[int]], list[bool]]:
    """Ids of each text cut to max_length, and whether it was cut."""
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    return [ids[:max_length] for ids in encoded], [len(ids) > max_length for ids in encoded]
