"""Paired comparisons: two entries, or two values of one axis, on the cells they share (docs/protocol.md section 7).

Two rows are a pair when they agree on every cell setting but the compared one (and the options of its component
kind) and on the category and seed: the same images, split and reference draw. Per *scope* (each category, eps,
attack, ... the pair shares) the difference a - b of a metric, averaged over the shared seeds, gets a paired
two-level bootstrap interval (``robustad.twolevel``) and a p-value; Holm's correction runs over every scope of one
pair, so a "significant" difference is one at family-wise level 1 - level over categories, eps and attacks.

With the per-image scores of both rows (``bench --save-scores``) the bootstrap resamples the same images for a and
b, and a single-seed AUROC difference gets DeLong's test. Without them the image level comes from each row's 95 %
interval as a standard error, the two rows' image errors taken as independent (``twolevel.paired_from_rows``).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from robustad import metrics, resampled
from robustad.components import KINDS
from robustad.errors import RobustadError
from robustad.paired import delong, holm
from robustad.results.aggregate import CONFIG
from robustad.results.entries import ENTRY, entry_name, entry_settings, with_entries
from robustad.results.frame import MODEL_OPTION_KINDS, key, numeric, one_per_calibrator, text
from robustad.results.scorefiles import read_score_file
from robustad.results.tables import CALIBRATOR_FREE
from robustad.twolevel import Z95, paired_from_rows, two_level

AXES = (*(c for c in CONFIG if c not in ("options", "data")), "entry")
WIDTH = 80
SCORE_METRICS = {f"{side}_{m}": (side, m) for side in ("clean", "adv") for m in metrics.IMAGE_METRICS}


@dataclass(frozen=True)
class Pairing:
    """What is compared: ``axis`` values ``a`` and ``b`` on ``metric``."""

    axis: str
    a: str
    b: str
    metric: str


def compare(rows: pd.DataFrame, axis: str, a: str | None = None, b: str | None = None, *, metric: str = "adv_auroc",
            scores: Path | None = None, resamples: int = 1000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """One line per (pair, scope): the means of a and b over the shared seeds, ``difference`` = a - b with its
    interval ``low``/``high``, ``p``, Holm's ``p_holm`` over the pair's scopes, ``significant``, the ``method``
    (``rows``, ``images`` or ``delong``) and the ``scope`` as text. Without ``a`` and ``b``: every pair of the
    axis's values."""
    if axis not in AXES:
        raise RobustadError(f"--axis {axis!r}: expected one of {', '.join(AXES)}")
    if metric not in rows.columns:
        raise RobustadError(f"--metric {metric!r}: not a column of these rows")
    rows = with_entries(rows) if axis == "entry" else rows
    if metric in CALIBRATOR_FREE and axis != "calibrator":
        rows = one_per_calibrator(rows)
    values = list(dict.fromkeys(text(rows, axis)))
    for name, value in (("--a", a), ("--b", b)):
        if value is not None and value not in values:
            raise RobustadError(f"{name} {value!r}: no row has {axis}={value}; values: {', '.join(values)}")
    pairs = [(a, b)] if a is not None and b is not None else \
        [(x, y) for i, x in enumerate(values) for y in values[i + 1:] if a in (None, x, y) and b in (None, x, y)]
    parts = [_pair(rows, Pairing(axis, x, y, metric), scores, resamples, seed, level) for x, y in pairs]
    parts = [p for p in parts if not p.empty]
    if not parts:
        raise RobustadError(f"no cells shared by two values of {axis} with a defined {metric}")
    table = pd.concat(parts, ignore_index=True)
    if axis == "entry":  # ids select; names tell a reader what they are
        names = {entry: f"{entry_name(entry_settings(own))} ({entry})" for entry, own in rows.groupby("entry")}
        table = table.assign(a_name=table["a"].map(names), b_name=table["b"].map(names))
    return table


def _pair(rows: pd.DataFrame, pairing: Pairing, scores: Path | None, resamples: int, seed: int,
          level: float) -> pd.DataFrame:
    shared = _shared_key(rows, pairing.axis)
    own = text(rows, pairing.axis)
    value = numeric(rows, pairing.metric)
    frame = rows.assign(_key=shared, _value=value)
    left = frame[(own == pairing.a) & value.notna()].drop_duplicates("_key").set_index("_key")
    right = frame[(own == pairing.b) & value.notna()].drop_duplicates("_key").set_index("_key")
    common = left.index.intersection(right.index)
    if common.empty:
        return pd.DataFrame()
    left, right = left.loc[common], right.loc[common]
    scope = _scope_key(left, pairing.axis)
    labels = _scope_labels(left, scope, pairing.axis)
    lines = []
    for number, (name, index) in enumerate(scope.groupby(scope, sort=False).groups.items()):
        a, b = left.loc[index], right.loc[index]
        result, method = _difference(a, b, pairing.metric, scores, resamples, seed + number, level)
        lines.append({"axis": pairing.axis, "a": pairing.a, "b": pairing.b, "metric": pairing.metric,
                      "scope": labels[name], "seeds": len(index), "a_mean": float(a["_value"].mean()),
                      "b_mean": float(b["_value"].mean()), "difference": result[0], "low": result[1],
                      "high": result[2], "p": result[3], "method": method})
    table = pd.DataFrame(lines)
    table["significant"], table["p_holm"] = holm(table["p"].to_numpy(), alpha=1 - level)
    return table


def _shared_key(rows: pd.DataFrame, axis: str) -> pd.Series:
    """What a pair must agree on: every setting but the axis (an entry: its fields), with category and seed."""
    dropped = set(ENTRY) if axis == "entry" else {axis}
    kinds = tuple(k for k in KINDS if not (k == axis or (axis == "entry" and k in MODEL_OPTION_KINDS)))
    columns = [c for c in CONFIG if c not in dropped and c not in ("options", "data")] + ["category", "seed"]
    return key(rows, columns, kinds)


def _scope_key(rows: pd.DataFrame, axis: str) -> pd.Series:
    """The shared key less the seed: the rows a scope averages."""
    dropped = set(ENTRY) if axis == "entry" else {axis}
    kinds = tuple(k for k in KINDS if not (k == axis or (axis == "entry" and k in MODEL_OPTION_KINDS)))
    columns = [c for c in CONFIG if c not in dropped and c not in ("options", "data")] + ["category"]
    return key(rows, columns, kinds)


def _scope_labels(rows: pd.DataFrame, scope: pd.Series, axis: str) -> dict[str, str]:
    """Each scope named by the settings that vary between the scopes (attack, surrogate, eps, category, ...)."""
    candidates = [c for c in ("category", "attack", "surrogate", "eps", *CONFIG) if c != axis and c in rows
                  and c not in ("options", "data") and not (axis == "entry" and c in ENTRY)]
    varying = [c for c in dict.fromkeys(candidates) if text(rows, c).nunique() > 1]
    firsts = rows.assign(_scope=scope.values).drop_duplicates("_scope").set_index("_scope")
    return {name: " ".join(str(line[c]) for c in varying) or "all" for name, line in firsts.iterrows()}


def _difference(a: pd.DataFrame, b: pd.DataFrame, metric: str, scores: Path | None, resamples: int, seed: int,
                level: float) -> tuple[tuple[float, float, float, float], str]:
    """(difference, low, high, p) of the mean over seeds of a - b, and how it was computed."""
    per_image = None if scores is None else _score_pairs(a, b, metric, scores)
    if per_image is not None:
        side, name = SCORE_METRICS[metric]
        if len(per_image) == 1 and name == "auroc":
            labels, x, y = per_image[0]
            test = delong(labels, x[f"{side}_score"], y[f"{side}_score"])
            half = Z95 * test.se
            return (test.difference, test.difference - half, test.difference + half, test.p_value), "delong"
        estimate = float(np.mean(a["_value"].to_numpy() - b["_value"].to_numpy()))

        def difference(counts: np.ndarray, s: int) -> np.ndarray:
            labels, x, y = per_image[s]
            return _resampled(counts, labels, x, side, name) - _resampled(counts, labels, y, side, name)

        result = two_level([p[0] for p in per_image], difference, estimate, resamples=resamples, seed=seed,
                           level=level, bounded=False)
        return (result.estimate, result.low, result.high, result.p_value), "images"
    se_a, se_b = _standard_errors(a, metric), _standard_errors(b, metric)
    result = paired_from_rows(a["_value"], se_a, b["_value"], se_b, resamples=resamples, seed=seed, level=level)
    return (result.estimate, result.low, result.high, result.p_value), "rows"


def _standard_errors(rows: pd.DataFrame, metric: str) -> np.ndarray:
    """Each row's image-level standard error from its 95 % interval (0 where it has none)."""
    low, high = numeric(rows, f"{metric}_ci_low"), numeric(rows, f"{metric}_ci_high")
    return ((high - low) / (2 * Z95)).fillna(0.0).to_numpy()


def _score_pairs(a: pd.DataFrame, b: pd.DataFrame, metric: str, scores: Path) -> list | None:
    """Per seed (labels, a's eval scores, b's eval scores) from the score files, or None when a row has none (or
    the metric is not an image metric); the two files must list the same eval images."""

    if metric not in SCORE_METRICS:
        return None
    pairs = []
    for (_, x), (_, y) in zip(a.iterrows(), b.iterrows()):
        paths = [scores / f"{row['cell_hash']}.csv" for row in (x, y)]
        if not all(p.is_file() for p in paths):
            return None
        first, second = (read_score_file(p) for p in paths)
        first, second = first[first["split"] == "eval"], second[second["split"] == "eval"]
        if first["path"].tolist() != second["path"].tolist():
            raise RobustadError(f"score files {paths[0]} and {paths[1]} list different eval images; a paired "
                                "comparison needs the same images in the same order")
        pairs.append((first["label"].to_numpy(dtype=int), first, second))
    return pairs


def _resampled(counts: np.ndarray, labels: np.ndarray, frame: pd.DataFrame, side: str, name: str) -> np.ndarray:
    scores, probs = (pd.to_numeric(frame[f"{side}_{c}"]).to_numpy(dtype=np.float64) for c in ("score", "prob"))
    return resampled.image_metrics(counts, labels, scores, probs)[name]


def render(table: pd.DataFrame, level: float = 0.95) -> str:
    """The comparisons as text of at most 80 columns: per pair a title, then per scope the two means, a - b, its
    interval, Holm's p and ``*`` where significant."""
    out = []
    for (axis, a, b, metric), part in table.groupby(["axis", "a", "b", "metric"], sort=False):
        if "a_name" in part:
            a, b = part["a_name"].iloc[0], part["b_name"].iloc[0]
        methods = ", ".join(sorted(set(part["method"])))
        title = (f"{axis}: a = {a}, b = {b}; {metric}, mean over shared seeds; a - b with its paired "
                 f"{100 * level:g} % interval ({methods}); p after Holm over {len(part)} scopes; * significant")
        out += textwrap.wrap(title, WIDTH)
        out.append(f"{'scope':<27} {'a':>6} {'b':>6} {'a - b':>7} {'interval':>17} {'p Holm':>7} {'n':>2}")
        for _, line in part.iterrows():
            numbers = (f"{line['a_mean']:6.3f} {line['b_mean']:6.3f} {line['difference']:+7.3f} "
                       f"[{line['low']:+6.3f}, {line['high']:+6.3f}] {line['p_holm']:7.3f} {line['seeds']:>2}"
                       f"{' *' if line['significant'] else ''}")
            scope = str(line["scope"])
            if len(scope) > 27:
                out += textwrap.wrap(scope, WIDTH)
                scope = ""
            out.append(f"{scope:<27} {numbers}")
        out.append("")
    return "\n".join(out)


def next_in_rank(rows: pd.DataFrame, lines: pd.DataFrame, *, resamples: int = 1000, level: float = 0.95) -> pd.Series:
    """For each ranking line (``entries.ranking``): whether its worst adversarial AUROC is significantly above the
    next-ranked entry's in the same dataset, category, threat, eps and calibrator, paired over the rows of each
    line's worst attack that share category and seed (``twolevel.paired_from_rows``; Holm over the consecutive
    pairs of one ranking). ``*`` significant, ``=`` not, empty for the last line or without shared seeds."""
    from robustad.results.entries import FILTERS

    marks = pd.Series("", index=lines.index, dtype=object)
    for _, group in lines.groupby(list(FILTERS), sort=False):
        ordered = group.sort_values("rank", kind="stable")
        tests = []
        for upper, lower in zip(ordered.index[:-1], ordered.index[1:]):
            a, b = (_worst_rows(rows, lines.loc[i]) for i in (upper, lower))
            shared = a.index.intersection(b.index)
            if len(shared):
                se_a, se_b = _standard_errors(a.loc[shared], "adv_auroc"), _standard_errors(b.loc[shared], "adv_auroc")
                result = paired_from_rows(numeric(a.loc[shared], "adv_auroc"), se_a,
                                          numeric(b.loc[shared], "adv_auroc"), se_b, resamples=resamples, level=level)
                tests.append((upper, result.p_value if result.estimate > 0 else 1.0))
        if tests:
            significant, _ = holm([p for _, p in tests], alpha=1 - level)
            for (index, _), mark in zip(tests, significant):
                marks[index] = "*" if mark else "="
    return marks


def _worst_rows(rows: pd.DataFrame, line: pd.Series) -> pd.DataFrame:
    """The rows behind a ranking line's worst attack, indexed by (category, seed)."""
    attack, _, surrogate = str(line["attack"]).partition(" via ")
    chosen = rows[(rows["entry"] == line["entry"]) & (text(rows, "attack") == attack)
                  & (text(rows, "surrogate") == surrogate) & (text(rows, "eps") == str(line["eps"]))
                  & (text(rows, "calibrator") == str(line["calibrator"])) & (text(rows, "dataset") == line["dataset"])]
    if not str(line["category"]).startswith("mean of"):
        chosen = chosen[text(chosen, "category") == line["category"]]
    chosen = chosen[numeric(chosen, "adv_auroc").notna()]
    index = pd.MultiIndex.from_arrays([text(chosen, "category"), text(chosen, "seed")])
    return chosen.set_axis(index)[~index.duplicated()]
