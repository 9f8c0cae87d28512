"""One-line refusals of bad option values, worded alike for every plugin: ``OWNER option NAME=VALUE: expected
WHAT``, the owner naming the plugin (``pgd``, ``flag 'squeeze'``). A bool is never taken for a number."""

from __future__ import annotations

import math

from robustad.errors import RobustadError


def integer(owner: str, name: str, value: object, low: int, high: int | None = None) -> int:
    """``value`` when it is an int from ``low`` to ``high`` (no upper bound when ``high`` is None)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"from {low} to {high}"
        raise RobustadError(f"{owner} option {name}={value!r}: expected an integer {bounds}")
    return value


def positive(owner: str, name: str, value: object, high: float | None = None) -> float:
    """``value`` as a float when it is a finite number > 0 (and at most ``high``)."""
    if not _number(value) or not (value > 0 and math.isfinite(value)) or (high is not None and value > high):
        bound = "" if high is None else f" and <= {high:g}"
        raise RobustadError(f"{owner} option {name}={value!r}: expected a finite number > 0{bound}")
    return float(value)


def fraction(owner: str, name: str, value: object) -> float:
    """``value`` as a float when it is a number in (0, 1]."""
    if not _number(value) or not 0 < value <= 1:
        raise RobustadError(f"{owner} option {name}={value!r}: expected a number in (0, 1]")
    return float(value)


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
