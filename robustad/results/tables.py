"""The summary table of ``robustad bench`` and ``robustad leaderboard``: aggregated rows as a rich table."""

from __future__ import annotations

import hashlib

import pandas as pd
from rich.markup import escape
from rich.table import Table

from robustad.records import NOISE_CONTROL
from robustad.results.aggregate import CONFIG, SUMMARY_METRICS, aggregate
from robustad.results.frame import attack_names


def summary_table(rows: pd.DataFrame, title: str) -> Table:
    """Mean +- std over seeds and, below it, the mean 95 % interval of each metric; settings shared by every line go
    into the title, the others become columns. ``noise_adv_auroc`` appears when the rows hold a noise control."""
    summary = aggregate(rows)
    metrics = [m for m in SUMMARY_METRICS if m != "noise_adv_auroc" or (attack_names(rows) == NOISE_CONTROL).any()]
    varying = [k for k in CONFIG if summary[k].nunique() > 1] or ["calibrator"]
    shared = ", ".join(f"{k}={summary[k].iloc[0]}" for k in CONFIG
                       if k not in varying and k != "options" and len(summary) and summary[k].iloc[0] not in ("", "{}"))
    if "options" in varying:  # every option of every component: too long to show, and needed only to tell lines apart
        summary = summary.assign(options=summary["options"].map(_digest))
        others = [k for k in varying if k != "options"]
        if not others or not summary.duplicated(others).any():
            varying = others or ["calibrator"]
    table = Table(title=escape(f"{title}\n{shared}" if shared else title))
    for column in varying + metrics:
        table.add_column(column, justify="right" if column in metrics else "left")
    for _, line in summary.iterrows():
        table.add_row(*[escape(str(line[k])) for k in varying], *[_cell(line, m) for m in metrics])
    return table


def _digest(options: str) -> str:
    """A short name for a line's options (the full JSON is in the leaderboard's ``options`` column)."""
    return "#" + hashlib.sha256(str(options).encode()).hexdigest()[:6]


def _cell(line: pd.Series, metric: str) -> str:
    """``mean +- std`` (no std for a single seed) and ``[low, high]`` on a second line; empty when undefined."""
    mean, std = line[f"{metric}_mean"], line[f"{metric}_std"]
    if pd.isna(mean):
        return ""
    text = f"{mean:.3f}" if pd.isna(std) or std == 0 else f"{mean:.3f} +- {std:.3f}"
    low, high = line[f"{metric}_ci_low"], line[f"{metric}_ci_high"]
    return text if pd.isna(low) or pd.isna(high) else f"{text}\n[{low:.3f}, {high:.3f}]"
