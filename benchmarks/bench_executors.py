"""What does Ray cost on one machine? Cells per minute of the same demo grid with the local and the Ray executor.

Runs the grid three times into fresh leaderboards: in-process (``run_local``: one group at a time) with torch on
the machine's cores and on one thread, and as Ray tasks on a local Ray instance (no ``--ray-address``: one
single-threaded task per prefix group, ``--threads 1``, as many at once as the machine has cores). Ray's wall
time includes starting Ray and its workers. Prints cells per minute for each, the ratios (> 1: Ray is faster
here), how busy Ray kept the cores (every stage counted once per prefix that owns it, over wall time x cores),
and the largest metric difference from the one-thread local run (0: the Ray tasks compute the same floats).
Run: ``.venv/bin/python benchmarks/bench_executors.py [--seeds 0,1] [--resolution 112] [--eps 2/255]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from robustad.declaration import Request
from robustad.engine.executors import run_local
from robustad.engine.progress import SilentReporter
from robustad.engine.ray_executor import run_ray
from robustad.engine.request import build_cells
from robustad.engine.settings import RunSettings, machine_cores
from robustad.plugins import get_registry

MODEL_STAGES = ("t_split_s", "t_fit_s", "t_clean_s")
METRICS = ("clean_auroc", "clean_ece", "adv_auroc", "adv_ece", "flag_auroc")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--resolution", default="112")
    parser.add_argument("--eps", default="2/255")
    args = parser.parse_args()
    registry = get_registry()
    request = Request(noise_control=False, dataset="demo", data_root=None, category="all", shots="1", seeds=args.seeds,
                      backbone="efficientnet_lite0", weights="", resolution=args.resolution,
                      detector="anomalydino", surrogate="score", attack="fgsm,pgd", eps=args.eps,
                      calib="platt,isotonic,temperature,none", calib_fraction=0.3, options=[])
    cells = build_cells(request, registry)
    n_groups = len({cell.model_prefix for cell in cells})
    cores = machine_cores()
    walls: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        for label, n_threads in ((f"local, torch {cores} threads", cores), ("local, torch 1 thread", 1)):
            started = time.perf_counter()
            written = run_local(cells, RunSettings(pixel_metrics=False, threads=n_threads),
                                Path(folder) / f"local{n_threads}.csv", registry, SilentReporter(),
                                lambda cell, row: None).written
            walls[label] = time.perf_counter() - started
        started = time.perf_counter()
        distributed = run_ray(cells, RunSettings(pixel_metrics=False, threads=1, executor="ray"),
                              Path(folder) / "ray.csv", registry, SilentReporter(), lambda cell, row: None)
        ray_wall = time.perf_counter() - started
    if distributed.failures:
        raise SystemExit(f"Ray groups failed: {distributed.failures}")
    tasks = min(cores, n_groups)
    rows = {row["cell_hash"]: row for row in distributed.written}  # `written`: the one-thread local run's rows
    difference = max(abs(row[m] - rows[row["cell_hash"]][m]) for row in written for m in METRICS)
    print(f"demo grid: {len(cells)} cells in {n_groups} prefix groups, resolution {args.resolution}, "
          f"seeds {args.seeds}, eps {args.eps}; {cores} cores")
    for label, wall in walls.items():
        print(f"{label:28s} {wall:7.1f} s  {60 * len(cells) / wall:6.1f} cells/min   "
              f"ray / this = {wall / ray_wall:.2f}")
    print(f"{f'ray, {tasks} tasks x 1 thread':28s} {ray_wall:7.1f} s  {60 * len(cells) / ray_wall:6.1f} cells/min   "
          f"cores busy {_busy_seconds(distributed.written) / (ray_wall * tasks):.0%}   "
          f"max |metric - local 1 thread| = {difference:.1e}")


def _busy_seconds(rows: list[dict]) -> float:
    """Compute time inside the tasks: shared stages once per prefix that owns them, per-cell stages per cell."""
    model: dict[tuple, float] = {}
    attack: dict[tuple, float] = {}
    surrogate: dict[tuple, float] = {}
    total = 0.0
    for row in rows:
        prefix = tuple(row[k] for k in ("dataset", "category", "shots", "seed"))
        model[prefix] = sum(row[k] for k in MODEL_STAGES)
        surrogate[(*prefix, row["surrogate"])] = row["t_surrogate_s"]
        attack[(*prefix, row["surrogate"], row["attack"], row["eps"])] = row["t_attack_s"]
        total += row["t_calib_metrics_s"]
    return total + sum(model.values()) + sum(surrogate.values()) + sum(attack.values())


if __name__ == "__main__":
    main()
