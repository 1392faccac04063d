"""`seqgen reproduce NAME`: train a benchmark's rows, measure each on its test split as the papers did,
sweep each language model's inverse temperature, and write the table beside the published numbers.

The folder holds `runs/ROW/` (each row's run folder), `sweep/ROW/` (its temperature sweep), `recipes/`
(each row's exact recipe), `results.json` (rewritten after every row), `report.md` and, for benchmarks
with a quality–diversity plane, `frontier.png`. `resume=True` reuses every row already measured with the
same recipe and continues a row stopped during training from its latest checkpoint, so a long
reproduction survives a stop.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from seqgen.config import RunConfig
from seqgen.errors import UserError
from seqgen.experiments.recipes import Recipe, group_overrides, merge, study_config
from seqgen.experiments.report import Row as ResultRow
from seqgen.experiments.report import plain
from seqgen.experiments.runs import study_folder
from seqgen.metrics.frontier import distance_above, dominated_beyond, lower_envelope
from seqgen.reproduce.benchmark import SIZE_NAMES, Benchmark, Row, Size, lookup
from seqgen.reproduce.catalogue import benchmark

STUDY_KEYS = ("task", "output_dir", "train.init_from")
"""Keys the reproduction sets for each row; an override may not change them."""
DATA_VARIABLE = "SEQGEN_DATA"
"""The environment variable naming the data folder when --data-dir is not given."""
TOLERANCE = 1e-6
"""A row lies below the baseline's curve when more than this below it."""


@dataclass
class RowResult(ResultRow):
    """One row: what it trained, and its measures on the test split and over its temperature sweep.

    Attributes:
        metrics: every measure of the test evaluation (`seqgen eval`'s keys without `eval/`) and the
            benchmark's own; the table shows the benchmark's columns.
        scored: what the evaluation scored (split, data, sequence and sample counts, decoding).
        checkpoint: the model measured: its folder and training step.
        curve: the sweep, one dict per α: "alpha" and the frontier's two measures (empty: no sweep).
        distance: the row's coverage cost minus the baseline curve's at the row's quality cost
            (below zero: no temperature of the baseline is as good on both); None when no temperature
            of the baseline reaches the row's quality, or without a sweep.
        below_baseline_curve: distance < 0, or beyond the curve's reach; None without a sweep.
        area_gain: the area of the plane the row's curve dominates and the baseline's does not.
        area_loss: the reverse.
    """

    name: str
    label: str
    published_as: str | None
    recipe: Recipe
    run_dir: str
    metrics: dict[str, float]
    scored: dict[str, Any]
    checkpoint: dict[str, Any]
    curve: list[dict[str, float]] = field(default_factory=list)
    distance: float | None = None
    below_baseline_curve: bool | None = None
    area_gain: float | None = None
    area_loss: float | None = None
    train_seconds: float = 0.0
    measure_seconds: float = 0.0


@dataclass
class ReproductionResult:
    """What `reproduce` measured (results.json) and where it wrote it."""

    benchmark: str
    title: str
    size: str
    protocol: str
    rows: list[RowResult]
    anchors: dict[str, dict[str, float]]
    """Published rows measured without training (the oracle's own samples), by published name."""
    hardware: dict[str, Any]
    wall_seconds: float
    files: dict[str, Path] = field(default_factory=dict)

    def table(self) -> str:
        from seqgen.reproduce.report import text_table

        return text_table(self)


def reproduce(name: str, out_dir: str | Path, *, size: str = "cpu", rows: Sequence[str] | None = None,
              extra_rows: Sequence[tuple[str, str | Path]] = (), overrides: Sequence[str] = (),
              data_dir: str | Path | None = None, resume: bool = False,
              overwrite: bool = False) -> ReproductionResult:
    """Rerun benchmark `name` at `size`: train its rows, measure them, write the table and figure.

    Args:
        name: a benchmark of `seqgen.reproduce.catalogue.BENCHMARKS` (`seqgan-oracle`, ...).
        out_dir: the reproduction's folder.
        size: "paper" (the published protocol), "cpu" (sized for 2 CPU cores) or "tiny".
        rows: the rows to train, by name (None: all); the baseline is always trained.
        extra_rows: (name, recipe file) pairs: a user's method as one more row, its recipe's keys laid
            over the baseline's recipe and the rows' budget, trained from the baseline's model unless the
            file sets `train.init_from` itself.
        overrides: `key=value` recipe overrides of every row, `ROW.key=value` of one row.
        data_dir: the folder holding the benchmark's files (`Benchmark.data`); default: the environment
            variable `SEQGEN_DATA`. An override of a data key names that file itself.
        resume: reuse the rows `out_dir` already measured with the same recipe, continue the others.
        overwrite: replace what `out_dir` holds (otherwise a folder that is not empty is an error).

    Raises:
        UserError: an unknown benchmark, size or row, a bad override or row recipe, missing data, a
            folder that already holds something (without `resume` or `overwrite`); all before any run.
    """
    from seqgen.reproduce.report import write

    bench = benchmark(name)
    if size not in SIZE_NAMES:
        raise UserError(f"unknown size {size!r} of {name}; use one of {', '.join(SIZE_NAMES)}")
    spec = bench.sizes[size]
    if resume and overwrite:
        raise UserError("--resume and --overwrite exclude each other")
    out = Path(out_dir)
    previous, wall_before = _previous(out, bench, size) if resume else ({}, 0.0)
    if not resume:
        study_folder(out, overwrite)
    plan = _Plan(bench, spec, _selected(bench, rows, extra_rows), overrides, out, _data_files(bench, spec, data_dir))
    for row in plan.rows:  # every recipe, and the data it names, is checked before the first run
        _check_data(bench, spec, plan.recipe(row))
        plan.config(row)
    out.mkdir(parents=True, exist_ok=True)
    print(f"reproduce {bench.name} ({size}): {len(plan.rows)} rows in {out}\n  {spec.protocol}")
    start = time.perf_counter()
    anchors = bench.anchors(plan.config(bench.baseline)) if bench.anchors else {}
    results: list[RowResult] = []
    resume_rows = resume
    for i, row in enumerate(plan.rows, 1):
        recipe = plain(plan.recipe(row))
        reused = previous.get(row.name)
        if reused is not None and reused.recipe == recipe:
            results.append(reused)
            print(f"[{i}/{len(plan.rows)}] {row.name}: measured before, reused")
            continue
        cfg = plan.config(row)
        if row is bench.baseline and (not resume or _run_state(Path(cfg.output_dir), cfg) != "finished"):
            previous, resume_rows = {}, False  # a baseline trained further: the rows from its model are stale
        results.append(_train_and_measure(bench, spec, row, cfg, recipe,
                                          resume if row is bench.baseline else resume_rows))
        _compare(bench, results)
        print(f"[{i}/{len(plan.rows)}] {row.name}: {_measures(bench, results[-1])}  "
              f"({results[-1].train_seconds:.0f} s training, {results[-1].measure_seconds:.0f} s measuring)")
        _save(out, bench, size, spec, results, anchors, wall_before + time.perf_counter() - start)
    # rows measured before and not asked for this time stay in the table, in the benchmark's order
    kept = [r for name, r in previous.items() if name not in {row.name for row in plan.rows}]
    order = {row.name: i for i, row in enumerate(bench.rows)}
    results = sorted(results + kept, key=lambda r: (r.name not in order, order.get(r.name, 0)))
    _compare(bench, results)
    result = ReproductionResult(benchmark=bench.name, title=bench.title, size=size, protocol=spec.protocol,
                                rows=results, anchors=anchors, hardware=hardware(),
                                wall_seconds=round(wall_before + time.perf_counter() - start, 1))
    result.files = write(result, bench, out)
    return result


class _Plan:
    """The recipes of a reproduction's rows: the size's baseline recipe, the rows' budget for rows from
    the baseline, each row's changes, the user's overrides, and the keys the reproduction sets."""

    def __init__(self, bench: Benchmark, spec: Size, rows: list[Row], overrides: Sequence[str], out: Path,
                 data: Recipe) -> None:
        self.bench, self.spec, self.rows, self.out, self.data = bench, spec, rows, out, data
        self.groups = group_overrides(overrides, [r.name + "." for r in rows], STUDY_KEYS)

    def recipe(self, row: Row) -> Recipe:
        changes = row.recipe_changes(self.spec)
        parts: list[Recipe] = [self.spec.recipe, self.data]
        study: Recipe = {"output_dir": str(self.out / "runs" / row.name)}
        if row is not self.bench.baseline and row.from_baseline:
            parts.append(self.spec.rows)
            if lookup(changes, "train.init_from") is None:
                study["train"] = {"init_from": str(self.out / "runs" / self.bench.baseline.name)}
        return merge(*parts, changes, self.groups[""], self.groups[row.name + "."], study)

    def config(self, row: Row) -> RunConfig:
        recipe = self.recipe(row)
        return study_config(recipe, recipe["output_dir"])


def _selected(bench: Benchmark, names: Sequence[str] | None,
              extra_rows: Sequence[tuple[str, str | Path]]) -> list[Row]:
    """The rows to run: the baseline, the named rows of the benchmark (all when None), the user's rows."""
    known = {r.name: r for r in bench.rows}
    unknown = [n for n in (names or ()) if n not in known]
    if unknown:
        raise UserError(f"{bench.name} has no row {', '.join(unknown)}; its rows: {', '.join(known)}")
    chosen = [r for r in bench.rows if names is None or r.name in names or r is bench.baseline]
    for row_name, path in extra_rows:
        if row_name in known or any(r.name == row_name for r in chosen[len(bench.rows):]):
            raise UserError(f"--row {row_name}: a row of that name exists; name yours otherwise")
        chosen.append(Row(row_name, row_name, _row_recipe(Path(path))))
    return chosen


def _row_recipe(path: Path) -> Recipe:
    """A user's row: a YAML mapping of recipe keys."""
    import yaml

    try:
        changes = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise UserError(f"--row: cannot read {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise UserError(f"--row: {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(changes, dict):
        raise UserError(f"--row: {path} must be a mapping of recipe keys (e.g. objective: ...)")
    return changes


def _data_files(bench: Benchmark, spec: Size, data_dir: str | Path | None) -> Recipe:
    """The recipe keys of the benchmark's files inside the data folder (none when the size uses none or
    no folder is given)."""
    folder = data_dir or os.environ.get(DATA_VARIABLE)
    if not spec.uses_data or not folder:
        return {}
    recipe: Recipe = {}
    for key, relative in bench.data.items():
        *parents, leaf = key.split(".")
        node = recipe
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = str(Path(folder) / relative)
    return recipe


def _check_data(bench: Benchmark, spec: Size, recipe: Recipe) -> None:
    """One line naming the benchmark's file that is not where the recipe says, or not given at all."""
    if not spec.uses_data:
        return
    for key, relative in bench.data.items():
        path = lookup(recipe, key)
        if path is None:
            raise UserError(f"{bench.name} needs {relative}: pass --data-dir FOLDER holding it (or set "
                            f"{DATA_VARIABLE}), or {key}=PATH")
        # a parallel corpus names its two sides' files with {lang}
        langs = [lookup(recipe, "data.source_lang"), lookup(recipe, "data.target_lang")] if "{lang}" in path else [""]
        for missing in (f for f in (path.replace("{lang}", str(lang)) for lang in langs) if not Path(f).exists()):
            which = "which" if missing == path else f"but {missing}"
            raise UserError(f"{bench.name} needs {key} = {path}, {which} does not exist; pass --data-dir FOLDER "
                            f"holding {relative}, or {key}=PATH")


def _train_and_measure(bench: Benchmark, spec: Size, row: Row, cfg: RunConfig, recipe: Recipe,
                       resume: bool) -> RowResult:
    """Train the row, then measure it. With `resume`, a run folder started with this very recipe is
    continued from its latest checkpoint (or only measured, when it finished); anything else in the
    folder is replaced."""
    from seqgen.inference import evaluate_model
    from seqgen.train import train

    run_dir = Path(cfg.output_dir)
    start = time.perf_counter()
    state = _run_state(run_dir, cfg) if resume else "other"
    if state != "finished":
        with contextlib.redirect_stdout(io.StringIO()):  # the loop's lines; the reproduction prints its own
            train(cfg, resume=state == "started", overwrite=state == "other")
    trained = time.perf_counter() - start
    with contextlib.redirect_stdout(io.StringIO()):
        evaluation, _ = evaluate_model(run_dir, split="test", overrides=list(spec.evaluation))
    metrics = {k.removeprefix("eval/"): v for k, v in evaluation.metrics.items()}
    if bench.extra:
        metrics.update(bench.extra(run_dir, spec))
    curve = _sweep(bench, spec, run_dir, cfg) if bench.frontier and spec.alphas else []
    return RowResult(name=row.name, label=row.label, published_as=row.published, recipe=recipe, run_dir=str(run_dir),
                     metrics=metrics, scored=evaluation.scored, checkpoint=evaluation.checkpoint, curve=curve,
                     train_seconds=round(trained, 1), measure_seconds=round(time.perf_counter() - start - trained, 1))


def _run_state(run_dir: Path, cfg: RunConfig) -> str:
    """"finished" (its model exported), "started" (a checkpoint to continue) or "other" (nothing of this
    recipe: empty, or started with another recipe) for a row's run folder."""
    from seqgen.config import from_dict, load_yaml, to_dict
    from seqgen.models import exported_step
    from seqgen.run_folder import RECIPE_FILE

    try:
        saved = from_dict(RunConfig, load_yaml((run_dir / RECIPE_FILE).read_text(encoding="utf-8")))
    except (OSError, UserError, ValueError):
        return "other"
    if to_dict(saved) != to_dict(cfg):
        return "other"
    if exported_step(run_dir / "model") is not None and (run_dir / "metrics.json").is_file():
        return "finished"
    checkpoints = run_dir / "checkpoints"
    return "started" if checkpoints.is_dir() and any(checkpoints.iterdir()) else "other"


def _sweep(bench: Benchmark, spec: Size, run_dir: Path, cfg: RunConfig) -> list[dict[str, float]]:
    """The row's temperature sweep in the benchmark's plane (its own folder under sweep/)."""
    from seqgen.sweep import sweep

    plane = bench.frontier
    folder = run_dir.parent.parent / "sweep" / run_dir.name
    with contextlib.redirect_stdout(io.StringIO()):
        swept = sweep([run_dir], spec.alphas, folder, num_samples=spec.sweep_samples, seed=cfg.seed, overwrite=True)
    return [{"alpha": r["alpha"], plane.quality: r[plane.quality], plane.coverage: r[plane.coverage]} for r in swept]


def _compare(bench: Benchmark, results: list[RowResult]) -> None:
    """Each row's curve against the baseline's: its distance at α = 1 and the areas each dominates."""
    plane = bench.frontier
    if plane is None or not results[0].curve:
        return
    reference = _costs(plane, results[0].curve)
    corner = (max(x for x, _ in reference), max(y for _, y in reference))
    for row in results:
        points = _costs(plane, row.curve)
        (own,) = [p for p, c in zip(points, row.curve) if c["alpha"] == 1.0]
        level = lower_envelope(reference, own[0])
        row.distance = distance_above(own[1], level, TOLERANCE)
        row.below_baseline_curve = level is None or row.distance < -TOLERANCE
        row.area_gain, row.area_loss = dominated_beyond(points, reference, corner)
    results[0].below_baseline_curve = None


def _costs(plane, curve: list[dict[str, float]]) -> list[tuple[float, float]]:
    return [(plane.quality_sign * c[plane.quality], plane.coverage_sign * c[plane.coverage]) for c in curve]


def _measures(bench: Benchmark, row: RowResult) -> str:
    return "  ".join(f"{c.label} = {row.metrics[c.key]:.{c.digits}f}" for c in bench.columns if c.key in row.metrics)


def _previous(out: Path, bench: Benchmark, size: str) -> tuple[dict[str, RowResult], float]:
    """The rows a reproduction folder measured before, for --resume, and the seconds it spent (nothing
    when it holds none yet)."""
    path = out / "results.json"
    if not path.exists():
        if out.exists() and not out.is_dir():
            raise UserError(f"{out} is a file, not a folder")
        return {}, 0.0
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise UserError(f"{path} is not a reproduction's results; pass --overwrite to start again") from None
    if saved.get("benchmark") != bench.name or saved.get("size") != size:
        raise UserError(f"{out} holds {saved.get('benchmark')} at size {saved.get('size')}, not {bench.name} at "
                        f"size {size}; use another folder")
    fields = set(RowResult.__dataclass_fields__)
    rows = {r["name"]: RowResult(**{k: v for k, v in r.items() if k in fields}) for r in saved.get("rows", [])}
    return rows, float(saved.get("wall_seconds") or 0.0)


def _save(out: Path, bench: Benchmark, size: str, spec: Size, rows: list[RowResult], anchors: dict,
          wall: float) -> None:
    """results.json after each row, so that a stopped reproduction resumes from it."""
    from seqgen.experiments.report import write_results

    write_results(out / "results.json", {"benchmark": bench.name, "title": bench.title, "size": size,
                                         "protocol": spec.protocol, "rows": rows, "anchors": anchors,
                                         "hardware": hardware(), "wall_seconds": round(wall, 1)})


def hardware() -> dict[str, Any]:
    """Where the reproduction ran: the machine, its cores and device, and the versions that matter."""
    import accelerate
    import transformers

    cuda = torch.cuda.is_available()
    return {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
            "cpu_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "device": torch.cuda.get_device_name(0) if cuda else "cpu", "python": platform.python_version(),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "accelerate": accelerate.__version__}
