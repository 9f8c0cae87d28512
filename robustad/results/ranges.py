"""Values a leaderboard row cannot hold: a number outside its declared range (``schema.RANGES``, ``schema.COUNTS``),
a non-finite number, an interval whose bounds are out of order, or an attacked row without a positive eps.

A hand-edited or downloaded leaderboard may hold them; a result computed by robustad never does. ``audit`` fails on
them; ``leaderboard``, ``report`` and ``site`` warn once and leave those rows out (``frame.load_rows``). Text where a
number belongs is an error of its own (``frame.numeric``): the file is then not a leaderboard this version reads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import pandas as pd

from robustad.errors import RobustadError
from robustad.kit.threat import CORRUPTION, MAX_SEVERITY
from robustad.records import NO_ATTACK
from robustad.results.schema import COUNTS, INTERVAL_COLUMNS, RANGES

SLACK = 1e-9
"""Rounding a stored metric may carry past its bound (an entropy of exactly ln 2 written as text)."""


@dataclass(frozen=True)
class Impossible:
    """One impossible value: the row (its index and cell hash), the column, the text and what was expected."""

    index: object
    cell_hash: str
    column: str
    value: str
    expected: str

    def line(self) -> str:
        return f"row {self.cell_hash}: {self.column}={self.value!r}, expected {self.expected}"


def impossible(rows: pd.DataFrame) -> list[Impossible]:
    """Every impossible value in ``rows``, in column order of the declarations."""
    found: list[Impossible] = []
    for column, (low, high) in RANGES.items():
        for index, text, value in _numbers(rows, column):
            if not (math.isfinite(value) and low - SLACK <= value <= high + SLACK):
                found.append(_at(rows, index, column, text, f"a finite number in [{_bound(low)}, {_bound(high)}]"))
    for column, least in COUNTS.items():
        for index, text, value in _numbers(rows, column, whole=True):
            if not (math.isfinite(value) and value == int(value) and value >= least):
                found.append(_at(rows, index, column, text, f"an integer >= {least}"))
    for column in (*INTERVAL_COLUMNS, "radius_median"):
        low, high = (pd.to_numeric(_cells(rows, f"{column}_ci_{bound}"), errors="coerce") for bound in ("low", "high"))
        for index in rows.index[(low > high).fillna(False)]:
            found.append(_at(rows, index, f"{column}_ci_low", str(rows.at[index, f"{column}_ci_low"]),
                             f"at most {column}_ci_high {rows.at[index, f'{column}_ci_high']}"))
    found += _eps(rows)
    return found


def _eps(rows: pd.DataFrame) -> list[Impossible]:
    """An attacked row (the noise control included) perturbs within a radius: its eps is a number above 0; under
    ``--norm corruption`` it is a severity, an integer from 0 (the clean image) to ``MAX_SEVERITY``."""
    found = []
    attack, norm = _cells(rows, "attack"), _cells(rows, "norm")
    for index in rows.index[(attack != "") & (attack.str.split(":").str[0] != NO_ATTACK)]:
        text = str(rows.at[index, "eps"]) if "eps" in rows else ""
        try:
            value = float(Fraction(text.strip()))
        except (ValueError, ZeroDivisionError, OverflowError):
            value = float("nan")
        if norm[index] == CORRUPTION:
            if not (math.isfinite(value) and value == int(value) and 0 <= value <= MAX_SEVERITY):
                found.append(_at(rows, index, "eps", text, f"a severity from 0 to {MAX_SEVERITY} under corruption"))
        elif not (math.isfinite(value) and value > 0):
            found.append(_at(rows, index, "eps", text, "a number above 0 (like 2/255) for an attacked row"))
    for index, text, value in _numbers(rows, "eps_value"):
        if not (math.isfinite(value) and value >= 0):
            found.append(_at(rows, index, "eps_value", text, "a finite number >= 0"))
    return found


def _cells(rows: pd.DataFrame, column: str) -> pd.Series:
    if column not in rows:
        return pd.Series("", index=rows.index, dtype=object)
    return rows[column].map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v).strip())


def _numbers(rows: pd.DataFrame, column: str, *, whole: bool = False):
    """(index, text, value) of the column's non-empty cells; text that is no number is an error, except in an
    integer column (``seed`` ``x``), where it is an impossible value like ``1.5``."""
    for index, text in _cells(rows, column).items():
        if text == "":
            continue
        try:
            value = float(text)
        except ValueError:
            if whole:
                yield index, text, float("nan")
                continue
            raise RobustadError(f"column {column}: {text!r} is not a number (expected a number or an empty "
                                "cell)") from None
        yield index, text, value


def _at(rows: pd.DataFrame, index: object, column: str, text: str, expected: str) -> Impossible:
    cell_hash = str(rows.at[index, "cell_hash"]) if "cell_hash" in rows else str(index)
    return Impossible(index, cell_hash, column, text, expected)


def _bound(value: float) -> str:
    return "inf" if value == math.inf else f"{value:g}"
