"""Does the runner compute shared work once? Wall time of a grid against the sum of its unique stages.

Runs the demo grid in-process (the defaults of ``robustad bench``, or the lists given) into a fresh leaderboard,
then compares, in one run:
- wall: the measured wall time of the whole grid;
- unique: the sum of every stage counted once per prefix that owns it (split + fit + clean scoring per model
  prefix, surrogate fit per surrogate, attack per attack prefix) plus calibration and metrics per cell;
- naive: the sum over cells of every stage that cell needs, i.e. what a runner without reuse would spend.
wall/unique near 1 says nothing is recomputed; naive/wall is the saving from reuse. Also prints cells per minute.
Run: ``.venv/bin/python benchmarks/bench_runner.py [--seeds 0] [--eps 2/255,8/255]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from robustad.declaration import Request
from robustad.engine.executors import run_local
from robustad.engine.progress import SilentReporter
from robustad.engine.request import build_cells
from robustad.engine.settings import RunSettings
from robustad.plugins import get_registry

SHARED_STAGES = {
    "model": ("t_split_s", "t_fit_s", "t_clean_s"),
    "surrogate": ("t_surrogate_s",),
    "attack": ("t_attack_s",),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--eps", default="2/255,8/255")
    parser.add_argument("--resolution", default="224")
    args = parser.parse_args()
    registry = get_registry()
    request = Request(noise_control=False, dataset="demo", data_root=None, category="all", shots="1", seeds=args.seeds,
                      backbone="efficientnet_lite0", weights="", resolution=args.resolution,
                      detector="anomalydino", surrogate="linear,score", attack="fgsm,pgd", eps=args.eps,
                      calib="platt,isotonic,temperature,none", calib_fraction=0.3, options=[])
    cells = build_cells(request, registry)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        result = run_local(cells, RunSettings(), Path(folder) / "board.csv", registry, SilentReporter(),
                           lambda cell, row: None)
        wall = time.perf_counter() - started
    by_key = {row["cell_hash"]: row for row in result.written}
    unique: dict[tuple, float] = {}
    naive = 0.0
    for cell in cells:
        row = by_key[cell.key]
        owners = {"model": cell.model_prefix, "surrogate": (*cell.model_prefix, cell.surrogate),
                  "attack": cell.attack_prefix}
        for stage, columns in SHARED_STAGES.items():
            seconds = sum(row[c] for c in columns)
            unique[(stage, owners[stage])] = seconds
            naive += seconds
        naive += row["t_calib_metrics_s"]
    unique_total = sum(unique.values()) + sum(row["t_calib_metrics_s"] for row in result.written)
    print(f"demo grid: {len(cells)} cells, resolution {args.resolution}, seeds {args.seeds}, eps {args.eps}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"wall {wall:8.1f} s   unique stages {unique_total:8.1f} s   naive (no reuse) {naive:8.1f} s")
    print(f"wall / unique = {wall / unique_total:.3f}   naive / wall = {naive / wall:.2f}   "
          f"cells per minute = {60 * len(cells) / wall:.1f}")


if __name__ == "__main__":
    main()
