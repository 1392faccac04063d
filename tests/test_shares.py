"""Each process reads only its own rows of every global batch, and they are the rows it trains on."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, replace

import pytest
import torch

from seqgen.config import load_config
from seqgen.data import load_data
from seqgen.data.batching import Rows
from seqgen.data.shares import shares


@dataclass
class Position:
    epoch: int = 0
    batch_in_epoch: int = 0


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A generated German-English-like corpus of 600 pairs whose sides differ in length, batched by a
    token budget (batches of varied row counts and widths)."""
    root = tmp_path_factory.mktemp("corpus")
    rng = random.Random(0)
    words = [f"w{i}" for i in range(50)]
    for lang in ("de", "en"):
        lines = [" ".join(rng.choices(words, k=rng.randint(1, 14))) for _ in range(600)]
        (root / f"train.{lang}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = load_config(None, ["task=translation", "data.source=parallel", f"data.train={root}/train.{{lang}}",
                             "data.max_tokens=96"])
    data = load_data(cfg)
    return cfg, data.splits["train"], data.tokenizer


def fetched_by(monkeypatch) -> list[list[int]]:
    """The row indices of every read from the split's Arrow table from now on."""
    seen: list[list[int]] = []
    read = Rows.__getitems__

    def spy(self, indices):
        seen.append(list(indices))
        return read(self, indices)

    monkeypatch.setattr(Rows, "__getitems__", spy)
    return seen


def epoch(split, cfg, rank: int, world: int, position: Position | None = None) -> list:
    position = position or Position()
    loader = split.loader(cfg.data, shuffle=True, seed=3)
    rest = len(loader.batch_sampler) - position.batch_in_epoch
    return list(itertools.islice(shares(loader, position, rank, world), rest))


@pytest.mark.parametrize("world", [2, 3])
def test_processes_read_disjoint_rows_that_cover_the_epoch(corpus, monkeypatch, world):
    cfg, split, _ = corpus
    whole = epoch(split, cfg, 0, 1)
    fetched = []
    for rank in range(world):
        seen = fetched_by(monkeypatch)
        mine = epoch(split, cfg, rank, world)
        assert len(mine) == len(whole)
        # it read exactly the rows it holds, rows rank, rank + N, ... of each global batch (of some
        # one-row batches, none)
        assert seen == [share.local.index.tolist() for share in mine if len(share.local)]
        assert rank == 0 or any(len(share.local) == 0 for share in mine)  # the empty shares are met
        fetched.append({i for indices in seen for i in indices})
        for share, full in zip(mine, whole):
            rows = torch.arange(len(full.local))[rank::world]
            assert torch.equal(share.rows, rows) and share.total == len(full.local)
            expected = full.local.select(rows)
            assert torch.equal(share.local.tokens, expected.tokens)
            assert torch.equal(share.local.mask, expected.mask)
            assert torch.equal(share.local.context.source, expected.context.source)
            assert torch.equal(share.local.context.source_mask, expected.context.source_mask)
            assert share.local.references == expected.references
            # the objective's weights of the global batch, without its rows
            assert share.whole.num_target_tokens == full.local.num_target_tokens
            assert len(share.whole) == len(full.local)
    assert sum(len(f) for f in fetched) == len(split)  # disjoint ...
    assert set().union(*fetched) == set(range(len(split)))  # ... and covering


def test_a_resumed_position_skips_without_reading(corpus, monkeypatch):
    cfg, split, _ = corpus
    uninterrupted = epoch(split, cfg, 1, 2)
    seen = fetched_by(monkeypatch)
    resumed = epoch(split, cfg, 1, 2, Position(0, 7))
    assert len(resumed) == len(uninterrupted) - 7
    for a, b in zip(resumed, uninterrupted[7:]):
        assert torch.equal(a.local.tokens, b.local.tokens) and torch.equal(a.local.index, b.local.index)
    skipped = {i for share in uninterrupted[:7] for i in share.local.index.tolist()}
    assert seen[0] == resumed[0].local.index.tolist() and not skipped & {i for read in seen for i in read}


def test_a_batch_smaller_than_the_processes_leaves_a_process_an_empty_share(corpus):
    cfg, split, _ = corpus
    one_row = replace(cfg.data, max_tokens=None, batch_size=1)
    share = next(shares(split.loader(one_row, shuffle=False, seed=0), Position(), 1, 2))
    assert len(share.local) == 0 and share.total == 1 and len(share.rows) == 0
    assert share.local.tokens.shape[1] == share.whole.tokens.shape[1]
    assert share.local.context.source.shape[0] == 0


def test_a_following_process_maps_the_cache_without_reading_the_files(corpus, monkeypatch):
    """The main process checked the files and cached their tables; the others neither scan them nor
    tokenise them again, and get the same rows."""
    from seqgen.data import sources

    cfg, split, tokenizer = corpus

    def scan(path):
        raise AssertionError(f"{path} was read through")

    monkeypatch.setattr(sources, "scan_text", scan)
    again = load_data(cfg, tokenizer, verify=False).splits["train"]
    assert again.dataset["ids"][:] == split.dataset["ids"][:]
    assert again.dataset.cache_files == split.dataset.cache_files  # the main process's Arrow file, mapped
    with pytest.raises(AssertionError, match="read through"):
        load_data(cfg, tokenizer)
