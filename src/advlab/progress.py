"""A rich progress bar that is silent when asked (or when not on a terminal in CI)."""

from __future__ import annotations

import contextlib
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
