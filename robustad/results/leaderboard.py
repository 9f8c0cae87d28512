"""The leaderboard CSV (docs/protocol.md section 7): one row per cell, appended atomically, resumable by cell hash.

Every append parses what is there and rewrites the whole file to a temporary file beside it, then renames it over
the old one, under a lock: a crash or kill at any moment leaves the old file or the new one. A damaged line (a
truncated write, a hand edit) is reported and kept aside in ``<file>.damaged``, never glued to; a row whose key is
already there (another process landed it) is not written twice; a symlinked file is updated through the link and
keeps its permissions; temporary files of killed writers are removed.
"""

from __future__ import annotations

import csv
import fcntl
import io
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from robustad.errors import RobustadError
from robustad.results.schema import COLUMNS


class LeaderboardWarning(UserWarning):
    """Something about a leaderboard file the user should know (the CLI prints it on one line)."""


@dataclass
class Contents:
    """A parsed leaderboard: its rows, and the damaged lines (line number, raw text) that were left out."""

    rows: list[dict[str, str]] = field(default_factory=list)
    damaged: list[tuple[int, str]] = field(default_factory=list)


def read_rows(path: Path) -> list[dict[str, str]]:
    """All intact rows of a leaderboard CSV; damaged lines are left out with a warning."""
    contents = parse(_target(path))
    if contents.damaged:
        lines = ", ".join(str(number) for number, _ in contents.damaged[:5])
        warnings.warn(f"{path}: {len(contents.damaged)} damaged line(s) left out (line {lines}); "
                      f"the next robustad bench moves them to {_target(path).name}.damaged", LeaderboardWarning,
                      stacklevel=2)
    return contents.rows


def finished_keys(path: Path) -> set[str]:
    """Cell hashes already in the leaderboard (empty when the file does not exist yet)."""
    return {row["cell_hash"] for row in read_rows(path)}


def parse(path: Path) -> Contents:
    """The rows of ``path``, checking that its header is this version's; lines with another field count, or a
    last line cut short, are damaged."""
    if not path.exists() or path.stat().st_size == 0:
        return Contents()
    if not path.is_file():
        raise RobustadError(f"leaderboard {path} is not a file")
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines(keepends=True)
    header = next(csv.reader([lines[0]]))
    if tuple(header) != COLUMNS:
        raise RobustadError(f"{path} is not a leaderboard of this robustad version (its columns differ); "
                            "pass another --out")
    contents = Contents()
    for number, (line, fields) in enumerate(_records(lines[1:]), start=2):
        if len(fields) == len(COLUMNS) and (line.endswith("\n") or _complete(fields)):
            contents.rows.append(dict(zip(COLUMNS, fields)))
        elif line.strip():
            contents.damaged.append((number, line))
    return contents


def append_row(path: Path, row: dict) -> bool:
    """Add one row unless its cell hash is already there; True when it was written."""
    unknown = set(row) - set(COLUMNS)
    if unknown:
        raise ValueError(f"unknown leaderboard columns: {sorted(unknown)}")
    target = _target(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target):
        _remove_stale_temporaries(target)
        contents = parse(target)
        if any(existing["cell_hash"] == str(row["cell_hash"]) for existing in contents.rows):
            return False
        if contents.damaged:
            _keep_aside(target, contents.damaged)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(contents.rows)
        writer.writerow({column: _cell_text(row.get(column)) for column in COLUMNS})
        _replace(target, buffer.getvalue().encode())
    return True


def check_writable(path: Path) -> None:
    """Fail before any computing when ``path`` cannot become or be updated as a leaderboard."""
    target = _target(path)
    if target.exists() and not target.is_file():
        raise RobustadError(f"--out {path} is {'a folder' if target.is_dir() else 'not a regular file'}; "
                            "expected a CSV file path")
    folder = _existing_ancestor(target.parent)
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise RobustadError(f"--out {path}: cannot write in {folder} (read-only or not a folder)")
    if target.exists():
        parse(target)  # a foreign or other-version file fails now


def _records(lines: list[str]) -> Iterator[tuple[str, list[str]]]:
    """Each physical line with its fields (leaderboard values never hold line breaks); a field may be as long as
    its line: csv's default limit (128 KiB) made a leaderboard with one long options cell unreadable."""
    limit = csv.field_size_limit()
    csv.field_size_limit(max([limit, *map(len, lines)]))
    try:
        for line in lines:
            yield line, next(csv.reader([line]), [])
    finally:
        csv.field_size_limit(limit)


def _complete(fields: list[str]) -> bool:
    """A last line without a newline (an editor's save, or a cut) is a whole row when its final field, the
    timestamp, is whole."""
    return len(fields[-1]) >= len("2000-01-01T00:00:00+00:00")


def _cell_text(value: object) -> str:
    """Empty for undefined values (None), repr-exact text for floats (numpy scalars included)."""
    if value is None:
        return ""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _target(path: Path) -> Path:
    """The file a path names, through any symlinks."""
    return Path(os.path.realpath(path))


def _existing_ancestor(folder: Path) -> Path:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _keep_aside(target: Path, damaged: list[tuple[int, str]]) -> None:
    aside = target.with_name(target.name + ".damaged")
    with aside.open("a", encoding="utf-8") as handle:
        for _, line in damaged:
            handle.write(line if line.endswith("\n") else line + "\n")
    warnings.warn(f"{target}: {len(damaged)} damaged line(s) moved to {aside}", LeaderboardWarning, stacklevel=3)


def _replace(target: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``target`` and rename it over ``target``, keeping its mode."""
    mode = target.stat().st_mode & 0o7777 if target.exists() else 0o666 & ~_umask()
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _remove_stale_temporaries(target: Path) -> None:
    """Temporary files left by a writer that was killed (writers hold the lock, so none is live now)."""
    for stale in target.parent.glob(f".{target.name}.*.tmp"):
        stale.unlink(missing_ok=True)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


@contextmanager
def _locked(target: Path) -> Iterator[None]:
    with open(target.with_name(target.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
