"""Leaderboard bookkeeping at scale: the cost of one append at 1,000, 20,000 and 100,000 existing rows, and every
step of a 20,000-cell grid but the model work (building and checking the cells, finding what is pending, landing
each row), in seconds.

Rows are copies of a real row of results/bottle/leaderboard.csv (every column filled), each with its own key.
Run: .venv/bin/python benchmarks/bench_leaderboard.py
"""

from __future__ import annotations

import csv
import statistics
import tempfile
import time
from pathlib import Path

from robustad.declaration import Request
from robustad.engine.executors import pending
from robustad.engine.request import build_cells
from robustad.engine.rows import cell_columns
from robustad.plugins import get_registry
from robustad.results.leaderboard import COLUMNS, Leaderboard, read_rows

TEMPLATE = Path(__file__).resolve().parents[1] / "results" / "bottle" / "leaderboard.csv"
SIZES = (1_000, 20_000, 100_000)
APPENDS = 200


def template_row() -> dict:
    row = read_rows(TEMPLATE)[0]
    return {**row, "data_sha": "0123456789abcdef"}


def filled(path: Path, count: int, row: dict) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for index in range(count):
            writer.writerow({**row, "cell_hash": f"old{index:012d}"})


def append_cost(folder: Path, count: int, row: dict) -> tuple[float, float, float]:
    """Median and 95th percentile seconds of one append to a file of ``count`` rows, and the first append (which
    reads the file once)."""
    path = folder / f"board-{count}.csv"
    filled(path, count, row)
    board = Leaderboard(path)
    started = time.perf_counter()
    board.append({**row, "cell_hash": "first"})
    first = time.perf_counter() - started
    times = []
    for index in range(APPENDS):
        started = time.perf_counter()
        board.append({**row, "cell_hash": f"new{index}"})
        times.append(time.perf_counter() - started)
    times.sort()
    return statistics.median(times), times[int(0.95 * len(times))], first


def grid_bookkeeping(folder: Path, row: dict) -> tuple[int, dict[str, float]]:
    """A 19,872-cell grid on the demo set (2 categories x 3 shots x 23 seeds x 36 threats x 4 calibrators; the
    threats: the noise control at 4 eps, 4 attacks x 4 eps x 2 surrogates), timed stage by stage, no model work."""
    request = Request(noise_control=False,
        dataset="demo", data_root=None, category="all", shots="1,2,3", seeds=",".join(map(str, range(23))),
        backbone="efficientnet_lite0", weights="", resolution="224", detector="anomalydino",
        surrogate="linear,score", attack="noise,fgsm,pgd,apgd,square", eps="1/255,2/255,4/255,8/255",
        calib="platt,isotonic,temperature,none", calib_fraction=0.3, options=[])
    seconds = {}
    started = time.perf_counter()
    cells = build_cells(request, get_registry())
    seconds["build and check cells"] = time.perf_counter() - started
    board = Leaderboard(folder / "grid.csv")
    started = time.perf_counter()
    todo, _ = pending(cells, board)
    seconds["find pending cells"] = time.perf_counter() - started
    started = time.perf_counter()
    for cell in todo:
        board.append({**row, **cell_columns(cell)})
    seconds["land every row"] = time.perf_counter() - started
    started = time.perf_counter()
    todo, skipped = pending(cells, Leaderboard(folder / "grid.csv"))
    seconds["resume: find pending cells in the full file"] = time.perf_counter() - started
    assert not todo and skipped == len(cells)
    return len(cells), seconds


def main() -> None:
    row = template_row()
    with tempfile.TemporaryDirectory() as folder:
        print(f"one append ({APPENDS} appends after the first; {len(COLUMNS)} columns)")
        print(f"{'existing rows':>14} {'median ms':>10} {'p95 ms':>8} {'first ms':>9}")
        medians = []
        for count in SIZES:
            median, p95, first = append_cost(Path(folder), count, row)
            medians.append(median)
            print(f"{count:>14,} {1e3 * median:>10.2f} {1e3 * p95:>8.2f} {1e3 * first:>9.1f}")
        print(f"ratio of the median at {SIZES[-1]:,} to the median at {SIZES[0]:,}: {medians[-1] / medians[0]:.2f}")
        count, seconds = grid_bookkeeping(Path(folder), row)
        print(f"\nbookkeeping of a {count:,}-cell grid (no model work):")
        for stage, value in seconds.items():
            print(f"  {stage:<45} {value:8.2f} s")
        print(f"  {'total':<45} {sum(seconds.values()):8.2f} s")


if __name__ == "__main__":
    main()
