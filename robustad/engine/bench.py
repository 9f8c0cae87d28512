"""``robustad bench``: check where results go, run the pending cells with progress, summarise what was written."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from rich.console import Console

from robustad.declaration import EXECUTORS
from robustad.engine.executors import GridResult
from robustad.engine.progress import reporter_for
from robustad.engine.request import Plan
from robustad.engine.settings import RunSettings
from robustad.outputs import check_folder
from robustad.plugins import PluginRegistry
from robustad.records import Cell
from robustad.results.leaderboard import Leaderboard, LeaderboardWarning, check_writable
from robustad.results.tables import print_table, summarise, summary_table


def check_outputs(out: Path, save_scores: Path | None, examples: Path | None = None) -> None:
    """Fail before any computing when the leaderboard, the scores or the examples folder cannot be written."""
    check_writable(out)
    if save_scores is not None:
        check_folder(save_scores, "--save-scores", "per-image scores (it is created if missing)")
    if examples is not None:
        check_folder(examples, "--examples-dir", "adversarial examples (it is created if missing)")


def run_bench(plan: Plan, settings: RunSettings, out: Path, registry: PluginRegistry,
              console: Console) -> GridResult:
    """Run the plan's pending cells with the chosen executor and show a summary table of the rows written (the
    outputs were checked with ``check_outputs`` before the cells were built)."""
    cells = plan.cells
    console.print(f"{len(cells)} cells -> {out}", highlight=False, soft_wrap=True)
    if settings.save_scores is not None:
        _warn_missing_scores(cells, out, settings.save_scores)

    def on_row(cell: Cell, row: dict) -> None:
        adv = "" if row.get("adv_auroc") is None else f" adv_auroc={_fmt(row['adv_auroc'])}"
        reporter.cell_done(f"{cell.category} seed={cell.seed} {cell.attack} {cell.eps} {cell.surrogate} "
                           f"{cell.calibrator}: clean_auroc={_fmt(row.get('clean_auroc'))}{adv}")

    with reporter_for(console, len(cells)) as reporter:
        result = executor(settings.executor)(cells, settings, out, registry, reporter, on_row, plan)
    duplicates = f", {result.duplicates} landed by another process first" if result.duplicates else ""
    console.print(f"{len(result.written)} rows written, {result.skipped} cells already done{duplicates}",
                  highlight=False, soft_wrap=True)
    if result.written:
        print_table(console, summary_table(summarise(pd.DataFrame(result.written)),
                                           "this run (mean over categories; ± over seeds)"))
    return result


def executor(name: str) -> Callable[..., GridResult]:
    """The function of executor ``name`` (``robustad.declaration.EXECUTORS``), imported now."""
    module, _, function = EXECUTORS[name].partition(":")
    return getattr(importlib.import_module(module), function)


def _warn_missing_scores(cells: list[Cell], out: Path, folder: Path) -> None:
    """Finished cells are not run again, so their per-image scores are not written: say which are missing."""
    board = Leaderboard(out)
    missing = [c.key for c in cells if board.holds(c.key, c.legacy_key) and not (folder / f"{c.key}.csv").is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        warnings.warn(f"--save-scores: {len(missing)} finished cell(s) are not run again and get no scores in "
                      f"{folder} ({shown}); use a new --out to recompute them", LeaderboardWarning, stacklevel=2)


def _fmt(value: object) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{float(value):.3f}"
