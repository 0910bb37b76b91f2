"""A rich progress bar that is silent when asked; plain log lines when not on a terminal."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class Bar:
    """``bar(k)`` advances the bar by ``k`` (default 1); ``bar.describe(text)`` relabels it.
    Both do nothing when the bar is disabled."""

    def __init__(
        self,
        advance: Callable[[int], None] = lambda _k: None,
        describe: Callable[[str], None] = lambda _text: None,
    ) -> None:
        self._advance, self.describe = advance, describe

    def __call__(self, k: int = 1) -> None:
        self._advance(k)


@contextlib.contextmanager
def progress_bar(
    total: int, description: str, enabled: bool = True, completed: int = 0
) -> Iterator[Bar]:
    """Yield a :class:`Bar` over ``total`` steps, ``completed`` of them already done."""
    if not enabled:
        yield Bar()
        return
    if not sys.stderr.isatty():
        # A rich bar draws nothing into a log file until it ends: a run under nohup or a
        # batch scheduler would look dead for hours. Print a line now and then instead.
        yield _log_bar(total, description, completed)
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task(description, total=total, completed=completed)
        yield Bar(
            lambda k: progress.advance(task, k),
            lambda text: progress.update(task, description=text),
        )


#: Seconds between two progress lines in a log file.
LOG_EVERY_S = 60.0


class _LogLines:
    """Progress as a printed line at most every ``LOG_EVERY_S`` seconds, and at the end."""

    def __init__(self, total: int, label: str, completed: int) -> None:
        self.total, self.label, self.first, self.done = total, label, completed, completed
        self.start = self.last = time.monotonic()

    def advance(self, k: int) -> None:
        self.done += k
        now = time.monotonic()
        if now - self.last < LOG_EVERY_S and self.done < self.total:
            return
        self.last, elapsed = now, now - self.start
        rate = (self.done - self.first) / elapsed if elapsed > 0 else 0.0
        left = f", {(self.total - self.done) / rate:.0f} s left" if rate > 0 else ""
        print(f"{self.label}: {self.done}/{self.total} ({elapsed:.0f} s{left})", file=sys.stderr)

    def describe(self, text: str) -> None:
        self.label = text


def _log_bar(total: int, description: str, completed: int) -> Bar:
    lines = _LogLines(total, description, completed)
    return Bar(lines.advance, lines.describe)
