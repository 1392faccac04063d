"""What a reproduction is made of: a benchmark's sizes (the recipes of its baseline and its rows'
budget), its rows (training methods, each a change of the baseline's recipe), the columns of its table
and the numbers published for them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqgen.experiments.recipes import Recipe

SIZE_NAMES = ("paper", "cpu", "tiny")
"""Every benchmark's sizes: the published protocol, one sized for 45 minutes on 2 CPU cores,
and one for tests."""


@dataclass(frozen=True)
class Column:
    """One measure in a benchmark's table.

    Attributes:
        key: its key in a row's metrics (what `seqgen eval` reports, without `eval/`, or a benchmark's own).
        label: the table's heading.
        higher_is_better: the direction that makes a row better than the published one.
        digits: decimals shown.
    """

    key: str
    label: str
    higher_is_better: bool
    digits: int = 3


@dataclass(frozen=True)
class Row:
    """One training method of a benchmark: what it changes in the size's baseline recipe.

    Attributes:
        name: its folder and key (`--rows` selects by it; `NAME.key=value` overrides its recipe).
        label: how the table names it.
        changes: recipe changes on top of the size's baseline recipe and, when `from_baseline`, its
            `Size.rows` budget: the objective, and anything else the method's protocol sets; or a function
            of the size giving them (a schedule that spans the rows' steps).
        from_baseline: start from the baseline's exported model (`train.init_from`), as the published
            method did; otherwise train from scratch with the baseline's budget.
        published: the published row it is compared with (a key of `Benchmark.published`), if any.
    """

    name: str
    label: str
    changes: Recipe | Callable[[Size], Recipe] = field(default_factory=dict)
    from_baseline: bool = True
    published: str | None = None

    def recipe_changes(self, size: Size) -> Recipe:
        """What this row changes at `size`."""
        return self.changes(size) if callable(self.changes) else self.changes


@dataclass(frozen=True)
class Size:
    """One size of a benchmark.

    Attributes:
        recipe: the baseline's (teacher forcing's) whole recipe, as nested keys.
        rows: what every row trained from the baseline changes in `recipe` (its optimiser budget).
        evaluation: recipe overrides of the test evaluation (sample counts), `key=value` items.
        protocol: one sentence: what this size trains and measures, and where it departs from the paper.
        alphas: the inverse temperatures of each row's sweep (empty: the benchmark draws no curves).
        sweep_samples: samples per model and α in the sweep.
        uses_data: the size reads the benchmark's `data` files (a tiny size may make its own).
    """

    recipe: Recipe
    rows: Recipe
    evaluation: tuple[str, ...]
    protocol: str
    alphas: tuple[float, ...] = ()
    sweep_samples: int = 0
    uses_data: bool = True


@dataclass(frozen=True)
class Frontier:
    """The quality–diversity plane a benchmark's sweeps are drawn in: two sweep measures, each turned
    into a cost (lower is better) by `sign` (+1 keeps it, -1 negates a higher-is-better measure)."""

    quality: str
    coverage: str
    quality_sign: int
    coverage_sign: int
    labels: tuple[str, str]
    """Axis labels of the two costs."""


@dataclass(frozen=True)
class Benchmark:
    """A published comparison that `seqgen reproduce NAME` reruns.

    Attributes:
        name: the command's NAME.
        title: the report's heading.
        source: the papers whose numbers are reproduced and how they measured them, for the report.
        sizes: `SIZE_NAMES` to `Size`.
        rows: the methods, the baseline (teacher forcing) first.
        columns: the table's measures.
        published: published row name to its numbers by column key; rows seqgen has no method for are
            listed too, as the published context.
        frontier: the plane of the rows' temperature sweeps, or None (no sweep).
        data: the benchmark's files: recipe key -> path inside the data folder (`--data-dir`).
        extra: a benchmark's own measures of a trained row, beyond `seqgen eval`'s: (the row's run
            folder, its size) -> metrics by column key.
        anchors: published rows measured without training (the oracle's own samples), from the
            baseline's config: published name -> metrics by column key.
        notes: sentences for the report about how seqgen's measures relate to the published ones.
    """

    name: str
    title: str
    source: str
    sizes: Mapping[str, Size]
    rows: tuple[Row, ...]
    columns: tuple[Column, ...]
    published: Mapping[str, Mapping[str, float]]
    frontier: Frontier | None = None
    data: Mapping[str, str] = field(default_factory=dict)
    extra: Callable[[Path, Size], dict[str, float]] | None = None
    anchors: Callable[[Any], dict[str, dict[str, float]]] | None = None
    notes: tuple[str, ...] = ()

    @property
    def baseline(self) -> Row:
        return self.rows[0]


def lookup(recipe: Mapping[str, Any], key: str) -> Any:
    """The value of dotted `key` in a nested recipe (None when absent)."""
    node: Any = recipe
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node
