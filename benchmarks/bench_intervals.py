"""Seconds per ``bootstrap_intervals`` call (all 21 columns of an attacked row) against a naive sklearn loop.

The vectorised call does 1000 resamples; the naive loop runs ``robustad.metrics`` (sklearn-based) on each
resample and is timed over ``--naive-resamples`` of them, scaled to 1000 (it is linear in the resamples).
Data: synthetic eval sets of n = 59 (MVTec bottle's eval split) and n = 200 with tied scores. Times are the best
of ``--repeats`` rounds, wall clock and this process's CPU time (the fairer number on a loaded shared machine;
run with ``OPENBLAS_NUM_THREADS=1`` so that CPU time is one core's). Run:
``OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/bench_intervals.py``.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable

import numpy as np

from robustad import metrics
from robustad.intervals import bootstrap_intervals, draw_indices

RESAMPLES = 1000


def eval_set(n: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Labels, clean and adversarial scores (rounded: ties) and their sigmoid probabilities."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.75).astype(int)
    labels[:2] = [0, 1]
    clean = np.round(rng.normal(size=n) + 2.0 * labels, 2)
    adv = np.round(clean - (2 * labels - 1) * rng.random(n) * 2, 2)
    return labels, clean, 1 / (1 + np.exp(-(clean - 1))), adv, 1 / (1 + np.exp(-(adv - 1)))


def naive(data: tuple[np.ndarray, ...], threshold: float, resamples: int) -> None:
    """What the vectorised call replaces: every metric of every resample through robustad.metrics."""
    labels, clean, clean_probs, adv, adv_probs = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", metrics.UndefinedMetricWarning)
        for rows in draw_indices(labels.size, resamples, 0):
            metrics.image_metrics(labels[rows], clean[rows], clean_probs[rows])
            metrics.image_metrics(labels[rows], adv[rows], adv_probs[rows])
            metrics.flag_auroc(clean_probs[rows], adv_probs[rows])
            metrics.flag_tpr(adv_probs[rows], threshold)
            metrics.evasion_rate(labels[rows], adv_probs[rows], threshold)


def best_seconds(step: Callable[[], object], repeats: int) -> tuple[float, float]:
    """The fastest (wall, CPU) seconds of ``repeats`` runs of ``step``."""
    wall, cpu = [], []
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return min(wall), min(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--naive-resamples", type=int, default=50, help="resamples timed in the naive loop")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds; the best one counts")
    args = parser.parse_args()
    print(f"{RESAMPLES} resamples, 21 columns; naive loop timed on {args.naive_resamples} resamples and scaled; "
          f"best of {args.repeats}")
    for n in (59, 200):
        data = eval_set(n)
        threshold = metrics.flag_threshold(data[2][: n // 3])
        bootstrap_intervals(*data, flag_threshold=threshold)  # warm-up: lazy imports
        fast = best_seconds(lambda: bootstrap_intervals(*data, flag_threshold=threshold), args.repeats)
        slow = [s * RESAMPLES / args.naive_resamples
                for s in best_seconds(lambda: naive(data, threshold, args.naive_resamples), args.repeats)]
        for kind, vectorised, loop in zip(("wall", "CPU"), fast, slow):
            print(f"n={n:4d} {kind:>4}: vectorised {vectorised:.4f} s per call, naive sklearn loop {loop:.2f} s, "
                  f"ratio {loop / vectorised:.0f}x")


if __name__ == "__main__":
    main()
