"""The leaderboard CSV (docs/protocol.md section 7): one row per cell, appended in constant time, resumable by key.

A row is appended at the end of the file under a lock, in one write, without rewriting what is there. Which keys
the file holds is kept in an index that reads only what other processes appended since it last looked, so an
append costs the same at row 100,000 as at row 1. A killed writer can leave at most a cut last line: the next
append moves it to ``<file>.damaged`` and cuts the file back to its last whole row, so rows are never glued
together. A file written by an earlier robustad (other, fewer or reordered columns) is read by column name; the
first append migrates it once to this version's columns (columns it does not know are kept at the end), keeping
the original beside it. A symlinked file is updated through the link and keeps its permissions.
"""

from __future__ import annotations

import csv
import fcntl
import io
import math
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from robustad.errors import RobustadError, one_line
from robustad.interrupts import stop_if_requested
from robustad.results.schema import COLUMNS, LEGACY_MARK

LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"  # everything str.splitlines splits on
LOCK_NOTICE_S = 2.0  # wait this long for another writer's lock before saying who holds it
LOCK_TIMEOUT_S = 300.0  # then give up, naming the holder: a writer holds the lock for one append, not minutes
LOCK_TIMEOUT_VARIABLE = "ROBUSTAD_LOCK_TIMEOUT"
MIGRATED_SUFFIX = ".before-migration"

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # a hand-edited cell of any size is data, not a crash


class LockTimeout(RobustadError):
    """Another process held the leaderboard's lock for longer than the limit: the run stops (every further row
    would wait as long)."""


def lock_timeout() -> float:
    """Seconds to wait for another writer's lock: ``ROBUSTAD_LOCK_TIMEOUT`` or ``LOCK_TIMEOUT_S``."""
    setting = os.environ.get(LOCK_TIMEOUT_VARIABLE)
    if setting is None:
        return LOCK_TIMEOUT_S
    try:
        seconds = float(setting)
    except ValueError:
        seconds = float("nan")
    if not (math.isfinite(seconds) and seconds > 0):
        raise RobustadError(f"{LOCK_TIMEOUT_VARIABLE}={setting!r}: expected a number of seconds > 0")
    return seconds


class LeaderboardWarning(UserWarning):
    """Something about a leaderboard file the user should know (the CLI prints it on one line)."""


@dataclass
class Contents:
    """A parsed leaderboard: its header, rows, the damaged lines (line number, raw text) left out, and the byte
    offset up to which the file was read (the end of its last whole line)."""

    header: tuple[str, ...] = COLUMNS
    rows: list[dict[str, str]] = field(default_factory=list)
    damaged: list[tuple[int, str]] = field(default_factory=list)
    end: int = 0


def row_text(column: str, value: object) -> str:
    """The text of one leaderboard cell: empty for undefined values (None), repr-exact text for floats (numpy
    scalars included). A line break or a non-finite number cannot be one CSV field of a one-line record and is
    refused, naming the column: this is the one place where values become row text."""
    if value is None:
        return ""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float):
        if not math.isfinite(value):
            raise RobustadError(f"leaderboard column {column}: {value!r} is not a finite number; expected a "
                                "number or an undefined (empty) value")
        return repr(value)
    text = str(value)
    if any(char in LINE_BREAKS for char in text):
        raise RobustadError(f"leaderboard column {column}: {text[:60]!r} holds a line break; expected text on "
                            "one line")
    return text


def check_one_line(value: str, what: str) -> None:
    """A one-line error before any work when a name that goes into rows holds a line break."""
    if any(char in LINE_BREAKS for char in str(value)):
        raise RobustadError(f"{what} {str(value)[:60]!r} holds a line break; expected a name on one line")


def read_rows(path: Path) -> list[dict[str, str]]:
    """All intact rows of a leaderboard CSV, every column of this version present (empty where an older file
    lacks it); damaged lines are left out with a warning."""
    contents = parse(_target(path))
    if contents.damaged:
        lines = ", ".join(str(number) for number, _ in contents.damaged[:5])
        warnings.warn(f"{path}: {len(contents.damaged)} damaged line(s) left out (line {lines}); "
                      f"the next robustad bench moves them to {_target(path).name}.damaged", LeaderboardWarning,
                      stacklevel=2)
    return [{**dict.fromkeys(COLUMNS, ""), **row} for row in contents.rows]


def parse(path: Path, start: int = 0, header: tuple[str, ...] | None = None) -> Contents:
    """The rows of ``path`` by column name, from byte ``start`` on (0: the whole file, header first).

    Records are separated by ``\\n`` alone, so no other character can split one. A record with another field
    count than the header, or a last line cut short, is damaged. A file without a ``cell_hash`` column is not a
    leaderboard.
    """
    if not path.exists() or path.stat().st_size == 0:
        return Contents()
    if not path.is_file():
        raise RobustadError(f"leaderboard {path} is not a file")
    with path.open("rb") as handle:
        handle.seek(start)
        data = handle.read()
    text = data.decode("utf-8", errors="replace")
    lines = text.split("\n")
    tail = lines.pop()  # "" when the file ends with a newline
    number = 1
    if start == 0:
        header = tuple(_fields(lines.pop(0) if lines else tail))
        if not lines and tail and not data.endswith(b"\n"):
            tail = ""
        if "cell_hash" not in header:
            raise RobustadError(f"{path} is not a leaderboard (its header has no cell_hash column); "
                                "pass another --out")
        number = 2
    contents = Contents(header=header or COLUMNS, end=start + len(data))
    for offset, line in enumerate(lines):
        _add(contents, number + offset, line, whole=True)
    if tail:
        if _add(contents, number + len(lines), tail, whole=False):
            contents.end = start + len(data)
        else:
            contents.end = start + len(data) - len(tail.encode("utf-8", errors="replace"))
    return contents


def _add(contents: Contents, number: int, line: str, *, whole: bool) -> bool:
    """Add one physical line as a row, or as damaged; True when it became a row."""
    if not line.strip():
        return False
    fields = _fields(line)
    if len(fields) == len(contents.header) and (whole or _complete(contents.header, fields)):
        contents.rows.append(dict(zip(contents.header, fields)))
        return True
    contents.damaged.append((number, line + "\n"))
    return False


def _fields(line: str) -> list[str]:
    try:
        return next(csv.reader([line.removesuffix("\r")]), [])
    except csv.Error:
        return []


def _complete(header: tuple[str, ...], fields: list[str]) -> bool:
    """A last line without a newline (an editor's save, or a cut) is a whole row when its final field, the
    timestamp, is whole."""
    return header[-1] != "timestamp" or len(fields[-1]) >= len("2000-01-01T00:00:00+00:00")


class Leaderboard:
    """One leaderboard file as a resumable store: which cells it holds, and appending rows to it.

    The index of keys is read once and then kept current by reading only the bytes appended since (by this
    process or another); a file replaced or cut by someone else is read again from the start.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.target = _target(path)
        self.keys: set[str] = set()
        self.legacy_keys: set[str] = set()  # rows written before their key covered the images' content
        self.header: tuple[str, ...] = COLUMNS
        self.damaged: list[tuple[int, str]] = []  # damaged lines seen in the file, moved aside at the next append
        self._seen: tuple[int, int] | None = None  # (inode, byte offset read up to)
        self._tidied = False

    def holds(self, key: str, legacy_key: str | None = None) -> bool:
        """Whether a row for this cell is there (an older row counts under the key it was written with)."""
        self.refresh()
        return key in self.keys or (legacy_key is not None and legacy_key in self.legacy_keys)

    def refresh(self) -> Contents:
        """Bring the index up to date with the file; the rows read now are returned."""
        if not self.target.exists():
            self.keys, self.legacy_keys, self.header, self._seen, self.damaged = set(), set(), COLUMNS, None, []
            return Contents()
        status = self.target.stat()
        inode, size = status.st_ino, status.st_size
        if self._seen == (inode, size):  # nothing appended since: no need to open the file
            return Contents(header=self.header, end=size)
        if self._seen is None or self._seen[0] != inode or size < self._seen[1]:
            self.keys, self.legacy_keys, self.damaged = set(), set(), []
            contents = parse(self.target)
            self.header = contents.header
        else:
            contents = parse(self.target, self._seen[1], self.header)
        for row in contents.rows:
            self.keys.add(row["cell_hash"])
            if row.get(LEGACY_MARK, "") == "":
                self.legacy_keys.add(row["cell_hash"])
        self.damaged += contents.damaged
        self._seen = (inode, contents.end)
        return contents

    def append(self, row: dict) -> bool:
        """Add one row unless its cell is already there; True when it was written."""
        unknown = set(row) - set(COLUMNS)
        if unknown:
            raise ValueError(f"unknown leaderboard columns: {sorted(unknown)}")
        key = str(row["cell_hash"])
        record = {column: row_text(column, row.get(column)) for column in COLUMNS}  # refused before the lock
        self.target.parent.mkdir(parents=True, exist_ok=True)
        with self._locked():
            self._tidy()
            self.refresh()
            if self.damaged or (self.target.exists() and set(COLUMNS) - set(self.header)):
                self._rewrite()
            if key in self.keys:
                return False
            self._repair_tail()
            new = not self.target.exists() or self.target.stat().st_size == 0
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=self.header, lineterminator="\n", restval="")
            if new:
                writer.writeheader()
            writer.writerow(record)
            self._write_at_end(buffer.getvalue().encode("utf-8"))
            self.refresh()
        return True

    def _tidy(self) -> None:
        """Once per process: remove temporary files of killed migrations (writers hold the lock, so none is live)."""
        if self._tidied:
            return
        prefix, suffix = f".{self.target.name}.", ".tmp"
        for entry in os.scandir(self.target.parent):  # no glob: the file's name may hold glob characters
            if entry.name.startswith(prefix) and entry.name.endswith(suffix) and entry.is_file(follow_symlinks=False):
                Path(entry.path).unlink(missing_ok=True)
        self._tidied = True

    def _repair_tail(self) -> None:
        """Cut a last line left short by a killed writer back to the last whole row (keeping it aside), or end a
        whole last row without a newline with one, so the next row starts on a line of its own."""
        if not self.target.exists() or self.target.stat().st_size == 0:
            return
        size = self.target.stat().st_size
        with self.target.open("r+b") as handle:
            handle.seek(size - 1)
            if handle.read(1) == b"\n":
                return
            end = self._seen[1] if self._seen else 0
            if end >= size:  # a whole row without its newline
                handle.seek(size)
                handle.write(b"\n")
            else:
                handle.seek(end)
                cut = handle.read().decode("utf-8", errors="replace")
                _keep_aside(self.target, [(0, cut)])
                handle.truncate(end)
            handle.flush()
            os.fsync(handle.fileno())
        self._seen = None
        self.refresh()

    def _write_at_end(self, data: bytes) -> None:
        fd = os.open(self.target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)  # a new file gets 0666 & ~umask
        try:
            os.write(fd, data)  # one write: a kill leaves the row whole or cut, never interleaved
            os.fsync(fd)
        finally:
            os.close(fd)

    def _rewrite(self) -> None:
        """The rare whole-file write: damaged lines moved aside (every one, wherever it is, so that the warning
        that says so holds), or an older version's columns migrated once (the original kept as
        ``<file>.before-migration``)."""
        old = parse(self.target)
        damaged = old.damaged
        header = (*COLUMNS, *(c for c in old.header if c not in COLUMNS))
        if set(COLUMNS) - set(old.header):
            aside = _free_name(self.target.with_name(self.target.name + MIGRATED_SUFFIX))
            aside.write_bytes(self.target.read_bytes())
            warnings.warn(f"{self.target}: migrated to this robustad's columns; the original is kept as "
                          f"{aside.name}", LeaderboardWarning, stacklevel=4)
        if damaged:
            _keep_aside(self.target, damaged)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n", restval="")
        writer.writeheader()
        writer.writerows(old.rows)
        _replace(self.target, buffer.getvalue().encode("utf-8"))
        self._seen = None
        self.refresh()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """The file's lock; a wait of more than a moment says who holds it, and Ctrl-C ends the wait."""
        lock_path = self.target.with_name(self.target.name + ".lock")
        with open(lock_path, "a+") as lock:
            _acquire(lock, lock_path)
            try:
                lock.seek(0)
                lock.truncate()
                lock.write(f"{os.getpid()}\n")
                lock.flush()
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def _acquire(lock, lock_path: Path) -> None:
    started, told, limit = time.monotonic(), False, lock_timeout()
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        stop_if_requested()
        if not told and time.monotonic() - started > LOCK_NOTICE_S:
            lock.seek(0)
            holder = lock.read().strip() or "unknown"
            warnings.warn(f"waiting for {lock_path.name}: another robustad (process {holder}) is writing "
                          f"{lock_path.with_suffix('').name}; a suspended one (Ctrl-Z) must be resumed with fg",
                          LeaderboardWarning, stacklevel=4)
            told = True
        if time.monotonic() - started > limit:
            lock.seek(0)
            holder = lock.read().strip() or "unknown"
            raise LockTimeout(f"gave up after {limit:g} s waiting for {lock_path.name}: process {holder} holds it; "
                              f"let it finish or stop it, then run again (finished rows are kept; "
                              f"{LOCK_TIMEOUT_VARIABLE} sets the wait)")
        time.sleep(0.05)


def check_writable(path: Path) -> None:
    """Fail before any computing when ``path`` cannot become or be updated as a leaderboard: checked as a file
    (a symlink loop, an existing read-only file or lock), not only as a folder."""
    check_resolvable(path, "--out")
    lock_timeout()
    target = _target(path)
    if target.exists() and not target.is_file():
        raise RobustadError(f"--out {path} is {'a folder' if target.is_dir() else 'not a regular file'}; "
                            "expected a CSV file path")
    folder = _existing_ancestor(target.parent)
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise RobustadError(f"--out {path}: cannot write in {folder} (read-only or not a folder)")
    for existing in (target, target.with_name(target.name + ".lock")):  # no write bit: read-only even for root
        if existing.exists() and (not os.access(existing, os.R_OK | os.W_OK) or not existing.stat().st_mode & 0o222):
            raise RobustadError(f"--out {path}: {existing} exists and is read-only; expected a leaderboard robustad "
                                "may update (make it writable, or pass another --out)")
    if target.exists():
        parse(target)  # a foreign file fails now


def check_resolvable(path: Path, option: str) -> None:
    """A symlink that leads nowhere robustad can write (a loop, a link to itself) is one line now."""
    if not path.is_symlink():
        return
    try:
        os.path.realpath(path, strict=True)
    except FileNotFoundError:
        return  # a link to a file not made yet: the file is created through it
    except OSError as error:
        raise RobustadError(f"{option} {path} is a symlink that cannot be followed ({one_line(error)}); expected a "
                            "file path or a link to one") from None


def _target(path: Path) -> Path:
    """The file a path names, through any symlinks."""
    return Path(os.path.realpath(path))


def _existing_ancestor(folder: Path) -> Path:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _free_name(path: Path) -> Path:
    candidate, number = path, 1
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}.{number}")
    return candidate


def _keep_aside(target: Path, damaged: list[tuple[int, str]]) -> None:
    aside = target.with_name(target.name + ".damaged")
    with aside.open("a", encoding="utf-8") as handle:
        for _, line in damaged:
            handle.write(line if line.endswith("\n") else line + "\n")
    warnings.warn(f"{target}: {len(damaged)} damaged line(s) moved to {aside}", LeaderboardWarning, stacklevel=4)


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


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
