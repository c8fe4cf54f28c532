"""Job progress on stderr: a live bar on a terminal, plain lines when stderr is a pipe or a log file.

A bar redrawn with carriage returns shows nothing useful in a log (rich prints it only at the end),
so off a terminal each change of status or chunk count is printed as one line of its own.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.console import Console

    from shared.schemas import JobOut

OnUpdate = Callable[["JobOut"], None]


def describe(job: JobOut) -> str:
    """``abcd1234 synthesis running (position 2)``: the job's short id, kind, status and queue place."""
    where = f" (position {job.queue_position})" if job.queue_position is not None else ""
    return f"{job.job_id[:8]} {job.kind} {job.status}{where}"


def _chunks(job: JobOut) -> str:
    done, total = job.progress.done, job.progress.total
    if not total:
        return ""
    return f" {done}/{total} chunks ({100 * done // total}%)"


@contextmanager
def plain_lines(stream: TextIO | None = None) -> Iterator[OnUpdate]:
    """One line per change of status or chunk count, with the seconds since the wait began."""
    out = stream or sys.stderr
    started, last = time.monotonic(), None

    def update(job: JobOut) -> None:
        nonlocal last
        line = describe(job) + _chunks(job)
        if line != last:
            last = line
            print(f"{line} {time.monotonic() - started:.1f}s", file=out, flush=True)

    yield update


@contextmanager
def live_bar(console: Console) -> Iterator[OnUpdate]:
    """A rich bar: chunks done of total, elapsed time and ETA."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("chunks"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("queued", total=None)

        def update(job: JobOut) -> None:
            bar.update(task, description=describe(job), completed=job.progress.done,
                       total=job.progress.total or None)

        yield update


@contextmanager
def job_progress(console: Console | None = None) -> Iterator[OnUpdate]:
    """The bar on a terminal, plain lines elsewhere; nothing when the console is quiet."""
    from rich.console import Console

    console = console or Console(stderr=True)
    if console.quiet:
        yield lambda job: None
    elif console.is_terminal:
        with live_bar(console) as update:
            yield update
    else:
        with plain_lines(console.file) as update:
            yield update
