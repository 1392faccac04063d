"""The one size vocabulary of the studies: every study has a frozen dataclass of its sizes and one
instance per name of `SIZE_NAMES`; a caller passes a name (the command line's) or the object itself."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from seqgen.errors import UserError

SIZE_NAMES = ("tiny", "demo", "full")
"""tiny: seconds per run (tests, notebooks); demo: `seqgen demo`, minutes; full: the study as reported."""
ALIASES = {"small": "tiny"}
"""Earlier names still accepted."""

T = TypeVar("T")


def study_size(sizes: Mapping[str, T], size: str | T) -> T:
    """`size` itself when it is a size object, else the size of that name in `sizes`.

    Raises:
        UserError: an unknown name.
    """
    if not isinstance(size, str):
        return size
    name = ALIASES.get(size, size)
    if name not in sizes:
        raise UserError(f"unknown study size {size!r}; use one of {', '.join(sizes)}")
    return sizes[name]
