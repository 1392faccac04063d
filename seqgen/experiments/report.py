"""What every study writes: aligned plain-text tables for the terminal, Markdown tables and figure links
for report.md, numbers formatted alike, and results.json. Cells are strings."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


class Row:
    """The base of the studies' typed results (result rows and the records that hold them): dataclasses,
    read by attribute. `row["key"]` reads a field too, for the notebooks and scripts that index results
    as they index results.json."""

    def absent(self) -> tuple[str, ...]:
        """Fields this row leaves out of results.json (keys that only some rows of its kind have)."""
        return ()

    def __getitem__(self, key: str) -> Any:
        if key not in {f.name for f in dataclasses.fields(self)} or key in self.absent():
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default


def aligned(header: list[str], rows: list[list[str]], left: int = 1) -> list[str]:
    """One line per row, header first; the first `left` columns left-aligned, the others right-aligned."""
    widths = [max(len(c) for c in column) for column in zip(header, *rows)]
    return ["  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
            for row in [header, *rows]]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
                      *("| " + " | ".join(row) + " |" for row in rows)])


def number(value: float | None, digits: int = 4) -> str:
    """`value` to `digits` decimals; a dash for a missing value (None or NaN)."""
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def spread(values: Sequence[float], digits: int = 4) -> str:
    """The mean of `values`, with their range when there are several."""
    mean = sum(values) / len(values)
    if len(values) == 1:
        return number(mean, digits)
    return f"{mean:.{digits}f} [{min(values):.{digits}f}, {max(values):.{digits}f}]"


def plain(value: Any) -> Any:
    """`value` with every dataclass (a typed result row) turned into a dict, for JSON; a `Row`'s
    `absent` fields are left out."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        skip = value.absent() if isinstance(value, Row) else ()
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.name not in skip}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def write_results(path: Path, content: dict[str, Any]) -> Path:
    """results.json: `content` (typed rows as dicts), indented."""
    path.write_text(json.dumps(plain(content), indent=2), encoding="utf-8")
    return path


def figure_links(files: dict[str, Path], out: Path) -> list[str]:
    """The report's "Figures" section: a Markdown image link per .png of `files`, relative to `out`;
    nothing when there is none."""
    figures = [(name, path) for name, path in files.items() if path.suffix == ".png"]
    if not figures:
        return []
    return ["", "## Figures", "", *(f"![{path.stem}]({path.relative_to(out).as_posix()})" for _, path in figures)]


def markdown_document(lines: Iterable[str]) -> str:
    """The report's lines as one text ending in a newline."""
    return "\n".join(lines) + "\n"


def checks_summary(passed: Sequence[bool]) -> str:
    """The line under a study's checks: how many pass, and what a miss means."""
    line = f"{sum(passed)} of {len(passed)} checks pass"
    if all(passed):
        return line + "."
    return (line + "; a miss is a measured result that differs from the prediction, which report.md discusses "
            "(the study itself ran to completion)")
