"""A run's inputs from a TOML file (``robustad bench --config grid.toml``): the keys of ``robustad.bench``, each
value checked by its declared parser, so a grid can be committed beside its results."""

from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from robustad.declaration import Request, parse_field
from robustad.errors import RobustadError, one_line

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the 3.10 fallback, a dependency there
    import tomli as tomllib


def read_config(path: Path) -> dict[str, Any]:
    """The values a config file sets, parsed; an unreadable file, an unknown key or a bad value is one line naming
    the file, the key and what is expected. Relative paths in it are read from the working directory, as on the
    command line."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise RobustadError(f"--config {path}: cannot read it ({one_line(error)})") from None
    except tomllib.TOMLDecodeError as error:
        raise RobustadError(f"--config {path}: not TOML ({one_line(error)})") from None
    known = {spec.name: spec for spec in fields(Request)}
    for key in data:
        if key not in known:
            raise RobustadError(f"{path}: unknown key {key!r}; expected keys of robustad.bench: {', '.join(known)}")
    return {key: parse_field(known[key], value, f"{path}: {key}=") for key, value in data.items()}
