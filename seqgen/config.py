"""Recipes: YAML files mapped onto typed dataclasses, with strict `key.sub=value` overrides.

Every field of every section dataclass is a recipe key; the string below it says what it does
(docs/recipes.md is generated from them). The `model` and `objective` sections are `Tagged`: their tag
(`family`, `name`) picks the dataclass, which lives with the code it configures (seqgen/models/configs.py,
each objective's module). An unknown or mistyped key is an error that names the key and the nearest valid
one; every value is checked against its field's type (and, for `Literal` fields, its allowed values), and
against its range in the dataclass's `__post_init__`, so a recipe is checked whole before any work.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Union

import yaml

from seqgen.errors import UserError

Task = Literal["lm", "translation", "captioning"]


@dataclass
class SyntheticConfig:
    """Parameters of the embedded synthetic sources (`data.source` = toy | oracle | shapes)."""

    num_train: int = 10_000
    """Training examples to draw."""
    num_validation: int = 1_000
    """Validation examples to draw."""
    num_test: int = 1_000
    """Test examples to draw."""
    vocab_size: int = 8
    """Toy: number of symbols (at most 16). Oracle: vocabulary of a random oracle (5000 in SeqGAN)."""
    length: int = 2
    """Toy: maximum sequence length (at most 6). Oracle: fixed sequence length (20 in SeqGAN)."""
    kind: str = "markov"
    """Toy: `markov` (a random Markov chain with an end state) or `joint` (a random joint table over
    fixed-length sequences)."""
    concentration: float = 0.5
    """Toy: Dirichlet concentration of the random tables (smaller = peakier, more dependence)."""
    weights: str | None = None
    """Oracle: path of the SeqGAN weight file (.npz); None draws a random N(0, 1) oracle."""
    hidden_dim: int = 32
    """Oracle: embedding and hidden size of a random oracle."""
    seed: int = 0
    """Seed of the distribution itself (the samples use the run's seed and the split)."""


@dataclass
class DataConfig:
    """Where the examples come from and how they are batched."""

    source: Literal["text", "parallel", "json", "jsonl", "csv", "parquet", "images", "hub",
                    "toy", "oracle", "shapes"] = "text"
    """Kind of source: local files (text: one sentence per line, optionally .gz; parallel: two
    line-aligned text files; json/jsonl/csv/parquet with named columns; images: a folder of images plus
    a captions file), a Hugging Face hub dataset (`hub`), or an embedded synthetic source."""
    train: str | None = None
    """Training file. For `parallel`, a path containing `{lang}`, filled with source_lang/target_lang.
    For `hub`, the split name."""
    validation: str | None = None
    """Validation file (or hub split); used for evaluation during training, early stopping and the
    choice of the exported checkpoint (`train.export`). Never the test data: `seqgen check` refuses a
    recipe whose validation and test data are the same."""
    validation_fraction: float | None = None
    """Hold out this fraction of the training file's examples (rows; images for captioning) as the
    validation split, for benchmarks that ship no validation file: the held-out rows are drawn at random
    with the run's seed (the same rows for the same seed, whatever else changes), the tokenizer and the
    training batches see only the rest. Takes the place of data.validation; synthetic sources draw their
    own validation split (data.synthetic.num_validation)."""
    test: str | None = None
    """Test file (or hub split); `seqgen eval` uses it by default."""
    source_lang: str = "de"
    """Translation: the source side's `{lang}` value."""
    target_lang: str = "en"
    """Translation: the target side's `{lang}` value."""
    hub_name: str | None = None
    """`hub` source: dataset name on the Hugging Face hub (needs network access)."""
    hub_config: str | None = None
    """`hub` source: dataset configuration name."""
    text_column: str = "text"
    """Column holding the text (language modelling) or the target sentence (translation)."""
    source_column: str = "source"
    """Translation from tables: column holding the source sentence."""
    image_column: str = "image"
    """Captioning: column holding the image (a file name relative to `image_dir`, or image data)."""
    captions_column: str = "captions"
    """Captioning: column holding the caption or a list of captions."""
    image_dir: str | None = None
    """Captioning from files: folder that the image file names are relative to."""
    image_size: int = 64
    """Captioning: images are resized to image_size x image_size."""
    max_length: int = 64
    """Maximum tokens per sentence (BOS/EOS excluded); longer ones are truncated and counted."""
    batch_size: int = 32
    """Sentences per batch (per process), when max_tokens is not set."""
    max_tokens: int | None = None
    """Token budget per batch; batches then hold sentences of similar length (bucketing)."""
    shuffle: bool = True
    """Reshuffle the training batches every epoch (seeded by the run's seed and the epoch)."""
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    """Parameters of the embedded synthetic sources."""

    def __post_init__(self) -> None:
        _positive("data", batch_size=self.batch_size, max_length=self.max_length, image_size=self.image_size)
        if self.validation_fraction is not None:
            if not 0 < self.validation_fraction < 1:
                raise UserError(f"data.validation_fraction must be in (0, 1), got {self.validation_fraction}")
            if self.validation is not None:
                raise UserError("set one of data.validation (a file) and data.validation_fraction (held out "
                                "of data.train), not both")
            if self.source in ("toy", "oracle", "shapes"):
                raise UserError(f"data.validation_fraction holds out part of a training file; data.source="
                                f"{self.source} draws its own validation split (data.synthetic.num_validation)")
        if self.max_tokens is not None and self.max_tokens < self.max_length + 2:
            raise UserError(f"data.max_tokens ({self.max_tokens}) must hold one full sentence "
                            f"(data.max_length + 2 = {self.max_length + 2})")


@dataclass
class TokenizerConfig:
    """How text becomes ids."""

    kind: Literal["word", "bpe", "pretrained", "fixed"] = "word"
    """`word`/`bpe`: trained with `tokenizers` on the training split and saved as tokenizer.json;
    `pretrained`: loaded from `name_or_path`; `fixed`: the vocabulary of a synthetic source."""
    vocab_size: int = 10_000
    """Largest vocabulary to train (special tokens included)."""
    min_frequency: int = 1
    """Training: a token must occur this many times to enter the vocabulary."""
    lowercase: bool = False
    """Training: lowercase text before tokenising (and at generation time)."""
    split_punctuation: bool = False
    """`word`: split punctuation from words as NLTK's word tokenizer does ("street." -> "street" ".",
    "man's" -> "man" "'s", "don't" -> "do" "n't"), instead of splitting on whitespace only."""
    name_or_path: str | None = None
    """`pretrained`: a hub name or a local path (a folder or a tokenizer.json)."""

    def __post_init__(self) -> None:
        if self.vocab_size < 5:  # the four special tokens (pad, BOS, EOS, unk) and one word
            raise UserError(f"tokenizer.vocab_size must be at least 5 (4 special tokens and a word), got {self.vocab_size}")
        _positive("tokenizer", min_frequency=self.min_frequency)
        if self.split_punctuation and self.kind != "word":
            raise UserError(f"tokenizer.split_punctuation applies to tokenizer.kind=word, not {self.kind}")


class Tagged:
    """A config section whose dataclass is chosen by one of its keys, the tag (`model.family`,
    `objective.name`): the other keys are those of the chosen class, and a key of another class is an
    error. Subclasses name the tag in `TAG` and list the classes in `choices()`, looked up when a
    recipe is read (so that a new objective needs only its own module and one registry line)."""

    TAG: ClassVar[str]

    @classmethod
    def choices(cls) -> dict[str, type]:
        raise NotImplementedError

    @classmethod
    def choose(cls, tag: Any, key: str) -> type:
        """The class for tag value `tag` of the section at `key`; UserError when none is registered."""
        choices = cls.choices()
        if tag not in choices:
            close = difflib.get_close_matches(str(tag), list(choices), n=1)
            also = f"; did you mean {close[0]}?" if close else ""
            raise UserError(f"config key {key}.{cls.TAG}: {tag!r} is not one of {', '.join(choices)}{also}")
        return choices[tag]


@dataclass
class ModelConfig(Tagged):
    """The generator: `family` picks the model family, whose own keys follow (`seqgen.models.rnn.RNNConfig`,
    `seqgen.models.hf.TransformerConfig`)."""

    TAG: ClassVar[str] = "family"
    family: str = "rnn"
    """`rnn`: torch LSTM/GRU decoders; `transformer`: a model from `transformers`."""

    @classmethod
    def choices(cls) -> dict[str, type]:
        from seqgen.models import MODEL_FAMILIES

        return MODEL_FAMILIES


@dataclass
class ObjectiveConfig(Tagged):
    """The training objective: `name` picks it, whose own keys follow (each objective's module defines
    its config class; `seqgen.objectives.OBJECTIVES` lists them)."""

    TAG: ClassVar[str] = "name"
    name: str = "teacher_forcing"
    """Which objective trains the generator."""

    def check_run(self, run: RunConfig) -> None:
        """Raise UserError when the objective cannot train the run `run` describes (checks across sections)."""

    @classmethod
    def choices(cls) -> dict[str, type]:
        from seqgen.objectives import OBJECTIVES

        return {name: config for name, (_, config) in OBJECTIVES.items()}


def default(section: type[Tagged]) -> Any:
    """A factory of `section`'s default choice (its tag field's default), for dataclass fields."""
    return lambda: section.choose(section.__dataclass_fields__[section.TAG].default, section.TAG)()


@dataclass
class DecodeConfig:
    """How sequences are decoded (evaluation samples, `seqgen generate`)."""

    strategy: Literal["greedy", "sample", "beam"] = "greedy"
    """Greedy, ancestral sampling, or beam search."""
    temperature: float = 1.0
    """Sampling: logits are divided by the temperature."""
    top_k: int = 0
    """Sampling: keep the k most likely tokens (0 keeps all)."""
    top_p: float = 1.0
    """Sampling: keep the smallest set of tokens whose probability reaches p (1 keeps all)."""
    beam_size: int = 4
    """Beam search: beams per example."""
    length_penalty: float = 1.0
    """Beam search: finished hypotheses are ranked by log-probability / length ** length_penalty."""
    max_new_tokens: int = 64
    """Longest output, EOS excluded."""

    def __post_init__(self) -> None:
        _positive("decode", temperature=self.temperature, beam_size=self.beam_size, max_new_tokens=self.max_new_tokens)
        if self.top_k < 0:
            raise UserError(f"decode.top_k must be >= 0, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise UserError(f"decode.top_p must be in (0, 1], got {self.top_p}")


@dataclass
class TrainConfig:
    """The training loop."""

    max_steps: int = 1000
    """Optimizer steps to take (across epochs)."""
    lr: float = 1e-3
    """Peak learning rate."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    """AdamW betas."""
    lr_schedule: Literal["constant", "linear", "cosine", "inverse_sqrt"] = "constant"
    """Learning-rate schedule after warm-up (transformers' `get_scheduler`)."""
    warmup_steps: int = 0
    """Linear warm-up steps."""
    gradient_accumulation_steps: int = 1
    """Batches accumulated per optimizer step."""
    max_grad_norm: float | None = 1.0
    """Clip the gradient norm (None: no clipping)."""
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    """Autocast of each player's forward and loss to bf16 or fp16 (fp16: a loss scaler per optimizer);
    weights, optimizer states, logits, losses and metrics stay float32 (seqgen.precision)."""
    sharding: Literal["none", "fsdp"] = "none"
    """`fsdp`: shard every player's parameters, gradients and optimizer states over the processes with
    torch's FSDP2 (`fully_shard`), sampling inside the step included; a player's call gathers the whole
    model (seqgen.sharding); checkpoints hold each process's shards and exports are whole. Needs
    several processes (`accelerate launch`; one process trains unsharded, and says so) and an output_dir
    that every node shares; fp16 is not supported with it (bf16 is)."""
    log_every: int = 10
    """Log training metrics every this many steps."""
    eval_every: int = 200
    """Evaluate on the validation split every this many steps (and at the end)."""
    save_every: int = 200
    """Write a resumable checkpoint every this many steps (and at the end)."""
    keep_last: int = 2
    """Checkpoints to keep, besides the best one."""
    best_metric: str = "eval/nll"
    """Validation metric that picks the best checkpoint and drives early stopping (lower is better
    unless best_mode says otherwise)."""
    best_mode: Literal["min", "max"] = "min"
    """Whether smaller or larger `best_metric` is better."""
    early_stopping_patience: int | None = None
    """Stop after this many evaluations without improvement of `best_metric` (None: never). The run
    says so in one line (the step, the metric, its best value and that value's step), and metrics.json
    records `stopped_early`; a resumed run that has spent its patience stays stopped unless the patience
    is raised."""
    export: Literal["best", "last"] = "best"
    """What model/ holds after training (what `seqgen eval`, `generate`, `sweep` and `train.init_from`
    use when given the run folder): `best`, the weights of the evaluation that scored best on
    `best_metric` (the same weights as best/); `last`, those of the last step taken. A run that never
    evaluates (no validation data) exports its last step either way. metrics.json names the exported
    step and holds that checkpoint's validation metrics."""
    num_samples: int = 3
    """Samples printed at each evaluation."""
    tensorboard: bool = True
    """Also log to TensorBoard when it is installed (the JSONL log is always written)."""
    init_from: str | None = None
    """Start from the weights of this exported model or run folder (e.g. a teacher-forcing run before
    adversarial training); its tokenizer is reused."""

    def __post_init__(self) -> None:
        _positive("train", max_steps=self.max_steps, lr=self.lr, log_every=self.log_every,
                  eval_every=self.eval_every, save_every=self.save_every, keep_last=self.keep_last,
                  gradient_accumulation_steps=self.gradient_accumulation_steps)
        if self.warmup_steps < 0 or self.weight_decay < 0 or self.num_samples < 0:
            name = "warmup_steps" if self.warmup_steps < 0 else "weight_decay" if self.weight_decay < 0 else "num_samples"
            raise UserError(f"train.{name} must be >= 0, got {getattr(self, name)}")
        if self.sharding == "fsdp" and self.mixed_precision == "fp16":
            raise UserError("train.sharding=fsdp does not support train.mixed_precision=fp16 (the loss scaler's "
                            "overflow check would have to agree across shards); use bf16 or no")
        if 0 < self.max_steps <= self.warmup_steps:
            raise UserError(f"train.warmup_steps ({self.warmup_steps}) must be below train.max_steps ({self.max_steps}): "
                            f"the learning rate would never reach train.lr; shorten the warm-up with the steps")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise UserError(f"train.betas must be two values in [0, 1), got {self.betas}")
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            raise UserError(f"train.early_stopping_patience must be at least 1 (or null: never stop early), "
                            f"got {self.early_stopping_patience}")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise UserError(f"train.max_grad_norm must be positive (or null for no clipping), got {self.max_grad_norm}")


@dataclass
class EvalConfig:
    """Evaluation after and during training."""

    split: Literal["validation", "test"] = "validation"
    """Split evaluated during training. `test` only measures: it cannot choose the exported checkpoint
    or the stopping step (it needs train.export=last and no early stopping)."""
    max_batches: int | None = None
    """Evaluate on at most this many batches (None: the whole split)."""
    bleu: bool | None = None
    """Decode and compute BLEU/chrF/TER (None: for translation and captioning only)."""
    quality: bool = False
    """Also measure sample quality at every evaluation during training (`seqgen eval` does unless
    --no-quality): exact divergences (toy data), NLL_oracle and NLL_test (oracle data), BLEU-n against
    the split, Self-BLEU-n and diversity of samples (text), CIDEr-D and diversity of outputs (captioning),
    diversity of outputs (translation)."""
    num_samples: int | None = None
    """Language models: sequences sampled (ancestral, temperature 1) for the sample-quality metrics
    (None: as many as the split has sentences)."""
    two_sample_test: bool = False
    """Also train a fresh classifier to tell the split's sentences from generated ones and report its
    held-out accuracy and the lower bounds on JS_1/2 it implies."""


@dataclass
class RunConfig:
    """A whole run: the recipe's top level."""

    task: Task = "lm"
    """`lm` (unconditional text), `translation` or `captioning`."""
    output_dir: str = "runs/default"
    """Where checkpoints, logs, the exported model and metrics go."""
    seed: int = 0
    """Seeds the model's initialisation, shuffling, dropout and sampling."""
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=default(ModelConfig))
    objective: ObjectiveConfig = field(default_factory=default(ObjectiveConfig))
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)


# ---------------------------------------------------------------------------------------------------
# Loading, overriding and checking


def _positive(section: str, **values: float) -> None:
    """UserError naming the first of `values` (key=value of `section`) that is not positive."""
    for key, value in values.items():
        if not value > 0:
            raise UserError(f"{section}.{key} must be positive, got {value}")


class _Loader(yaml.SafeLoader):
    """YAML as a Python user means it: YAML 1.1 reads `3e-3` and `1e5` as strings (its floats need a
    decimal point), so numbers in exponent notation are read as floats too; and a key given twice in
    one mapping is an error, not a silent choice of the last value."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise UserError(f"the key {key!r} is given twice in one mapping (line {key_node.start_mark.line + 1})")
            seen.add(key)
        return super().construct_mapping(node, deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def load_yaml(text: str) -> Any:
    """Parse YAML with `_Loader` (exponent-notation numbers are floats, repeated keys an error)."""
    return yaml.load(text, Loader=_Loader)


def load_config(path: str | Path | None = None, overrides: list[str] = (), cls: type = RunConfig) -> Any:
    """Read a YAML recipe (or start from the defaults), apply `key.sub=value` overrides, type-check.

    Raises:
        UserError: a missing/unreadable file, an unknown key, or a value of the wrong type.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            raw = load_yaml(path.read_text(encoding="utf-8-sig")) or {}
        except FileNotFoundError:
            raise UserError(f"recipe not found: {path}") from None
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"cannot read recipe {path}: {e}") from None
        except yaml.YAMLError as e:
            raise UserError(f"recipe {path} is not valid YAML: {str(e).splitlines()[0]}") from None
        except UserError as e:
            raise UserError(f"recipe {path}: {e}") from None
        if not isinstance(raw, dict):
            raise UserError(f"recipe {path} must be a mapping of keys to values")
    for item in overrides:
        _set_dotted(raw, *parse_override(item), cls)
    return from_dict(cls, raw)


def parse_override(item: str) -> tuple[str, Any]:
    """A command-line `key.sub=value` as (key, value), the value read as YAML (empty: None)."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise UserError(f"override {item!r} is not of the form key=value")
    try:
        return key.strip(), load_yaml(value) if value.strip() else None
    except yaml.YAMLError as e:
        raise UserError(f"override {item!r}: the value is not valid YAML: {str(e).splitlines()[0]}") from None


def from_dict(cls: type, raw: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass `cls` from a nested dict, checking every key and type."""
    if not isinstance(raw, dict):
        raise UserError(f"{prefix.rstrip('.') or 'recipe'} must be a mapping, got {_show(raw)}")
    chosen = ""
    if _is_tagged_base(cls):
        for key, value in raw.items():  # the keys of a choice nested under its name
            if key in cls.choices() and isinstance(value, dict):
                example = f"{prefix}{next(iter(value))}" if value else f"{prefix}KEY"
                raise UserError(f"{prefix}{key}: the keys of {prefix}{cls.TAG}={key} go directly under "
                                f"{prefix.rstrip('.')} (e.g. {example}, not {prefix}{key}.{example[len(prefix):]})")
        tag = raw.get(cls.TAG, cls.__dataclass_fields__[cls.TAG].default)
        cls = cls.choose(tag, prefix.rstrip("."))
        chosen = f" (with {prefix}{cls.TAG}={tag})"
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in raw.items():
        if key not in fields:
            raise UserError(_unknown_key(prefix + str(key), fields, chosen))
        kwargs[key] = _check(hints[key], value, prefix + key)
    return cls(**kwargs)


def _is_tagged_base(cls: type) -> bool:
    """True for a Tagged section's base class (whose concrete class the tag picks)."""
    return isinstance(cls, type) and issubclass(cls, Tagged) and Tagged in cls.__bases__


def to_dict(config: Any) -> dict[str, Any]:
    """The plain-dict (YAML/JSON-ready) form of a config dataclass."""
    return dataclasses.asdict(config)


def save_config(config: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False), encoding="utf-8")


def _set_dotted(raw: dict[str, Any], key: str, value: Any, cls: type) -> None:
    """Set raw[a][b][c] = value for key "a.b.c", checking each part names a field on the way (below a
    Tagged section, whose class its tag picks, `from_dict` checks them once the whole recipe is read)."""
    parts = key.split(".")
    node, node_cls, prefix, checked = raw, cls, "", True
    for i, part in enumerate(parts):
        if checked and _is_tagged_base(node_cls) and part != node_cls.TAG:
            checked = False
        if checked:
            fields = {f.name: f for f in dataclasses.fields(node_cls)} if node_cls else None
            if fields is not None and part not in fields:
                raise UserError(_unknown_key(prefix + part, fields))
        if i == len(parts) - 1:
            node[part] = value
            return
        if checked:
            hint = typing.get_type_hints(node_cls)[part] if node_cls else None
            node_cls = hint if dataclasses.is_dataclass(hint) else None
            if node_cls is None and not _is_dict_type(hint):
                raise UserError(f"config key {prefix + part} has no sub-keys (cannot set {key})")
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise UserError(f"config key {prefix + part} must be a mapping to set {key}")
        node, prefix = child, prefix + part + "."


def _is_dict_type(hint: Any) -> bool:
    return typing.get_origin(hint) is dict or hint is dict


def _unknown_key(key: str, fields: dict[str, Any], where: str = "") -> str:
    name = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(name, list(fields), n=1, cutoff=0.5)
    parent = key[: len(key) - len(name)]
    hint = f"; did you mean {parent}{close[0]}?" if close else f"; valid keys: {', '.join(fields)}"
    return f"unknown config key {key}{where}{hint}"


def _show(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _check(hint: Any, value: Any, key: str) -> Any:
    """Return `value` converted to `hint` where that loses nothing (int -> float), else raise."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _check(option, value, key)
            except UserError as e:
                errors.append(str(e))
        raise UserError(errors[0] if len(errors) == 1 else f"config key {key}: {_show(value)} is not "
                        f"of type {_type_name(hint)}")
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
            also = f"; did you mean {close[0]}?" if close else ""
            raise UserError(f"config key {key}: {value!r} is not one of {', '.join(map(str, choices))}{also}")
        return value
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value if value is not None else {}, key + ".")
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise UserError(f"config key {key}: expected a list, got {_show(value)}")
        return [_check(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise UserError(f"config key {key}: expected a mapping, got {_show(value)}")
        return dict(value)
    if hint is Any:
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool):
        if isinstance(value, hint) and not (hint is int and isinstance(value, bool)):
            return value
        raise UserError(f"config key {key}: expected {hint.__name__}, got {_show(value)}")
    raise TypeError(f"unsupported config type {hint} for {key}")


def _type_name(hint: Any) -> str:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return " or ".join(getattr(a, "__name__", str(a)) for a in args) + (
        " or null" if type(None) in typing.get_args(hint) else "")
