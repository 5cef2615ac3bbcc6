"""Rich progress bars for long work; `null_progress` when output is for machines (--json)."""
from __future__ import annotations

import contextlib
import sys
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

ProgressFactory = Callable[[str, int], Callable[[], None]]


@contextlib.contextmanager
def progress_bars(enabled: bool = True) -> Iterator[ProgressFactory | None]:
    """Yields `start(description, total) -> advance()`; bars go to stderr so stdout stays clean for --json."""
    if not enabled:
        yield None
        return
    console = Console(file=sys.stderr)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("eta"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as bars:
        def start(description: str, total: int) -> Callable[[], None]:
            task = bars.add_task(description, total=total)
            return lambda: bars.advance(task)

        yield start
