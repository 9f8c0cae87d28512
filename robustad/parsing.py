"""Strict parsers of a run's inputs, shared by the command line, the Python API and config files.

Each takes a value as any of the three gives it (text from a comma list, a Python or TOML value) and returns it
typed, or raises ``Refused`` with what it expects; the caller names the argument in the way its source does.
Nothing is coerced across types: text is never read as a bool or a number, a bool never as a number.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

Parser = Callable[[Any], Any]


class Refused(ValueError):
    """A value a parser does not take; its message says what is expected."""


def _kind(value: object) -> str:
    return "text" if isinstance(value, str) else type(value).__name__


def items(value: object) -> tuple[str, ...]:
    """A comma list (``"a, b"``), a list of names or numbers, or one number -> its items as stripped text."""
    if isinstance(value, str):
        parts = value.split(",")
    elif isinstance(value, (list, tuple)):
        for item in value:
            if isinstance(item, bool) or not isinstance(item, (str, int, float)):
                raise Refused(f"expected a comma list or a list of names or numbers; got a {_kind(item)} item")
        parts = [str(item) for item in value]
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        parts = [str(value)]
    else:
        raise Refused(f"expected a comma list such as 'a,b' or a list; got {_kind(value)}")
    return tuple(part.strip() for part in parts if part.strip())


def text(*choices: str) -> Parser:
    """Text, one of ``choices`` when given."""

    def parse(value: object) -> str:
        if not isinstance(value, str):
            raise Refused(f"expected {_one_of(choices) if choices else 'text'}; got {_kind(value)}")
        if choices and value not in choices:
            raise Refused(f"expected {_one_of(choices)}")
        return value

    return parse


def _one_of(choices: tuple[str, ...]) -> str:
    return f"one of {', '.join(choices)}"


def integer(low: int, high: int | None = None, note: str = "") -> Parser:
    """A whole number from ``low`` to ``high``; text, bools and floats are refused."""
    bounds = f">= {low}" if high is None else f"between {low} and {high}"
    expected = f"expected an integer {bounds}{note}"

    def parse(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Refused(f"{expected}; got {_kind(value)}")
        if value < low or (high is not None and value > high):
            raise Refused(expected)
        return value

    return parse


def fraction(example: str) -> Parser:
    """A finite number strictly between 0 and 1; text and bools are refused."""
    expected = f"expected a number in (0, 1), e.g. {example}"

    def parse(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Refused(f"{expected}; got {_kind(value)}")
        if not (math.isfinite(value) and 0 < value < 1):
            raise Refused(expected)
        return float(value)

    return parse


def switch(value: object) -> bool:
    """True or False, never text or a number."""
    if not isinstance(value, bool):
        raise Refused(f"expected true or false; got {_kind(value)}")
    return value


def path(value: object) -> Path:
    """A file or folder path, as text or a path object."""
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise Refused(f"expected a path; got {'empty text' if isinstance(value, str) else _kind(value)}")
    return Path(value)


def path_text(value: object) -> str:
    """A path or a name, kept as written (``""``: none)."""
    if not isinstance(value, (str, os.PathLike)):
        raise Refused(f"expected a path or a name; got {_kind(value)}")
    return os.fspath(value)


def optional(parse: Parser) -> Parser:
    """``parse``, or None for 'not given' (the default decides later)."""

    def parse_optional(value: object) -> Any:
        return None if value is None else parse(value)

    return parse_optional


def option_values(value: object) -> tuple[str, ...] | dict[str, Any]:
    """Plugin options: ``kind.name.key=value`` texts (one, or a list) or a ``{"kind.name.key": value}`` mapping."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, dict):
        bad = [key for key in value if not isinstance(key, str)]
        if bad:
            raise Refused(f"expected kind.name.key text keys; got {bad[0]!r}")
        return dict(value)
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise Refused("expected kind.name.key=value texts or a {'kind.name.key': value} mapping")
