"""Raw examples from every kind of source, in one shape per task (untokenised, blank rows included):

- lm: column `text`;
- translation: columns `source` and `text` (the target);
- captioning: `image_row` and `captions` (list[str]), one row per image; `image_row` points into a
  separate table of images (`RawSplit.images`), so that images embedded in a large Arrow table (a hub
  dataset) are neither copied nor held in memory.

Local files are checked here before `datasets` reads them, so that a missing or empty file, a non-UTF-8
line, parallel files of different lengths, a missing column or an image that does not decode is a
`UserError` naming the problem rather than a traceback from deep inside a library.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import datasets
import pyarrow as pa
import torch

from seqgen.config import DataConfig, RunConfig
from seqgen.data.images import check_image
from seqgen.errors import UserError

if TYPE_CHECKING:
    from seqgen.data.synthetic.oracle import OracleLSTM
    from seqgen.data.synthetic.toy import ToyDistribution

SPLITS = ("train", "validation", "test")
SYNTHETIC = ("toy", "oracle", "shapes")
TASK_SOURCES = {
    "lm": ("text", "json", "jsonl", "csv", "parquet", "hub", "toy", "oracle"),
    "translation": ("parallel", "json", "jsonl", "csv", "parquet", "hub"),
    "captioning": ("images", "json", "jsonl", "csv", "parquet", "hub", "shapes"),
}
# `datasets` builder for each table format (also the captions file of `images`, by its extension)
BUILDERS = {"json": "json", "jsonl": "json", "csv": "csv", "parquet": "parquet"}


@dataclass
class RawSplit:
    """One split's untokenised examples (columns: see the module docstring)."""

    rows: datasets.Dataset
    images: datasets.Dataset | None = None
    """Captioning: column `image` holding a file path, encoded bytes or a `datasets` Image dict."""


def configured_splits(data: DataConfig) -> list[str]:
    """The splits this config provides: those with a file (or hub split), or a positive synthetic count."""
    if data.source in SYNTHETIC:
        return [s for s in SPLITS if getattr(data.synthetic, f"num_{s}") > 0]
    held_out = data.validation_fraction is not None and data.train is not None
    return [s for s in SPLITS if getattr(data, s) is not None or (s == "validation" and held_out)]


def split_origin(data: DataConfig, split: str) -> str:
    """Where a split's examples come from, in words: its file (or hub split), the part of the training
    file held out as validation, or the synthetic draw."""
    if data.source in SYNTHETIC:
        return f"{data.source} (synthetic {split} draw)"
    if split == "validation" and data.validation is None and data.validation_fraction is not None:
        return f"{data.train} (validation_fraction={data.validation_fraction:g} held out)"
    where = getattr(data, split)
    return f"hub {data.hub_name}:{where}" if data.source == "hub" else str(where)


def split_seed(seed: int, split: str) -> int:
    """Distinct seeds for the synthetic train/validation/test draws of one run."""
    return seed * len(SPLITS) + SPLITS.index(split)


def check_task(cfg: RunConfig) -> None:
    """Raises UserError when `data.source` cannot provide examples for `task`."""
    if cfg.data.source not in TASK_SOURCES[cfg.task]:
        raise UserError(f"data.source={cfg.data.source} does not fit task={cfg.task}; use one of "
                        f"{', '.join(TASK_SOURCES[cfg.task])}")


def synthetic_symbols(data: DataConfig) -> list[str] | None:
    """The vocabulary of a synthetic source (None for real data)."""
    if data.source == "shapes":
        from seqgen.data.synthetic import shapes

        return list(shapes.SYMBOLS)
    if data.source in ("toy", "oracle"):
        return list(synthetic_distribution(data).symbols)
    return None


def load_raw(cfg: RunConfig, splits: Sequence[str] = SPLITS, *, verify: bool = True) -> dict[str, RawSplit]:
    """Raw examples of every requested split that the config provides (see the module docstring).

    Local files go through `datasets.load_dataset("text" | "json" | "csv" | "parquet")` (gzip inferred
    from the name), so their Arrow tables and later `map` results are cached. A `hub` source loads
    `datasets.load_dataset(data.hub_name, data.hub_config, split=data.<split>)` (network access needed);
    its columns are named by data.text_column / source_column / image_column / captions_column, and a
    translation dataset whose one column holds {lang: sentence} dicts (the hub's Translation feature)
    is read by setting source_column and text_column both to that column. Captioning rows that name
    the same image file are one image with all their captions; images embedded without a file name
    (bytes only) are one image per row.

    Args:
        cfg: the run's recipe.
        splits: among "train", "validation", "test".
        verify: read each local text file through first (UTF-8, line counts, parallel sides of one
            length); False where another process has just done so and filled the datasets cache, so that
            no other process reads the whole corpus.

    Raises:
        UserError: a config that does not fit the task, or bad input (see the module docstring).
    """
    check_task(cfg)
    data = cfg.data
    names = [s for s in splits if s in configured_splits(data)]
    if data.source in SYNTHETIC:
        counts = {s: getattr(data.synthetic, f"num_{s}") for s in names}
        if data.source == "shapes":
            return {s: _shapes(data, split_seed(cfg.seed, s), n) for s, n in counts.items()}
        dist = synthetic_distribution(data)
        texts = {s: dist.sample_texts(n, seed=split_seed(cfg.seed, s)) for s, n in counts.items()}
        return {s: RawSplit(datasets.Dataset.from_dict({"text": t})) for s, t in texts.items()}
    if data.validation_fraction is not None and {"train", "validation"} & set(names):
        train, validation = hold_out(_load_split(cfg, "train", verify), data.validation_fraction, cfg.seed)
        carved = {"train": train, "validation": validation}
        return {s: carved[s] if s in carved else _load_split(cfg, s, verify) for s in names}
    return {s: _load_split(cfg, s, verify) for s in names}


def hold_out(part: RawSplit, fraction: float, seed: int) -> tuple[RawSplit, RawSplit]:
    """(rest, held out): `fraction` of the rows of `part` (at least one, and one left), drawn by a
    permutation seeded by `seed` alone, each part in the file's order. Captioning rows are images, so
    every caption of an image lands on the same side."""
    n = len(part.rows)
    if n < 2:
        raise UserError(f"data.validation_fraction needs at least 2 training examples, the file has {n}")
    count = min(max(1, round(fraction * n)), n - 1)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed(seed, "validation")))
    held = sorted(order[:count].tolist())
    rest = sorted(order[count:].tolist())
    return RawSplit(part.rows.select(rest), part.images), RawSplit(part.rows.select(held), part.images)


def synthetic_distribution(data: DataConfig) -> ToyDistribution | OracleLSTM | None:
    """The distribution a synthetic language-model source draws from (the one place it is built from
    the recipe); None for other sources."""
    if data.source == "toy":
        from seqgen.data.synthetic.toy import ToyDistribution

        return ToyDistribution.from_config(data.synthetic)
    if data.source != "oracle":
        return None
    from seqgen.data.synthetic.oracle import OracleLSTM

    return OracleLSTM.from_config(data.synthetic)


def _shapes(data: DataConfig, seed: int, n: int) -> RawSplit:
    from seqgen.data.synthetic import shapes

    examples = shapes.make_split(n, seed=seed, image_size=data.image_size)
    rows = {"image_row": list(range(n)), "captions": [list(e["captions"]) for e in examples]}
    images = datasets.Dataset.from_dict({"image": [e["image"] for e in examples]})
    return RawSplit(datasets.Dataset.from_dict(rows), images)


def _load_split(cfg: RunConfig, split: str, verify: bool) -> RawSplit:
    data, where = cfg.data, getattr(cfg.data, split)
    if data.source == "text":
        return RawSplit(_text_file(where, verify=verify))
    if data.source == "parallel":
        return RawSplit(_parallel(data, where, verify))
    if data.source == "hub":
        table, name, base = _hub(data, where), f"hub dataset {data.hub_name} ({where})", None
    else:
        fmt = data.source
        if fmt == "images":
            fmt = _captions_format(where)
            if data.image_dir is None:
                raise UserError("data.image_dir is required for data.source=images")
        table, name, base = _table(fmt, where, verify), where, Path(where).parent
    if cfg.task == "captioning":
        return _captioning(table, data, name, Path(data.image_dir) if data.image_dir else base)
    columns = {"text": data.text_column}
    if cfg.task == "translation":
        columns = {"source": data.source_column, "text": data.text_column}
    for column in dict.fromkeys(columns.values()):
        _require_column(table, column, name)
    langs = {"source": data.source_lang, "text": data.target_lang}
    return RawSplit(table.map(_pick, batched=True, remove_columns=table.column_names,
                              fn_kwargs={"columns": columns, "langs": langs}))


def _pick(batch: dict[str, list], columns: dict[str, str], langs: dict[str, str]) -> dict[str, list]:
    """Rename columns; a column of {lang: sentence} dicts gives each side its language."""
    return {new: [v[langs[new]] if isinstance(v, dict) else v for v in batch[old]]
            for new, old in columns.items()}


def scan_text(path: str | Path) -> tuple[int, int]:
    """Read a text file once (gunzipping a .gz), checking that every line is UTF-8.

    Lines are counted the way `datasets` splits them (universal newlines: \\n, \\r\\n and \\r).

    Returns:
        (lines, non-blank lines).

    Raises:
        UserError: the file is missing, not gzip when named .gz, or has a line that is not UTF-8
            (naming the line number).
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder; data.train/validation/test name files")
    if not path.is_file():
        raise UserError(f"data file not found: {path}")
    lines = nonblank = 0
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")) as f:
            for raw in f:
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise UserError(f"{path}, line {lines + 1}: not valid UTF-8 ({e.reason} at byte "
                                    f"{e.start} of the line)") from None
                parts = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
                if parts[-1] == "":  # the line's own terminator
                    parts.pop()
                lines += len(parts)
                nonblank += sum(1 for p in parts if p.strip())
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise UserError(f"{path} is not a readable gzip file ({e})") from None
    except OSError as e:
        raise UserError(f"cannot read data file {path}: {e}") from None
    return lines, nonblank


def _checked_lines(path: str | Path) -> int:
    lines, nonblank = scan_text(path)
    if nonblank == 0:
        raise UserError(f"data file {path} is empty (no non-blank lines)")
    return lines


def _load(builder: str, path: str | Path) -> datasets.Dataset:
    try:
        # utf-8-sig: a byte-order mark some editors write must not become part of the first token
        encoding = {} if builder == "parquet" else {"encoding": "utf-8-sig"}
        return datasets.load_dataset(builder, data_files={"train": str(path)}, split="train", **encoding)
    except Exception as e:
        raise UserError(f"cannot read {path} as {builder}: {str(e).strip().splitlines()[0]}") from None


def _text_file(path: str, lines: int | None = None, *, verify: bool = True) -> datasets.Dataset:
    if lines is None and verify:
        lines = _checked_lines(path)
    table = _load("text", path)
    if lines is not None and len(table) != lines:  # both count universal newlines: a bug, not bad input
        raise RuntimeError(f"{path}: read {len(table)} lines, expected {lines}")
    return table


def _parallel(data: DataConfig, pattern: str, verify: bool) -> datasets.Dataset:
    if "{lang}" not in pattern:
        raise UserError(f"parallel data path {pattern} must contain {{lang}} (filled with "
                        f"data.source_lang / data.target_lang)")
    src, tgt = (pattern.replace("{lang}", lang) for lang in (data.source_lang, data.target_lang))
    n_src = n_tgt = None
    if verify:
        n_src, n_tgt = _checked_lines(src), _checked_lines(tgt)
        if n_src != n_tgt:
            raise UserError(f"parallel files differ in length: {src} has {n_src} lines, {tgt} has {n_tgt}")
    source = _text_file(src, n_src, verify=verify).rename_column("text", "source")
    return datasets.concatenate_datasets([source, _text_file(tgt, n_tgt, verify=verify)], axis=1)


def _captions_format(path: str) -> str:
    suffixes = [s for s in Path(path).suffixes if s != ".gz"]
    fmt = suffixes[-1].lstrip(".") if suffixes else ""
    if fmt not in ("json", "jsonl", "csv"):
        raise UserError(f"captions file {path} must be .json, .jsonl or .csv")
    return fmt


def _table(fmt: str, path: str, verify: bool) -> datasets.Dataset:
    if fmt == "parquet":
        if not Path(path).is_file():
            raise UserError(f"data file not found: {path}")
    elif verify:
        _checked_lines(path)
    table = _load(BUILDERS[fmt], path)
    if len(table) == 0:
        raise UserError(f"data file {path} has no rows")
    return table


def _hub(data: DataConfig, split: str) -> datasets.Dataset:
    if not data.hub_name:
        raise UserError("data.hub_name is required for data.source=hub")
    try:
        return datasets.load_dataset(data.hub_name, data.hub_config, split=split)
    except Exception as e:
        raise UserError(f"cannot load hub dataset {data.hub_name} (config {data.hub_config}, split "
                        f"{split}): {str(e).strip().splitlines()[0]}") from None


def _require_column(table: datasets.Dataset, column: str, name: str) -> None:
    if column not in table.column_names:
        raise UserError(f"column {column!r} not found in {name}; available: {', '.join(table.column_names)}")


def _captioning(table: datasets.Dataset, data: DataConfig, name: str, base: Path | None) -> RawSplit:
    """One row per image with the captions of every table row that names it. Image files are checked
    to decode now; embedded images stay in the Arrow table (memory-mapped) until a batch needs them."""
    column = data.image_column
    _require_column(table, column, name)
    _require_column(table, data.captions_column, name)
    feature = table.features[column]
    if isinstance(feature, datasets.Image) or feature == datasets.Value("binary"):
        images = table.select_columns([column])
        if column != "image":
            images = images.rename_column(column, "image")
        if isinstance(feature, datasets.Image):
            images = images.cast_column("image", datasets.Image(decode=False))
        keys = _embedded_keys(images)
    else:
        keys = [_image_path(value, base, column, name) for value in table[column][:]]
        for path in dict.fromkeys(keys):
            check_image(path)
        images = datasets.Dataset.from_dict({"image": keys})
    first: dict[object, int] = {}  # image key -> its first row, which stands for the image
    captions: dict[int, list[str]] = {}
    for i, (key, value) in enumerate(zip(keys, table[data.captions_column][:])):
        captions.setdefault(first.setdefault(key, i), []).extend(caption_list(value))
    rows = datasets.Dataset.from_dict({"image_row": list(captions), "captions": list(captions.values())})
    return RawSplit(rows, images)


def _embedded_keys(images: datasets.Dataset) -> list[object]:
    """Per row, the embedded image's file name (from the Image feature), else the row number; read from
    Arrow without touching the image bytes."""
    column = images.data.column("image")
    if pa.types.is_struct(column.type):
        paths = [p for chunk in column.chunks for p in chunk.field("path").to_pylist()]
    else:
        paths = [None] * len(images)
    return [p or i for i, p in enumerate(paths)]


def _image_path(value: object, base: Path | None, column: str, name: str) -> str:
    if isinstance(value, str) and value.strip():
        return str(base / value) if base is not None else value
    raise UserError(f"column {column!r} of {name} holds {value!r}, not an image file name or image data")


def caption_list(value: str | list[str] | None) -> list[str]:
    """The captions of one row: a caption, a list of them, or None (counted as one blank caption)."""
    if isinstance(value, str) or value is None:
        return [value or ""]
    return [c or "" for c in value]
