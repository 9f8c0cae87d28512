"""Aggregate leaderboard rows: mean +- std over seeds, then the mean over categories (docs/protocol.md section 7)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from robustad.errors import RobustadError, one_line
from robustad.records import fields_with
from robustad.results.frame import numeric, text, with_noise_control
from robustad.twolevel import seed_mean_bounds

CONFIG = [*fields_with("config", "perturbation"), "options", "data"]
"""Rows that differ in any of these are never averaged together (a noise control and a clean-only row each keep
lines of their own): every cell field but those averaged over (``records.Cell``'s replicates: categories, seeds).
``data`` names the images (``data_id``) where two sets of images share a dataset and category name."""
SUMMARY_METRICS = ["clean_auroc", "adv_auroc", "noise_adv_auroc", "clean_ece", "adv_ece", "flag_auroc"]
STATISTICS = ("mean", "std", "ci_low", "ci_high")
UNBOUNDED = ("_nll", "_entropy")
"""Metrics not in [0, 1]: no Wilson interval at the boundary."""
PUBLISHED_COLUMNS = ("source", "citation", "dataset", "category", "shots", "backbone", "resolution", "detector")


def aggregate(rows: pd.DataFrame, metrics: list[str] = SUMMARY_METRICS) -> pd.DataFrame:
    """One line per configuration: ``<metric>_mean``/``_std`` over seeds and the 95 % interval of the mean over
    seeds ``<metric>_ci_low``/``_ci_high`` (``twolevel.seed_mean_bounds``: seeds and each row's images resampled),
    each then averaged over categories (the mean of the categories' bounds: wider than an interval of the mean
    of independent categories, never narrower).

    A value is defined only when every row it summarises has it (a mean over some of the seeds is not the mean
    over the seeds); ``noise_adv_auroc`` is the matching noise control's adv_auroc (``with_noise_control``).
    """
    if rows.empty:
        return pd.DataFrame(columns=CONFIG + [f"{m}_{s}" for m in metrics for s in STATISTICS]
                            + ["categories", "seeds"])
    source = with_noise_control(rows)
    source = source.assign(data=_ambiguous_data(source))
    frame = pd.DataFrame({column: text(source, column) for column in CONFIG + ["category", "seed"]})
    frame["n_eval"] = numeric(source, "n_eval")
    for metric in metrics:
        for column in (metric, f"{metric}_ci_low", f"{metric}_ci_high"):
            frame[column] = numeric(source, column)
    grouped = frame.groupby(CONFIG + ["category"], sort=False)
    per_category = grouped.agg(
        **{f"{m}_mean": (m, mean_if_complete) for m in metrics},
        **{f"{m}_std": (m, std_if_complete) for m in metrics},
        seeds=("seed", "nunique"),
    )
    for metric in metrics:
        bounds = [_seed_mean_bounds(group, metric) for _, group in grouped]
        per_category[f"{metric}_ci_low"] = [low for low, _ in bounds]
        per_category[f"{metric}_ci_high"] = [high for _, high in bounds]
    by_config = per_category.groupby(level=CONFIG, sort=False)
    summary = by_config.agg(mean_if_complete)
    summary["categories"] = by_config.size()
    columns = [f"{m}_{s}" for m in metrics for s in STATISTICS] + ["categories", "seeds"]
    return summary[columns].reset_index()


def _seed_mean_bounds(rows: pd.DataFrame, metric: str) -> tuple[float, float]:
    """The interval of one category's mean over seeds; ``n_eff`` (for the Wilson interval at 0 or 1): seeds x eval
    images, when the rows record ``n_eval``."""
    n_eval = rows["n_eval"]
    n_eff = float(n_eval.sum()) if n_eval.notna().all() and len(n_eval) else None
    return seed_mean_bounds(rows[metric], rows[f"{metric}_ci_low"], rows[f"{metric}_ci_high"], n_eff=n_eff,
                            bounded=not metric.endswith(UNBOUNDED))


def _ambiguous_data(rows: pd.DataFrame) -> pd.Series:
    """Each row's ``data_id`` where its dataset and category name hold rows of several image sets, else empty:
    rows of different images are not averaged together."""
    name = text(rows, "dataset") + "/" + text(rows, "category")
    ids = text(rows, "data_id")
    several = ids.groupby(name).transform("nunique") > 1
    return ids.where(several, "")


def mean_if_complete(values: pd.Series) -> float:
    """The mean when every value is defined, else NaN (undefined)."""
    return float(values.mean()) if len(values) and values.notna().all() else float("nan")


def std_if_complete(values: pd.Series) -> float:
    """Sample std (ddof=1) when every value is defined; 0 for a single value."""
    if not len(values) or values.isna().any():
        return float("nan")
    return float(values.std(ddof=1)) if len(values) > 1 else 0.0


def thread_counts(rows: pd.DataFrame) -> list[str]:
    """The distinct ``torch_threads`` values of the rows (they change adversarial numbers: docs/protocol.md, 9)."""
    counts = {value for value in text(rows, "torch_threads") if value}
    return sorted(counts, key=lambda value: (len(value), value))


def load_published(path: Path) -> pd.DataFrame:
    """Published reference rows (each with its citation), or an empty frame when the file is absent; anything else
    than such a file (a folder, binary data, an empty file, a leaderboard) is a one-line error."""
    if not path.exists():
        return pd.DataFrame()
    expected = f"expected a CSV of published reference rows with columns {', '.join(PUBLISHED_COLUMNS)}"
    if not path.is_file():
        raise RobustadError(f"--published {path} is not a file; {expected}")
    try:
        published = pd.read_csv(path, dtype=str, encoding="utf-8")
    except pd.errors.EmptyDataError:
        raise RobustadError(f"--published {path} is empty; {expected}") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise RobustadError(f"--published {path} cannot be read as CSV text ({one_line(exc)}); {expected}") from None
    absent = [column for column in PUBLISHED_COLUMNS if column not in published.columns]
    if absent:
        raise RobustadError(f"--published {path} lacks the column(s) {', '.join(absent)}; {expected}")
    return published


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
        values = numeric(match, "clean_auroc_full")
        per_category = values.groupby(match["category"]).mean()
        ours.append(f"{100 * per_category.mean():.1f}" if len(per_category) else "")
        counts.append(len(per_category))
    return published.assign(ours=ours, our_categories=counts)
