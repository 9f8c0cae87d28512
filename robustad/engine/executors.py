"""Executors: run the pending cells of a grid and append each finished row to the leaderboard.

Both executors take the same arguments and differ only in where groups run; they are chosen by name from
``robustad.declaration.EXECUTORS``. Only the driver writes the leaderboard. A failing cell or group is recorded
with a one-line reason and every other row still lands.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from robustad.engine.grid import describe, group_by_model_prefix
from robustad.engine.progress import Reporter
from robustad.engine.request import Plan
from robustad.engine.runner import CellOutcome, run_group
from robustad.engine.settings import RunSettings
from robustad.errors import RobustadError, one_line
from robustad.interrupts import is_users, stop_if_requested
from robustad.plugins import PluginRegistry
from robustad.records import Cell
from robustad.results.leaderboard import Leaderboard, LockTimeout

DEBUG_VARIABLE = "ROBUSTAD_DEBUG"  # set to 1: an unexpected error in a group raises with its traceback


@dataclass
class GridResult:
    """What a run did: rows written now, cells skipped as already finished, rows another process landed first,
    and cells that failed (key and one-line reason)."""

    written: list[dict] = field(default_factory=list)
    skipped: int = 0
    duplicates: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    def land(self, board: Leaderboard, outcome: CellOutcome, on_row: Callable[[Cell, dict], None]) -> None:
        """Append a finished row to the leaderboard (the driver's job alone), or record why the cell failed (a row
        that cannot be written is that cell's failure); then stop if Ctrl-C was pressed, even when its
        ``KeyboardInterrupt`` was swallowed somewhere."""
        if outcome.row is not None:
            try:
                written = board.append(outcome.row)
            except LockTimeout:
                raise  # every further row would wait as long: the run stops with one line
            except RobustadError as error:
                outcome = CellOutcome(outcome.cell, error=one_line(error))
        if outcome.row is None:
            self.failures.append((outcome.cell.key, f"{describe(outcome.cell)}: {outcome.error}"))
        elif written:
            self.written.append(outcome.row)
            on_row(outcome.cell, outcome.row)
        else:
            self.duplicates += 1
        stop_if_requested()


def pending(cells: list[Cell], board: Leaderboard) -> tuple[list[Cell], int]:
    """The cells not yet in the leaderboard (a row an earlier version wrote counts), and how many were skipped."""
    todo = [cell for cell in cells if not board.holds(cell.key, cell.legacy_key)]
    return todo, len(cells) - len(todo)


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``count`` for the block (a row records it)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_local(cells: list[Cell], settings: RunSettings, out: Path, registry: PluginRegistry, reporter: Reporter,
              on_row: Callable[[Cell, dict], None], plan: Plan | None = None) -> GridResult:
    """In-process executor: prefix group after prefix group, each row appended as its cell finishes; the groups
    take their data and splits from ``plan`` when given."""
    board = Leaderboard(out)
    todo, skipped = pending(cells, board)
    result = GridResult(skipped=skipped)
    with torch_threads(settings.threads):
        for group in group_by_model_prefix(todo):
            landed: set[str] = set()
            try:
                loaded = None if plan is None else plan.loaded(group[0])
                for outcome in run_group(group, settings, registry, reporter, loaded):
                    result.land(board, outcome, on_row)
                    landed.add(outcome.cell.key)
            except BaseException as error:  # a bug in a plugin or in robustad: this group fails, the others run
                if is_users(error) or isinstance(error, LockTimeout) or os.environ.get(DEBUG_VARIABLE):
                    raise  # a plugin's SystemExit or KeyboardInterrupt outside its guard is the plugin's failure
                for cell in group:
                    if cell.key not in landed:
                        result.land(board, CellOutcome(cell, error=one_line(error)), on_row)
    return result
