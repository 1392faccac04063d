"""The teachers `teacher_js_pi` reads: an exported model of the same task and vocabulary, a
`transformers` model folder over the run's vocabulary, or the known distribution a synthetic source
draws its data from, each read as a generator over the run's vocabulary (`forward(inputs, memory) ->
(B, T, V)` next-token logits; -inf everywhere at a position whose prefix the teacher cannot produce,
where it has no conditional)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import torch
from torch import Tensor, nn

from seqgen.data.batch import Vocab
from seqgen.data.synthetic.oracle import OracleLSTM
from seqgen.data.synthetic.toy import ToyDistribution
from seqgen.errors import UserError
from seqgen.models import MODEL_INFO, Generator, TransformerConfig, build_generator, load_generator

DATA = "data"
HF_CONFIG = "config.json"  # what `save_pretrained` writes beside the weights
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


class OracleTeacher(nn.Module):
    """The oracle LSTM a run's data are drawn from, read as a generator over the run's vocabulary: at each
    position its next-symbol distribution given the prefix's symbols, EOS with probability 1 once the
    oracle's length is reached. A position whose prefix holds a token the oracle never emits (a special
    token in a student's sample) has no conditional under P: its logits are all -inf.

    Args:
        oracle: the run's `TaskData.distribution`.
        vocab: the run's vocabulary: the special tokens, then the oracle's symbols in order.
    """

    def __init__(self, oracle: OracleLSTM, vocab: Vocab) -> None:
        super().__init__()
        self.oracle, self.vocab = oracle, vocab
        self.first = vocab.size - oracle.vocab_size  # id of symbol 0 (the special tokens come first)

    def encode(self, context: object) -> None:
        return None

    @torch.no_grad()
    def forward(self, inputs: Tensor, memory: object = None) -> Tensor:
        """inputs (B, T) ids, BOS first -> (B, T, V) logits of the next token."""
        b, t_max = inputs.shape
        symbols = inputs - self.first  # (B, T), the oracle's ids where valid
        is_symbol = (symbols >= 0) & (symbols < self.oracle.vocab_size)
        # a prefix is P's only if every token after BOS is a symbol
        valid = torch.cat([torch.ones_like(is_symbol[:, :1]), is_symbol[:, 1:].long().cumprod(1).bool()], 1)
        out = torch.full((b, t_max, self.vocab.size), float("-inf"), device=inputs.device)
        x, h, c = self.oracle._start(b)
        for t in range(t_max):
            if t > 0:
                x = self.oracle.embedding[symbols[:, t].clamp(0, self.oracle.vocab_size - 1)]
            if t < self.oracle.length:
                logits, h, c = self.oracle._step(x, h, c)
                out[:, t, self.first:] = logits.float()
            else:
                out[:, t, self.vocab.eos_id] = 0.0
        return out.masked_fill(~valid[..., None], float("-inf"))


def distribution_teacher(p: ToyDistribution | OracleLSTM | None, vocab: Vocab) -> nn.Module:
    """The run's own data distribution (`TaskData.distribution`) as a teacher."""
    if isinstance(p, OracleLSTM):
        return OracleTeacher(p, vocab)
    if isinstance(p, ToyDistribution):
        return ToyTeacher(p, vocab)
    raise UserError("objective.teacher=data needs data.source=toy or oracle")


class ToyTeacher(nn.Module):
    """An enumerable toy P read as a generator over the run's vocabulary: at each prefix of its support,
    P's next symbol (or EOS, for a sequence that ends there) given the prefix, from the prefix masses of
    every sequence of the support.

    Args:
        toy: the run's `TaskData.distribution`.
        vocab: the run's vocabulary: the special tokens, then the toy's symbols in order.
    """

    def __init__(self, toy: ToyDistribution, vocab: Vocab) -> None:
        super().__init__()
        self.vocab = vocab
        first = vocab.size - toy.vocab_size  # id of symbol 0 (the special tokens come first)
        seqs, probs = toy.enumerate()
        prefix_mass: dict[tuple[int, ...], float] = defaultdict(float)
        next_mass: dict[tuple[int, ...], Tensor] = defaultdict(lambda: torch.zeros(vocab.size, dtype=torch.float64))
        for seq, prob in zip(seqs, probs.tolist()):
            ids = tuple(first + x for x in seq)
            for k in range(len(ids) + 1):
                prefix_mass[ids[:k]] += prob
                next_mass[ids[:k]][ids[k] if k < len(ids) else vocab.eos_id] += prob
        self.table = {prefix: (mass / prefix_mass[prefix]).log().float()
                      for prefix, mass in next_mass.items() if prefix_mass[prefix] > 0}

    def encode(self, context: object) -> None:
        return None

    @torch.no_grad()
    def forward(self, inputs: Tensor, memory: object = None) -> Tensor:
        """inputs (B, T) ids, BOS first -> (B, T, V) logits of the next token."""
        b, t_max = inputs.shape
        out = torch.full((b, t_max, self.vocab.size), float("-inf"))
        rows = inputs.tolist()
        for i, row in enumerate(rows):
            for t in range(t_max):
                log_p = self.table.get(tuple(row[1:t + 1]))
                if log_p is not None:
                    out[i, t] = log_p
        return out.to(inputs.device)


def load_teacher(path: str, student: Generator, task: str) -> nn.Module:
    """The teacher model at `path`, in eval mode with requires_grad off: a seqgen run folder (its model/)
    or exported model folder, or a `transformers` model folder (`_transformers_teacher`).

    Raises:
        UserError: `path` is none of these, or the model does not share the student's task and vocabulary.
    """
    from seqgen.inference import resolve

    folder = Path(path)
    if not folder.is_dir():
        raise UserError(f"objective.teacher {path}: no such folder (give a seqgen run or exported model folder, "
                        f"a transformers model folder, or data)")
    if _is_transformers_folder(folder):
        return _transformers_teacher(folder, student, task).eval().requires_grad_(False)
    model_dir, _ = resolve(path)
    teacher, _, teacher_task, _ = load_generator(model_dir)
    _check_task(path, teacher_task, task)
    if teacher.vocab != student.vocab:
        raise _other_vocabulary(path, teacher.vocab, student.vocab,
                                "train the student with the teacher's tokenizer (train.init_from a model trained "
                                "on it, or the same tokenizer recipe)")
    return teacher.eval().requires_grad_(False)


def _check_task(path: str | Path, teacher_task: str, task: str) -> None:
    if teacher_task != task:
        raise UserError(f"objective.teacher {path} is a {teacher_task} model; the run's task is {task}")


def _other_vocabulary(path: str | Path, theirs: Vocab, ours: Vocab, fix: str) -> UserError:
    """The refusal of a teacher whose vocabulary is not the run's, saying how they differ and `fix`."""
    if theirs.size != ours.size:
        sizes = f"({theirs.size} tokens) than the run ({ours.size} tokens)"
    else:  # same size: the special tokens sit elsewhere
        sizes = f"(PAD/BOS/EOS/UNK ids {_special_ids(theirs)}) than the run ({_special_ids(ours)})"
    return UserError(f"objective.teacher {path} has another vocabulary {sizes}; {fix}")


def _special_ids(vocab: Vocab) -> str:
    return f"{vocab.pad_id}/{vocab.bos_id}/{vocab.eos_id}/{vocab.unk_id}"


def _is_transformers_folder(folder: Path) -> bool:
    """A folder `save_pretrained` wrote that is not an exported seqgen model (which carries its vocabulary;
    a run folder keeps its model, config.json included, in model/)."""
    return (folder / HF_CONFIG).is_file() and not (folder / MODEL_INFO).is_file()


def _transformers_teacher(folder: Path, student: Generator, task: str) -> nn.Module:
    """A `transformers` model folder (config.json and weights, as `save_pretrained` writes them) as the
    teacher, loaded the way `model.pretrained` is. Such a folder records no seqgen vocabulary, so its ids
    are taken to be the run's when:

    - the folder holds a tokenizer that seqgen reads (special tokens it adds included) as the run's
      vocabulary: same size, same PAD/BOS/EOS/UNK ids. The model may then have more outputs than that
      (ids no token has are dropped) or lack special tokens seqgen appended to the tokenizer, other
      than BOS and EOS (a pretrained tokenizer without PAD, say), to which it gives no mass;
    - without a tokenizer, its vocab_size is the run's vocabulary size.

    Raises:
        UserError: the model is of another task, or its vocabulary is not the run's by the rules above.
    """
    from transformers import AutoConfig

    vocab = student.vocab
    try:
        config = AutoConfig.from_pretrained(folder)
    except (OSError, ValueError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"objective.teacher {folder}: cannot read its {HF_CONFIG}: {first}") from None
    _check_task(folder, _task_of(config), task)
    outputs = config.get_text_config(decoder=True).vocab_size
    if _has_tokenizer(folder):
        _check_tokenizer(folder, vocab)
        known = min(outputs, vocab.size)
        missing = set(range(known, vocab.size))
        if not missing <= {vocab.pad_id, vocab.unk_id} - {vocab.bos_id, vocab.eos_id}:
            raise UserError(f"objective.teacher {folder} has outputs for {outputs} tokens, fewer than its "
                            f"tokenizer's {vocab.size}; give a model whose vocab_size covers its tokenizer")
    elif outputs != vocab.size:
        raise UserError(f"objective.teacher {folder} is a transformers model of {outputs} tokens; the run's "
                        f"vocabulary has {vocab.size}: save the tokenizer it was trained with into {folder} and "
                        f"train the student with it (tokenizer.kind=pretrained, tokenizer.name_or_path={folder})")
    else:
        known = vocab.size
    try:
        # the student's own loading path; it sizes the embeddings to the run's vocabulary
        teacher = build_generator(TransformerConfig(pretrained=str(folder)), vocab, task)
    except UserError as e:
        raise UserError(f"objective.teacher {folder}: {e}") from None
    return teacher if known == vocab.size else LackingTokensTeacher(teacher, known)


def _task_of(config: object) -> str:
    """The seqgen task a `transformers` config's model serves, as `build_transformer` loads them."""
    if getattr(config, "model_type", None) == "vision-encoder-decoder":
        return "captioning"
    return "translation" if getattr(config, "is_encoder_decoder", False) else "lm"


def _has_tokenizer(folder: Path) -> bool:
    return any((folder / name).is_file() for name in TOKENIZER_FILES)


def _check_tokenizer(folder: Path, vocab: Vocab) -> None:
    """Refuse a folder whose tokenizer, read as the student's is read, is not the run's vocabulary."""
    from seqgen.data.tokenizer import load_tokenizer

    _, theirs = load_tokenizer(folder)
    if theirs != vocab:
        raise _other_vocabulary(folder, theirs, vocab,
                                f"train the student with the teacher's tokenizer (tokenizer.kind=pretrained, "
                                f"tokenizer.name_or_path={folder})")


class LackingTokensTeacher(nn.Module):
    """A teacher whose model has no outputs for the run's ids from `known` on (special tokens seqgen
    appended to its tokenizer): it gives them no mass, and a position whose prefix holds one has no
    conditional (all -inf), as a prefix the oracle cannot produce.

    Args:
        model: the teacher, its embeddings already sized to the run's vocabulary.
        known: the number of ids, from 0, that the model was trained to predict.
    """

    def __init__(self, model: Generator, known: int) -> None:
        super().__init__()
        self.model, self.known = model, known

    def encode(self, context: object) -> object:
        return self.model.encode(context)

    @torch.no_grad()
    def forward(self, inputs: Tensor, memory: object = None) -> Tensor:
        """inputs (B, T) ids, BOS first -> (B, T, V) logits of the next token."""
        logits = self.model(inputs, memory).float()
        logits[..., self.known:] = float("-inf")
        lacking = (inputs >= self.known).long().cumsum(1) > 0  # (B, T): the prefix holds an unknown id
        return logits.masked_fill(lacking[..., None], float("-inf"))
