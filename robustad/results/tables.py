"""Rich tables of aggregated leaderboard rows, shared by ``bench`` and ``leaderboard``."""

from __future__ import annotations

import pandas as pd
from rich.table import Table

from robustad.results.aggregate import SUMMARY_METRICS, aggregate


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


def _pm(mean: float, std: float) -> str:
    if pd.isna(mean):
        return ""
    return f"{mean:.3f}" if pd.isna(std) or std == 0 else f"{mean:.3f} +- {std:.3f}"
