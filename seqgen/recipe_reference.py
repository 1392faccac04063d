"""The recipe reference (docs/recipes.md), generated from the config dataclasses' field docstrings.

    python -m seqgen.recipe_reference > docs/recipes.md

Every recipe key is a dataclass field whose docstring is the string literal just below it; a section
chosen by a tag (`model.family`, `objective.name`) lists the keys of each choice.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
import typing
from typing import Any, Literal

from seqgen.config import RunConfig, Tagged

HEADER = """# Recipe reference

Every key a recipe can set, with its default. A recipe is a YAML file of these sections; any key can
also be set on the command line as `section.key=value` (`seqgen train RECIPE objective.pi=0.3`).
`model.family` and `objective.name` choose which keys their section takes.

This page is generated from the config classes: `python -m seqgen.recipe_reference > docs/recipes.md`.
"""


def field_docs(cls: type) -> dict[str, str]:
    """The docstring of each field of dataclass `cls` (and of its bases), by field name."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        body = ast.parse(textwrap.dedent(inspect.getsource(klass))).body[0].body
        for node, after in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def render() -> str:
    """The whole reference as Markdown."""
    lines = [HEADER]
    for f in dataclasses.fields(RunConfig):
        hint = typing.get_type_hints(RunConfig)[f.name]
        if not dataclasses.is_dataclass(hint):
            continue
        if issubclass(hint, Tagged):
            for tag, cls in hint.choices().items():
                lines += _section(f"{f.name} ({hint.TAG}: {tag})", cls, f.name)
        else:
            lines += _section(f.name, hint, f.name)
    top = [(f.name, f) for f in dataclasses.fields(RunConfig)
           if not dataclasses.is_dataclass(typing.get_type_hints(RunConfig)[f.name])]
    lines += _table("top level", RunConfig, [name for name, _ in top], "")
    return "\n".join(lines).rstrip() + "\n"


def _section(title: str, cls: type, prefix: str) -> list[str]:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    lines = _table(title, cls, [n for n in names if not dataclasses.is_dataclass(hints[n])], prefix)
    for name in names:
        if dataclasses.is_dataclass(hints[name]):
            lines += _section(f"{title}: {name}", hints[name], f"{prefix}.{name}")
    return lines


def _table(title: str, cls: type, names: list[str], prefix: str) -> list[str]:
    doc = " ".join((inspect.getdoc(cls) or "").split("\n\n")[0].split())
    docs, hints = field_docs(cls), typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    rows = [f"## {title}", "", doc, "", "| key | type | default | |", "|---|---|---|---|"]
    for name in names:
        key = f"{prefix}.{name}" if prefix else name
        rows.append(f"| `{key}` | {_type(hints[name])} | `{_default(fields[name])}` | {_cell(docs.get(name, ''))} |")
    return rows + [""]


def _type(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return " \\| ".join(f"`{v}`" for v in typing.get_args(hint))
    text = getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
    return _cell(str(hint).replace("typing.", "") if typing.get_args(hint) else text)


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return repr(f.default) if isinstance(f.default, str) else str(f.default)
    if f.default_factory is not dataclasses.MISSING:
        return str(f.default_factory())
    return ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


if __name__ == "__main__":
    print(render(), end="")
