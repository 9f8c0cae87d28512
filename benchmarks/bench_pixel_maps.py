"""What the pixel metrics of one attack cost: anomaly maps at the original image size, then pixel AUROC and AU-PRO.

(a) seconds per 900x900 anomaly map from a 32x32 patch grid (DINOv2 ViT-S/14 at 448 px on MVTec's 900 px images):
the previous implementation (OpenCV bilinear resize to 900x900, then ``scipy.ndimage.gaussian_filter``) against
``AnomalyDINO.anomaly_map``, with the ratio and the largest difference relative to the map's peak; (b) seconds for
``pixel_auroc`` and ``aupro`` over 59 such maps (bottle's eval split: 14 normal, 45 with the real defect masks).
Times are the best of ``--repeats`` rounds. Run: ``.venv/bin/python benchmarks/bench_pixel_maps.py``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from common import mvtec_root
from PIL import Image
from robustad_plugins.anomalydino import AnomalyDINO
from scipy.ndimage import gaussian_filter

from robustad import metrics

GRID, SIZE, NORMAL, DEFECT = (32, 32), (900, 900), 14, 45


def previous_anomaly_map(patch_distances: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The implementation before the separable-matrix one: resize to the full image, then blur it."""
    resized = cv2.resize(patch_distances.astype(np.float32), size[::-1], interpolation=cv2.INTER_LINEAR)
    return gaussian_filter(resized, sigma=4.0, mode="reflect", truncate=4.0)


def best_seconds(step: Callable[[], object], repeats: int) -> float:
    """Fastest wall time of ``step`` over ``repeats`` rounds, after one untimed warm-up run."""
    step()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - started)
    return best


def defect_masks(bottle: Path, count: int) -> list[np.ndarray]:
    """The first ``count`` real bottle defect masks, as bool arrays."""
    paths = sorted((bottle / "ground_truth").glob("*/*.png"))[:count]
    if len(paths) < count:
        raise SystemExit(f"need {count} bottle defect masks under {bottle / 'ground_truth'}, found {len(paths)}")
    return [np.asarray(Image.open(path)) > 0 for path in paths]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bottle", type=Path, default=None,
                        help="MVTec AD bottle folder, for the defect masks (default: $ROBUSTAD_TEST_DATA/bottle)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds; the best one counts")
    args = parser.parse_args()
    args.bottle = args.bottle or mvtec_root() / "bottle"

    rng = np.random.default_rng(0)
    grids = [(rng.random(GRID) * (rng.random(GRID) > 0.3)).astype(np.float32) for _ in range(NORMAL + DEFECT)]
    grid = grids[0]
    before = best_seconds(lambda: previous_anomaly_map(grid, SIZE), args.repeats)
    after = best_seconds(lambda: AnomalyDINO.anomaly_map(grid, SIZE), args.repeats)
    reference = previous_anomaly_map(grid, SIZE)
    difference = np.abs(AnomalyDINO.anomaly_map(grid, SIZE) - reference).max() / np.abs(reference).max()
    print(f"anomaly map {GRID[0]}x{GRID[1]} -> {SIZE[0]}x{SIZE[1]}: previous {before:.4f} s, now {after:.4f} s, "
          f"ratio {before / after:.1f}x; max difference {difference:.1e} of the peak")

    maps = [AnomalyDINO.anomaly_map(g, SIZE) for g in grids]
    masks = [np.zeros(SIZE, dtype=bool)] * NORMAL + defect_masks(args.bottle, DEFECT)
    auroc = best_seconds(lambda: metrics.pixel_auroc(maps, masks), args.repeats)
    pro = best_seconds(lambda: metrics.aupro(maps, masks), args.repeats)
    print(f"{len(maps)} maps of {SIZE[0]}x{SIZE[1]}: pixel_auroc {auroc:.2f} s, aupro {pro:.2f} s, "
          f"together {auroc + pro:.2f} s; all {len(maps)} maps now {len(maps) * after:.2f} s "
          f"(previously {len(maps) * before:.2f} s)")


if __name__ == "__main__":
    main()
