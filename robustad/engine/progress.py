"""Progress display: rich bars on a terminal, plain lines otherwise, or nothing."""

from __future__ import annotations

from typing import Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class Reporter(Protocol):
    """Where the runner reports stage progress (rich bars, plain lines, or nothing)."""

    def stage(self, description: str, total: int) -> None: ...

    def advance(self, count: int = 1) -> None: ...


class SilentReporter:
    """Reports nothing."""

    def stage(self, description: str, total: int) -> None:
        pass

    def advance(self, count: int = 1) -> None:
        pass


class RichReporter:
    """One overall bar (cells) and one for the current stage (images), with ETA."""

    def __init__(self, console: Console, total_cells: int) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console, transient=False,
        )
        self.cells = self.progress.add_task("cells", total=total_cells)
        self.current = self.progress.add_task("starting", total=1, visible=False)

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def stage(self, description: str, total: int) -> None:
        self.progress.reset(self.current, total=total, description=description, visible=True)

    def advance(self, count: int = 1) -> None:
        self.progress.advance(self.current, count)

    def cell_done(self, message: str) -> None:
        self.progress.advance(self.cells)
        self.progress.console.print(message, highlight=False, markup=False, soft_wrap=True)


class PlainReporter:
    """Plain lines for logs and pipes: one per stage and one per finished cell, never wrapped at the console's
    width (a log line cut mid-value cannot be searched or parsed)."""

    def __init__(self, console: Console, total_cells: int) -> None:
        self.console = console
        self.total = total_cells
        self.done = 0

    def __enter__(self) -> PlainReporter:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def stage(self, description: str, total: int) -> None:
        self.console.print(f"stage: {description} ({total})", highlight=False, markup=False, soft_wrap=True)

    def advance(self, count: int = 1) -> None:
        pass

    def cell_done(self, message: str) -> None:
        self.done += 1
        self.console.print(f"[{self.done}/{self.total}] {message}", highlight=False, markup=False, soft_wrap=True)


def reporter_for(console: Console, total_cells: int) -> RichReporter | PlainReporter:
    """Bars when the console is an interactive terminal, lines otherwise."""
    if console.is_terminal:
        return RichReporter(console, total_cells)
    return PlainReporter(console, total_cells)
