"""The leaderboard CSV: one row per cell, appended atomically, resumable by cell hash (PROTOCOL.md section 7)."""

from __future__ import annotations

import csv
import fcntl
import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from robustad.engine.grid import CELL_FIELDS
from robustad.errors import RobustadError
from robustad.metrics import IMAGE_METRICS
PIXEL_METRICS = ("pixel_auroc", "aupro")
COLUMNS = (
    "cell_hash", *CELL_FIELDS,
    "weights_id", "white_box", "eps_value", "steps", "alpha", "random_start", "restarts",
    "n_ref", "n_calib", "n_eval", "memory_bank_size",
    "clean_auroc_full",
    *(f"clean_{m}" for m in IMAGE_METRICS + PIXEL_METRICS),
    *(f"adv_{m}" for m in IMAGE_METRICS + PIXEL_METRICS),
    "flag_auroc",
    "t_split_s", "t_fit_s", "t_clean_s", "t_surrogate_s", "t_attack_s", "t_calib_metrics_s",
    "device", "torch_threads", "robustad_version", "timestamp",
)


def finished_keys(path: Path) -> set[str]:
    """Cell hashes already in the leaderboard (empty when the file does not exist yet)."""
    return {row["cell_hash"] for row in read_rows(path)}


def read_rows(path: Path) -> list[dict[str, str]]:
    """All rows of a leaderboard CSV, checking that its header is ours."""
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is not None and tuple(reader.fieldnames) != COLUMNS:
            raise RobustadError(f"{path} is not a leaderboard of this robustad version (other columns); "
                                "pass another --out")
        return list(reader)


def append_row(path: Path, row: dict) -> None:
    """Append one row so that a crash at any moment leaves the previous file or the new one, never a torn line.

    The whole file is rewritten to a temporary file beside it and renamed over it, under a lock so that
    concurrent writers do not lose each other's rows.
    """
    unknown = set(row) - set(COLUMNS)
    if unknown:
        raise ValueError(f"unknown leaderboard columns: {sorted(unknown)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        existing = path.read_bytes() if path.exists() else b""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
        if not existing:
            writer.writeheader()
        writer.writerow({column: _cell_text(row.get(column)) for column in COLUMNS})
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(existing + buffer.getvalue().encode())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise


def _cell_text(value: object) -> str:
    """Empty for undefined values (None), repr-exact text for floats."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
