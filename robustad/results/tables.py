"""The leaderboard as a table: ``robustad leaderboard`` and the summary of ``robustad bench``.

Lines are ``aggregate`` lines (mean +- std over seeds, the mean 95 % interval, then the mean over categories). The
settings every line shares go into the title and only the varying ones become columns, so that the default
columns fit an 80-column terminal; a value is never cut short.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from copy import copy
from dataclasses import dataclass

import pandas as pd
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from robustad.errors import RobustadError
from robustad.metrics import PIXEL_METRICS, RANKING_METRICS
from robustad.records import NOISE_CONTROL
from robustad.results.aggregate import CONFIG, aggregate
from robustad.results.frame import attack_names, one_per_calibrator, text
from robustad.results.schema import INTERVAL_COLUMNS

NOISE = "noise"
"""The column of the matching noise control's adversarial AUROC (``noise_adv_auroc``), read beside every attack."""
METRIC_COLUMNS = (*INTERVAL_COLUMNS, *(f"{side}_{m}" for side in ("clean", "adv") for m in PIXEL_METRICS),
                  "clean_auroc_full", NOISE)
DEFAULT_METRICS = ("clean_auroc", "adv_auroc", NOISE)
FORMATS = ("table", "csv", "json", "markdown")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CALIBRATOR_FREE = {f"{side}_{m}" for side in ("clean", "adv") for m in (*RANKING_METRICS, *PIXEL_METRICS)} | {
    "clean_auroc_full", NOISE}
"""Metrics that read raw scores: a calibrator cannot change them, so lines that differ only in it are one line."""
LABELS = ("corruption",)
"""Row columns that name what a line's options choose (an attack's corruption): shown beside the attack instead of
the options' digest where they tell the lines apart."""
SETTINGS = [*CONFIG[:CONFIG.index("attack") + 1], *LABELS, *CONFIG[CONFIG.index("attack") + 1:]]


def valid_columns() -> list[str]:
    return [*SETTINGS, *METRIC_COLUMNS]


def parse_columns(value: str) -> list[str]:
    """``--columns a,b,c``: each a cell setting or a metric, else a one-line error listing the valid ones."""
    columns = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in columns if name not in valid_columns()]
    if unknown or not columns:
        raise RobustadError(f"--columns {unknown[0] if unknown else value!r}: unknown column; valid columns: "
                            f"{', '.join(valid_columns())}")
    return columns


def parse_format(value: str) -> str:
    if value not in FORMATS:
        raise RobustadError(f"--format {value!r}: expected one of {', '.join(FORMATS)}")
    return value


@dataclass
class Summary:
    """Aggregated lines with the settings that tell them apart (``settings``), those they all share (``shared``)
    and the metrics to show, each as ``<metric>_mean``/``_std``/``_ci_low``/``_ci_high``."""

    lines: pd.DataFrame
    settings: list[str]
    shared: dict[str, str]
    metrics: list[str]
    hidden: list[str]


def summarise(rows: pd.DataFrame, columns: list[str] | None = None) -> Summary:
    """The lines of the rows for ``columns`` (default: the varying settings and ``DEFAULT_METRICS``; ``noise``
    only when the rows hold a noise control)."""
    if columns is None:
        has_noise = (attack_names(rows) == NOISE_CONTROL).any()
        metrics = [m for m in DEFAULT_METRICS if m != NOISE or has_noise]
    else:
        metrics = [c for c in columns if c in METRIC_COLUMNS]
    free = all(m in CALIBRATOR_FREE for m in metrics)
    if free and (columns is None or "calibrator" not in columns):
        rows = one_per_calibrator(rows).assign(calibrator="")
    lines = aggregate(rows, [_source(m) for m in metrics])
    lines = lines.rename(columns={f"{_source(NOISE)}_{s}": f"{NOISE}_{s}" for s in ("mean", "std", "ci_low",
                                                                                      "ci_high")})
    lines = _with_labels(rows, lines)
    varying = differ = [k for k in SETTINGS if lines[k].nunique() > 1]
    if "options" in varying:  # every option of every component: too long to show, needed only to tell lines apart
        lines = lines.assign(options=lines["options"].map(_digest))
        others = [k for k in varying if k != "options"]
        if others and not lines.duplicated(others).any():
            varying = others
    settings = varying if columns is None else [c for c in columns if c in SETTINGS]
    shared = {k: str(lines[k].iloc[0]) for k in SETTINGS
              if k not in differ and k not in settings and len(lines) and str(lines[k].iloc[0]) not in ("", "{}")}
    return Summary(lines, settings, shared, metrics, [k for k in varying if k not in settings])


def _with_labels(rows: pd.DataFrame, lines: pd.DataFrame) -> pd.DataFrame:
    """Each line's ``LABELS``, read from the rows of its options (the options decide them)."""
    options = text(rows, "options")
    return lines.assign(**{label: text(lines, "options").map(dict(zip(options, text(rows, label)))).fillna("")
                           for label in LABELS})


def _source(metric: str) -> str:
    return "noise_adv_auroc" if metric == NOISE else metric


def _digest(options: str) -> str:
    """A short name for a line's options (the full JSON is in the leaderboard's ``options`` column)."""
    return "#" + hashlib.sha256(str(options).encode()).hexdigest()[:6]


def summary_table(summary: Summary, title: str, intervals: bool = False) -> Table:
    """A rich table whose title wraps at the console's width and whose values are never truncated: render it
    with ``print_table``."""
    table = Table(title=escape(_title(summary, title, "\n")), title_justify="left", box=box.SIMPLE_HEAD,
                  pad_edge=False, show_edge=False, collapse_padding=True)
    for column in summary.settings:
        table.add_column(column, no_wrap=True)
    for metric in summary.metrics:
        table.add_column(metric, justify="right", no_wrap=True)
    for _, line in summary.lines.iterrows():
        table.add_row(*[escape(str(line[k])) for k in summary.settings],
                      *[_cell(line, m, intervals, "±", "\n") for m in summary.metrics])
    return table


def print_table(console: Console, table: Table) -> None:
    """The title as text wrapped at the console's width, then the table at its natural width (wider than the
    console only when a value would otherwise be cut)."""
    if table.title:
        console.print(table.title, highlight=False, overflow="fold")
    body = copy(table)
    body.title = None
    needed = console.measure(body, options=console.options.update(max_width=10_000)).maximum
    console.print(body, width=needed, soft_wrap=False)


def _title(summary: Summary, title: str, sep: str) -> str:
    """The title, the shared settings, and the settings the lines differ in that no column shows."""
    parts = [title]
    if summary.shared:
        parts.append(", ".join(f"{k}={v}" for k, v in summary.shared.items()))
    if summary.hidden:
        parts.append(f"lines also differ in {', '.join(summary.hidden)}")
    return sep.join(parts)


def render_text(summary: Summary, fmt: str, intervals: bool, title: str) -> str:
    """The lines as CSV, JSON or a Markdown table; CSV and JSON carry the shared settings as columns too."""
    if fmt == "markdown":
        header = [*summary.settings, *summary.metrics]
        lines = [_title(summary, title, "; "), "",
                 "| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
        for _, line in summary.lines.iterrows():
            values = [str(line[k]) for k in summary.settings]
            values += [_cell(line, m, intervals, " ± ", " ") for m in summary.metrics]
            lines.append("| " + " | ".join(v.replace("|", "\\|") for v in values) + " |")
        return "\n".join(lines) + "\n"
    frame = pd.DataFrame({k: [v] * len(summary.lines) for k, v in summary.shared.items()}, index=summary.lines.index)
    for column in summary.settings:
        frame[column] = summary.lines[column]
    statistics = ("mean", "std", "ci_low", "ci_high") if intervals else ("mean", "std")
    for metric in summary.metrics:
        for statistic in statistics:
            frame[f"{metric}_{statistic}"] = summary.lines[f"{metric}_{statistic}"]
    if fmt == "csv":
        buffer = io.StringIO()
        # every text cell quoted: a carriage return inside one would otherwise end the line for a reader
        frame.map(spreadsheet_safe).to_csv(buffer, index=False, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
        return buffer.getvalue()
    records = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in record.items()}
               for record in frame.to_dict(orient="records")]
    return json.dumps(records, indent=2) + "\n"


def spreadsheet_safe(value: object) -> object:
    """A text cell a spreadsheet would evaluate as a formula (``=cmd|...``, ``+HYPERLINK(...)``, ``@SUM``, or one
    starting with a tab or carriage return) prefixed with ``'``, as OWASP advises for CSV exports; numbers are left
    as they are (a negative mean is a number, not a formula)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _cell(line: pd.Series, metric: str, intervals: bool, plus_minus: str, interval_sep: str) -> str:
    """``mean±std`` (no std for a single seed or none across seeds) and, on request, ``[low, high]``; empty when
    undefined."""
    mean, std = line[f"{metric}_mean"], line[f"{metric}_std"]
    if pd.isna(mean):
        return ""
    text = f"{mean:.3f}" if pd.isna(std) or std == 0 else f"{mean:.3f}{plus_minus}{std:.3f}"
    low, high = line[f"{metric}_ci_low"], line[f"{metric}_ci_high"]
    if not intervals or pd.isna(low) or pd.isna(high):
        return text
    return f"{text}{interval_sep}[{low:.2f}, {high:.2f}]"
