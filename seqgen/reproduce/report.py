"""What a reproduction writes: the table with the published numbers beside seqgen's and the difference,
the sweeps' figure, each row's exact recipe, results.json and report.md."""

from __future__ import annotations

import shutil
from pathlib import Path

from seqgen.experiments.plots import Frontier as Curve
from seqgen.experiments.plots import plot_frontiers
from seqgen.experiments.report import (
    aligned,
    figure_links,
    markdown_document,
    markdown_table,
    number,
    write_results,
)
from seqgen.reproduce.benchmark import Benchmark, Column
from seqgen.reproduce.run import ReproductionResult, RowResult

MARKED_ALPHAS = (0.67, 0.8, 1.0, 1.25, 1.5, 2.0)
"""Inverse temperatures labelled on the baseline's curve."""


def write(result: ReproductionResult, bench: Benchmark, out: Path) -> dict[str, Path]:
    """results.json, report.md, recipes/ROW.yaml and, with sweeps, frontier.png in `out`."""
    files = {"results": out / "results.json", "report": out / "report.md"}
    recipes = out / "recipes"
    recipes.mkdir(exist_ok=True)
    for row in result.rows:  # the recipe each run folder recorded, as trained (overrides included)
        shutil.copyfile(Path(row.run_dir) / "recipe.yaml", recipes / f"{row.name}.yaml")
    write_results(files["results"], {"benchmark": result.benchmark, "title": result.title, "size": result.size,
                                     "protocol": result.protocol, "rows": result.rows, "anchors": result.anchors,
                                     "hardware": result.hardware, "wall_seconds": result.wall_seconds})
    if bench.frontier and result.rows[0].curve:
        files["frontier"] = out / "frontier.png"
        plane = bench.frontier
        curves = [_curve(plane, row) for row in result.rows]
        plot_frontiers(curves[0], curves[1:], MARKED_ALPHAS, plane.labels,
                       f"{bench.title}: every row's temperature sweep (lower-left is better)", files["frontier"])
    files["report"].write_text(markdown_document(_report(result, bench, files, out)), encoding="utf-8")
    return files


def _curve(plane, row: RowResult) -> Curve:
    points = [(c["alpha"], plane.quality_sign * c[plane.quality], plane.coverage_sign * c[plane.coverage])
              for c in row.curve]
    (own,) = [(x, y) for a, x, y in points if a == 1.0]
    return Curve(row.label, points, [own])


def _cells(bench: Benchmark, row: RowResult) -> list[str]:
    """The row's measures, each with the published number and the difference where there is one."""
    published = bench.published.get(row.published_as or "", {})
    cells = []
    for column in bench.columns:
        value = row.metrics.get(column.key)
        cells.append(number(value, column.digits))
        if any(column.key in numbers for numbers in bench.published.values()):
            cells += _published_cells(column, value, published.get(column.key))
    return cells


def _published_cells(column: Column, value: float | None, published: float | None) -> list[str]:
    """The published number and seqgen's difference from it, marked when seqgen's is worse."""
    if published is None or value is None:
        return [number(published, column.digits), "—"]
    difference = value - published
    worse = difference < 0 if column.higher_is_better else difference > 0
    return [number(published, column.digits), f"{difference:+.{column.digits}f}{' (worse)' if worse else ''}"]


def _header(bench: Benchmark) -> list[str]:
    header = ["row", "published row"]
    for column in bench.columns:
        header.append(column.label)
        if any(column.key in numbers for numbers in bench.published.values()):
            header += [f"{column.label} published", "difference"]
    return header


def _frontier_cells(row: RowResult, baseline: bool) -> list[str]:
    if not row.curve:
        return []
    below = "—" if baseline else ("yes" if row.below_baseline_curve else "no")
    return [number(row.distance), below, number(row.area_gain), number(row.area_loss)]


FRONTIER_HEADER = ["distance to TF's curve", "below TF's curve", "area gain", "area loss"]


def _table_rows(result: ReproductionResult, bench: Benchmark) -> tuple[list[str], list[list[str]]]:
    header = _header(bench) + (FRONTIER_HEADER if result.rows[0].curve else []) + ["training s"]
    rows = [[row.label, row.published_as or "—", *_cells(bench, row), *_frontier_cells(row, i == 0),
             f"{row.train_seconds:.0f}"] for i, row in enumerate(result.rows)]
    return header, rows


def text_table(result: ReproductionResult) -> str:
    """The main table, aligned for the terminal."""
    from seqgen.reproduce.catalogue import benchmark

    header, rows = _table_rows(result, benchmark(result.benchmark))
    return "\n".join(aligned(header, rows))


def _report(result: ReproductionResult, bench: Benchmark, files: dict[str, Path], out: Path) -> list[str]:
    header, rows = _table_rows(result, bench)
    hw = result.hardware
    lines = [f"# Reproduction: {bench.title} (`{bench.name}`, size `{result.size}`)", "",
             f"Published numbers: {bench.source}", "", f"This size: {result.protocol}", "",
             (f"Ran in {result.wall_seconds / 60:.1f} minutes on {hw['device']} ({hw['cpu_cores']} CPU cores, "
             f"{hw['machine']}), torch {hw['torch']}, transformers {hw['transformers']}. Each row's exact recipe "
             f"is in recipes/; its run folder in runs/."), "", "## Table", "",
             ("Each row's measures on the test split; where the row has a published counterpart, the published "
             "number and seqgen's difference from it, marked (worse) where seqgen's is worse."), "",
             markdown_table(header, rows)]
    if result.rows[0].curve:
        lines += ["", ("Distance: the row's coverage cost minus teacher forcing's tempered curve at the row's quality "
                      "(below zero: no temperature of teacher forcing is as good on both). Areas: of the plane the "
                      "row's own temperature curve dominates and teacher forcing's does not (gain), and the reverse "
                      "(loss).")]
    lines += _published_only(result, bench)
    if result.rows[0].curve:
        lines += ["", "## Temperature sweeps", "", _sweep_table(result, bench)]
    lines += ["", "## What was scored", "", *(f"- {row.name}: {_scored(row)}" for row in result.rows)]
    if bench.notes:
        lines += ["", "## Notes", "", *(f"- {note}" for note in bench.notes)]
    return [*lines, *figure_links({k: v for k, v in files.items() if k != "report"}, out)]


def _published_only(result: ReproductionResult, bench: Benchmark) -> list[str]:
    """The published rows no row of this reproduction stands for (the anchors measured beside them)."""
    matched = {row.published_as for row in result.rows}
    others = [name for name in bench.published if name not in matched]
    if not others:
        return []
    keys = [c for c in bench.columns if any(c.key in bench.published[n] for n in others)]
    rows = [[name, *(number(bench.published[name].get(c.key), c.digits) for c in keys),
             *(number(result.anchors.get(name, {}).get(c.key), c.digits) for c in keys)] for name in others]
    header = ["published row", *(f"{c.label} published" for c in keys), *(f"{c.label} measured here" for c in keys)]
    return ["", "Published rows without a seqgen row (measured here where seqgen can without training):", "",
            markdown_table(header, rows)]


def _sweep_table(result: ReproductionResult, bench: Benchmark) -> str:
    plane = bench.frontier
    alphas = [c["alpha"] for c in result.rows[0].curve]
    rows = []
    for alpha in alphas:
        cells = []
        for row in result.rows:
            point = next((c for c in row.curve if c["alpha"] == alpha), None)
            cells.append("—" if point is None else f"{point[plane.quality]:.3f} / {point[plane.coverage]:.3f}")
        rows.append([f"{alpha:g}", *cells])
    return (f"{plane.quality} / {plane.coverage} at each inverse temperature α:\n\n"
            + markdown_table(["α", *(row.name for row in result.rows)], rows))


def _scored(row: RowResult) -> str:
    scored, checkpoint = row.scored, row.checkpoint
    parts = [f"{checkpoint.get('path')} (step {checkpoint.get('step')})",
             f"{scored.get('split')} split ({scored.get('data')}), {scored.get('num_sequences')} sequences"]
    for key in ("samples", "oracle_samples"):
        if key in scored:
            parts.append(f"{scored[key].get('num')} {key.replace('_', ' ')}")
    if "num_decoded" in scored:
        parts.append(f"{scored['num_decoded']} decoded ({scored['decoding'].get('strategy')})")
    return "; ".join(parts)
