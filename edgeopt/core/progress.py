"""Progress for long work: rich bars on a terminal, plain timed lines in logs, nothing for machines (--json).

A CI log is not a terminal: a bar redrawn in place would show nothing there until the end, so each step is one
line with the elapsed time instead, and a long step prints its count at least every LINE_INTERVAL seconds, so
a log never sits silent through a 10-minute fine-tune.
"""
from __future__ import annotations

import contextlib
import sys
import time
from typing import Callable, Iterator, Protocol, TextIO


class Advance(Protocol):
    def __call__(self, detail: str | None = None) -> None:
        """One step done; `detail` (e.g. what was built, a loss) is shown with it."""


ProgressFactory = Callable[[str, int], Advance]
LINE_INTERVAL = 30.0  # seconds between lines while many small steps run (batches of an epoch)


@contextlib.contextmanager
def progress_bars(enabled: bool = True, stream: TextIO | None = None) -> Iterator[ProgressFactory | None]:
    """Yields `start(description, total) -> advance(detail=None)`; output goes to stderr so stdout stays clean
    for --json. Bars when `stream` is a terminal, timed lines when it is not, None when not enabled."""
    if not enabled:
        yield None
        return
    stream = stream or sys.stderr
    if not stream.isatty():
        yield timed_lines(stream)
        return
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("eta"), TimeRemainingColumn())
    with Progress(*columns, console=Console(file=stream), transient=False) as bars:
        def start(description: str, total: int) -> Advance:
            task = bars.add_task(description, total=total)

            def advance(detail: str | None = None) -> None:
                bars.update(task, advance=1, description=f"{description}: {detail}" if detail else description)
            return advance

        yield start


def timed_lines(stream: TextIO, interval: float = LINE_INTERVAL) -> ProgressFactory:
    """`[  73.2s] build + verify 3/21: distill(mobilenetv2)`: a line for each step that has a detail or ends a
    task, otherwise at most one every `interval` seconds; times count from the start of the command."""
    origin = time.monotonic()

    def start(description: str, total: int) -> Advance:
        done, last = 0, time.monotonic()

        def advance(detail: str | None = None) -> None:
            nonlocal done, last
            done += 1
            now = time.monotonic()
            if detail or done >= total or now - last >= interval:
                last = now
                stream.write(f"[{now - origin:7.1f}s] {description} {done}/{total}"
                             f"{': ' + detail if detail else ''}\n")
                stream.flush()
        return advance

    return start
