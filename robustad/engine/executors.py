"""Executors: run the pending cells of a grid and append each finished row to the leaderboard."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from robustad.engine.grid import Cell, group_by_model_prefix
from robustad.results.leaderboard import append_row, finished_keys
from robustad.plugins import PluginRegistry
from robustad.engine.runner import Reporter, RunSettings, run_group


@dataclass
class GridResult:
    """What a run did: rows written now, cells skipped as already finished, groups that failed."""

    written: list[dict] = field(default_factory=list)
    skipped: int = 0
    failures: list[tuple[list[str], str]] = field(default_factory=list)

    def land(self, out: Path, cell: Cell, row: dict, on_row: Callable[[Cell, dict], None]) -> None:
        """Append a finished row to the leaderboard (the driver's job alone), then report it."""
        append_row(out, row)
        self.written.append(row)
        on_row(cell, row)


def pending(cells: list[Cell], out: Path) -> tuple[list[Cell], int]:
    """The cells not yet in the leaderboard, and how many were skipped."""
    done = finished_keys(out)
    todo = [cell for cell in cells if cell.key not in done]
    return todo, len(cells) - len(todo)


def run_local(cells: list[Cell], settings: RunSettings, out: Path, registry: PluginRegistry,
              reporter: Reporter, on_row: Callable[[Cell, dict], None]) -> GridResult:
    """In-process executor: prefix group after prefix group, each row appended as its cell finishes."""
    todo, skipped = pending(cells, out)
    result = GridResult(skipped=skipped)
    for group in group_by_model_prefix(todo):
        for cell, row in run_group(group, settings, registry, reporter):
            result.land(out, cell, row, on_row)
    return result
