"""Hand-made leaderboard rows for the results-side tests (text cells, as ``read_rows`` returns them), and the CLI
run in-process (a subprocess pays ~5 s of imports per call)."""

from __future__ import annotations

import csv
import hashlib
import signal
import sys
from fractions import Fraction
from pathlib import Path

import pandas as pd
import pytest

from robustad.results.leaderboard import COLUMNS

BASE = {
    "dataset": "mvtec", "category": "bottle", "shots": "1", "seed": "0", "backbone": "efficientnet_lite0",
    "weights": "", "resolution": "224", "detector": "anomalydino", "surrogate": "score", "attack": "pgd",
    "eps": "2/255", "calibrator": "platt", "calib_fraction": "0.3", "precision": "float32", "round_8bit": "False",
    "options": "{}", "data_id": "bottle-0", "torch_threads": "1",
}


def row(**values: object) -> dict[str, str]:
    """The base cell with ``values`` over it; ``eps_value`` follows ``eps``; None is an empty (undefined) cell."""
    merged = {**BASE, **values}
    if "eps_value" not in values:
        merged["eps_value"] = float(Fraction(str(merged["eps"]))) if merged["eps"] else None
    cells = {k: "" if v is None else str(v) for k, v in merged.items()}
    identity = "|".join(f"{k}={v}" for k, v in sorted(cells.items()))
    return {"cell_hash": hashlib.sha256(identity.encode()).hexdigest()[:16], **cells}


def board(*rows: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def write_board(path: Path, rows: list[dict[str, str]]) -> Path:
    """A leaderboard CSV with the header ``read_rows`` accepts (columns it does not know are left out)."""
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def run_robustad(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, *args: object
                 ) -> tuple[int, str, str]:
    """``robustad ARGS`` through the console entry point: (exit code, stdout, stderr)."""
    from robustad.cli import main

    monkeypatch.setattr(sys, "argv", ["robustad", *map(str, args)])
    monkeypatch.setenv("COLUMNS", "400")
    handler = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit) as stopped:
            main()
    finally:
        signal.signal(signal.SIGINT, handler)  # main installs its own Ctrl-C handling, then ignores Ctrl-C
    captured = capsys.readouterr()
    return stopped.value.code, captured.out, captured.err
