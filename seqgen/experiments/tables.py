"""The studies' tables: aligned plain text for the terminal, Markdown for report.md. Cells are strings."""

from __future__ import annotations


def aligned(header: list[str], rows: list[list[str]], left: int = 1) -> list[str]:
    """One line per row, header first; the first `left` columns left-aligned, the others right-aligned."""
    widths = [max(len(c) for c in column) for column in zip(header, *rows)]
    return ["  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
            for row in [header, *rows]]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
                      *("| " + " | ".join(row) + " |" for row in rows)])
