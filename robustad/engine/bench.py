"""``robustad bench``: run cells with progress, then print the aggregated rows of this run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from robustad.results.aggregate import SUMMARY_METRICS, aggregate
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


def summary_table(rows: pd.DataFrame, title: str) -> Table:
    """A rich table of aggregated rows; settings shared by every line go into the title."""
    summary = aggregate(rows)
    keys = ["dataset", "shots", "backbone", "resolution", "detector", "attack", "eps", "surrogate", "calibrator"]
    varying = [k for k in keys if summary[k].nunique() > 1] or ["calibrator"]
    shared = ", ".join(f"{k}={summary[k].iloc[0]}" for k in keys if k not in varying and len(summary))
    table = Table(title=f"{title}\n{shared}" if shared else title)
    for column in varying + SUMMARY_METRICS:
        table.add_column(column, justify="right" if column in SUMMARY_METRICS else "left")
    for _, line in summary.iterrows():
        table.add_row(*[str(line[k]) for k in varying],
                      *[_pm(line[f"{m}_mean"], line[f"{m}_std"]) for m in SUMMARY_METRICS])
    return table


def _fmt(value: object) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{float(value):.3f}"


def _pm(mean: float, std: float) -> str:
    if pd.isna(mean):
        return ""
    return f"{mean:.3f}" if pd.isna(std) or std == 0 else f"{mean:.3f} +- {std:.3f}"
