"""Tokenizers: trained with `tokenizers` (word-level or BPE), fixed to a symbol list, or pretrained.

Every tokenizer is a `transformers.PreTrainedTokenizerFast` with PAD, BOS, EOS and UNK tokens. Trained
and fixed tokenizers use the ids PAD=0, BOS=1, EOS=2, UNK=3, then their vocabulary. Text is always
encoded without the tokenizer's own special tokens: the collate adds BOS and EOS itself.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from seqgen.config import TokenizerConfig
from seqgen.data.batch import Vocab
from seqgen.errors import UserError

logger = logging.getLogger("seqgen.data")

# role -> token, in id order for the tokenizers this module builds
SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}


def train_tokenizer(texts: Iterable[str], cfg: TokenizerConfig) -> PreTrainedTokenizerFast:
    """Train a word-level or BPE tokenizer on `texts`.

    Word-level tokens are the whitespace-separated words (so pre-tokenised corpora keep their
    tokenisation and decoding joins tokens with single spaces); BPE marks word starts with the
    Metaspace character "▁", so decoding restores the original spacing exactly.
    """
    specials = list(SPECIAL_TOKENS.values())
    if cfg.kind == "word":
        tok = Tokenizer(models.WordLevel(unk_token=SPECIAL_TOKENS["unk_token"]))
        tok.pre_tokenizer = _word_splitter(cfg.split_punctuation)
        trainer = trainers.WordLevelTrainer(vocab_size=cfg.vocab_size, min_frequency=cfg.min_frequency,
                                            special_tokens=specials, show_progress=False)
    elif cfg.kind == "bpe":
        tok = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS["unk_token"]))
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
        tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
        trainer = trainers.BpeTrainer(vocab_size=cfg.vocab_size, min_frequency=cfg.min_frequency,
                                      special_tokens=specials, show_progress=False)
    else:
        raise ValueError(f"cannot train a {cfg.kind!r} tokenizer")
    if cfg.lowercase:
        tok.normalizer = normalizers.Lowercase()
    tok.train_from_iterator(texts, trainer)
    return _wrap(tok)


# NLTK's word tokenizer on punctuation: clitics ('s, 're, 've, 'll, 'd, 'm, n't) and punctuation at a
# word's edge become tokens of their own; inside a word ("old-fashioned", "u.s") it stays
PUNCTUATION = r"n't\b|'(?:s|re|ve|ll|d|m)\b|(?<!\w)[^\w\s]|[^\w\s](?!\w)"


def _word_splitter(split_punctuation: bool) -> pre_tokenizers.PreTokenizer:
    """Word-level pre-tokenisation: whitespace, then (optionally) punctuation split off the words."""
    if not split_punctuation:
        return pre_tokenizers.WhitespaceSplit()
    return pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                    pre_tokenizers.Split(Regex(PUNCTUATION), behavior="isolated")])


def split_words(text: str, lowercase: bool, split_punctuation: bool) -> list[str]:
    """`text` as the words a word-level tokenizer with these settings sees (lowercased, split)."""
    text = text.lower() if lowercase else text
    return [word for word, _ in _word_splitter(split_punctuation).pre_tokenize_str(text)]


def fixed_tokenizer(symbols: Sequence[str]) -> PreTrainedTokenizerFast:
    """A word-level tokenizer whose vocabulary is exactly the special tokens, then `symbols` in order."""
    clash = sorted(set(symbols) & set(SPECIAL_TOKENS.values()))
    if clash:
        raise UserError(f"symbol {clash[0]!r} is reserved for a special token")
    if len(set(symbols)) != len(symbols):
        raise UserError("the synthetic source's symbols are not distinct")
    vocab = {tok: i for i, tok in enumerate([*SPECIAL_TOKENS.values(), *symbols])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=SPECIAL_TOKENS["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return _wrap(tok)


def tokenizer_from_json(text: str) -> PreTrainedTokenizerFast:
    """A tokenizer this module built (trained or fixed), from its `backend_tokenizer.to_str()`."""
    return _wrap(Tokenizer.from_str(text))


def _wrap(tok: Tokenizer) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIAL_TOKENS)


def _looks_like_a_path(name: str) -> bool:
    """Whether `name` can only be a local path: a hub name is `name` or `organisation/name`."""
    return (name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name
            or name.endswith((".json", ".model")))


def load_tokenizer(path: str | Path) -> tuple[PreTrainedTokenizerFast, Vocab]:
    """Load a tokenizer saved by `save_tokenizer` (its folder or its tokenizer.json), any
    tokenizer.json, a folder saved by `transformers`, or a hub name; missing special tokens are added.

    Raises:
        UserError: nothing loadable at `path`.
    """
    name = str(path)
    path = Path(path)
    if not path.exists() and _looks_like_a_path(name):  # not a hub name: say so, without asking the hub
        raise UserError(f"tokenizer not found: {name} (no such file or folder)")
    if path.is_file() and path.name == "tokenizer.json" and (path.parent / "tokenizer_config.json").is_file():
        path = path.parent  # the config beside it says which tokens are BOS/EOS/PAD/UNK
    try:
        if path.is_file():
            tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(path))
        else:
            tokenizer = AutoTokenizer.from_pretrained(str(path) if path.is_dir() else name)
    except Exception as e:
        raise UserError(f"cannot load tokenizer {name}: {str(e).strip().splitlines()[0]}") from None
    _add_missing_specials(tokenizer, name)
    return tokenizer, vocab_of(tokenizer)


def _add_missing_specials(tokenizer: PreTrainedTokenizerFast, name: str) -> None:
    """Give the tokenizer every special role, reusing a token of the same name when it has one."""
    missing = {role: token for role, token in SPECIAL_TOKENS.items() if getattr(tokenizer, role) is None}
    if not missing:
        return
    before = len(tokenizer)
    tokenizer.add_special_tokens(missing)
    if len(tokenizer) > before:
        logger.warning("tokenizer %s lacked %s; added %s (vocabulary %d -> %d, the model's embeddings "
                       "are sized to match)", name, ", ".join(r.removesuffix("_token") for r in missing),
                       ", ".join(missing.values()), before, len(tokenizer))


def save_tokenizer(tokenizer: PreTrainedTokenizerFast, directory: str | Path) -> None:
    """Write tokenizer.json (and tokenizer_config.json, which names the special tokens) to `directory`."""
    tokenizer.save_pretrained(str(directory))


def vocab_of(tokenizer: PreTrainedTokenizerFast) -> Vocab:
    return Vocab(size=len(tokenizer), pad_id=tokenizer.pad_token_id, bos_id=tokenizer.bos_token_id,
                 eos_id=tokenizer.eos_token_id, unk_id=tokenizer.unk_token_id)


def decode(tokenizer: PreTrainedTokenizerFast, ids: Sequence[int] | torch.Tensor) -> str:
    """Text of one generated sequence: drops a leading BOS, cuts at the first EOS, drops PAD (and BOS),
    and detokenises. UNK stays visible as the unknown token."""
    ids = ids.tolist() if isinstance(ids, torch.Tensor) else [int(i) for i in ids]
    bos, eos, pad = tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
    if ids and ids[0] == bos:  # before cutting at EOS: some tokenizers (GPT-2) use one token for both
        ids = ids[1:]
    if eos in ids:
        ids = ids[: ids.index(eos)]
    ids = [i for i in ids if i != pad and i != bos]
    return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
