"""Progress that suits where it is written: tqdm's bar on a terminal, plain lines anywhere else.

A bar redraws itself with carriage returns, which a log file or a pipe keeps as one ever-growing line
with error messages glued onto it. When stderr is not a terminal (a file, a pipe, a notebook, a job
scheduler), `progress` writes one plain line every `PLAIN_INTERVAL` seconds instead, and one at the end.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

from tqdm.auto import tqdm

PLAIN_INTERVAL = 30.0
"""Seconds between two plain progress lines."""


def progress(iterable: Iterable | None = None, *, desc: str, total: int | None = None, initial: int = 0,
             leave: bool = True, show: bool = True) -> Any:
    """A progress reporter with tqdm's interface (iteration, `update`, `set_postfix`, `write`, `close`,
    `with`): a tqdm bar when stderr is a terminal, else a `PlainProgress`.

    Args:
        iterable: what to iterate over, if the reporter wraps a loop.
        desc: what is progressing ("train", "eval nll", ...).
        total: the number of units, if known (default: len(iterable) when it has one).
        initial: units already done (a resumed run).
        leave: keep the finished bar on the terminal.
        show: False reports nothing (`write` still prints): other processes than the main one.
    """
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)
    if not show or sys.stderr.isatty():
        return tqdm(iterable, desc=desc, total=total, initial=initial, leave=leave, dynamic_ncols=True,
                    disable=not show)
    return PlainProgress(iterable, desc=desc, total=total, initial=initial, last_line=leave)


class PlainProgress:
    """tqdm's interface as plain lines on stderr, at most one every `interval` seconds.

    Args:
        iterable: the loop it wraps, if any.
        desc: the label of every line.
        total: the number of units, if known.
        initial: units already done.
        interval: seconds between lines.
        last_line: write a line when it closes (False for a passing step, which reports only when it
            lasts longer than `interval`).
    """

    def __init__(self, iterable: Iterable | None = None, *, desc: str, total: int | None = None,
                 initial: int = 0, interval: float = PLAIN_INTERVAL, last_line: bool = True) -> None:
        self.iterable, self.desc, self.total = iterable, desc, total
        self.n, self.start_n, self.interval = initial, initial, interval
        self.postfix = ""
        self.started = self.last = time.monotonic()
        self.closed, self.last_line = False, last_line

    def __iter__(self) -> Iterator:
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        if time.monotonic() - self.last >= self.interval:
            self._line()

    def set_postfix(self, **values: object) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def set_description(self, desc: str) -> None:
        self.desc = desc

    def write(self, text: str) -> None:
        print(text, flush=True)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.last_line and self.n > self.start_n:
                self._line()

    def _line(self) -> None:
        self.last = time.monotonic()
        elapsed = self.last - self.started
        done = f"{self.n}/{self.total} ({100 * self.n / self.total:.0f}%)" if self.total else f"{self.n}"
        rate = (self.n - self.start_n) / elapsed if elapsed > 0 else 0.0
        extra = f", {self.postfix}" if self.postfix else ""
        print(f"{self.desc}: {done}, {elapsed:.0f} s, {rate:.3g}/s{extra}", file=sys.stderr, flush=True)
