"""The data pipeline on tiny files: every source kind, tokenizers, truncation, batching, collate, and the
one-line errors for bad input."""

from __future__ import annotations

import csv
import gzip
import importlib.util
import json
import logging
from pathlib import Path

import datasets
import pytest
import torch
from PIL import Image

from seqgen.config import load_config
from seqgen.data import Batch, build_tokenizer, decode, load_data, load_tokenizer, save_tokenizer
from seqgen.data.batching import BucketBatchSampler, Collator
from seqgen.data.images import IMAGENET_MEAN, IMAGENET_STD
from seqgen.data.sources import split_seed
from seqgen.errors import UserError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path, monkeypatch):
    """Keep `datasets`' Arrow cache inside the test's folder."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf")
    monkeypatch.setattr(datasets.config, "DOWNLOADED_DATASETS_PATH", tmp_path / "hf" / "downloads")
    monkeypatch.setattr(datasets.config, "EXTRACTED_DATASETS_PATH", tmp_path / "hf" / "extracted")
    datasets.disable_progress_bars()


def cfg_of(*overrides: str):
    return load_config(None, list(overrides))


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- sources -----------------------------------------------------------------------------------------

def test_text_source_skips_and_counts_blank_lines_and_truncates(tmp_path, caplog):
    train = write(tmp_path / "train.txt", "a b c\n\n  \nb c\na b c d e f\n")
    # d, e and f occur once: below the vocabulary's minimum frequency, so the kept "d" is <unk>
    cfg = cfg_of(f"data.train={train}", "data.max_length=4", "tokenizer.min_frequency=2")
    with caplog.at_level(logging.INFO, logger="seqgen.data"):
        data = load_data(cfg)
    assert data.splits["train"].texts() == ["a b c", "b c", "a b c d e f"]
    assert data.stats["train"] == {"examples": 3, "blank_skipped": 2, "truncated": 1, "tokens": 3 + 2 + 4,
                                   "unknown": 1}
    assert [len(ids) for ids in data.splits["train"].dataset["ids"][:]] == [3, 2, 4]
    assert "2 blank skipped; 1 truncated" in caplog.text
    assert set(data.splits) == {"train"}  # validation/test not configured
    batch = next(iter(data.splits["train"].loader(cfg.data, shuffle=False, seed=0)))
    assert batch.context is None and batch.references == [["a b c"], ["b c"], ["a b c d e f"]]
    assert batch.tokens.shape == (3, 6) and batch.mask.sum(1).tolist() == [5, 4, 6]
    assert data.splits["train"].dataset.cache_files  # tokenised through the datasets cache


def test_gzipped_text_reads_like_plain_text(tmp_path):
    lines = "ein Haus\r\nzwei Häuser\n"
    plain = write(tmp_path / "a.txt", lines)
    with gzip.open(tmp_path / "b.txt.gz", "wt", encoding="utf-8") as f:
        f.write(lines)
    a = load_data(cfg_of(f"data.train={plain}"))
    b = load_data(cfg_of(f"data.train={tmp_path / 'b.txt.gz'}"))
    assert a.splits["train"].texts() == b.splits["train"].texts() == ["ein Haus", "zwei Häuser"]


def test_a_byte_order_mark_is_not_part_of_the_first_word(tmp_path):
    for name, text in (("a.txt", "\ufeffein Haus\nzwei\n"), ("b.jsonl", '\ufeff{"text": "ein Haus"}\n')):
        path = tmp_path / name
        path.write_bytes(text.encode("utf-8"))
        source = "text" if name.endswith(".txt") else "jsonl"
        data = load_data(cfg_of(f"data.train={path}", f"data.source={source}"))
        assert data.splits["train"].texts()[0] == "ein Haus", name


def test_parallel_source_pairs_lines_and_skips_half_blank_pairs(tmp_path):
    write(tmp_path / "train.de", "ein Hund\n\nzwei Katzen\ndrei\n")
    write(tmp_path / "train.en", "a dog\nnothing\ntwo cats\n\n")
    cfg = cfg_of("task=translation", "data.source=parallel", f"data.train={tmp_path}/train.{{lang}}")
    data = load_data(cfg)
    train = data.splits["train"]
    assert train.texts() == ["a dog", "two cats"]
    assert data.stats["train"]["blank_skipped"] == 2
    batch = next(iter(train.loader(cfg.data, shuffle=False, seed=0)))
    v = data.vocab
    assert decode(data.tokenizer, batch.context.source[1]) == "zwei Katzen"
    assert batch.context.source[0].tolist() == data.tokenizer("ein Hund", add_special_tokens=False)[
        "input_ids"] + [v.eos_id]
    assert batch.context.source_mask.tolist() == [[True] * 3, [True] * 3]
    assert batch.references == [["a dog"], ["two cats"]]
    assert train.unique_contexts() is train


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "parquet"])
def test_table_sources_for_lm_and_translation(tmp_path, fmt):
    rows = [{"de": "ein Hund", "en": "a dog", "n": 1}, {"de": "zwei", "en": "two", "n": 2}]
    path = tmp_path / f"train.{fmt}"
    if fmt == "jsonl":
        write(path, "".join(json.dumps(r) + "\n" for r in rows))
    elif fmt == "json":
        write(path, json.dumps(rows))
    elif fmt == "csv":
        with path.open("w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=["de", "en", "n"])
            w.writeheader()
            w.writerows(rows)
    else:
        datasets.Dataset.from_list(rows).to_parquet(str(path))
    lm = load_data(cfg_of(f"data.source={fmt}", f"data.train={path}", "data.text_column=en"))
    assert lm.splits["train"].texts() == ["a dog", "two"]
    cfg = cfg_of("task=translation", f"data.source={fmt}", f"data.train={path}", "data.text_column=en",
                 "data.source_column=de")
    mt = load_data(cfg)
    batch = next(iter(mt.splits["train"].loader(cfg.data, shuffle=False, seed=0)))
    assert [decode(mt.tokenizer, s) for s in batch.context.source] == ["ein Hund", "zwei"]
    with pytest.raises(UserError, match=r"column 'text' not found in .*; available: de, en, n"):
        load_data(cfg_of(f"data.source={fmt}", f"data.train={path}"))


def png(path: Path, color: tuple[int, int, int], size: int = 8) -> Path:
    Image.new("RGB", (size, size), color).save(path)
    return path


def test_image_folder_with_captions_file(tmp_path):
    images = tmp_path / "img"
    images.mkdir()
    png(images / "red.png", (255, 0, 0), size=12)
    png(images / "blue.png", (0, 0, 255))
    # one row per caption in the CSV: rows naming the same image are gathered into one group
    with (tmp_path / "caps.csv").open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["file", "caption"], ["red.png", "a red square"], ["blue.png", "blue"],
                                 ["red.png", "red"], ["red.png", " "]])
    cfg = cfg_of("task=captioning", "data.source=images", f"data.train={tmp_path / 'caps.csv'}",
                 f"data.image_dir={images}", "data.image_column=file", "data.captions_column=caption",
                 "data.image_size=4", "data.batch_size=8")
    data = load_data(cfg)
    train = data.splits["train"]
    assert train.texts() == ["a red square", "red", "blue"]
    assert data.stats["train"] == {"examples": 3, "blank_skipped": 1, "truncated": 0, "tokens": 5,
                                   "unknown": 0, "images": 2}
    batch = next(iter(train.loader(cfg.data, shuffle=False, seed=0)))
    assert batch.references == [["a red square", "red"], ["a red square", "red"], ["blue"]]
    assert batch.context.pixels.shape == (3, 3, 4, 4)
    red = [(c - m) / s for c, m, s in zip((1.0, 0.0, 0.0), IMAGENET_MEAN, IMAGENET_STD)]
    assert torch.allclose(batch.context.pixels[0], torch.tensor(red).view(3, 1, 1).expand(3, 4, 4), atol=1e-5)
    unique = train.unique_contexts()
    assert unique.texts() == ["a red square", "blue"]
    first = next(iter(unique.loader(cfg.data, shuffle=False, seed=0)))
    assert first.index.tolist() == [0, 1] and first.references == [["a red square", "red"], ["blue"]]


def test_captions_parquet_with_embedded_images(tmp_path):
    red = png(tmp_path / "red.png", (255, 0, 0)).read_bytes()
    blue = png(tmp_path / "blue.png", (0, 0, 255)).read_bytes()
    table = datasets.Dataset.from_dict({
        "image": [{"bytes": red, "path": "red.png"}, {"bytes": blue, "path": None},
                  {"bytes": red, "path": "red.png"}],
        "caption": ["red", "blue", "a red one"]})
    table.cast_column("image", datasets.Image()).to_parquet(str(tmp_path / "caps.parquet"))
    (tmp_path / "red.png").unlink()  # the parquet file holds the images themselves
    cfg = cfg_of("task=captioning", "data.source=parquet", f"data.train={tmp_path / 'caps.parquet'}",
                 "data.captions_column=caption", "data.image_size=2")
    data = load_data(cfg)
    train = data.splits["train"]
    assert train.texts() == ["red", "a red one", "blue"]  # rows naming the same file are one image
    assert data.stats["train"]["images"] == 2
    batch = next(iter(train.loader(cfg.data, shuffle=False, seed=0)))
    assert batch.references == [["red", "a red one"], ["red", "a red one"], ["blue"]]
    assert batch.context.pixels.shape == (3, 3, 2, 2)
    assert batch.context.pixels[:2, 0].gt(2).all() and batch.context.pixels[:2, 1:].lt(0).all()
    assert batch.context.pixels[2, 2].gt(2).all() and batch.context.pixels[2, :2].lt(0).all()


def test_captions_jsonl_with_caption_lists(tmp_path):
    png(tmp_path / "x.png", (0, 255, 0))
    row = {"image": "x.png", "captions": ["green", "a green one"]}
    write(tmp_path / "caps.jsonl", json.dumps(row) + "\n")
    cfg = cfg_of("task=captioning", "data.source=jsonl", f"data.train={tmp_path / 'caps.jsonl'}")
    train = load_data(cfg).splits["train"]  # file names are relative to the captions file by default
    assert train.texts() == ["green", "a green one"]
    assert train.dataset["group"][:] == [0, 0] and len(train.unique_contexts()) == 1


@pytest.mark.skipif(importlib.util.find_spec("seqgen.data.synthetic.toy") is None,
                    reason="synthetic toy source not available")
def test_toy_source_uses_fixed_symbols_and_distinct_split_seeds():
    from seqgen.data.synthetic.toy import ToyDistribution

    cfg = cfg_of("data.source=toy", "tokenizer.kind=bpe", "seed=2", "data.synthetic.num_train=30",
                 "data.synthetic.num_validation=10", "data.synthetic.num_test=10",
                 "data.synthetic.vocab_size=4", "data.synthetic.length=3")
    data = load_data(cfg)
    dist = ToyDistribution.from_config(cfg.data.synthetic)
    assert data.tokenizer.convert_ids_to_tokens(list(range(data.vocab.size))) == [
        "<pad>", "<s>", "</s>", "<unk>", *dist.symbols]
    for split in ("train", "validation", "test"):
        n = getattr(cfg.data.synthetic, f"num_{split}")
        assert data.splits[split].texts() == dist.sample_texts(n, seed=split_seed(2, split))
    assert all(min(ids) >= 4 for ids in data.splits["train"].dataset["ids"][:])  # nothing is UNK
    seeds = {split_seed(s, split) for s in range(4) for split in ("train", "validation", "test")}
    assert len(seeds) == 12


def test_validation_fraction_holds_out_part_of_the_training_file(tmp_path):
    (tmp_path / "train.txt").write_text("".join(f"w{i} common\n" for i in range(40)))
    held = ["data.source=text", f"data.train={tmp_path / 'train.txt'}", "data.validation_fraction=0.25"]
    data = load_data(cfg_of(*held))
    train, validation = data.splits["train"].texts(), data.splits["validation"].texts()
    assert len(validation) == 10 and len(train) == 30
    assert sorted(train + validation, key=lambda t: int(t.split()[0][1:])) == [f"w{i} common" for i in range(40)]
    assert train == sorted(train, key=lambda t: int(t.split()[0][1:]))  # each part in the file's order
    # the tokenizer is trained on the rest only: held-out words are unknown to it
    vocab = data.tokenizer.get_vocab()
    assert all(t.split()[0] in vocab for t in train) and not any(t.split()[0] in vocab for t in validation)
    # the same rows for the same seed (also when only the validation split is loaded), others for another
    again = load_data(cfg_of(*held), data.tokenizer, splits=("validation",))
    assert again.splits["validation"].texts() == validation and "train" not in again.splits
    assert load_data(cfg_of(*held, "seed=1")).splits["validation"].texts() != validation


@pytest.mark.parametrize("overrides, message", [
    (["data.validation_fraction=1.0"], "must be in \\(0, 1\\)"),
    (["data.validation_fraction=0.1", "data.validation=v.txt"], "not both"),
    (["data.source=toy", "data.validation_fraction=0.1"], "draws its own validation split"),
])
def test_validation_fraction_mistakes(overrides, message):
    with pytest.raises(UserError, match=message):
        cfg_of("data.source=text", "data.train=t.txt", *overrides)


@pytest.mark.skipif(importlib.util.find_spec("seqgen.data.synthetic.shapes") is None,
                    reason="synthetic shapes source not available")
def test_shapes_source_decodes_images_lazily():
    from seqgen.data.synthetic import shapes

    cfg = cfg_of("task=captioning", "data.source=shapes", "data.synthetic.num_train=6",
                 "data.synthetic.num_validation=2", "data.synthetic.num_test=2", "data.image_size=16")
    data = load_data(cfg, splits=("train",))
    assert data.tokenizer.convert_ids_to_tokens(list(range(4, data.vocab.size))) == list(shapes.SYMBOLS)
    batch = next(iter(data.splits["train"].unique_contexts().loader(cfg.data, shuffle=False, seed=0)))
    assert batch.context.pixels.shape == (6, 3, 16, 16)


@pytest.mark.skipif(not (SHARED / "multi30k" / "raw" / "val.en.gz").is_file(),
                    reason="reference data ../shared/data not present")
def test_multi30k_validation_pairs(tmp_path):
    cfg = cfg_of("task=translation", "data.source=parallel", "tokenizer.kind=bpe", "tokenizer.vocab_size=500",
                 f"data.train={SHARED}/multi30k/raw/val.{{lang}}.gz")
    data = load_data(cfg)
    assert data.stats["train"]["examples"] == 1014
    assert data.splits["train"].texts()[0].startswith("A group of men are loading cotton")


# --- tokenizers --------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, words", [
    ("A man's dog, don't run.", ["a", "man", "'s", "dog", ",", "do", "n't", "run", "."]),
    ("An old-fashioned U.S plane (parked)!", ["an", "old-fashioned", "u.s", "plane", "(", "parked", ")", "!"]),
    ("They're here; we'll go", ["they", "'re", "here", ";", "we", "'ll", "go"]),
])
def test_punctuation_is_split_from_words_as_nltk_does(text, words, tmp_path):
    from seqgen.config import TokenizerConfig
    from seqgen.data.tokenizer import split_words, train_tokenizer

    assert split_words(text, lowercase=True, split_punctuation=True) == words  # nltk.word_tokenize's, lowercased
    assert split_words(text, lowercase=False, split_punctuation=False) == text.split()
    tok = train_tokenizer([text], TokenizerConfig(kind="word", lowercase=True, split_punctuation=True))
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(words) and tok.unk_token_id not in ids
    assert decode(tok, ids) == " ".join(words)


def test_punctuation_splitting_is_for_word_tokenizers_only():
    with pytest.raises(UserError, match="split_punctuation applies to tokenizer.kind=word, not bpe"):
        load_config(None, ["tokenizer.kind=bpe", "tokenizer.split_punctuation=true"])


def test_word_tokenizer_special_ids_min_frequency_lowercase_and_round_trip(tmp_path):
    train = write(tmp_path / "t.txt", "The cat sat .\nthe cat ran .\nA dog\n")
    tok, vocab = build_tokenizer(cfg_of(f"data.train={train}", "tokenizer.min_frequency=2",
                                        "tokenizer.lowercase=true"))
    assert (vocab.pad_id, vocab.bos_id, vocab.eos_id, vocab.unk_id) == (0, 1, 2, 3)
    assert tok.convert_ids_to_tokens([0, 1, 2, 3]) == ["<pad>", "<s>", "</s>", "<unk>"]
    assert set(tok.get_vocab()) == {"<pad>", "<s>", "</s>", "<unk>", "the", "cat", "."}
    assert vocab.size == 7
    ids = tok("THE  cat .", add_special_tokens=False)["input_ids"]
    assert decode(tok, ids) == "the cat ."
    assert decode(tok, tok("the dog", add_special_tokens=False)["input_ids"]) == "the <unk>"


def test_bpe_tokenizer_round_trips_raw_text(tmp_path):
    text = "A man, in a blue shirt.\nTwo dogs play in the snow!\nA woman's hat.\n"
    train = write(tmp_path / "t.txt", text * 3)
    cfg = cfg_of(f"data.train={train}", "tokenizer.kind=bpe", "tokenizer.vocab_size=60")
    tok, vocab = build_tokenizer(cfg)
    assert vocab.size == 60 and (vocab.pad_id, vocab.bos_id, vocab.eos_id, vocab.unk_id) == (0, 1, 2, 3)
    for line in ["A man, in a blue shirt.", "Two dogs play in the  snow!", "woman's shirt"]:
        ids = tok(line, add_special_tokens=False)["input_ids"]
        assert decode(tok, ids) == line


def test_decode_strips_bos_cuts_at_eos_drops_pad(tmp_path):
    train = write(tmp_path / "t.txt", "x y z\n")
    tok, v = build_tokenizer(cfg_of(f"data.train={train}"))
    x, y, z = tok("x y z", add_special_tokens=False)["input_ids"]
    assert decode(tok, [v.bos_id, x, v.pad_id, y, v.eos_id, z, v.eos_id]) == "x y"
    assert decode(tok, torch.tensor([x, z, v.pad_id, v.pad_id])) == "x z"


def test_save_and_load_tokenizer_keep_ids(tmp_path):
    train = write(tmp_path / "t.txt", "a b c\nb c d\n")
    cfg = cfg_of(f"data.train={train}", "tokenizer.kind=bpe", "tokenizer.vocab_size=30")
    tok, vocab = build_tokenizer(cfg)
    save_tokenizer(tok, tmp_path / "out")
    for path in (tmp_path / "out", tmp_path / "out" / "tokenizer.json"):
        again, vocab2 = load_tokenizer(path)
        assert vocab2 == vocab and again("b c d")["input_ids"][:3] == tok("b c d")["input_ids"][:3]
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "tokenizer.json").write_bytes((tmp_path / "out" / "tokenizer.json").read_bytes())
    assert load_tokenizer(tmp_path / "bare" / "tokenizer.json")[1] == vocab  # specials found by name
    with pytest.raises(UserError, match="tokenizer not found: .*missing.*no such file or folder"):
        load_tokenizer(tmp_path / "missing" / "tokenizer.json")


def test_pretrained_tokenizer_gets_missing_special_tokens(tmp_path, caplog):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    eot = "<|endoftext|>"
    backend = Tokenizer(models.WordLevel({eot: 0, "hello": 1, "world": 2}, unk_token=eot))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=eot).save_pretrained(tmp_path / "pre")
    cfg = cfg_of("tokenizer.kind=pretrained", f"tokenizer.name_or_path={tmp_path / 'pre'}")
    with caplog.at_level(logging.WARNING, logger="seqgen.data"):
        tok, vocab = build_tokenizer(cfg)
    assert vocab.eos_id == 0 and vocab.size == 6
    assert sorted({vocab.pad_id, vocab.bos_id, vocab.unk_id}) == [3, 4, 5]
    assert "lacked pad, bos, unk" in caplog.text
    assert decode(tok, [vocab.bos_id, 1, 2, vocab.eos_id, vocab.pad_id]) == "hello world"


# --- batching and collate ----------------------------------------------------------------------------

def test_token_budget_batches(tmp_path):
    lengths = [3 + (i * 7) % 20 for i in range(300)]
    sampler = BucketBatchSampler(lengths, batch_size=1, max_tokens=60, shuffle=True, seed=5)
    first = [list(b) for b in sampler]
    assert len(sampler) == len(first)
    assert all(len(b) * max(lengths[i] for i in b) <= 60 for b in first)
    assert sorted(i for b in first for i in b) == list(range(300))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in first) / len(first)
    assert spread <= 1  # bucketing: the lengths of a batch are (nearly) equal
    again = BucketBatchSampler(lengths, batch_size=1, max_tokens=60, shuffle=True, seed=5)
    assert [list(b) for b in again] == first
    sampler.set_epoch(1)
    second = [list(b) for b in sampler]
    assert second != first and sorted(i for b in second for i in b) == list(range(300))
    sampler.set_epoch(0)
    assert [list(b) for b in sampler] == first
    other_seed = BucketBatchSampler(lengths, batch_size=1, max_tokens=60, shuffle=True, seed=6)
    assert [list(b) for b in other_seed] != first


def test_fixed_size_batches_and_evaluation_order():
    sampler = BucketBatchSampler([5] * 10, batch_size=4, shuffle=False)
    assert [list(b) for b in sampler] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    shuffled = BucketBatchSampler([5] * 10, batch_size=4, shuffle=True, seed=0)
    batches = [list(b) for b in shuffled]
    assert [len(b) for b in batches] == [4, 4, 2] and sorted(i for b in batches for i in b) == list(range(10))
    evaluation = BucketBatchSampler([4, 2, 3], batch_size=1, max_tokens=6, shuffle=False)
    assert [list(b) for b in evaluation] == [[1, 2], [0]]
    with pytest.raises(UserError, match="data.max_tokens=3 is smaller than the longest example"):
        BucketBatchSampler([4, 2], batch_size=1, max_tokens=3)


def test_collate_pads_and_marks_tokens():
    from seqgen.data import Vocab

    collate = Collator("translation", Vocab(size=9, pad_id=0, bos_id=1, eos_id=2, unk_id=3), image_size=4)
    batch = collate([{"index": 7, "ids": [5, 6, 7], "source_ids": [8], "references": ["r1"]},
                     {"index": 2, "ids": [5], "source_ids": [8, 8, 8], "references": ["r2"]}])
    assert isinstance(batch, Batch)
    assert batch.tokens.tolist() == [[1, 5, 6, 7, 2], [1, 5, 2, 0, 0]]
    assert batch.mask.tolist() == [[True] * 5, [True] * 3 + [False] * 2]
    assert batch.context.source.tolist() == [[8, 2, 0, 0], [8, 8, 8, 2]]
    assert batch.context.source_mask.sum(1).tolist() == [2, 4]
    assert batch.index.tolist() == [7, 2] and batch.references == [["r1"], ["r2"]]


def test_loader_uses_token_budget_and_covers_split(tmp_path):
    train = write(tmp_path / "t.txt", "".join(" ".join("w" * (i % 5 + 1)) + "\n" for i in range(40)))
    cfg = cfg_of(f"data.train={train}", "data.max_length=8", "data.max_tokens=24")
    split = load_data(cfg).splits["train"]
    loader = split.loader(cfg.data, shuffle=True, seed=0)
    batches = list(loader)
    assert all(b.tokens.numel() <= 24 for b in batches)
    assert sorted(torch.cat([b.index for b in batches]).tolist()) == list(range(40))


# --- bad input ---------------------------------------------------------------------------------------

def test_missing_and_empty_files(tmp_path):
    with pytest.raises(UserError, match=r"data file not found: .*nope\.txt"):
        load_data(cfg_of(f"data.train={tmp_path / 'nope.txt'}"))
    empty = write(tmp_path / "empty.txt", "\n  \n\n")
    with pytest.raises(UserError, match=r"empty\.txt is empty \(no non-blank lines\)"):
        load_data(cfg_of(f"data.train={empty}"))
    write(tmp_path / "e.jsonl", "")
    with pytest.raises(UserError, match="is empty"):
        load_data(cfg_of("data.source=jsonl", f"data.train={tmp_path / 'e.jsonl'}"))


def test_non_utf8_line_is_named(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\nalso fine\nnot \xff fine\n")
    with pytest.raises(UserError, match=r"bad\.txt, line 3: not valid UTF-8"):
        load_data(cfg_of(f"data.train={bad}"))
    with gzip.open(tmp_path / "bad.txt.gz", "wb") as f:
        f.write(b"ok\n\xc3\n")
    with pytest.raises(UserError, match=r"bad\.txt\.gz, line 2: not valid UTF-8"):
        load_data(cfg_of(f"data.train={tmp_path / 'bad.txt.gz'}"))
    write(tmp_path / "fake.gz", "not gzip\n")
    with pytest.raises(UserError, match="not a readable gzip file"):
        load_data(cfg_of(f"data.train={tmp_path / 'fake.gz'}"))


def test_parallel_files_of_different_lengths(tmp_path):
    write(tmp_path / "t.de", "a\nb\nc\n")
    write(tmp_path / "t.en", "a\nb\n")
    cfg = cfg_of("task=translation", "data.source=parallel", f"data.train={tmp_path}/t.{{lang}}")
    with pytest.raises(UserError, match=r"t\.de has 3 lines, .*t\.en has 2"):
        load_data(cfg)
    with pytest.raises(UserError, match=r"must contain \{lang\}"):
        load_data(cfg_of("task=translation", "data.source=parallel", f"data.train={tmp_path}/t.de"))


def test_bad_images(tmp_path):
    png(tmp_path / "ok.png", (1, 2, 3))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    write(tmp_path / "caps.jsonl", json.dumps({"image": "ok.png", "captions": "fine"}) + "\n"
          + json.dumps({"image": "broken.png", "captions": "bad"}) + "\n")
    cfg = cfg_of("task=captioning", "data.source=jsonl", f"data.train={tmp_path / 'caps.jsonl'}")
    with pytest.raises(UserError, match=r"image .*broken\.png does not decode"):
        load_data(cfg)
    write(tmp_path / "caps.jsonl", json.dumps({"image": "gone.png", "captions": "x"}) + "\n")
    with pytest.raises(UserError, match=r"image file not found: .*gone\.png"):
        load_data(cfg)
    # an image that breaks after loading fails in the collate, still naming the file
    write(tmp_path / "caps.jsonl", json.dumps({"image": "ok.png", "captions": "fine"}) + "\n")
    split = load_data(cfg).splits["train"]
    (tmp_path / "ok.png").write_bytes(b"garbage")
    with pytest.raises(UserError, match=r"image .*ok\.png does not decode"):
        next(iter(split.loader(cfg.data, shuffle=False, seed=0)))


def test_config_that_does_not_fit_the_task(tmp_path):
    train = write(tmp_path / "t.txt", "a\n")
    with pytest.raises(UserError, match="data.source=text does not fit task=translation"):
        load_data(cfg_of("task=translation", f"data.train={train}"))
    with pytest.raises(UserError, match="data.image_dir is required"):
        load_data(cfg_of("task=captioning", "data.source=images", f"data.train={train}.csv"))
    with pytest.raises(UserError, match="tokenizer.kind=fixed needs a synthetic"):
        load_data(cfg_of(f"data.train={train}", "tokenizer.kind=fixed"))
    with pytest.raises(UserError, match="data.train is required"):
        load_data(cfg_of(f"data.test={train}"))
