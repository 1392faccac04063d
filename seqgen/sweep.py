"""Quality-diversity curves by inverse-temperature sweeps (Caccia et al., "Language GANs Falling Short",
ICLR 2020; docs/theory/metrics.md#quality-diversity-curves).

Sampling at a lower temperature alone raises sample quality and lowers diversity, so comparing models
at one temperature says little. Instead each model is decoded at several inverse temperatures α (the
logits are multiplied by α) and scored on a quality axis and a diversity axis; the curves are compared
as wholes. Per model and α:

- oracle runs (`data.source: oracle`): NLL_oracle, the oracle's per-token NLL of `num_samples` model
  samples (quality), and NLL_test, the tempered model's per-token NLL of the run's test split
  (coverage), both for the model's fixed-length version as `seqgen.metrics.oracle` defines them;
- text language models: BLEU-5 of `num_samples` samples against every test sentence (Texygen's
  definition, quality), Self-BLEU-5 among the samples (higher = less diverse), and NLL_test, the
  per-token NLL of the test split under the tempered model softmax(α · logits), by teacher forcing
  (EOS included, padding excluded). BLEU counts whitespace-separated words of the decoded texts; the
  test sentences are decoded from their token ids too, so both sides see the same normalisation
  (lowercasing, unknown tokens, truncation to `data.max_length`).

Every α reuses the same sampling seed, so the curves are smooth in α rather than noisy between points.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from seqgen.config import DecodeConfig, RunConfig
from seqgen.data import decode, load_data, load_tokenizer
from seqgen.data.batch import Batch
from seqgen.data.sources import split_origin, split_seed
from seqgen.data.synthetic import OracleLSTM
from seqgen.errors import UserError
from seqgen.functional import token_nll
from seqgen.inference import resolve, run_config
from seqgen.metrics.bleu import ReferenceIndex, bleu_scores, self_bleu_scores
from seqgen.metrics.oracle import nll_oracle, nll_test
from seqgen.models import exported_step, load_generator
from seqgen.models.base import Generator
from seqgen.progress import progress
from seqgen.sampling import generate

PAIRS = (("nll_oracle", "nll_test"), ("bleu5_texygen", "self_bleu5"), ("bleu5_texygen", "nll_test"))
"""The (quality, diversity) metric pairs plotted, one figure each."""
AXIS_LABELS = {
    "nll_oracle": "NLL_oracle, nats/token (lower = better quality)",
    "nll_test": "NLL_test, nats/token (lower = better coverage)",
    "bleu5_texygen": "BLEU-5 (higher = better quality)",
    "self_bleu5": "Self-BLEU-5 (lower = more diverse)",
}
SAMPLE_BATCH = 512
"""Sequences decoded together (bounds the memory of the (B, V) logits and the cache)."""
DESCRIPTION = ("model", "path", "checkpoint", "checkpoint_step", "data_source", "split", "data",
               "num_test_sequences", "alpha", "num_samples", "strategy", "temperature", "max_new_tokens")
"""The columns of a row that say what was measured (the others are measures): the model folder measured
and the training step it records, the test data and how many of its sequences NLL_test scored, and
how the samples were drawn (ancestral sampling at temperature 1/α, at most max_new_tokens tokens; an
oracle run's samples have the oracle's fixed length instead)."""


@torch.no_grad()
def tempered_nll(model: Generator, batches: Iterable[Batch], alphas: Sequence[float]) -> list[float]:
    """Per-token NLL (nats) of the batches' targets under softmax(α · logits), for each α.

    Teacher forcing, one forward pass per batch for all α; EOS counts, padding does not. At α = 1 this
    is the model's plain held-out NLL (`seqgen.metrics.likelihood`).

    Args:
        model: a generator in eval mode, on the batches' device.
        batches: `Batch` objects (`tokens` (B, L), `mask` (B, L)).
        alphas: inverse temperatures, each > 0.

    Returns:
        One NLL per α, in the order of `alphas`.
    """
    totals, tokens = [0.0] * len(alphas), 0
    for batch in batches:
        logits = model(batch.inputs, model.encode(batch.context)).float()  # (B, L-1, V)
        for i, alpha in enumerate(alphas):
            totals[i] += token_nll(logits * alpha, batch.targets, batch.target_mask).sum().item()
        tokens += batch.num_target_tokens
    if not tokens:
        raise UserError("there are no test tokens to score")
    return [total / tokens for total in totals]


def sweep(model_dirs: Sequence[str | Path], alphas: Sequence[float], out: str | Path, *,
          num_samples: int = 1000, seed: int = 0, data: str | None = None,
          device: str | torch.device | None = None, overwrite: bool = False) -> list[dict]:
    """Quality and diversity of each language model at each inverse temperature; writes tables and plots.

    Writes into `out`: `sweep.csv` and `sweep.json` (one row per model x α) and one PNG per metric pair
    of `PAIRS` that some model has (`{quality}_vs_{diversity}.png`), every model's curve on it, each
    point labelled with its α.

    Args:
        model_dirs: run folders or exported model folders of language models.
        alphas: inverse temperatures (logits x α), each > 0; α > 1 sharpens, α < 1 flattens.
        out: output folder (created).
        num_samples: samples per model and α (at least 2, for Self-BLEU).
        seed: seeds the model samples; the same for every α.
        data: a test file to use instead of the recipe's test split (needed for a bare model folder).
        device: where the models run (default: CUDA when available, else CPU).
        overwrite: replace the sweep that `out` already holds (otherwise that is an error, raised
            before any work).

    Returns:
        The rows: the `DESCRIPTION` columns (`model` is its folder name), and `nll_oracle`, `nll_test`
        (oracle runs) or `bleu5_texygen`, `self_bleu5`, `nll_test` (text).

    Raises:
        UserError: no models, a bad α or sample count, a model that is not a language model, a
            model without test data, or an `out` that holds a sweep already (without `overwrite`).
    """
    alphas = [float(a) for a in alphas]
    if not model_dirs:
        raise UserError("sweep: give at least one model folder")
    if not alphas or not all(math.isfinite(a) and a > 0 for a in alphas):
        raise UserError(f"sweep: inverse temperatures must be finite and > 0, got {alphas}")
    if num_samples < 2:
        raise UserError(f"sweep: num_samples must be at least 2 (Self-BLEU needs two samples), got {num_samples}")
    if Path(out).exists() and not Path(out).is_dir():
        raise UserError(f"sweep: {out} is a file, not a folder")
    if (Path(out) / "sweep.csv").exists() and not overwrite:
        raise UserError(f"sweep: {out} already holds a sweep; pass --overwrite to replace it, or --out FOLDER")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    names = _model_names(model_dirs)
    rows: list[dict] = []
    with progress(desc="sweep", total=len(model_dirs) * len(alphas)) as reporter:
        for path, name in zip(model_dirs, names):
            rows += _sweep_model(path, name, alphas, num_samples, seed, data, device, reporter)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _write_tables(rows, out)
    _plot(rows, out)
    return rows


def _sweep_model(path: str | Path, name: str, alphas: list[float], num_samples: int, seed: int,
                 data: str | None, device: torch.device, reporter: Any) -> list[dict]:
    cfg, model_dir = run_config(path, data=data, split="test")
    model, _, task, _ = load_generator(model_dir)
    if task != "lm":
        raise UserError(f"{path} is a {task} model; a temperature sweep needs a language model")
    model.to(device)
    reporter.set_description(f"sweep {name}")
    oracle = cfg.data.source == "oracle"
    base = {"model": name, "path": str(path), "checkpoint": str(model_dir),
            "checkpoint_step": exported_step(model_dir), "data_source": cfg.data.source, "split": "test",
            "data": split_origin(cfg.data, "test")}
    if oracle:
        metrics, num_test = _oracle_metrics(model, cfg, alphas, num_samples, seed, device, reporter)
    else:
        metrics, num_test = _text_metrics(model, model_dir, cfg, alphas, num_samples, seed, device, reporter)
    return [{**base, "num_test_sequences": num_test, "alpha": alpha, "num_samples": num_samples,
             "strategy": "sample", "temperature": 1 / alpha,
             "max_new_tokens": None if oracle else cfg.decode.max_new_tokens, **m}
            for alpha, m in zip(alphas, metrics)]


def _oracle_metrics(model: Generator, cfg: RunConfig, alphas: list[float], num_samples: int, seed: int,
                    device: torch.device, reporter: Any) -> tuple[list[dict[str, float]], int]:
    """Per α, NLL_oracle and NLL_test; and the number of test sequences NLL_test scored."""
    oracle = OracleLSTM.from_config(cfg.data.synthetic).to(device)
    # NLL_test is measured on the run's own test split (the oracle draws it from this seed), never on
    # sequences that a training split may share a seed with.
    test_seed, num_test = split_seed(cfg.seed, "test"), cfg.data.synthetic.num_test
    if num_test < 1:
        raise UserError(f"the recipe of {cfg.output_dir} has no oracle test split (num_test = 0)")
    rows = []
    for alpha in alphas:
        reporter.set_postfix_str(f"α={alpha:g}")
        rows.append({"nll_oracle": nll_oracle(model, oracle, num_samples, seed, alpha),
                     "nll_test": nll_test(model, oracle, num_test, test_seed, alpha)})
        reporter.update()
    return rows, num_test


def _text_metrics(model: Generator, model_dir: Path, cfg: RunConfig, alphas: list[float],
                  num_samples: int, seed: int, device: torch.device,
                  reporter: Any) -> tuple[list[dict[str, float]], int]:
    """Per α, BLEU-5, Self-BLEU-5 and NLL_test; and the number of test sequences NLL_test scored."""
    tokenizer, _ = load_tokenizer(model_dir / "tokenizer.json")
    task_data = load_data(cfg, tokenizer, splits=("test",))
    if "test" not in task_data.splits:
        raise UserError(f"the recipe of {model_dir} names no test data; pass data=FILE")
    test = task_data.splits["test"]
    references = ReferenceIndex((decode(tokenizer, ids).split() for ids in test.dataset["ids"][:]), max_n=5)
    batches = (b.to(device) for b in test.loader(cfg.data, shuffle=False, seed=cfg.seed))
    nlls = tempered_nll(model, batches, alphas)
    decode_cfg = DecodeConfig(strategy="sample", max_new_tokens=cfg.decode.max_new_tokens)
    rows = []
    for alpha, nll in zip(alphas, nlls):
        reporter.set_postfix_str(f"α={alpha:g}")
        rng = torch.Generator(device).manual_seed(seed)
        samples = []
        for start in range(0, num_samples, SAMPLE_BATCH):
            ids = generate(model, decode_cfg, num_sequences=min(SAMPLE_BATCH, num_samples - start),
                           rng=rng, alpha=alpha)
            samples += [decode(tokenizer, row).split() for row in ids]
        rows.append({**bleu_scores(samples, references, orders=(5,)),
                     **self_bleu_scores(samples, orders=(5,)), "nll_test": nll})
        reporter.update()
    return rows, len(test)


def _model_names(model_dirs: Sequence[str | Path]) -> list[str]:
    """Each model's folder name (`run/model` for an exported model inside a run folder), or the path as
    given where two names would clash."""
    names = []
    for path in model_dirs:
        path = Path(path).resolve()
        model_dir, run_dir = resolve(path)
        inside_run = run_dir is not None and path == model_dir
        names.append(f"{run_dir.name}/{model_dir.name}" if inside_run else path.name)
    return [str(p) if names.count(n) > 1 else n for p, n in zip(model_dirs, names)]


def _write_tables(rows: list[dict], out: Path) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(out / "sweep.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    (out / "sweep.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")


def _plot(rows: list[dict], out: Path) -> None:
    # A bare Figure renders with Agg and leaves pyplot's global backend alone (notebooks keep theirs).
    from matplotlib.figure import Figure

    models = list(dict.fromkeys(row["model"] for row in rows))
    for x, y in PAIRS:
        curves = {m: sorted((r for r in rows if r["model"] == m and x in r and y in r), key=lambda r: r["alpha"])
                  for m in models}
        curves = {m: c for m, c in curves.items() if c}
        if not curves:
            continue
        fig = Figure(figsize=(6.4, 4.8))
        ax = fig.add_subplot()
        for model, curve in curves.items():
            xs, ys = [r[x] for r in curve], [r[y] for r in curve]
            ax.plot(xs, ys, marker="o", label=model)
            for r, px, py in zip(curve, xs, ys):
                ax.annotate(f"α={r['alpha']:g}", (px, py), textcoords="offset points", xytext=(4, 4),
                            fontsize=8)
        ax.set_xlabel(AXIS_LABELS[x])
        ax.set_ylabel(AXIS_LABELS[y])
        ax.set_title("Quality-diversity over inverse temperature α")
        ax.margins(0.1)  # room for the α labels of the outermost points
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / f"{x}_vs_{y}.png", dpi=120)
