"""``robustad bench``: run cells with progress, then print the aggregated rows of this run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.console import Console

from robustad.results.tables import summary_table
from robustad.engine.executors import GridResult, run_local
from robustad.engine.grid import Cell
from robustad.plugins import get_registry
from robustad.engine.progress import reporter_for
from robustad.engine.request import BenchRequest
from robustad.engine.runner import RunSettings


def run_bench(cells: list[Cell], request: BenchRequest, *, device: str, batch_size: int, pixel_metrics: bool,
              out: Path, save_scores: Path | None, console: Console, executor: str = "local",
              ray_address: str | None = None) -> GridResult:
    """Run the pending cells (in-process, or as Ray tasks) and show a summary table of the rows written."""
    settings = RunSettings(data_root=request.data_root, device=device, batch_size=batch_size,
                           pixel_metrics=pixel_metrics, save_scores=save_scores)
    console.print(f"{len(cells)} cells -> {out}", highlight=False)

    def on_row(cell: Cell, row: dict) -> None:
        adv = "" if row.get("adv_auroc") is None else f" adv_auroc={row['adv_auroc']:.3f}"
        reporter.cell_done(f"{cell.category} seed={cell.seed} {cell.attack} {cell.eps} {cell.surrogate} "
                           f"{cell.calibrator}: clean_auroc={_fmt(row.get('clean_auroc'))}{adv}")

    with reporter_for(console, len(cells)) as reporter:
        if executor == "ray":
            from robustad.engine.ray_executor import run_ray

            result = run_ray(cells, settings, out, reporter, on_row, address=ray_address)
        else:
            result = run_local(cells, settings, out, get_registry(), reporter, on_row)
    console.print(f"{len(result.written)} rows written, {result.skipped} cells already done", highlight=False)
    if result.written:
        console.print(summary_table(pd.DataFrame(result.written), "this run (mean over categories; +- over seeds)"))
    return result


def _fmt(value: object) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{float(value):.3f}"
