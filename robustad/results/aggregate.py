"""Aggregate leaderboard rows: mean +- std over seeds, then the mean over categories (PROTOCOL.md section 7)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from robustad.errors import RobustadError

CONFIG = ["dataset", "shots", "backbone", "resolution", "detector", "surrogate", "attack", "eps", "calibrator"]
SUMMARY_METRICS = ["clean_auroc", "adv_auroc", "clean_ece", "adv_ece", "flag_auroc"]


def aggregate(rows: pd.DataFrame, metrics: list[str] = SUMMARY_METRICS) -> pd.DataFrame:
    """One line per configuration: ``<metric>_mean`` and ``<metric>_std`` (over seeds, averaged over categories)."""
    if rows.empty:
        return pd.DataFrame(columns=CONFIG + ["categories", "seeds"])
    frame = rows.copy()
    frame[CONFIG] = frame[CONFIG].fillna("").astype(str)
    for metric in metrics:  # rows of clean-only cells have no adversarial columns
        frame[metric] = pd.to_numeric(frame[metric], errors="coerce") if metric in frame else float("nan")
    per_category = frame.groupby(CONFIG + ["category"], sort=False).agg(
        **{f"{m}_mean": (m, "mean") for m in metrics},
        **{f"{m}_std": (m, lambda s: s.std(ddof=1) if s.count() > 1 else 0.0) for m in metrics},
        seeds=("seed", "nunique"),
    )
    summary = per_category.groupby(level=CONFIG, sort=False).mean()
    summary["categories"] = per_category.groupby(level=CONFIG, sort=False).size()
    columns = [f"{m}_{s}" for m in metrics for s in ("mean", "std")] + ["categories", "seeds"]
    return summary[columns].reset_index()


def filter_rows(rows: pd.DataFrame, filters: list[str]) -> pd.DataFrame:
    """Keep rows matching every ``column=value`` filter (values compared as text)."""
    for text in filters:
        column, sep, value = text.partition("=")
        if not sep or column not in rows.columns:
            raise RobustadError(f"--where {text!r}: expected column=value with a leaderboard column")
        rows = rows[rows[column].astype(str) == value]
    return rows


def load_published(path: Path) -> pd.DataFrame:
    """Published reference rows (each with its citation), or an empty frame when the file is absent."""
    if not path.exists():
        return pd.DataFrame()
    return pd.read_csv(path, dtype=str)


def beside_published(rows: pd.DataFrame, published: pd.DataFrame) -> pd.DataFrame:
    """Published rows with ours beside them: mean ``clean_auroc_full`` (%) of matching rows, and over how many
    categories (a published "mean of N" row is matched by every category we have)."""
    if published.empty:
        return published
    ours, counts = [], []
    for _, line in published.iterrows():
        match = rows
        for column in ("dataset", "shots", "backbone", "resolution", "detector"):
            match = match[match[column].astype(str) == str(line[column])]
        if not str(line["category"]).startswith("mean"):
            match = match[match["category"] == line["category"]]
        values = pd.to_numeric(match["clean_auroc_full"], errors="coerce")
        per_category = values.groupby(match["category"]).mean()
        ours.append(f"{100 * per_category.mean():.1f}" if len(per_category) else "")
        counts.append(len(per_category))
    return published.assign(ours=ours, our_categories=counts)
